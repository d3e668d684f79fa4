"""The job types shared by the study's runner, its trainers and its report (a leaf module).

A *run* is one arm trained with one seed on one training-set size; :class:`ArmJob` carries
everything a trainer needs for it, :class:`ArmOutput` is what the trainer returns.  This module
imports only the configuration, so the runner, the trainer (:mod:`.train_arm`) and the report
builder (:mod:`.build`) can all import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sinotriage.experiments.config import ArmConfig, StudyConfig
from sinotriage.io.predictions import Predictions

__all__ = ["ArmJob", "ArmOutput", "EpochCallback", "Trainer", "arm_views", "run_name"]

#: ``on_epoch(epoch, total_epochs, metrics)`` after each training epoch
EpochCallback = Callable[[int, int, dict[str, Any]], None]


def run_name(arm: str, seed: int, size: int | None) -> str:
    """The key of a run in results.json and its directory: ``<arm>/s<seed>/n<size|all>``."""
    return f"{arm}/s{seed}/n{'all' if size is None else size}"


@dataclass
class ArmJob:
    """Everything a trainer needs to run one arm with one seed on one training-set size.

    Attributes
    ----------
    config, arm
        The study and the arm.
    model
        Model name (:meth:`StudyConfig.model_for`).
    views
        Number of projections of the arm's input.
    store_path
        The dataset store.
    workdir
        The run's own directory (checkpoints, metrics).
    device
        Torch device.
    seed
        Training seed.
    size
        Training studies (None: the whole train split).
    on_epoch
        Called after each epoch (in the process that trains; None under dask).
    """

    config: StudyConfig
    arm: ArmConfig
    model: str
    views: int
    store_path: Path
    workdir: Path
    device: str = "cpu"
    seed: int = 0
    size: int | None = None
    on_epoch: EpochCallback | None = None

    @property
    def name(self) -> str:
        """:func:`run_name` of this run."""
        return run_name(self.arm.name, self.seed, self.size)

    def train_config(self) -> Any:
        """The run's full :class:`~sinotriage.training.TrainConfig`."""
        return self.config.train_config(
            self.arm, seed=self.seed, size=self.size, store=str(self.store_path),
            out_dir=str(self.workdir / "run"), views=self.views, device=self.device)


@dataclass
class ArmOutput:
    """What a trainer returns: validation and test predictions (scan rows at least)."""

    predictions: Predictions
    epochs: int
    best_val_auc: float | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    """``trainer(job) -> ArmOutput``: train one run and score its validation and test splits."""

    def __call__(self, job: ArmJob) -> ArmOutput: ...


def arm_views(arm: ArmConfig, full_views: int) -> int:
    """Number of projections of an arm: ``full_views // view_factor`` (at least 1)."""
    if arm.view_factor > full_views:
        raise ValueError(f"arm {arm.name}: view_factor {arm.view_factor} exceeds the {full_views} views")
    return max(1, full_views // arm.view_factor)
