"""Per-arm metrics and the ``results.json`` of a comparison study.

results.json schema (version 1)
-------------------------------
::

    {
      "schema": "sinotriage.compare/1",
      "sinotriage_version": "0.1.0",
      "created": "2026-11-22T23:59:00+00:00",       # UTC
      "study": {"name", "data_preset", "difficulty", "n_studies", "seed", "reference_arm",
                "aggregation", "operating_sensitivity", "fixed_specificity", "alpha", "notes"},
      "store": "path/to/store.zarr", "full_views": 492, "device": "cpu",
      "test": {"n": 24, "positives": 12, "negatives": 12},
      "arms": {
        "<arm>": {
          "domain": "sinogram" | "recon" | "windowed", "views": 492, "view_factor": 1,
          "model": "densenet_slim", "windows": [...] or null,
          "auc": 0.93, "auc_ci": [0.86, 0.99], "auc_se": 0.03,
          "threshold": 0.41,             # chosen on validation for operating_sensitivity
          "accuracy", "sensitivity", "specificity", "precision", "f1",   # on test at threshold
          "sens_at_spec": 0.8,           # on test, at fixed_specificity
          "val_auc": 0.95,
          "delta_auc_vs_reference": -0.02, "p_vs_reference": 0.41 (null for the reference),
          "train_seconds": 61.2, "epochs": 4,
          "predictions": "predictions/<arm>.csv"
        }, ...
      },
      "queue": {...} or null,                       # see sinotriage.experiments.queue
      "timing": {"total_seconds", "data_seconds", "train_seconds"}
    }
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sinotriage.io.predictions import Predictions
from sinotriage.metrics import (
    binary_metrics,
    delong_ci,
    delong_test,
    roc_auc,
    sensitivity_at_specificity,
    threshold_for_sensitivity,
)

SCHEMA = "sinotriage.compare/1"

#: arm-level numbers shown in the report table, in order: (key, column title)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("auc", "AUC"),
    ("auc_ci", "95% CI"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("accuracy", "Accuracy"),
    ("sens_at_spec", "Sens@Spec"),
    ("p_vs_reference", "p vs ref"),
    ("train_seconds", "Train (s)"),
)


def scan_columns(pred: Predictions, split: str, label: str = "any") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Study ids, labels and scores of the scan-level rows of one split, sorted by study id."""
    scans = pred.scans(split)
    if len(scans) == 0:
        raise ValueError(f"no scan-level rows (slice = -1) for split {split!r} in the predictions")
    y, s = scans.column(label)
    order = np.argsort(np.asarray(scans.study_id), kind="mergesort")
    if np.any(y[order] < 0):
        raise ValueError(f"split {split!r} has scans with unknown labels; metrics need labels")
    return [scans.study_id[i] for i in order], y[order].astype(int), s[order]


def arm_metrics(
    pred: Predictions,
    operating_sensitivity: float = 0.9,
    fixed_specificity: float = 0.9,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Test metrics of one arm from its scan-level validation and test predictions.

    The operating threshold is chosen on the validation split (the highest threshold reaching
    ``operating_sensitivity``) and applied to the test split.

    Returns
    -------
    dict with ``auc``, ``auc_ci`` [lower, upper], ``auc_se``, ``threshold``, ``accuracy``,
    ``sensitivity``, ``specificity``, ``precision``, ``f1``, ``sens_at_spec``, ``val_auc``,
    ``n_test``, ``n_test_positive``.
    """
    _, yv, sv = scan_columns(pred, "val")
    _, yt, st = scan_columns(pred, "test")
    ci = delong_ci(yt, st, alpha)
    thr = threshold_for_sensitivity(yv, sv, operating_sensitivity)
    bm = binary_metrics(yt, st, thr)
    return {
        "auc": ci.auc,
        "auc_ci": [ci.lower, ci.upper],
        "auc_se": ci.se,
        "threshold": thr,
        "accuracy": bm.accuracy,
        "sensitivity": bm.sensitivity,
        "specificity": bm.specificity,
        "precision": bm.precision,
        "f1": bm.f1,
        "sens_at_spec": sensitivity_at_specificity(yt, st, fixed_specificity),
        "val_auc": roc_auc(yv, sv) if 0 < yv.sum() < yv.size else None,
        "n_test": int(yt.size),
        "n_test_positive": int(yt.sum()),
    }


def paired_tests(preds: Mapping[str, Predictions], reference: str) -> dict[str, dict[str, float]]:
    """DeLong paired test of every arm against ``reference`` on their common test scans."""
    if reference not in preds:
        raise ValueError(f"reference arm {reference!r} has no predictions; have {sorted(preds)}")
    ref_ids, ref_y, ref_s = scan_columns(preds[reference], "test")
    ref = {sid: (y, s) for sid, y, s in zip(ref_ids, ref_y, ref_s, strict=True)}
    out: dict[str, dict[str, float]] = {}
    for name, pred in preds.items():
        if name == reference:
            continue
        ids, y, s = scan_columns(pred, "test")
        common = [i for i, sid in enumerate(ids) if sid in ref]
        if len(common) < 4:
            raise ValueError(f"arm {name!r} shares only {len(common)} test scans with {reference!r}")
        yy = y[common]
        if np.any(yy != np.array([ref[ids[i]][0] for i in common])):
            raise ValueError(f"arm {name!r} and {reference!r} disagree on test labels")
        rs = np.array([ref[ids[i]][1] for i in common])
        t = delong_test(yy, s[common], rs)
        out[name] = {"delta_auc_vs_reference": t.difference, "p_vs_reference": t.p_value, "z": t.z}
    return out


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write JSON atomically (temporary file renamed into place); NaN/inf become null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_jsonable(dict(data)), fh, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` (a path to the file or to its results directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}")
    return data


__all__ = [
    "SCHEMA",
    "TABLE_COLUMNS",
    "arm_metrics",
    "paired_tests",
    "read_results",
    "scan_columns",
    "utc_now",
    "write_json",
    "write_text",
]
