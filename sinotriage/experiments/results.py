"""Per-arm metrics and the ``results.json`` of a comparison study.

results.json schema (version 2)
-------------------------------
::

    {
      "schema": "sinotriage.compare/2",
      "sinotriage_version": "0.1.0",
      "created": "2026-11-22T23:59:00+00:00",       # UTC
      "study": {"name", "data_preset", "difficulty", "n_studies", "seed", "seeds",
                "train_sizes", "main_size", "reference_arm", "aggregation",
                "operating_sensitivity", "fixed_specificity", "alpha", "notes"},
      "store": "path/to/store.zarr", "full_views": 246, "device": "cpu",
      "test": {"n": 170, "positives": 85, "negatives": 85},
      "n_train_studies": 120,                        # the whole train split
      "runs": {                                      # one per (arm, seed, size)
        "<arm>/s<seed>/n<size|all>": {
          "arm", "seed", "size" (null: all), "n_train" (studies),
          "domain", "views", "view_factor", "model", "windows",
          "auc", "auc_ci": [lo, hi], "auc_se", "threshold", "accuracy", "sensitivity",
          "specificity", "precision", "f1", "sens_at_spec", "val_auc", "best_val_auc",
          "delta_auc_vs_reference", "p_vs_reference",  # paired DeLong vs the reference arm's
                                                       # run of the same seed and size
          "train_seconds", "epochs", "predictions": "predictions/<arm>_s<seed>_n<size>.csv"
        }, ...
      },
      "arms": {                                      # at the main (largest) training size
        "<arm>": {
          "domain", "views", "view_factor", "model", "windows", "training" (its overrides),
          "seeds": {"<seed>": {"auc", "auc_ci", "delta_auc_vs_reference", "p_vs_reference"}},
          "auc" (mean over seeds), "auc_sd" (null for one seed), "auc_min", "auc_max",
          "auc_ci": mean of the per-seed [lo, hi], "delta_auc_vs_reference" (mean),
          "p_vs_reference" (largest over seeds), "robust": true | false | null (reference),
          "sensitivity", "specificity", "accuracy", "sens_at_spec" (means), "train_seconds"
          (sum), "epochs", "predictions" (first seed)
        }, ...
      },
      "curve": {"sizes": [...], "arms": {"<arm>": {"points": [{"size", "n_train", "auc",
                "auc_ci", "seeds": {...}, "clears": bool}], "first_clear": n or null}}} or null,
      "failed": {"<run>": "error message"},         # runs that raised (a rerun retries them)
      "queue": {...} or null,                       # see sinotriage.experiments.build
      "figures": {"roc": "figures/roc.png", ...},
      "timing": {"total_seconds", "data_seconds", "train_seconds", "workers"}
    }

A difference against the reference arm is *robust* when its paired DeLong p-value is below
``alpha`` in every seed and its sign is the same in every seed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.predictions import Predictions
from sinotriage.metrics import (
    binary_metrics,
    delong_ci,
    delong_test,
    roc_auc,
    sensitivity_at_specificity,
    threshold_for_sensitivity,
)

SCHEMA = "sinotriage.compare/2"

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


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` (a path to the file or to its results directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}; rerun the "
                         "study to rebuild it")
    return data


__all__ = [
    "SCHEMA",
    "TABLE_COLUMNS",
    "arm_metrics",
    "paired_tests",
    "read_results",
    "scan_columns",
    "utc_now",
]
