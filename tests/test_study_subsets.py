"""Nested, label-stratified training subsets (the data-scaling curve)."""

from __future__ import annotations

import numpy as np

from sinotriage.training.subsets import nested_order, nested_subset


def test_subsets_are_nested_stratified_and_fixed() -> None:
    rng = np.random.default_rng(3)
    ids = [f"s{i:03d}" for i in range(97)]
    labels = (rng.random(97) < 0.4).astype(int)
    order = nested_order(ids, labels, seed=0)
    assert sorted(order) == ids  # every study once
    share = labels.mean()
    lab = dict(zip(ids, labels, strict=True))
    for n in range(1, 98):
        pos = sum(lab[s] for s in order[:n])
        assert abs(pos - n * share) <= 1.0  # each prefix within one study of the split's share
    small, large = nested_subset(ids, labels, 10), nested_subset(ids, labels, 40)
    assert large[:10] == small
    # the order depends on ids, labels and seed only (not on the input order)
    perm = rng.permutation(97)
    assert nested_order([ids[i] for i in perm], labels[perm], seed=0) == order
    assert nested_order(ids, labels, seed=1) != order
    assert nested_subset(ids, labels, None) == order
