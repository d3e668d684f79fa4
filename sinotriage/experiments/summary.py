"""Across seeds and training sizes: per-arm means and spreads, robust differences, the curve.

Inputs are the run records of results.json (``runs``), each holding the metrics of one arm
trained with one seed on one training-set size, and its paired DeLong test against the
reference arm's run of the same seed and size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sinotriage.experiments.config import StudyConfig
from sinotriage.experiments.jobs import run_name

__all__ = ["MEAN_KEYS", "curve_section", "is_robust", "summarize_arms"]

#: run metrics averaged over seeds into the arm's record
MEAN_KEYS: tuple[str, ...] = ("sensitivity", "specificity", "accuracy", "sens_at_spec", "val_auc",
                              "best_val_auc")


def _mean(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def is_robust(deltas: Sequence[float | None], p_values: Sequence[float | None],
              alpha: float) -> bool:
    """Whether a difference holds in every seed: every p-value below ``alpha`` and every
    difference of the same (non-zero) sign."""
    if not deltas or any(d is None for d in deltas) or any(p is None for p in p_values):
        return False
    signs = {float(np.sign(d)) for d in deltas}
    return len(signs) == 1 and 0.0 not in signs and all(p < alpha for p in p_values)


def summarize_arms(config: StudyConfig, runs: Mapping[str, Mapping[str, Any]],
                   size: int | None) -> dict[str, dict[str, Any]]:
    """Each arm's record at training size ``size``: per-seed AUCs and tests, mean and spread.

    Returns
    -------
    dict arm name -> record (see the schema in :mod:`sinotriage.experiments.results`); arms
    with no finished run at this size are left out.
    """
    arms: dict[str, dict[str, Any]] = {}
    for arm in config.arms:
        recs = [(seed, runs[key]) for seed in config.seeds
                if (key := run_name(arm.name, seed, size)) in runs]
        if not recs:
            continue
        first = recs[0][1]
        aucs = [float(r["auc"]) for _, r in recs]
        deltas = [r.get("delta_auc_vs_reference") for _, r in recs]
        ps = [r.get("p_vs_reference") for _, r in recs]
        is_ref = arm.name == config.reference
        entry: dict[str, Any] = {
            "domain": arm.domain, "views": first["views"], "view_factor": arm.view_factor,
            "model": first["model"], "windows": first.get("windows"),
            "learned": first.get("learned"),  # learned windows / filter of the first seed
            "training": config.training_for(arm),
            "seeds": {str(seed): {"auc": r["auc"], "auc_ci": r["auc_ci"],
                                  "delta_auc_vs_reference": r.get("delta_auc_vs_reference"),
                                  "p_vs_reference": r.get("p_vs_reference")}
                      for seed, r in recs},
            "auc": float(np.mean(aucs)),
            "auc_sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None,
            "auc_min": min(aucs), "auc_max": max(aucs),
            "auc_ci": [float(np.mean([r["auc_ci"][0] for _, r in recs])),
                       float(np.mean([r["auc_ci"][1] for _, r in recs]))],
            "delta_auc_vs_reference": None if is_ref else _mean(deltas),
            "p_vs_reference": None if is_ref or None in ps else max(ps),
            "robust": None if is_ref else is_robust(deltas, ps, config.alpha),
            **{k: _mean([r.get(k) for _, r in recs]) for k in MEAN_KEYS},
            "train_seconds": float(sum(r["train_seconds"] for _, r in recs)),
            "epochs": first["epochs"],
            "n_seeds": len(recs),
            "predictions": first["predictions"],
            "threshold": first["threshold"],
        }
        arms[arm.name] = entry
    return arms


def curve_section(config: StudyConfig, runs: Mapping[str, Mapping[str, Any]],
                  n_train_total: int) -> dict[str, Any] | None:
    """The data-scaling curve: per arm and training size, the mean AUC over seeds, the mean
    per-seed DeLong interval, and whether every seed's lower bound clears 0.5.

    Returns None when the study has fewer than two training sizes.
    """
    sizes = list(config.train_sizes)
    if len(sizes) < 2:
        return None
    out: dict[str, Any] = {"sizes": sizes, "arms": {}}
    for arm in config.arms:
        points = []
        for size in sizes:
            recs = [(seed, runs[k]) for seed in config.seeds
                    if (k := run_name(arm.name, seed, size)) in runs]
            if not recs:
                continue
            lows = [float(r["auc_ci"][0]) for _, r in recs]
            points.append({
                "size": size,
                "n_train": min(size, n_train_total),
                "auc": float(np.mean([r["auc"] for _, r in recs])),
                "auc_ci": [float(np.mean(lows)),
                           float(np.mean([r["auc_ci"][1] for _, r in recs]))],
                "seeds": {str(seed): {"auc": r["auc"], "auc_ci": r["auc_ci"]} for seed, r in recs},
                "clears": all(lo > 0.5 for lo in lows),
            })
        first = next((p["n_train"] for p in points if p["clears"]), None)
        out["arms"][arm.name] = {"domain": arm.domain, "points": points, "first_clear": first}
    return out
