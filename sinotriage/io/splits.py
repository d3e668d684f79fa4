"""Train/validation/test splits of a store's studies: stratified by label, reproducible.

:meth:`sinotriage.io.store.Store.assign_splits` writes the result into the store's root attribute
``splits``; a split chosen by the writer (e.g. an official one) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sinotriage.errors import InputError
from sinotriage.vocabulary import SPLITS

__all__ = ["stratified_splits"]


def stratified_splits(
    study_ids: Sequence[str],
    labels: Sequence[int],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, str]:
    """Assign each study to train/val/test, stratified by label, reproducibly.

    Within each label stratum the studies (sorted by id) are shuffled with
    ``numpy.random.default_rng([seed, label])`` and cut by cumulative ``fractions``
    (largest-remainder rounding), so the result depends only on the set of (id, label) pairs
    and the seed, never on the order the studies were written.

    Parameters
    ----------
    study_ids : sequence of str
        Study identifiers (unique).
    labels : sequence of int
        Scan label of each study (any integers; each value is a stratum).
    fractions : 3 floats
        Train, validation and test fractions; non-negative, summing to 1.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{study_id: "train" | "val" | "test"}``.
    """
    if len(study_ids) != len(labels):
        raise InputError(f"study_ids and labels differ in length: {len(study_ids)} != {len(labels)}")
    if len(set(study_ids)) != len(study_ids):
        raise InputError("study_ids must be unique")
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise InputError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}")
    out: dict[str, str] = {}
    strata: dict[int, list[str]] = {}
    for sid, lab in zip(study_ids, labels, strict=True):
        strata.setdefault(int(lab), []).append(sid)
    for lab in sorted(strata):
        ids = sorted(strata[lab])
        rng = np.random.default_rng([int(seed), lab + 1])  # +1: label -1 (unknown) stays >= 0
        order = rng.permutation(len(ids))
        counts = _largest_remainder(fr * len(ids))
        bounds = np.cumsum(counts)
        for rank, idx in enumerate(order):
            out[ids[idx]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    return out


def _largest_remainder(quotas: np.ndarray) -> np.ndarray:
    counts = np.floor(quotas).astype(int)
    short = int(round(quotas.sum())) - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(quotas - counts), kind="stable")[:short]] += 1
    return counts
