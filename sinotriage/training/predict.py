"""Predictions of a checkpoint on a store split, and the metrics of ``sinotriage evaluate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinotriage.io.files import atomic_savefig, atomic_write_json
from sinotriage.training.checkpoints import load_checkpoint
from sinotriage.training.config import TrainConfig

__all__ = ["load_model", "predict", "evaluate"]


def load_model(checkpoint: str | os.PathLike[str],
               device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """The model of a checkpoint (weights loaded, eval mode) and its training config."""
    from sinotriage.training.engine import build_model

    ckpt = load_checkpoint(checkpoint)
    config = TrainConfig.model_validate({**ckpt["meta"]["config"], "device": device})
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), config


def predict(checkpoint: str | os.PathLike[str], store: Any, split: str = "test", *,
            batch_size: int | None = None, device: str = "cpu", aggregation: str | None = None,
            k: int | None = None, out_csv: str | os.PathLike[str] | None = None):
    """Slice and scan predictions of a checkpoint on one split of a store.

    Parameters
    ----------
    checkpoint : path
        A ``.safetensors`` checkpoint written by :func:`~sinotriage.training.train` (its JSON
        beside it gives the model and input settings).
    store : Store or path
        The dataset store (it may differ from the training store; domain, views and windows come
        from the checkpoint's config).
    split : {"train", "val", "test"}
    batch_size : int, optional
        Default: the training batch size.
    device : str
    aggregation, k : optional
        Slice -> scan aggregation (default: the training config's).
    out_csv : path, optional
        Also write the predictions CSV there (:func:`sinotriage.io.predictions.write_predictions`).

    Returns
    -------
    sinotriage.io.predictions.Predictions
        One row per slice (``slice >= 0``) and one scan row per study (``slice == -1``); label
        columns ``("any",)`` or the six RSNA labels; scores are sigmoid probabilities.
    """
    from sinotriage.io.predictions import Predictions, write_predictions
    from sinotriage.training.engine import label_names, make_dataset, score_dataset

    model, config = load_model(checkpoint, device)
    ds = make_dataset(config, split, store=store)
    scored = score_dataset(model, ds, config, torch.device(device), batch_size)
    n = len(scored["study_id"])
    pred = Predictions(scored["study_id"], [split] * n, scored["slice"], scored["labels"],
                       scored["scores"], label_names(config))
    if n and np.any(pred.slice >= 0):
        pred = pred.with_scan_rows(aggregation or config.aggregation,
                                   k if k is not None else config.aggregation_k)
    if out_csv is not None:
        write_predictions(out_csv, pred)
    return pred


def evaluate(checkpoint: str | os.PathLike[str], store: Any, split: str = "test", *,
             out_dir: str | os.PathLike[str] | None = None, batch_size: int | None = None,
             device: str = "cpu", threshold: float | None = None, alpha: float = 0.05,
             ) -> dict[str, Any]:
    """Predict a split and measure it the way the papers do.

    Writes ``predictions_<split>.csv``, ``metrics_<split>.json`` and ``roc_<split>.png`` to
    ``out_dir`` (default: the checkpoint's directory) and returns the metrics dict:
    scan-level ``auc`` with its DeLong ``auc_ci`` (``1 - alpha``), ``binary`` metrics (accuracy,
    precision, recall/sensitivity, specificity, F1) at ``threshold`` (default: the threshold of
    95 % sensitivity chosen on the validation split when it has both classes, else 0.5),
    ``sensitivity_at_90_specificity``, slice-level ``slice_auc``, per-label AUCs and the RSNA
    ``weighted_log_loss`` of slices (multilabel checkpoints).
    """
    from sinotriage import metrics as M

    ckpt_path = Path(checkpoint)
    out = Path(out_dir) if out_dir is not None else ckpt_path.parent
    out.mkdir(parents=True, exist_ok=True)
    pred = predict(checkpoint, store, split, batch_size=batch_size, device=device,
                   out_csv=out / f"predictions_{split}.csv")
    scans, slices = pred.scans(), pred.slices()
    y, s = scans.column("any")
    result: dict[str, Any] = {"checkpoint": str(ckpt_path), "split": split,
                              "n_scans": len(scans), "n_slices": len(slices),
                              "n_positive_scans": int((y == 1).sum())}
    threshold_source = "given"
    if threshold is None:
        threshold, threshold_source = 0.5, "default 0.5"
        if split != "val":
            try:
                vy, vs = predict(checkpoint, store, "val", batch_size=batch_size,
                                 device=device).scans().column("any")
                if len(np.unique(vy)) == 2:
                    threshold = M.threshold_for_sensitivity(vy, vs, 0.95)
                    threshold_source = "95% sensitivity on val"
            except (KeyError, ValueError) as exc:  # no val split in the store, or too small
                threshold_source = f"default 0.5 (validation split unusable: {exc})"
    result["threshold"] = float(threshold)
    result["threshold_source"] = threshold_source
    both = len(np.unique(y[y >= 0])) == 2
    if both:
        result["auc"] = float(M.roc_auc(y, s))
        try:
            ci = M.delong_ci(y, s, alpha=alpha)
            result["auc_ci"] = [float(ci.lower), float(ci.upper)]
        except ValueError as exc:  # too few cases of a class for DeLong's variance
            result["auc_ci"] = None
            result["auc_ci_note"] = str(exc)
        result["sensitivity_at_90_specificity"] = float(M.sensitivity_at_specificity(y, s, 0.9))
        bm = M.binary_metrics(y, s, threshold)
        result["binary"] = {**bm.to_dict(), "recall": bm.recall}
        sy, ss = slices.column("any")
        if len(np.unique(sy)) == 2:
            result["slice_auc"] = float(M.roc_auc(sy, ss))
        if len(pred.label_names) > 1:
            result["per_label_auc"] = {
                k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v))
                for k, v in M.per_label_auc(slices.labels, slices.scores,
                                            names=pred.label_names).items()}
            result["weighted_log_loss"] = float(M.weighted_log_loss(slices.labels, slices.scores))
        _roc_png(out / f"roc_{split}.png", y, s, result["auc"], split)
    else:
        result["auc"] = None
        result["note"] = "the split lacks one class; AUC undefined"
    atomic_write_json(out / f"metrics_{split}.json", result)
    return result


def _roc_png(path: Path, y: np.ndarray, s: np.ndarray, auc: float, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinotriage.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot(fpr, tpr, lw=2, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC ({split}, scans)",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        atomic_savefig(fig, path)
    finally:
        plt.close(fig)
