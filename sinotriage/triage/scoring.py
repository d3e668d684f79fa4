"""Scoring a store with a trained checkpoint: the predictions table a worklist is built from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.predictions import Predictions

__all__ = ["predictions_from_checkpoint"]


def predictions_from_checkpoint(checkpoint: str | os.PathLike[str], store: str | os.PathLike[str],
                                splits: tuple[str, ...] = ("val", "test")) -> Predictions:
    """Score the studies of ``splits`` of a store with a trained checkpoint.

    Uses :func:`sinotriage.training.predict` (the training engine's inference) and returns its
    predictions table (slice and scan rows).

    Raises
    ------
    FileNotFoundError
        The checkpoint or store does not exist.
    ValueError
        ``sinotriage.training.predict`` is not available in this installation.
    """
    checkpoint, store = Path(checkpoint), Path(store)
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if not store.exists():
        raise FileNotFoundError(f"store {store} does not exist")
    try:
        from sinotriage.training import predict
    except ImportError as exc:
        raise InputError(f"--checkpoint needs sinotriage.training.predict, which cannot be imported "
                         f"({exc}); score the store first and pass --scores predictions.csv") from None
    parts = [predict(checkpoint, store, split=split) for split in dict.fromkeys(splits)]
    return _concat(parts)


def _concat(parts: list[Predictions]) -> Predictions:
    names = parts[0].label_names
    for p in parts[1:]:
        if p.label_names != names:
            raise InputError(f"predictions disagree on their labels: {names} vs {p.label_names}")
    return Predictions(sum((p.study_id for p in parts), []), sum((p.split for p in parts), []),
                       np.concatenate([p.slice for p in parts]), np.concatenate([p.labels for p in parts]),
                       np.concatenate([p.scores for p in parts]), names)
