"""How many validation and test scans a study needs: the width of the DeLong AUC interval.

The standard error of an empirical AUC ``A`` from ``n1`` abnormal and ``n0`` normal scans is,
after Hanley and McNeil (1982, "The meaning and use of the area under a receiver operating
characteristic (ROC) curve", Radiology 143:29-36),

.. math::

    SE^2 = \\frac{A(1-A) + (n_1 - 1)(Q_1 - A^2) + (n_0 - 1)(Q_2 - A^2)}{n_1 n_0},
    \\quad Q_1 = \\frac{A}{2 - A}, \\quad Q_2 = \\frac{2A^2}{1 + A}.

The DeLong interval the report prints is ``A +- z_{1-alpha/2} SE`` with DeLong's estimate of the
same variance, so the half-width at a planned AUC follows from this formula.  At ``A = 0.85`` and
prevalence 0.5, ``n1 = n0 = 81`` (162 scans) give a 95 % half-width of 0.0598; the quick preset
draws its validation and test splits to at least that size (see docs/results.md, "Power").
"""

from __future__ import annotations

import math

from scipy.stats import norm

__all__ = ["auc_ci_half_width", "hanley_mcneil_se", "scans_for_half_width"]


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an empirical AUC (Hanley and McNeil 1982, exponential approximation).

    Parameters
    ----------
    auc
        The AUC, in (0, 1).
    n_pos, n_neg
        Abnormal and normal scans (at least 1 each).

    Returns
    -------
    float
        The standard error (AUC units).
    """
    if not 0 < auc < 1:
        raise ValueError(f"auc must be in (0, 1), got {auc}")
    if n_pos < 1 or n_neg < 1:
        raise ValueError(f"need at least one scan per class, got n_pos={n_pos}, n_neg={n_neg}")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc)
           + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(var)


def auc_ci_half_width(auc: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> float:
    """Half-width ``z_{1-alpha/2} * SE`` of the two-sided ``1 - alpha`` AUC interval."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(norm.ppf(1 - alpha / 2)) * hanley_mcneil_se(auc, n_pos, n_neg)


def scans_for_half_width(auc: float = 0.85, half_width: float = 0.06, prevalence: float = 0.5,
                         alpha: float = 0.05) -> int:
    """The smallest number of scans whose AUC interval is at most ``half_width`` wide per side.

    Parameters
    ----------
    auc
        The planned AUC.
    half_width
        The wanted half-width of the ``1 - alpha`` interval (AUC units).
    prevalence
        Share of abnormal scans in the split; ``n1 = round(n * prevalence)``.
    alpha
        1 - confidence level.

    Returns
    -------
    int
        The number of scans ``n`` (both classes together).
    """
    if half_width <= 0:
        raise ValueError(f"half_width must be positive, got {half_width}")
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence}")
    n = 2
    while True:
        n_pos = max(1, min(n - 1, round(n * prevalence)))
        if auc_ci_half_width(auc, n_pos, n - n_pos, alpha) <= half_width:
            return n
        n += 1
        if n > 10_000_000:
            raise ValueError(f"half_width {half_width} needs more than 10^7 scans")
