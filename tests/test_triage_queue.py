"""Known-answer and property tests of the reading-queue simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinotriage.triage import (
    Shift,
    compare_operating_points,
    make_shift,
    run_queue,
    simulate_policies,
    simulate_queue,
)


def shift(arrival, read, cls=None):
    n = len(arrival)
    return Shift(arrival=np.array(arrival, float), read_time=np.array(read, float),
                 priority=np.zeros(n, int) if cls is None else np.array(cls))


def test_fifo_and_flagged_first_one_reader_by_hand():
    # four studies at t = 0, 1, 2, 3 min, each read in 10 min, one reader; study 2 is positive
    sh = shift([0, 1, 2, 3], [10, 10, 10, 10])
    y = [0, 0, 1, 0]
    fifo = run_queue(sh, y, policy="fifo")
    # starts 0, 10, 20, 30 -> waits 0, 9, 18, 27
    assert fifo.start.tolist() == [0, 10, 20, 30]
    assert fifo.wait.tolist() == [0, 9, 18, 27]
    ff = run_queue(sh, y, policy="flagged_first", flags=[False, False, True, False])
    # t=0 reads 0; at t=10 the flagged study 2 jumps the list: starts 0, 20, 10, 30
    assert ff.start.tolist() == [0, 20, 10, 30]
    assert ff.wait.tolist() == [0, 19, 8, 27]
    s = ff.summary()
    assert s["pos_mean"] == 8 and s["neg_mean"] == pytest.approx((0 + 19 + 27) / 3)
    assert s["pos_within_15"] == 1 and fifo.summary()["pos_within_15"] == 0


def test_two_readers_and_classes_by_hand():
    # arrivals 0,0,0,1,2 min, reads 5,7,4,3,6; two readers; classes: 2 outpatient, others emergency
    sh = shift([0, 0, 0, 1, 2], [5, 7, 4, 3, 6], cls=[2, 0, 0, 0, 2])
    y = [1, 0, 0, 0, 1]
    fifo = run_queue(sh, y, policy="fifo", n_readers=2)
    # t=0: emergencies 1 (r0, to 7) and 2 (r1, to 4). t=4: r1 takes emergency 3 (to 7).
    # t=7: both free: outpatient 0 (arrived 0) on r0 -> 12, outpatient 4 on r1 -> 13.
    assert fifo.start.tolist() == [7, 0, 0, 4, 7]
    assert fifo.reader.tolist() == [0, 0, 1, 1, 1]
    assert fifo.wait.tolist() == [7, 0, 0, 3, 5]
    ff = run_queue(sh, y, policy="flagged_first", flags=[True, False, False, False, True], n_readers=2)
    # t=0: flagged 0 (r0, to 5), then emergency 1 (r1, to 7). t=2: flagged 4 waits.
    # t=5: r0 takes flagged 4 (to 11). t=7: r1 takes 2 (to 11). t=11: r0 takes 3.
    assert ff.start.tolist() == [0, 0, 7, 11, 5]
    assert ff.wait.tolist() == [0, 0, 7, 10, 3]
    so = run_queue(sh, y, policy="score_ordered", scores=[0.1, 0.2, 0.9, 0.5, 0.3], n_readers=2)
    # within emergency by score: 2 (0.9), 1 (0.2) at t=0; t=1: 3 (0.5) waits; t=4: 3 on r1 -> 7;
    # t=7: r0 free (1 ends 7) and r1 free (3 ends 7): outpatients by score 4 (0.3), then 0 (0.1)
    assert so.start.tolist() == [7, 0, 0, 4, 7]
    assert so.reader[[4, 0]].tolist() == [0, 1]


def test_arrival_at_the_moment_a_reader_frees_is_considered():
    # study 1 arrives exactly when study 0 finishes; study 2 (flagged) too: it must go first
    sh = shift([0, 10, 10], [10, 5, 5])
    r = run_queue(sh, [0, 0, 1], policy="flagged_first", flags=[False, False, True])
    assert r.start.tolist() == [0, 15, 10]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 25),
    n_readers=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    rate=st.floats(2.0, 30.0),
)
def test_oracle_flagged_first_never_delays_a_positive_behind_a_later_negative(n, n_readers, seed, rate):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    sh = make_shift(n, rate_per_hour=rate, read_time="exponential", read_mean=10.0, seed=seed)
    r = run_queue(sh, y, policy="flagged_first", flags=y.astype(bool), n_readers=n_readers)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for p in pos:
        later_neg = neg[sh.arrival[neg] >= sh.arrival[p]]
        # no negative that arrived at or after p is opened before p
        assert np.all(r.start[later_neg] >= r.start[p])
    # and every study is read exactly once, never before it arrives, readers never overlap
    assert np.all(r.wait >= 0)
    for k in range(n_readers):
        mine = np.flatnonzero(r.reader == k)
        order = mine[np.argsort(r.start[mine])]
        assert np.all(r.start[order][1:] >= r.finish[order][:-1] - 1e-9)


def test_make_shift_is_seeded_and_statistically_right():
    a = make_shift(4000, rate_per_hour=12.0, read_mean=8.0, read_sd=4.0, seed=3)
    b = make_shift(4000, rate_per_hour=12.0, read_mean=8.0, read_sd=4.0, seed=3)
    np.testing.assert_array_equal(a.arrival, b.arrival)
    np.testing.assert_array_equal(a.priority, b.priority)
    gaps = np.diff(np.sort(a.arrival))
    assert gaps.mean() == pytest.approx(5.0, rel=0.05)          # 60 / 12 minutes
    assert a.read_time.mean() == pytest.approx(8.0, rel=0.05)
    assert a.read_time.std() == pytest.approx(4.0, rel=0.1)
    shares = np.bincount(a.priority, minlength=3) / 4000
    np.testing.assert_allclose(shares, [0.4, 0.3, 0.3], atol=0.03)
    with pytest.raises(ValueError, match="read_time distribution 'weibull'"):
        make_shift(3, read_time="weibull")
    with pytest.raises(ValueError, match="unknown priority class"):
        make_shift(2, priority=["emergency", "stat"])
    with pytest.raises(ValueError, match="unknown policy 'lifo'"):
        simulate_queue([0, 1], policy="lifo")
    with pytest.raises(ValueError, match="needs flags"):
        simulate_queue([0, 1], policy="flagged_first")


def test_simulate_policies_is_deterministic_and_oracle_is_best_for_positives():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=60)
    scores = y * 0.6 + rng.uniform(0, 0.7, size=60)
    kw = dict(n_readers=1, rate_per_hour=7.0, read_mean=8.0, n_repeats=5, seed=1)
    a = simulate_policies(y, scores, 0.5, **kw)
    b = simulate_policies(y, scores, 0.5, **kw)
    np.testing.assert_equal(a.rows, b.rows)  # NaN thresholds compare equal here
    rows = {r["arm"]: r for r in a.rows}
    assert list(rows) == ["no triage", "model flags", "model score order", "oracle flags"]
    # the oracle's positives wait no longer on average than under any other arm
    assert rows["oracle flags"]["pos_mean"] <= min(r["pos_mean"] for r in a.rows) + 1e-9
    assert rows["model flags"]["flag_rate"] == pytest.approx(np.mean(scores >= 0.5))
    # conservation: with one reader the total work is the same, so the mean wait of all studies
    # is not changed much by reordering (it is exactly equal when read times are constant)
    c = simulate_policies(y, scores, 0.5, read_time="constant", **kw)
    means = [r["all_mean"] for r in c.rows]
    np.testing.assert_allclose(means, means[0], rtol=1e-12)
    # per-class means of positives, checked against the pooled waits
    wait, labels = a.waits["model flags"]
    for c, name in enumerate(("emergency", "inpatient", "outpatient")):
        sel = (labels == 1) & (a.classes == c)
        assert rows["model flags"][f"pos_mean_{name}"] == pytest.approx(wait[sel].mean())
    md = a.to_markdown()
    assert "| oracle flags | flagged_first |" in md and "positives read within 15 / 30 / 60 min" in md


def test_studies_per_shift_resamples_with_replacement():
    y = np.array([1, 0, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.4, 0.7, 0.1])
    res = simulate_policies(y, s, 0.5, n_repeats=4, studies_per_shift=30, seed=2)
    wait, labels = res.waits["oracle flags"]
    assert wait.shape == labels.shape == (120,)
    assert res.rows[0]["n_pos"] + res.rows[0]["n_neg"] == 120
    assert 0.2 < labels.mean() < 0.6  # 2 of 5 positive, in expectation
    np.testing.assert_equal(simulate_policies(y, s, 0.5, n_repeats=4, studies_per_shift=30, seed=2).rows,
                            res.rows)
    assert "resampled with replacement from 5" in res.to_markdown()
    with pytest.raises(ValueError, match="cannot be combined"):
        simulate_policies(y, s, 0.5, studies_per_shift=10, arrival_times=[0, 1, 2, 3, 4])


def test_compare_operating_points_rows_and_checks():
    y = np.array([1, 0, 1, 0, 0, 1])
    res = compare_operating_points(
        y, {"sinogram": (np.array([0.9, 0.1, 0.4, 0.2, 0.6, 0.8]), 0.5),
            "image": (np.array([0.7, 0.3, 0.8, 0.1, 0.2, 0.9]), 0.5)}, n_repeats=3)
    assert [r["arm"] for r in res.rows] == ["no triage", "sinogram", "image", "oracle flags"]
    assert res.rows[2]["flag_rate"] == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="6 entries"):
        compare_operating_points(y, {"a": (np.zeros(5), 0.5)})


def test_cli_simulate_prints_table_and_plots(tmp_path):
    import json

    from typer.testing import CliRunner

    from sinotriage.cli import app
    from sinotriage.io.predictions import Predictions, write_predictions

    rng = np.random.default_rng(0)
    n = 40
    y = rng.integers(0, 2, size=n)
    s = y * 0.5 + rng.uniform(0, 0.6, size=n)
    split = ["val"] * 20 + ["test"] * 20
    pred = write_predictions(tmp_path / "p.csv", Predictions([f"s{i}" for i in range(n)], split,
                                                             np.full(n, -1), y, s))
    plot, out = tmp_path / "waits.png", tmp_path / "table.json"
    res = CliRunner().invoke(app, ["simulate", "--scores", str(pred), "--repeats", "3", "--rate", "5",
                                   "--plot", str(plot), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "oracle flags" in res.output and plot.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert [r["arm"] for r in doc["rows"]] == ["no triage", "model flags", "model score order", "oracle flags"]
    thr = doc["operating_point"]["threshold"]
    expected = simulate_policies(y[20:], s[20:], thr, n_repeats=3, rate_per_hour=5.0, read_sd=4.0)
    # the worklist orders studies by score, so compare the order-free statistics
    assert doc["rows"][1]["flag_rate"] == pytest.approx(expected.rows[1]["flag_rate"])
    res = CliRunner().invoke(app, ["simulate", "--scores", str(pred), "--shares", "icu=1"])
    assert res.exit_code == 2 and "unknown class 'icu'" in res.output
