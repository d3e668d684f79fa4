"""Tests of sinotriage.metrics against scikit-learn, brute-force DeLong and hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from sinotriage import metrics as M


def _random_case(seed: int, n: int = 200, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    y[:2], y[2:4] = 1, 0
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)
    s2 = 0.6 * s + rng.normal(size=n) * 0.8
    if ties:
        s2 = np.round(s2, 1)
    return y, s, s2


def _brute_delong(y, scores):
    """O(n^2) DeLong: placement values psi(x, z) = 1 / 0.5 / 0 by direct comparison."""
    y = np.asarray(y)
    k = len(scores)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = pos.size, neg.size
    aucs, v10s, v01s = [], [], []
    for s in scores:
        psi = np.zeros((m, n))
        for a, i in enumerate(pos):
            for b, j in enumerate(neg):
                psi[a, b] = 1.0 if s[i] > s[j] else (0.5 if s[i] == s[j] else 0.0)
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    cov = np.zeros((k, k))
    for r in range(k):
        for c in range(k):
            s10 = np.sum((v10s[r] - aucs[r]) * (v10s[c] - aucs[c])) / (m - 1)
            s01 = np.sum((v01s[r] - aucs[r]) * (v01s[c] - aucs[c])) / (n - 1)
            cov[r, c] = s10 / m + s01 / n
    return np.array(aucs), cov


# ------------------------------------------------------------------ AUC
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn(seed, ties):
    y, s, _ = _random_case(seed, ties=ties)
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_roc_curve_matches_sklearn():
    y, s, _ = _random_case(3, ties=True)
    fpr, tpr, thr = M.roc_curve(y, s)
    fpr2, tpr2, thr2 = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr2, atol=1e-12)
    np.testing.assert_allclose(tpr, tpr2, atol=1e-12)
    np.testing.assert_allclose(thr[1:], thr2[1:], atol=1e-12)
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.roc_auc(y, s), abs=1e-12)


def _old_midrank(x):
    """The hand-written midrank the AUC used before scipy.stats.rankdata replaced it: runs of
    equal sorted values share the mean of their 1-based ranks."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    out = np.empty(xs.size)
    out[order] = np.repeat(0.5 * (starts + ends - 1) + 1.0, ends - starts)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-4, 4) | st.floats(-1e3, 1e3), min_size=1, max_size=40))
def test_scipy_rankdata_equals_the_old_midrank(values):
    from scipy.stats import rankdata

    np.testing.assert_array_equal(rankdata(values, method="average"), _old_midrank(values))


def test_bootstrap_statistic_is_the_auc_of_every_resample():
    """The vectorised statistic handed to scipy.stats.bootstrap gives scikit-learn's AUC for each
    row (resample) of a batch, ties included."""
    from sinotriage.auc import _mann_whitney_auc

    rng = np.random.default_rng(3)
    pos = np.round(rng.normal(1.0, 1.0, size=(5, 30)), 1)
    neg = np.round(rng.normal(0.0, 1.0, size=(5, 45)), 1)
    got = _mann_whitney_auc(pos, neg, axis=-1)
    y = np.r_[np.ones(30), np.zeros(45)]
    want = [skm.roc_auc_score(y, np.r_[p, q]) for p, q in zip(pos, neg, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # the axis argument: the same batch laid out along axis 0
    np.testing.assert_allclose(_mann_whitney_auc(pos.T, neg.T, axis=0), want, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-3, 3)), min_size=4, max_size=30))
def test_auc_property_matches_sklearn(pairs):
    y = np.array([int(a) for a, _ in pairs])
    s = np.array([float(b) for _, b in pairs])
    if y.sum() in (0, y.size):
        with pytest.raises(ValueError, match="positive"):
            M.roc_auc(y, s)
        return
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    # flipping the scores gives the complementary AUC
    assert M.roc_auc(y, -s) == pytest.approx(1.0 - M.roc_auc(y, s), abs=1e-12)


# ------------------------------------------------------------------ DeLong
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [4, 5])
def test_delong_matches_bruteforce(seed, ties):
    y, s1, s2 = _random_case(seed, n=120, ties=ties)
    aucs, cov = _brute_delong(y, [s1, s2])
    ci = M.delong_ci(y, s1, alpha=0.05)
    assert ci.auc == pytest.approx(aucs[0], abs=1e-12)
    assert ci.se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    z = 1.959963984540054
    assert ci.lower == pytest.approx(max(0.0, aucs[0] - z * ci.se), abs=1e-12)
    assert ci.upper == pytest.approx(min(1.0, aucs[0] + z * ci.se), abs=1e-12)
    test = M.delong_test(y, s1, s2)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert test.auc1 == pytest.approx(aucs[0], abs=1e-12)
    assert test.auc2 == pytest.approx(aucs[1], abs=1e-12)
    assert test.se == pytest.approx(math.sqrt(var), rel=1e-10)
    assert test.z == pytest.approx((aucs[0] - aucs[1]) / math.sqrt(var), rel=1e-10)
    assert test.p_value == pytest.approx(math.erfc(abs(test.z) / math.sqrt(2)), rel=1e-10)


