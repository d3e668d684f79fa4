"""Metrics of the head-CT literature: AUC with DeLong intervals and paired tests, operating points,
the RSNA weighted log loss, and slice -> scan aggregation.

Conventions
-----------
- ``y`` holds binary labels (0/1 or bool), ``s`` real scores where larger means "more likely
  positive"; both are 1-D of the same length ``n``.
- A case is called positive at threshold ``t`` when ``s >= t``.
- The AUC is the Mann-Whitney probability that a random positive scores above a random negative,
  ties counting one half (the area under the empirical ROC curve with linear interpolation).

References
----------
.. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
   receiver operating characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.
.. [2] Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
   correlated receiver operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-1393.
.. [3] RSNA Intracranial Hemorrhage Detection challenge (2019): weighted multi-label log loss,
   weight 2 for "any" and 1 for each subtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sinotriage.vocabulary import LABEL_NAMES

#: RSNA challenge weights of the weighted log loss, in :data:`LABEL_NAMES` order
RSNA_WEIGHTS: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
#: slice -> scan aggregation methods of :func:`aggregate_scan` / :func:`aggregate_slices`
AGGREGATIONS: tuple[str, ...] = ("max", "topk_mean", "consecutive")
#: confidence-interval methods of :func:`auc_ci`
CI_METHODS: tuple[str, ...] = ("delong", "bootstrap")


# --------------------------------------------------------------------------- input checking
def _labels(y: object, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold numbers or booleans, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(f"{name} must hold binary labels 0/1, got {arr[bad][:5].tolist()}")
    return arr.astype(np.int8)


def _scores(s: object, n: int, name: str = "s") -> np.ndarray:
    arr = np.asarray(s)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} entries (one per label), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr


def _both_classes(y: np.ndarray, minimum: int = 1, name: str = "y") -> tuple[int, int]:
    m = int(y.sum())
    n = int(y.size - m)
    if m < minimum or n < minimum:
        raise ValueError(
            f"{name} needs at least {minimum} positive and {minimum} negative case(s), "
            f"got {m} positive and {n} negative"
        )
    return m, n


def _alpha(alpha: float) -> float:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# --------------------------------------------------------------------------- AUC and DeLong
def midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` with tied values given the mean of their ranks.

    Parameters
    ----------
    x : array, shape (n,)

    Returns
    -------
    ranks : float64 array, shape (n,)
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.size
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    run_rank = 0.5 * (starts + ends - 1) + 1.0
    ranks_sorted = np.repeat(run_rank, ends - starts)
    out = np.empty(n, dtype=np.float64)
    out[order] = ranks_sorted
    return out


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong's structural components by the midrank algorithm of Sun & Xu.

    ``scores`` has shape (k, n). Returns ``auc`` (k,), ``v10`` (k, m) for the m positives (the
    fraction of negatives a positive outscores, ties one half) and ``v01`` (k, n0) for the negatives
    (the fraction of positives that outscore a negative).
    """
    pos = y == 1
    m = int(pos.sum())
    n0 = int(y.size - m)
    aucs = np.empty(scores.shape[0])
    v10 = np.empty((scores.shape[0], m))
    v01 = np.empty((scores.shape[0], n0))
    for r, s in enumerate(scores):
        x, z = s[pos], s[~pos]
        tx, tz, txz = midrank(x), midrank(z), midrank(np.concatenate([x, z]))
        aucs[r] = (txz[:m].sum() - m * (m + 1) / 2.0) / (m * n0)
        v10[r] = (txz[:m] - tx) / n0
        v01[r] = 1.0 - (txz[m:] - tz) / m
    return aucs, v10, v01


