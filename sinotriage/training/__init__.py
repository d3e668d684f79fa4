"""The training and evaluation engine (see ``docs/training.md``).

``train(config) -> TrainResult`` trains any model of :mod:`sinotriage.models` on a store's slices
in one input domain; ``predict(checkpoint, store, split)`` scores a split;
``evaluate(checkpoint, store, split)`` adds the metrics JSON and the ROC figure.
"""

from __future__ import annotations

from sinotriage.training.config import AugmentConfig, TrainConfig, load_config
from sinotriage.training.engine import TrainResult, train
from sinotriage.training.predict import evaluate, load_model, predict

__all__ = ["AugmentConfig", "TrainConfig", "TrainResult", "evaluate", "load_config",
           "load_model", "predict", "train"]