def test_delong_paired_known_answer():
    """Three positives and three negatives, placement values worked out by hand.

    s1: positives 0.9 0.8 0.4, negatives 0.7 0.3 0.2 -> V10 = (1, 1, 2/3), V01 = (2/3, 1, 1), AUC 8/9
    s2: positives 0.9 0.5 0.6, negatives 0.7 0.8 0.1 -> V10 = (1, 1/3, 1/3), V01 = (1/3, 1/3, 1), AUC 5/9
    S10 = [[1/27, 1/27], [1/27, 4/27]] = S01, S = (S10 + S01) / 3 -> var1 = 2/81, var2 = 8/81,
    cov = 2/81; var(diff) = 6/81, z = (1/3) / (sqrt(6)/9) = sqrt(6)/2, p = erfc(sqrt(3)/2).
    """
    y = [1, 1, 1, 0, 0, 0]
    s1 = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    s2 = [0.9, 0.5, 0.6, 0.7, 0.8, 0.1]
    t = M.delong_test(y, s1, s2)
    assert t.auc1 == pytest.approx(8 / 9, abs=1e-12)
    assert t.auc2 == pytest.approx(5 / 9, abs=1e-12)
    assert t.se == pytest.approx(math.sqrt(6) / 9, abs=1e-12)
    assert t.z == pytest.approx(math.sqrt(6) / 2, abs=1e-12)
    assert t.p_value == pytest.approx(math.erfc(math.sqrt(3) / 2), abs=1e-12)
    assert t.p_value == pytest.approx(0.2207, abs=1e-4)
    ci = M.delong_ci(y, s1)
    assert ci.se == pytest.approx(math.sqrt(2) / 9, abs=1e-12)
    # swapping the classifiers flips the sign of z only
    t2 = M.delong_test(y, s2, s1)
    assert t2.z == pytest.approx(-t.z, abs=1e-12)
    assert t2.p_value == pytest.approx(t.p_value, abs=1e-12)


def test_delong_equal_scores_give_z0_p1():
    y, s, _ = _random_case(6)
    t = M.delong_test(y, s, s)
    assert t.z == 0.0 and t.p_value == 1.0 and t.difference == 0.0
    # a monotone transform keeps the ranking: still no difference
    t = M.delong_test(y, s, np.exp(s))
    assert t.z == 0.0 and t.p_value == 1.0


def test_bootstrap_ci_close_to_delong():
    y, s, _ = _random_case(7, n=400)
    d = M.delong_ci(y, s)
    b = M.bootstrap_ci(y, s, n_resamples=1000, seed=1)
    assert b.auc == pytest.approx(d.auc, abs=1e-12)
    assert b.lower < d.auc < b.upper
    assert b.se == pytest.approx(d.se, rel=0.2)
    assert b == M.bootstrap_ci(y, s, n_resamples=1000, seed=1)  # seeded, deterministic
    assert M.auc_ci(y, s, method="bootstrap", n_resamples=200).method == "bootstrap"
    with pytest.raises(ValueError, match="at least 2 positive"):
        M.bootstrap_ci([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])


def test_metric_input_errors():
    with pytest.raises(ValueError, match="binary"):
        M.roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 entries"):
        M.roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        M.roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="at least 2 positive"):
        M.delong_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="alpha"):
        M.delong_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], alpha=1.5)
    with pytest.raises(ValueError, match="'delong', 'bootstrap'"):
        M.auc_ci([0, 1], [0.1, 0.2], method="wald")


# ------------------------------------------------------------------ thresholds
@pytest.mark.parametrize("threshold", [-0.5, 0.0, 0.7, 5.0])
def test_binary_metrics_match_sklearn(threshold):
    y, s, _ = _random_case(8, ties=True)
    m = M.binary_metrics(y, s, threshold)
    pred = (s >= threshold).astype(int)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.precision == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert m.recall == pytest.approx(skm.recall_score(y, pred, zero_division=0))
    assert m.f1 == pytest.approx(skm.f1_score(y, pred, zero_division=0))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (m.tn, m.fp, m.fn, m.tp) == (tn, fp, fn, tp)
    assert m.specificity == pytest.approx(tn / (tn + fp))


