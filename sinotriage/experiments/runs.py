"""One run of the study (an arm, a seed, a training size): train it, write its predictions and
its ``result.json`` atomically, or record its failure.  Used by the sequential runner and by the
dask tasks (:mod:`.cluster`) alike.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

from sinotriage.experiments.jobs import ArmJob, Trainer
from sinotriage.experiments.results import arm_metrics, utc_now
from sinotriage.io.files import atomic_write_json, atomic_write_text
from sinotriage.io.predictions import write_predictions

__all__ = ["execute_run", "load_finished_run", "run_arm", "run_dir"]


def run_dir(out: Path, job: ArmJob) -> Path:
    return out / "arms" / job.name


def _predictions_rel(job: ArmJob) -> str:
    return f"predictions/{job.name.replace('/', '_')}.csv"


def load_finished_run(out: Path, job: ArmJob) -> dict[str, Any] | None:
    """The stored result of a run when it finished with the current fingerprint, else None."""
    path = run_dir(out, job) / "result.json"
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != job.config.run_fingerprint(job.arm, job.seed, job.size):
        return None
    if not (out / rec.get("predictions", "")).is_file():
        return None
    return rec


def run_arm(job: ArmJob, trainer: Trainer, out: Path) -> dict[str, Any]:
    """Train one run, write its predictions and, last, its result.json (atomically)."""
    t0 = time.perf_counter()
    output = trainer(job)
    seconds = time.perf_counter() - t0
    pred = output.predictions
    if len(pred.scans()) == 0:
        pred = pred.with_scan_rows(job.config.aggregation, job.config.aggregation_k)
    rel = _predictions_rel(job)
    write_predictions(out / rel, pred)
    cfg = job.config
    rec: dict[str, Any] = {
        "arm": job.arm.name,
        "seed": job.seed,
        "size": job.size,
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
        "fingerprint": cfg.run_fingerprint(job.arm, job.seed, job.size),
        "finished": utc_now(),
    }
    atomic_write_json(run_dir(out, job) / "result.json", rec)
    return rec


def execute_run(job: ArmJob, trainer: Trainer, out: Path,
                threads: int | None = None) -> tuple[str, dict[str, Any] | None, str | None]:
    """Run one job, catching its failure: ``(name, record or None, error or None)``.

    ``threads`` sets :func:`torch.set_num_threads` for the run (restored after; the dask
    tasks use 1).  A failure is also written to the run's ``failed.txt`` (removed by its next
    success).
    """
    if threads is not None:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
    fail_file = run_dir(out, job) / "failed.txt"
    try:
        rec = run_arm(job, trainer, out)
    except Exception as exc:  # a failed run must not stop the others; its traceback is kept
        message = f"{type(exc).__name__}: {exc}"
        atomic_write_text(fail_file, traceback.format_exc())
        return job.name, None, message
    finally:
        if threads is not None:
            torch.set_num_threads(before)
    fail_file.unlink(missing_ok=True)
    return job.name, rec, None