def _delong_cov(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    aucs, v10, v01 = _placements(y, scores)
    m, n0 = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return aucs, s10 / m + s01 / n0


def roc_auc(y: object, s: object) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, ties count one half).

    Parameters
    ----------
    y : array of 0/1, shape (n,)
        Labels; at least one positive and one negative.
    s : array of float, shape (n,)
        Scores, larger = more likely positive.

    Returns
    -------
    auc : float in [0, 1]
    """
    yy = _labels(y)
    ss = _scores(s, yy.size)
    _both_classes(yy)
    return float(_placements(yy, ss[None])[0][0])


@dataclass(frozen=True)
class AUCInterval:
    """An AUC with its standard error and a two-sided ``1 - alpha`` confidence interval."""

    auc: float
    lower: float
    upper: float
    se: float
    alpha: float
    method: str

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def delong_ci(y: object, s: object, alpha: float = 0.05) -> AUCInterval:
    """AUC with DeLong's asymptotic confidence interval.

    The variance is DeLong's [1]_, computed with the fast midrank algorithm of Sun & Xu [2]_
    (O(n log n)); the interval is ``auc +- z_{1-alpha/2} * se`` clipped to [0, 1].

    Parameters
    ----------
    y : array of 0/1, shape (n,)
        Labels; at least two positives and two negatives.
    s : array of float, shape (n,)
        Scores.
    alpha : float
        1 - confidence level (0.05 gives a 95% interval).

    Returns
    -------
    AUCInterval
    """
    a = _alpha(alpha)
    yy = _labels(y)
    ss = _scores(s, yy.size)
    _both_classes(yy, minimum=2)
    aucs, cov = _delong_cov(yy, ss[None])
    auc = float(aucs[0])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    half = _norm_ppf(1.0 - a / 2.0) * se
    return AUCInterval(auc, max(0.0, auc - half), min(1.0, auc + half), se, a, "delong")


def bootstrap_ci(
    y: object, s: object, alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0
) -> AUCInterval:
    """AUC with a percentile bootstrap confidence interval.

    Cases are resampled with replacement within each class (stratified), so every resample has the
    original numbers of positives and negatives.

    Parameters
    ----------
    y, s : arrays, shape (n,)
        Labels (at least one of each class) and scores.
    alpha : float
        1 - confidence level.
    n_resamples : int
        Number of bootstrap resamples (>= 100).
    seed : int
        Seed of the numpy generator; the result is deterministic given it.

    Returns
    -------
    AUCInterval
        ``se`` is the standard deviation of the bootstrap AUCs.
    """
    a = _alpha(alpha)
    if int(n_resamples) < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    yy = _labels(y)
    ss = _scores(s, yy.size)
    m, n0 = _both_classes(yy)
    rng = np.random.default_rng(seed)
    pos, neg = ss[yy == 1], ss[yy == 0]
    ip = rng.integers(0, m, size=(int(n_resamples), m))
    ineg = rng.integers(0, n0, size=(int(n_resamples), n0))
    # AUC of every resample from the sorted negatives: count below + half the ties
    boots = np.empty(int(n_resamples))
    for b in range(int(n_resamples)):
        p, q = pos[ip[b]], np.sort(neg[ineg[b]])
        below = np.searchsorted(q, p, side="left")
        upto = np.searchsorted(q, p, side="right")
        boots[b] = (below + 0.5 * (upto - below)).sum() / (m * n0)
    auc = float(_placements(yy, ss[None])[0][0])
    lo, hi = np.quantile(boots, [a / 2.0, 1.0 - a / 2.0])
    return AUCInterval(auc, float(lo), float(hi), float(boots.std(ddof=1)), a, "bootstrap")


def auc_ci(
    y: object, s: object, alpha: float = 0.05, method: str = "delong", **kwargs: int
) -> AUCInterval:
    """AUC with a confidence interval by ``method`` in :data:`CI_METHODS` ("delong" or "bootstrap";
    ``kwargs`` go to :func:`bootstrap_ci`)."""
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if method == "delong":
        if kwargs:
            raise TypeError(f"delong takes no extra options, got {sorted(kwargs)}")
        return delong_ci(y, s, alpha)
    return bootstrap_ci(y, s, alpha, **kwargs)


@dataclass(frozen=True)
class PairedTest:
    """DeLong's test of two correlated AUCs (the same cases scored twice)."""

    auc1: float
    auc2: float
    difference: float  # auc1 - auc2
    se: float  # standard error of the difference
    z: float
    p_value: float  # two-sided

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def delong_test(y: object, s1: object, s2: object) -> PairedTest:
    """DeLong's paired test that two ROC curves on the same cases have equal AUC.

    ``z = (A1 - A2) / sqrt(var1 + var2 - 2 cov12)`` with the DeLong covariance [1]_ by the midrank
    algorithm [2]_; the p-value is two-sided under the standard normal. When the difference and its
    variance are both zero (identical rankings) ``z = 0`` and ``p = 1``.

    Parameters
    ----------
    y : array of 0/1, shape (n,)
        Labels; at least two positives and two negatives.
    s1, s2 : arrays of float, shape (n,)
        Scores of the two classifiers for the same cases, in the same order.

    Returns
    -------
    PairedTest
    """
    yy = _labels(y)
    a = _scores(s1, yy.size, "s1")
    b = _scores(s2, yy.size, "s2")
    _both_classes(yy, minimum=2)
    aucs, cov = _delong_cov(yy, np.stack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    if se <= 1e-15:
        z = 0.0 if abs(diff) <= 1e-15 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    p = 1.0 if z == 0.0 else 2.0 * _norm_sf(abs(z))
    return PairedTest(float(aucs[0]), float(aucs[1]), diff, se, float(z), float(min(1.0, p)))


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


# --------------------------------------------------------------------------- slice -> scan
def _check_method(method: str, k: int) -> None:
    if method not in AGGREGATIONS:
        raise ValueError(f"method must be one of {AGGREGATIONS}, got {method!r}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def aggregate_scan(slice_scores: object, method: str = "max", k: int = 3) -> float:
    """One scan-level score from the slice scores of one scan, ordered along z.

    Methods (:data:`AGGREGATIONS`):

    - ``"max"``: the highest slice score.
    - ``"topk_mean"``: the mean of the ``k`` highest slice scores (all of them if fewer than ``k``).
    - ``"consecutive"``: ``max_i min(s[i:i+k])``, the highest threshold at which ``k`` consecutive
      slices are called positive; thresholding it at ``t`` gives RADnet's rule "positive when at
      least k consecutive slices score >= t" (k = 3 in RADnet). A scan with fewer than ``k`` slices
      gets the minimum of its slices (all must be positive).

    Parameters
    ----------
    slice_scores : array, shape (D,)
        Slice scores in slice (z) order.
    method : str
    k : int

    Returns
    -------
    float
    """
    _check_method(method, k)
    s = np.asarray(slice_scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"slice_scores must be 1-D and non-empty, got shape {s.shape}")
    if method == "max":
        return float(s.max())
    if method == "topk_mean":
        top = np.sort(s)[::-1][: int(k)]
        return float(top.mean())
    if s.size <= k:
        return float(s.min())
    windows = np.lib.stride_tricks.sliding_window_view(s, int(k))
    return float(windows.min(axis=1).max())


def aggregate_slices(
    scores: object,
    study_ids: Sequence[str] | np.ndarray,
    slice_index: object | None = None,
    method: str = "max",
    k: int = 3,
) -> tuple[list[str], np.ndarray]:
    """Scan-level scores from slice-level scores of many studies.

    Parameters
    ----------
    scores : array, shape (n,) or (n, L)
        Slice scores (L label columns are aggregated independently).
    study_ids : sequence of n str
        The study of each slice.
    slice_index : array of n int, optional
        Position of each slice along z; slices are sorted by it within a study (required to be
        meaningful for ``"consecutive"``; the given order is used when omitted).
    method, k :
        See :func:`aggregate_scan`.

    Returns
    -------
    studies : list of str
        Study ids in order of first appearance.
    scan_scores : array, shape (n_studies,) or (n_studies, L)
    """
    _check_method(method, k)
    ss = np.asarray(scores, dtype=np.float64)
    ids = np.asarray([str(v) for v in study_ids])
    if ss.ndim not in (1, 2) or ss.shape[0] != ids.size:
        raise ValueError(
            f"scores must have shape (n,) or (n, L) with n = len(study_ids) = {ids.size}, got {ss.shape}"
        )
    if slice_index is None:
        zidx = np.arange(ids.size)
    else:
        zidx = np.asarray(slice_index)
        if zidx.shape != (ids.size,):
            raise ValueError(f"slice_index must have shape ({ids.size},), got {zidx.shape}")
    two_d = ss.ndim == 2
    cols = ss if two_d else ss[:, None]
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    appearance = np.argsort(first, kind="mergesort")  # unique index -> order of first appearance
    rank = np.empty_like(appearance)
    rank[appearance] = np.arange(appearance.size)
    studies = [str(uniq[i]) for i in appearance]
    order = np.lexsort((zidx, rank[inverse]))  # by study (appearance order), then along z
    bounds = np.searchsorted(rank[inverse][order], np.arange(len(studies) + 1))
    out = np.empty((len(studies), cols.shape[1]))
    for r in range(len(studies)):
        rows = order[bounds[r]: bounds[r + 1]]
        for c in range(cols.shape[1]):
            out[r, c] = aggregate_scan(cols[rows, c], method, k)
    return studies, (out if two_d else out[:, 0])


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
    "midrank",
    "per_label_auc",
    "roc_auc",
    "roc_curve",
    "sensitivity_at_specificity",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
    "weighted_log_loss",
]
