"""The area under the ROC curve: the Mann-Whitney AUC, DeLong's confidence interval and paired
test, and a stratified bootstrap interval.

Conventions
-----------
- ``y`` holds binary labels (0/1 or bool), ``s`` real scores where larger means "more likely
  positive"; both are 1-D of the same length ``n``.
- The AUC is the Mann-Whitney probability that a random positive scores above a random negative,
  ties counting one half (the area under the empirical ROC curve with linear interpolation).

Everything here is re-exported by :mod:`sinotriage.metrics`.

References
----------
.. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
   receiver operating characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.
.. [2] Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
   correlated receiver operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-1393.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import bootstrap, norm, rankdata

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


# --------------------------------------------------------------------------- AUC and DeLong
def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong's structural components by the midrank algorithm of Sun & Xu [2]_.

    ``scores`` has shape (k, n). Returns ``auc`` (k,), ``v10`` (k, m) for the m positives (the
    fraction of negatives a positive outscores, ties one half) and ``v01`` (k, n0) for the negatives
    (the fraction of positives that outscore a negative). Midranks are
    :func:`scipy.stats.rankdata` with ``method="average"``.
    """
    pos = y == 1
    m = int(pos.sum())
    n0 = int(y.size - m)
    x, z = scores[:, pos], scores[:, ~pos]
    tx = rankdata(x, method="average", axis=1)
    tz = rankdata(z, method="average", axis=1)
    txz = rankdata(np.concatenate([x, z], axis=1), method="average", axis=1)
    aucs = (txz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n0)
    v10 = (txz[:, :m] - tx) / n0
    v01 = 1.0 - (txz[:, m:] - tz) / m
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
    half = float(norm.ppf(1.0 - a / 2.0)) * se
    return AUCInterval(auc, max(0.0, auc - half), min(1.0, auc + half), se, a, "delong")


def bootstrap_ci(
    y: object, s: object, alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0
) -> AUCInterval:
    """AUC with a percentile bootstrap confidence interval (:func:`scipy.stats.bootstrap`).

    Cases are resampled with replacement within each class (stratified: the positives and the
    negatives are two independent samples), so every resample has the original numbers of
    positives and negatives.

    Parameters
    ----------
    y, s : arrays, shape (n,)
        Labels (at least two of each class) and scores.
    alpha : float
        1 - confidence level.
    n_resamples : int
        Number of bootstrap resamples (>= 100).
    seed : int
        Seed of the numpy generator; the result is deterministic given it.

    Returns
    -------
    AUCInterval
        ``se`` is the standard deviation of the bootstrap AUCs (ddof 1).
    """
    a = _alpha(alpha)
    if int(n_resamples) < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    yy = _labels(y)
    ss = _scores(s, yy.size)
    _both_classes(yy, minimum=2)
    res = bootstrap(
        (ss[yy == 1], ss[yy == 0]),
        _mann_whitney_auc,
        n_resamples=int(n_resamples),
        batch=max(1, 4_000_000 // yy.size),
        vectorized=True,
        paired=False,
        confidence_level=1.0 - a,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    auc = float(_placements(yy, ss[None])[0][0])
    ci = res.confidence_interval
    return AUCInterval(auc, float(ci.low), float(ci.high), float(res.standard_error), a, "bootstrap")


def _mann_whitney_auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUC of positives ``pos`` against negatives ``neg`` along ``axis`` (midranks, ties one
    half): the statistic :func:`bootstrap_ci` hands to :func:`scipy.stats.bootstrap`."""
    pos, neg = np.moveaxis(pos, axis, -1), np.moveaxis(neg, axis, -1)
    m, n0 = pos.shape[-1], neg.shape[-1]
    ranks = rankdata(np.concatenate([pos, neg], axis=-1), method="average", axis=-1)
    return (ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2.0) / (m * n0)


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
    p = 1.0 if z == 0.0 else 2.0 * float(norm.sf(abs(z)))
    return PairedTest(float(aucs[0]), float(aucs[1]), diff, se, float(z), float(min(1.0, p)))


__all__ = [
    "AUCInterval",
    "CI_METHODS",
    "PairedTest",
    "auc_ci",
    "bootstrap_ci",
    "delong_ci",
    "delong_test",
    "roc_auc",
]
