"""Slice -> scan aggregation: one scan-level score from the slice scores of a scan.

Lives beside :mod:`sinotriage.io.predictions`, whose per-slice predictions it turns into scan
predictions; numpy alone, so both the predictions files and :mod:`sinotriage.metrics` (which
re-exports these names) can import it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: slice -> scan aggregation methods of :func:`aggregate_scan` / :func:`aggregate_slices`
AGGREGATIONS: tuple[str, ...] = ("max", "topk_mean", "consecutive")


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


__all__ = ["AGGREGATIONS", "aggregate_scan", "aggregate_slices"]
