"""Metrics of the head-CT literature: AUC with DeLong intervals and paired tests, operating points,
the RSNA weighted log loss, and slice -> scan aggregation.

The AUC and its intervals live in :mod:`sinotriage.auc`, slice -> scan aggregation in
:mod:`sinotriage.io.aggregation`; both are re-exported here, so ``sinotriage.metrics`` stays the
one import for every metric.

Conventions
-----------
- ``y`` holds binary labels (0/1 or bool), ``s`` real scores where larger means "more likely
  positive"; both are 1-D of the same length ``n``.
- A case is called positive at threshold ``t`` when ``s >= t``.
- The AUC is the Mann-Whitney probability that a random positive scores above a random negative,
  ties counting one half (the area under the empirical ROC curve with linear interpolation).

References
----------
.. [3] RSNA Intracranial Hemorrhage Detection challenge (2019): weighted multi-label log loss,
   weight 2 for "any" and 1 for each subtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sinotriage.auc import (
    CI_METHODS,
    AUCInterval,
    PairedTest,
    _both_classes,
    _labels,
    _scores,
    auc_ci,
    bootstrap_ci,
    delong_ci,
    delong_test,
    roc_auc,
)
from sinotriage.io.aggregation import AGGREGATIONS, aggregate_scan, aggregate_slices
from sinotriage.vocabulary import LABEL_NAMES

#: RSNA challenge weights of the weighted log loss, in :data:`LABEL_NAMES` order
RSNA_WEIGHTS: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- ROC and operating points
def roc_curve(y: object, s: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve at every distinct score.

    Returns
    -------
    fpr, tpr, thresholds : float arrays, shape (k + 1,)
        ``thresholds`` descending, the first one ``+inf`` (nothing called positive); point ``i`` is
        the (false positive rate, true positive rate) of calling ``s >= thresholds[i]`` positive.
    """
    yy = _labels(y)
    ss = _scores(s, yy.size)
    m, n0 = _both_classes(yy)
    order = np.argsort(-ss, kind="mergesort")
    s_sorted, y_sorted = ss[order], yy[order]
    last = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / m]
    fpr = np.r_[0.0, fps / n0]
    thr = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thr


