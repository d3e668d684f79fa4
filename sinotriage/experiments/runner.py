"""Run a comparison study: data, every run (resumable), then results.json and the report.

A *run* is one arm trained with one seed on one training-set size (:mod:`.jobs`).  Output
directory layout::

    OUT/
      config.yaml                  the study config used
      results.json                 every number (schema in sinotriage.experiments.results)
      report.md, report.html       the report (HTML self-contained)
      figures/*.png                the figures of the report
      predictions/<arm>_s<seed>_n<size>.csv   validation and test predictions of each run
      arms/<arm>/s<seed>/n<size>/result.json  a run's metrics, written atomically when it ends
      arms/<arm>/s<seed>/n<size>/run/         the run's training output (checkpoints, metrics)
      data/<preset>.zarr           the synthetic store, when no store is given (reused)

Resume: a run whose ``result.json`` exists with the same fingerprint (arm, model, training
options, seed, size, data settings) and whose predictions file exists is not run again; an
interrupted study reruns only its unfinished runs.  A run that raises is recorded under
``failed`` in results.json and does not stop the others; a rerun retries it.

Runs are independent, so they can go to a dask cluster (:mod:`.cluster`, ``--workers K`` or
``--scheduler tcp://host:port``); results, resume and report are the same as run by run here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sinotriage.errors import InputError
from sinotriage.experiments.build import finalize
from sinotriage.experiments.cluster import run_on_dask
from sinotriage.experiments.config import ArmConfig, StudyConfig
from sinotriage.experiments.jobs import ArmJob, ArmOutput, EpochCallback, Trainer, arm_views
from sinotriage.experiments.runs import execute_run, load_finished_run, run_arm, run_dir
from sinotriage.io.files import atomic_write_text
from sinotriage.io.predictions import Predictions, read_predictions
from sinotriage.progress import ProgressCallback, report
from sinotriage.vocabulary import SPLITS

__all__ = [
    "ArmJob",
    "ArmOutput",
    "Trainer",
    "arm_views",
    "execute_run",
    "load_arm_predictions",
    "load_finished_run",
    "plan_runs",
    "prepare_store",
    "run_arm",
    "run_study",
]


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
        raise InputError(f"store {path} has no geometry; the study needs sinograms")
    full = int(geometry.n_views)
    needed = set()
    for arm in config.arms:
        v = arm_views(arm, full)
        if arm.domain != "sinogram" or v != full:
            needed.add(v)
    for split in SPLITS:
        if not st.study_ids(split):
            raise InputError(f"store {path} has no studies in split {split!r}; assign splits first")
    n_train = len(st.study_ids("train"))
    too_big = [n for n in config.train_sizes if n > n_train]
    if too_big:
        raise InputError(f"train_sizes {too_big} exceed the {n_train} training studies of {path}")
    if needed:
        preprocess(path, sorted(needed, reverse=True), workers=workers, progress=progress)
    return path


# --------------------------------------------------------------------------- runs
def plan_runs(config: StudyConfig) -> list[tuple[ArmConfig, int, int | None]]:
    """Every (arm, seed, size) of the study, arm by arm, then seed, then size."""
    sizes: tuple[int | None, ...] = config.train_sizes or (None,)
    return [(arm, seed, size) for arm in config.arms for seed in config.seeds for size in sizes]


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
    progress: ProgressCallback | None = None,
    on_epoch: EpochCallback | None = None,
    data_progress: bool = False,
    cluster: Any = None,
    threads: int | None = None,
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
        (the training engine).  Must be picklable when ``cluster`` is given.
    progress : ProgressCallback, optional
        Called ``(runs done, runs total, "<run>: <AUC or failure>")`` after each run.
    on_epoch : callable, optional
        ``on_epoch(epoch, epochs, metrics)`` after each epoch of a run trained in this process.
    data_progress : bool
        Let synthesis and preprocessing draw their own progress bars.
    cluster : distributed.Client or str, optional
        Run the runs as dask tasks (:func:`sinotriage.experiments.cluster.run_on_dask`): a
        client, or a scheduler address ``tcp://host:port``.  None: one after the other here.
    threads : int, optional
        Torch threads of each run (:func:`torch.set_num_threads`); dask tasks default to 1.

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
    atomic_write_text(out / "config.yaml", config.to_yaml())
    store_path = prepare_store(config, out, store, workers=workers, progress=data_progress)
    t_data = time.perf_counter() - t_start

    from sinotriage.io.store import open_store

    full_views = int(open_store(store_path).geometry.n_views)
    trainer = trainer or _default_trainer()
    jobs = [ArmJob(config, arm, config.model_for(arm), arm_views(arm, full_views), store_path,
                   Path(), device, seed=seed, size=size)
            for arm, seed, size in plan_runs(config)]
    for job in jobs:
        job.workdir = run_dir(out, job)
    records: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    todo = []
    for job in jobs:
        rec = load_finished_run(out, job)
        if rec is None:
            todo.append(job)
        else:
            records[job.name] = rec
    done = len(records)
    report(progress, done, len(jobs), f"{done} runs reused")

    def finished(name: str, rec: dict[str, Any] | None, error: str | None) -> None:
        nonlocal done
        done += 1
        if rec is not None:
            records[name] = rec
            ci = rec["auc_ci"]
            text = f"{name}: test AUC {rec['auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        else:
            failed[name] = str(error)
            text = f"{name}: FAILED {error}"
        report(progress, done, len(jobs), text)

    if cluster is not None and todo:
        run_on_dask(todo, trainer, out, cluster, finished, threads=threads or 1)
    else:
        for job in todo:
            job.on_epoch = on_epoch
            finished(*execute_run(job, trainer, out, threads))
            job.on_epoch = None
    t_train = time.perf_counter() - t_start - t_data

    return finalize(config, out, records, failed, store_path, full_views, device,
                    timing={"data_seconds": t_data, "train_seconds": t_train,
                            "total_seconds": time.perf_counter() - t_start})


def load_arm_predictions(out: Path, records: dict[str, dict[str, Any]]) -> dict[str, Predictions]:
    """Read the predictions CSV of every run."""
    return {name: read_predictions(out / rec["predictions"]) for name, rec in records.items()}