def test_threshold_for_sensitivity_is_highest_reaching_target():
    y, s, _ = _random_case(9, ties=True)
    for target in (0.5, 0.8, 0.95, 1.0):
        t = M.threshold_for_sensitivity(y, s, target)
        assert M.binary_metrics(y, s, t).sensitivity >= target
        higher = s[s > t]
        if higher.size:  # the next distinct score up misses the target
            assert M.binary_metrics(y, s, higher.min()).sensitivity < target


def test_sensitivity_at_specificity_bruteforce():
    y, s, _ = _random_case(10, ties=True)
    for spec in (0.5, 0.9, 0.95):
        best = max(
            M.binary_metrics(y, s, t).sensitivity
            for t in np.r_[np.unique(s), np.inf]
            if M.binary_metrics(y, s, t).specificity >= spec
        )
        assert M.sensitivity_at_specificity(y, s, spec) == pytest.approx(best)
        t = M.threshold_for_specificity(y, s, spec)
        bm = M.binary_metrics(y, s, t)
        assert bm.specificity >= spec and bm.sensitivity == pytest.approx(best)


# ------------------------------------------------------------------ multi-label
def test_weighted_log_loss_matches_sklearn_columns():
    rng = np.random.default_rng(11)
    y = (rng.random((60, 6)) < 0.3).astype(int)
    p = np.clip(0.5 * y + 0.5 * rng.random((60, 6)), 0.01, 0.99)
    per_col = [skm.log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(6)]
    expected = (2 * per_col[0] + sum(per_col[1:])) / 7
    assert M.weighted_log_loss(y, p) == pytest.approx(expected, rel=1e-10)
    # per-row form of the RSNA metric gives the same number
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert M.weighted_log_loss(y, p) == pytest.approx(((bce @ np.array(M.RSNA_WEIGHTS)) / 7).mean())
    with pytest.raises(ValueError, match="weights are required"):
        M.weighted_log_loss(y[:, :3], p[:, :3])
    assert M.weighted_log_loss(y[:, 0], p[:, 0], weights=[1.0]) == pytest.approx(per_col[0])


def test_per_label_auc():
    rng = np.random.default_rng(12)
    y = (rng.random((80, 6)) < 0.3).astype(int)
    y[:, 1] = 0  # no epidural cases
    s = rng.random((80, 6)) + y
    out = M.per_label_auc(y, s)
    assert list(out) == list(M.LABEL_NAMES)
    assert math.isnan(out["epidural"])
    assert out["subdural"] == pytest.approx(skm.roc_auc_score(y[:, 5], s[:, 5]))


# ------------------------------------------------------------------ aggregation
def test_aggregate_scan_methods():
    s = np.array([0.1, 0.9, 0.2, 0.7, 0.8, 0.6, 0.05])
    assert M.aggregate_scan(s, "max") == 0.9
    assert M.aggregate_scan(s, "topk_mean", k=3) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    # windows of 3: min = .1 .2 .2 .6 .05 -> max 0.6 (slices 3, 4, 5 are all >= 0.6)
    assert M.aggregate_scan(s, "consecutive", k=3) == pytest.approx(0.6)
    assert M.aggregate_scan([0.3, 0.9], "consecutive", k=3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="'max', 'topk_mean', 'consecutive'"):
        M.aggregate_scan(s, "median")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=12),
    st.integers(1, 4),
    st.floats(0, 1),
)
def test_consecutive_equals_rule(scores, k, t):
    """Thresholding the 'consecutive' score at t is RADnet's 'k consecutive slices >= t' rule."""
    s = np.array(scores)
    positive = s >= t
    need = min(k, s.size)
    run = best = 0
    for p in positive:
        run = run + 1 if p else 0
        best = max(best, run)
    assert (M.aggregate_scan(s, "consecutive", k) >= t) == (best >= need)


def test_aggregate_slices_groups_and_orders():
    ids = ["b", "a", "b", "a", "b"]
    z = [2, 1, 0, 0, 1]
    s = np.array([0.9, 0.2, 0.1, 0.4, 0.8])
    studies, agg = M.aggregate_slices(s, ids, z, method="max")
    assert studies == ["b", "a"]
    np.testing.assert_allclose(agg, [0.9, 0.4])
    # study b in z order: 0.1, 0.8, 0.9 -> consecutive k=2: max(min(.1,.8), min(.8,.9)) = 0.8
    _, agg = M.aggregate_slices(s, ids, z, method="consecutive", k=2)
    np.testing.assert_allclose(agg, [0.8, 0.2])
    _, agg2 = M.aggregate_slices(np.stack([s, 1 - s], axis=1), ids, z, method="max")
    np.testing.assert_allclose(agg2, [[0.9, 0.9], [0.4, 0.8]])
