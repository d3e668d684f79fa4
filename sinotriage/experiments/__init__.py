"""The comparison study (``sinotriage compare``): sinogram vs reconstruction vs windowed input,
and the number of projections, with results.json and a self-contained HTML report.

- :mod:`~sinotriage.experiments.config`: :class:`StudyConfig`, arms, presets.
- :mod:`~sinotriage.experiments.runner`: :func:`run_study` (resumable, arm by arm).
- :mod:`~sinotriage.experiments.train_arm`: one arm through the training engine.
- :mod:`~sinotriage.experiments.results`: per-arm metrics and the results.json schema.
- :mod:`~sinotriage.experiments.report`, :mod:`~sinotriage.experiments.plots`: report and figures.
"""

from __future__ import annotations

from sinotriage.experiments.build import rerender
from sinotriage.experiments.config import (
    STUDY_PRESETS,
    ArmConfig,
    QueueConfig,
    StudyConfig,
    TrainingBudget,
    default_arms,
    load_study_config,
    study_preset,
)
from sinotriage.experiments.results import read_results
from sinotriage.experiments.runner import ArmJob, ArmOutput, run_study

__all__ = [
    "STUDY_PRESETS",
    "ArmConfig",
    "ArmJob",
    "ArmOutput",
    "QueueConfig",
    "StudyConfig",
    "TrainingBudget",
    "default_arms",
    "load_study_config",
    "read_results",
    "rerender",
    "run_study",
    "study_preset",
]
