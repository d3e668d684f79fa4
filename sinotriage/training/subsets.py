"""Nested, label-stratified subsets of a split's studies (the data-scaling curve).

:func:`nested_order` fixes one order of the studies; the subset of size ``n`` is its first ``n``
entries, so a smaller subset is always part of a larger one, and every prefix keeps the share of
abnormal studies of the whole split (to within one study).  The order depends on the study ids,
their labels and ``seed`` only, not on the training seed, so every arm and every training seed
sees the same subset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["nested_order", "nested_subset"]


def nested_order(study_ids: Sequence[str], labels: Sequence[int], seed: int = 0) -> list[str]:
    """The studies in a fixed order whose every prefix is stratified by label.

    Parameters
    ----------
    study_ids
        The studies (any order; they are sorted first).
    labels
        Scan label of each study (0 normal, 1 abnormal; other values form their own stratum).
    seed
        Seed of the shuffle within each label.

    Returns
    -------
    list of str
        Each study once.  Entry ``k`` goes to the stratum whose share of the first ``k`` entries
        lags its share of the whole split the most.
    """
    if len(study_ids) != len(labels):
        raise ValueError(f"{len(study_ids)} study ids but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    pairs = sorted(zip(study_ids, (int(v) for v in labels), strict=True))
    strata: dict[int, list[str]] = {}
    for sid, lab in pairs:
        strata.setdefault(lab, []).append(sid)
    queues = {lab: [ids[i] for i in rng.permutation(len(ids))] for lab, ids in sorted(strata.items())}
    total = len(pairs)
    taken = dict.fromkeys(queues, 0)
    order: list[str] = []
    for k in range(1, total + 1):
        # the stratum furthest below its target count k * share (ties: the smaller label)
        lab = max((lab for lab in queues if taken[lab] < len(queues[lab])),
                  key=lambda lab: (k * len(queues[lab]) / total - taken[lab], -lab))
        order.append(queues[lab][taken[lab]])
        taken[lab] += 1
    return order


def nested_subset(study_ids: Sequence[str], labels: Sequence[int], n: int | None,
                  seed: int = 0) -> list[str]:
    """The first ``n`` studies of :func:`nested_order` (all of them for ``n`` None).

    Raises
    ------
    ValueError
        ``n`` exceeds the number of studies.
    """
    order = nested_order(study_ids, labels, seed)
    if n is None:
        return order
    if n > len(order):
        raise ValueError(f"train_studies {n} exceeds the {len(order)} studies of the split")
    return order[:n]
