"""The comparison study (``sinotriage compare``): sinogram vs reconstruction vs windowed input,
and the number of projections, over training seeds and training-set sizes, with results.json
and a self-contained HTML report.

- :mod:`~sinotriage.experiments.config`: :class:`StudyConfig`, arms, training options.
- :mod:`~sinotriage.experiments.presets`: the study presets (:data:`STUDY_PRESETS`).
- :mod:`~sinotriage.experiments.jobs`: :class:`ArmJob`, :class:`ArmOutput`, the trainer protocol.
- :mod:`~sinotriage.experiments.runner`: :func:`run_study` (resumable, run by run).
- :mod:`~sinotriage.experiments.cluster`: the runs as dask tasks (local cluster, scheduler, GPUs).
- :mod:`~sinotriage.experiments.train_arm`: one run through the training engine.
- :mod:`~sinotriage.experiments.power`: validation/test split sizes for a wanted CI width.
- :mod:`~sinotriage.experiments.results`, :mod:`~sinotriage.experiments.summary`: metrics, the
  summaries across seeds and sizes, the results.json schema.
- :mod:`~sinotriage.experiments.report`, :mod:`~sinotriage.experiments.plots`: report and figures.
"""

from __future__ import annotations

from sinotriage.experiments.build import rerender
from sinotriage.experiments.config import (
    ArmConfig,
    QueueConfig,
    StudyConfig,
    default_arms,
    load_study_config,
)
from sinotriage.experiments.jobs import ArmJob, ArmOutput, Trainer, arm_views
from sinotriage.experiments.presets import STUDY_PRESETS, study_preset
from sinotriage.experiments.results import read_results
from sinotriage.experiments.runner import run_study

__all__ = [
    "STUDY_PRESETS",
    "ArmConfig",
    "ArmJob",
    "ArmOutput",
    "QueueConfig",
    "StudyConfig",
    "Trainer",
    "arm_views",
    "default_arms",
    "load_study_config",
    "read_results",
    "rerender",
    "run_study",
    "study_preset",
]
