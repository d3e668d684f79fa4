"""Run a comparison study: data, every arm (resumable), then results.json and the report.

Output directory layout::

    OUT/
      config.yaml              the study config used
      results.json             every number (schema in sinotriage.experiments.results)
      report.md, report.html   the report (HTML self-contained)
      figures/*.png            the figures of the report
      predictions/<arm>.csv    validation and test predictions of each arm (slice and scan rows)
      arms/<arm>/result.json   an arm's metrics, written atomically when the arm has finished
      arms/<arm>/...           the arm's training run (checkpoints, metrics CSV)
      data/<preset>.zarr       the synthetic store, when no store is given (reused on reruns)

Resume: an arm whose ``arms/<arm>/result.json`` exists with the same fingerprint (arm, model,
training budget, data settings) and whose predictions file exists is not run again; an
interrupted study therefore reruns only its unfinished arms.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sinotriage.experiments.config import ArmConfig, StudyConfig
from sinotriage.experiments.results import (
    arm_metrics,
    utc_now,
    write_json,
    write_text,
)
from sinotriage.io.predictions import Predictions, read_predictions, write_predictions

EpochCallback = Callable[[int, int, dict[str, Any]], None]


@dataclass
class ArmJob:
    """Everything a trainer needs to run one arm."""

    config: StudyConfig
    arm: ArmConfig
    model: str
    views: int
    store_path: Path
    workdir: Path
    device: str = "cpu"
    on_epoch: EpochCallback | None = None


@dataclass
class ArmOutput:
    """What a trainer returns: validation and test predictions (scan rows at least)."""

    predictions: Predictions
    epochs: int
    best_val_auc: float | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    def __call__(self, job: ArmJob) -> ArmOutput: ...


def arm_views(arm: ArmConfig, full_views: int) -> int:
    """Number of projections of an arm: ``full_views // view_factor`` (at least 1)."""
    if arm.view_factor > full_views:
        raise ValueError(f"arm {arm.name}: view_factor {arm.view_factor} exceeds the {full_views} views")
    return max(1, full_views // arm.view_factor)


# --------------------------------------------------------------------------- data
def prepare_store(
    config: StudyConfig,
    out: Path,
    store: str | os.PathLike[str] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """The store of the study, synthesized (or completed) when not given, with every view count
    the arms need derived by :func:`sinotriage.preprocess.preprocess`."""
    from sinotriage.io.store import open_store
    from sinotriage.preprocess import preprocess

    if store is None:
        from dataclasses import replace

        from sinotriage.presets import get_preset
        from sinotriage.synth import synthesize

        preset = replace(get_preset(config.data_preset), difficulty=config.difficulty)
        suffix = "" if config.difficulty == "standard" else f"_{config.difficulty}"
        path = out / "data" / f"{config.data_preset}{suffix}.zarr"
        synthesize(path, config.n_studies, preset, config.seed,
                   prevalence=config.prevalence, fractions=config.split_fractions,
                   workers=workers, progress=progress)
    else:
        path = Path(store)
        if not path.exists():
            raise FileNotFoundError(f"store {path} does not exist")
    st = open_store(path)
    geometry = st.geometry
    if geometry is None:
        raise ValueError(f"store {path} has no geometry; the study needs sinograms")
    full = int(geometry.n_views)
    needed = set()
    for arm in config.arms:
        v = arm_views(arm, full)
        if arm.domain != "sinogram" or v != full:
            needed.add(v)
    for split in ("train", "val", "test"):
        if not st.study_ids(split):
            raise ValueError(f"store {path} has no studies in split {split!r}; assign splits first")
    if needed:
        preprocess(path, sorted(needed, reverse=True), workers=workers, progress=progress)
    return path


# --------------------------------------------------------------------------- arms
def _arm_dir(out: Path, arm: ArmConfig) -> Path:
    return out / "arms" / arm.name


def load_finished_arm(out: Path, config: StudyConfig, arm: ArmConfig) -> dict[str, Any] | None:
    """The stored result of an arm when it finished with the current fingerprint, else None."""
    path = _arm_dir(out, arm) / "result.json"
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != config.arm_fingerprint(arm):
        return None
    if not (out / rec.get("predictions", "")).is_file():
        return None
    return rec


def run_arm(job: ArmJob, trainer: Trainer, out: Path) -> dict[str, Any]:
    """Train one arm, write its predictions and, last, its result.json (atomically)."""
    t0 = time.perf_counter()
    output = trainer(job)
    seconds = time.perf_counter() - t0
    pred = output.predictions
    if len(pred.scans()) == 0:
        pred = pred.with_scan_rows(job.config.aggregation, job.config.aggregation_k)
    rel = f"predictions/{job.arm.name}.csv"
    write_predictions(out / rel, pred)
    cfg = job.config
    rec: dict[str, Any] = {
        "domain": job.arm.domain,
        "views": job.views,
        "view_factor": job.arm.view_factor,
        "model": job.model,
        "windows": list(job.arm.windows) if job.arm.domain == "windowed" else None,
        "learned": output.extra.get("learned"),
        **arm_metrics(pred, cfg.operating_sensitivity, cfg.fixed_specificity, cfg.alpha),
        "train_seconds": seconds,
        "epochs": output.epochs,
        "best_val_auc": output.best_val_auc,
        "checkpoint": output.checkpoint,
        "predictions": rel,
        "fingerprint": cfg.arm_fingerprint(job.arm),
        "finished": utc_now(),
    }
    write_json(_arm_dir(out, job.arm) / "result.json", rec)
    return rec


class _Display:
    """Rich progress: one bar over the arms, one over the epochs of the arm in training."""

    def __init__(self, n_arms: int, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            )
            self.arms = self.progress.add_task("arms", total=n_arms, info="")
            self.epochs = self.progress.add_task("epochs", total=1, info="", visible=False)

    def __enter__(self) -> _Display:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start_arm(self, arm: ArmConfig, model: str, views: int, epochs: int) -> None:
        if self.progress is not None:
            self.progress.update(self.arms, info=f"training {arm.name} ({arm.domain}, {views} views, {model})")
            self.progress.reset(self.epochs, total=epochs, visible=True,
                                description=f"epochs of {arm.name}", info="")

    def epoch(self, epoch: int, total: int, metrics: dict[str, Any]) -> None:
        if self.progress is not None:
            info = " ".join(f"{k} {v:.3f}" for k, v in metrics.items()
                            if isinstance(v, int | float) and k != "epoch")
            self.progress.update(self.epochs, completed=epoch, total=total, info=info)

    def finish_arm(self, arm: ArmConfig, rec: dict[str, Any], skipped: bool) -> None:
        if self.progress is not None:
            self.progress.advance(self.arms)
            what = "reused" if skipped else "done"
            self.progress.console.print(
                f"{arm.name}: {what}, test AUC {rec['auc']:.3f} "
                f"[{rec['auc_ci'][0]:.3f}, {rec['auc_ci'][1]:.3f}]"
            )


def _default_trainer() -> Trainer:
    from sinotriage.experiments.train_arm import train_arm

    return train_arm


def run_study(
    config: StudyConfig,
    out: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    workers: int = 2,
    trainer: Trainer | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the study and write results.json, report.md, report.html.

    Parameters
    ----------
    config : StudyConfig
    out : path-like
        Results directory (created).
    store : path-like, optional
        An existing store; default a synthetic store for ``config.data_preset`` under
        ``out/data/``, built on the first run and reused afterwards.
    device : str
        Torch device of training ("cpu", "cuda", "cuda:1").
    workers : int
        Dask worker processes for synthesis and preprocessing (0: in this process).
    trainer : callable, optional
        ``trainer(ArmJob) -> ArmOutput``; default :func:`sinotriage.experiments.train_arm.train_arm`
        (the training engine).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        The content of results.json.
    """
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    write_text(out / "config.yaml", config.to_yaml())
    store_path = prepare_store(config, out, store, workers=workers, progress=progress)
    t_data = time.perf_counter() - t_start

    from sinotriage.io.store import open_store

    full_views = int(open_store(store_path).geometry.n_views)
    trainer = trainer or _default_trainer()
    records: dict[str, dict[str, Any]] = {}
    with _Display(len(config.arms), progress) as display:
        for arm in config.arms:
            views = arm_views(arm, full_views)
            model = config.model_for(arm)
            rec = load_finished_arm(out, config, arm)
            if rec is None:
                display.start_arm(arm, model, views, config.training.epochs)
                job = ArmJob(config, arm, model, views, store_path, _arm_dir(out, arm), device,
                             on_epoch=display.epoch)
                rec = run_arm(job, trainer, out)
                display.finish_arm(arm, rec, skipped=False)
            else:
                display.finish_arm(arm, rec, skipped=True)
            records[arm.name] = rec
    t_train = time.perf_counter() - t_start - t_data

    from sinotriage.experiments.build import finalize

    return finalize(config, out, records, store_path, full_views, device,
                    timing={"data_seconds": t_data, "train_seconds": t_train,
                            "total_seconds": time.perf_counter() - t_start})


def load_arm_predictions(out: Path, records: dict[str, dict[str, Any]]) -> dict[str, Predictions]:
    """Read the predictions CSV of every arm."""
    return {name: read_predictions(out / rec["predictions"]) for name, rec in records.items()}


__all__ = [
    "ArmJob",
    "ArmOutput",
    "Trainer",
    "arm_views",
    "load_arm_predictions",
    "load_finished_arm",
    "prepare_store",
    "run_arm",
    "run_study",
]