@dataclass(frozen=True)
class BinaryMetrics:
    """Confusion counts and rates of calling ``s >= threshold`` positive.

    Rates with an empty denominator (e.g. precision when nothing is called positive) are 0.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    precision: float
    sensitivity: float  # = recall = true positive rate
    specificity: float
    npv: float
    f1: float

    @property
    def recall(self) -> float:
        return self.sensitivity

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(a: int, b: int) -> float:
    return float(a) / b if b else 0.0


def binary_metrics(y: object, s: object, threshold: float = 0.5) -> BinaryMetrics:
    """Accuracy, precision, recall (sensitivity), specificity, NPV and F1 at a threshold.

    Parameters
    ----------
    y : array of 0/1, shape (n,)
    s : array of float, shape (n,)
        Scores; a case is called positive when ``s >= threshold``.
    threshold : float

    Returns
    -------
    BinaryMetrics
    """
    yy = _labels(y)
    ss = _scores(s, yy.size)
    if yy.size == 0:
        raise ValueError("y must hold at least one case, got 0")
    if not math.isfinite(float(threshold)) and float(threshold) != math.inf:
        raise ValueError(f"threshold must be a number or +inf, got {threshold}")
    pred = ss >= float(threshold)
    tp = int(np.sum(pred & (yy == 1)))
    fp = int(np.sum(pred & (yy == 0)))
    fn = int(np.sum(~pred & (yy == 1)))
    tn = int(np.sum(~pred & (yy == 0)))
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return BinaryMetrics(
        threshold=float(threshold), tp=tp, fp=fp, tn=tn, fn=fn,
        accuracy=_ratio(tp + tn, yy.size), precision=precision, sensitivity=sensitivity,
        specificity=_ratio(tn, tn + fp), npv=_ratio(tn, tn + fn), f1=f1,
    )


def _target(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def threshold_for_specificity(y: object, s: object, specificity: float = 0.9) -> float:
    """The lowest threshold whose specificity is at least ``specificity``.

    Lowering the threshold raises sensitivity and lowers specificity, so this is the operating
    point of highest sensitivity that keeps the target specificity. Returns ``+inf`` only if
    ``specificity`` is 1 and a negative has the top score.
    """
    target = _target(specificity, "specificity")
    fpr, _, thr = roc_curve(y, s)
    ok = (1.0 - fpr) >= target - 1e-12
    return float(thr[np.flatnonzero(ok)[-1]])


def sensitivity_at_specificity(y: object, s: object, specificity: float = 0.9) -> float:
    """Highest sensitivity among the operating points with specificity >= ``specificity``."""
    target = _target(specificity, "specificity")
    fpr, tpr, _ = roc_curve(y, s)
    ok = (1.0 - fpr) >= target - 1e-12
    return float(tpr[ok].max())


def threshold_for_sensitivity(y: object, s: object, sensitivity: float = 0.95) -> float:
    """The highest threshold whose sensitivity is at least ``sensitivity``.

    Choose it on the validation split and apply it to the test split with :func:`binary_metrics`
    (the test sensitivity is then an honest estimate, not the target by construction).

    Parameters
    ----------
    y, s : arrays, shape (n,)
        Validation labels (at least one positive and one negative) and scores.
    sensitivity : float in [0, 1]
        Target sensitivity.

    Returns
    -------
    threshold : float
        A case is called positive when ``score >= threshold``.
    """
    target = _target(sensitivity, "sensitivity")
    _, tpr, thr = roc_curve(y, s)
    ok = tpr >= target - 1e-12
    return float(thr[np.flatnonzero(ok)[0]])


# --------------------------------------------------------------------------- multi-label
def _label_matrix(y: object, p: object) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y, dtype=np.float64)
    pp = np.asarray(p, dtype=np.float64)
    if yy.ndim == 1:
        yy = yy[:, None]
    if pp.ndim == 1:
        pp = pp[:, None]
    if yy.ndim != 2 or yy.shape != pp.shape:
        raise ValueError(f"y and p must have the same shape (n, L), got {yy.shape} and {pp.shape}")
    if yy.shape[0] == 0:
        raise ValueError("y must hold at least one row, got 0")
    if not np.all(np.isin(yy, (0.0, 1.0))):
        raise ValueError("y must hold binary labels 0/1")
    if not np.all(np.isfinite(pp)) or pp.min() < 0.0 or pp.max() > 1.0:
        raise ValueError("p must hold probabilities in [0, 1]")
    return yy, pp


def weighted_log_loss(
    y: object, p: object, weights: Sequence[float] | None = None, eps: float = 1e-7
) -> float:
    """RSNA weighted multi-label logarithmic loss.

    ``L = sum_l w_l * BCE_l / sum_l w_l`` where ``BCE_l`` is the mean binary cross-entropy of label
    ``l`` over the ``n`` rows; the default weights are :data:`RSNA_WEIGHTS` (2 for "any", 1 for
    each subtype), normalised by their sum [3]_.

    Parameters
    ----------
    y : array of 0/1, shape (n, L)
        Labels, columns in :data:`LABEL_NAMES` order for the default weights.
    p : array of probabilities, shape (n, L)
        Predicted probabilities; clipped to ``[eps, 1 - eps]``.
    weights : sequence of L floats, optional
        Per-label weights; required unless ``L == 6``.
    eps : float
        Clipping of probabilities, so a confident mistake costs ``-log(eps)`` and not infinity.

    Returns
    -------
    loss : float (nats)
    """
    yy, pp = _label_matrix(y, p)
    n_labels = yy.shape[1]
    if weights is None:
        if n_labels != len(RSNA_WEIGHTS):
            raise ValueError(f"weights are required for {n_labels} labels (defaults are for 6)")
        weights = RSNA_WEIGHTS
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_labels,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {n_labels} non-negative numbers with a positive sum, got {list(w)}")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    pc = np.clip(pp, eps, 1.0 - eps)
    bce = -(yy * np.log(pc) + (1.0 - yy) * np.log(1.0 - pc)).mean(axis=0)
    return float((w * bce).sum() / w.sum())


def per_label_auc(
    y: object, s: object, names: Sequence[str] = LABEL_NAMES
) -> dict[str, float]:
    """AUC of each label column; NaN for a label whose column lacks positives or negatives.

    Parameters
    ----------
    y : array of 0/1, shape (n, L)
    s : array of float, shape (n, L)
    names : L label names (default :data:`LABEL_NAMES`)

    Returns
    -------
    dict name -> AUC
    """
    yy = np.asarray(y)
    ss = np.asarray(s, dtype=np.float64)
    if yy.ndim != 2 or yy.shape != ss.shape or yy.shape[1] != len(names):
        raise ValueError(
            f"y and s must have the same shape (n, {len(names)}), got {yy.shape} and {ss.shape}"
        )
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        col = _labels(yy[:, j], f"y[:, {name}]")
        if 0 < col.sum() < col.size:
            out[name] = roc_auc(col, ss[:, j])
        else:
            out[name] = float("nan")
    return out


__all__ = [
    "AGGREGATIONS",
    "AUCInterval",
    "BinaryMetrics",
    "CI_METHODS",
    "LABEL_NAMES",
    "PairedTest",
    "RSNA_WEIGHTS",
    "aggregate_scan",
    "aggregate_slices",
    "auc_ci",
    "binary_metrics",
    "bootstrap_ci",
    "delong_ci",
    "delong_test",
    "per_label_auc",
    "roc_auc",
    "roc_curve",
    "sensitivity_at_specificity",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
    "weighted_log_loss",
]
