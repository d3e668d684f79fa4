"""Tests of the worklist: threshold choice on validation, ranking, top slices, subtypes, files."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from sinotriage.io.predictions import Predictions, write_predictions
from sinotriage.metrics import LABEL_NAMES
from sinotriage.triage import (
    build_worklist,
    choose_operating_point,
    write_worklist_csv,
    write_worklist_html,
)


def make_predictions(n_val=30, n_test=20, n_slices=6, seed=0, scan_rows=True) -> Predictions:
    """Slice rows (and scan rows = max of slices) for val and test studies, all six labels."""
    rng = np.random.default_rng(seed)
    ids, splits, sl, labels, scores = [], [], [], [], []
    for split, n in (("val", n_val), ("test", n_test)):
        for i in range(n):
            sid = f"{split}-{i:03d}"
            positive = rng.random() < 0.5
            sub = rng.integers(1, 6) if positive else 0
            lab = np.zeros((n_slices, 6), np.int8)
            sc = rng.uniform(0, 0.5, size=(n_slices, 6))
            if positive:
                hot = rng.choice(n_slices, size=2, replace=False)
                lab[hot, 0] = 1
                lab[hot, sub] = 1
                sc[hot, 0] += rng.uniform(0.1, 0.5, size=2)
                sc[hot, sub] += 0.4
            if scan_rows:
                ids.append(sid)
                splits.append(split)
                sl.append(-1)
                labels.append(lab.max(axis=0))
                scores.append(sc.max(axis=0))
            for k in range(n_slices):
                ids.append(sid)
                splits.append(split)
                sl.append(k)
                labels.append(lab[k])
                scores.append(sc[k])
    return Predictions(ids, splits, np.array(sl), np.array(labels), np.array(scores), LABEL_NAMES)


def brute_threshold(y, s, target):
    """Highest candidate threshold (a score value) with sensitivity >= target, by enumeration."""
    best = -np.inf
    for t in np.unique(s):
        if np.mean(s[y == 1] >= t) >= target:
            best = max(best, t)
    return best


@pytest.mark.parametrize("target", [0.8, 0.95, 1.0])
def test_threshold_is_chosen_on_validation_for_the_target_sensitivity(target):
    p = make_predictions()
    op = choose_operating_point(p, target)
    y, s = p.scans("val").column("any")
    assert op.threshold == brute_threshold(y, s, target)
    assert op.val_sensitivity >= target
    assert op.val_specificity == pytest.approx(np.mean(s[y == 0] < op.threshold))
    assert (op.n_pos, op.n_neg) == (int(y.sum()), int((y == 0).sum()))
    assert "chosen on the val split" in op.describe()


def test_worklist_ranking_flags_top_slices_and_subtypes():
    p = make_predictions(seed=1)
    wl = build_worklist(p, sensitivity=0.9, top_k=2)
    y, s = p.scans("test").column("any")
    ids = p.scans("test").study_id
    # ranked by descending score, every test study once
    assert [e.score for e in wl.entries] == sorted(s, reverse=True)
    assert sorted(e.study_id for e in wl.entries) == sorted(ids)
    assert [e.rank for e in wl.entries] == list(range(1, len(ids) + 1))
    thr = wl.operating_point.threshold
    assert {e.study_id for e in wl.flagged} == {i for i, v in zip(ids, s, strict=True) if v >= thr}
    assert wl.metrics["sensitivity"] == pytest.approx(np.mean(s[y == 1] >= thr))
    sl = p.slices("test")
    for e in wl.flagged:
        rows = [i for i, sid in enumerate(sl.study_id) if sid == e.study_id]
        best = sorted(rows, key=lambda i: -sl.scores[i, 0])[:2]
        assert [k for k, _ in e.top_slices] == [int(sl.slice[i]) for i in best]
    for e in wl.entries:
        if not e.flagged:
            assert e.top_slices == [] and e.subtypes == []
    # subtypes: the scan score reaches the Youden-optimal validation threshold of that subtype
    val = p.scans("val")
    for j, name in enumerate(LABEL_NAMES[1:], start=1):
        yv, sv = val.labels[:, j], val.scores[:, j]
        if yv.min() == yv.max():
            assert name not in wl.subtype_thresholds
            continue
        cands = np.unique(sv)
        youden = [np.mean(sv[yv == 1] >= t) - np.mean(sv[yv == 0] >= t) for t in cands]
        expected = cands[int(np.flatnonzero(np.isclose(youden, max(youden)))[-1])]
        assert wl.subtype_thresholds[name] == pytest.approx(expected)
    test_scans = p.scans("test")
    for e in wl.flagged:
        i = test_scans.study_id.index(e.study_id)
        expect = {n for j, n in enumerate(LABEL_NAMES[1:], start=1)
                  if n in wl.subtype_thresholds and test_scans.scores[i, j] >= wl.subtype_thresholds[n]}
        assert {n for n, _ in e.subtypes} == expect


def test_scan_scores_aggregated_from_slices_when_missing():
    with_scans = build_worklist(make_predictions(seed=2), sensitivity=0.9)
    without = build_worklist(make_predictions(seed=2, scan_rows=False), sensitivity=0.9)
    assert [(e.study_id, e.score, e.flagged) for e in with_scans.entries] == \
        [(e.study_id, e.score, e.flagged) for e in without.entries]


def test_given_threshold_and_errors():
    p = make_predictions(seed=3)
    wl = build_worklist(p, threshold=0.6)
    assert wl.operating_point.split == "given"
    assert all(e.flagged == (e.score >= 0.6) for e in wl.entries)
    only_test = p.select(np.asarray(p.split) == "test")
    with pytest.raises(ValueError, match="cannot choose the threshold on split 'val'"):
        build_worklist(only_test)
    with pytest.raises(ValueError, match="no study of split 'train'"):
        build_worklist(p, split="train")
    with pytest.raises(ValueError, match="sensitivity"):
        choose_operating_point(p, 1.5)


def test_csv_and_html_outputs(tmp_path):
    p = make_predictions(seed=4)
    wl = build_worklist(p, sensitivity=0.95)
    out = write_worklist_csv(wl, tmp_path / "wl.csv")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["study_id"] for r in rows] == [e.study_id for e in wl.entries]
    assert sum(int(r["flagged"]) for r in rows) == len(wl.flagged)
    first = wl.flagged[0]
    assert rows[0]["top_slices"] == ";".join(str(k) for k, _ in first.top_slices)
    assert not list(tmp_path.glob(".*.tmp"))

    class FakeStore:  # the two Store methods the HTML writer uses
        def __init__(self):
            self.calls = []

        def read(self, study_id, name, views=None, slices=None):
            self.calls.append((study_id, name, views, slices))
            img = np.full((32, 32), -1000, np.int16)
            img[8:24, 8:24] = 40
            return img

        def array(self, study_id, name):
            return np.zeros((6, 32, 32), np.int16)

    store = FakeStore()
    page = write_worklist_html(wl, tmp_path / "wl.html", store=store, window_name="brain").read_text()
    assert page.count("data:image/png;base64,") == len(wl.flagged)
    assert store.calls[0] == (first.study_id, "hu", None, first.top_slices[0][0])
    assert re.search(r"threshold [0-9.]+ chosen on the val split", page)
    with pytest.raises(ValueError, match="unknown window name"):
        write_worklist_html(wl, tmp_path / "x.html", window_name="lung")


def test_reads_from_a_predictions_csv(tmp_path):
    from sinotriage.io.predictions import read_predictions

    p = make_predictions(seed=5)
    path = write_predictions(tmp_path / "pred.csv", p)
    a = build_worklist(read_predictions(path))
    b = build_worklist(p)
    assert [(e.study_id, e.flagged) for e in a.entries] == [(e.study_id, e.flagged) for e in b.entries]


def test_cli_triage_writes_csv_and_html(tmp_path):
    from typer.testing import CliRunner

    from sinotriage.cli import app

    p = make_predictions(seed=6)
    pred = write_predictions(tmp_path / "pred.csv", p)
    out = tmp_path / "wl.csv"
    res = CliRunner().invoke(app, ["triage", "--scores", str(pred), "--sensitivity", "0.9",
                                   "--out", str(out), "--rows", "5"])
    assert res.exit_code == 0, res.output
    assert "chosen on the val split" in res.output and "FLAG" in res.output
    assert out.is_file() and out.with_suffix(".html").is_file()
    expected = build_worklist(p, sensitivity=0.9)
    with out.open() as fh:
        assert [r["study_id"] for r in csv.DictReader(fh)] == [e.study_id for e in expected.entries]
    res = CliRunner().invoke(app, ["triage", "--out", str(out)])
    assert res.exit_code == 2 and "exactly one of --scores" in res.output


def test_fit_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    from sinotriage.triage.baseline import fit_logistic

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.3 + rng.normal(size=300) > 0).astype(int)
    for C in (0.1, 1.0, 10.0):
        w, b = fit_logistic(X, y, C=C)
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
        np.testing.assert_allclose(w, ref.coef_[0], atol=1e-5)
        assert b == pytest.approx(ref.intercept_[0], abs=1e-5)
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(X, np.zeros(300))


def test_histogram_features_count_intracranial_pixels():
    from sinotriage.triage.baseline import HISTOGRAM_EDGES, histogram_features

    vol = np.full((2, 40, 40), -1000.0, np.float32)
    yy, xx = np.mgrid[:40, :40] - 19.5
    r = np.hypot(yy, xx)
    vol[:, r < 18] = 1000.0                 # skull
    vol[:, r < 15] = 32.0                   # brain: bin 30-35
    vol[1, 15:20, 15:20] = 72.0             # a 5 x 5 bleed on slice 1: bin 70-75 at its core
    f = histogram_features(vol, smooth=1)
    n_bins = HISTOGRAM_EDGES.size - 1
    # brain pixels none of whose 4 neighbours is bone (the one-pixel rim next to the bone removed)
    bone = vol[0] > 300
    near = bone | np.roll(bone, 1, 0) | np.roll(bone, -1, 0) | np.roll(bone, 1, 1) | np.roll(bone, -1, 1)
    inside = (r < 15) & ~near
    k30, k70 = int(np.searchsorted(HISTOGRAM_EDGES, 32.0)) - 1, int(np.searchsorted(HISTOGRAM_EDGES, 72.0)) - 1
    assert f[0, k30] == pytest.approx(np.log1p(inside.sum()))
    assert f[1, k70] == pytest.approx(np.log1p(25)) and f[0, k70] == 0
    assert f[1, n_bins + k70] == pytest.approx(25 / inside.sum())


def test_head_box_is_a_square_around_the_head():
    from sinotriage.triage.worklist_output import head_box

    img = np.full((100, 100), -1000.0)
    img[20:50, 30:70] = 40.0                   # rows 20..49, cols 30..69: 30 x 40 pixels
    rows, cols = head_box(img, margin=4)
    # side = 40 + 1 - 1 + 8 = 48, centred on (34, 49)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (10, 58, 25, 73)
    img[:, :5] = 40.0                          # head touching the left edge: square clipped inside
    rows, cols = head_box(img, margin=4)
    assert cols.start == 0 and rows.stop - rows.start == cols.stop - cols.start <= 100
    assert head_box(np.full((8, 6), -1000.0)) == (slice(0, 8), slice(0, 6))


def test_checkpoint_path_errors(tmp_path):
    from sinotriage.triage.scoring import predictions_from_checkpoint

    with pytest.raises(FileNotFoundError, match="checkpoint"):
        predictions_from_checkpoint(tmp_path / "none.safetensors", tmp_path)
    (tmp_path / "c.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="store"):
        predictions_from_checkpoint(tmp_path / "c.safetensors", tmp_path / "none.zarr")


@pytest.mark.slow
def test_cli_triage_from_a_trained_checkpoint(tmp_path):
    """Train a tiny model for one epoch, then `sinotriage triage --checkpoint` (10-40 s on CPU)."""
    from typer.testing import CliRunner

    from sinotriage.cli import app
    from sinotriage.io.store import create_store
    from sinotriage.phantoms import head_ct
    from sinotriage.training import TrainConfig, predict, train

    path = tmp_path / "s.zarr"
    store = create_store(path)
    for i in range(9):
        ct = head_ct(i, n_slices=6, image_size=64, pixel_size=250 / 64, difficulty="easy", prevalence=0.5)
        store.write_study(f"s{i:03d}", {"hu": ct.hu, "labels": ct.labels, "mask": ct.mask},
                          {"split": ("train", "val", "test")[i % 3]})
    store.write_manifest()
    result = train(TrainConfig(store=str(path), out_dir=str(tmp_path / "run"), domain="hu", image_size=32,
                               model="densenet_slim", epochs=1, batch_size=8, lr=1e-3, progress=False,
                               max_train_slices=16, seed=3))
    out = tmp_path / "wl.csv"
    res = CliRunner().invoke(app, ["triage", "--store", str(path), "--checkpoint", str(result.best_checkpoint),
                                   "--threshold", "0.0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    expected = predict(result.best_checkpoint, path, split="test").scans("test")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["study_id"] for r in rows) == sorted(expected.study_id)
    got = {r["study_id"]: float(r["score"]) for r in rows}
    for sid, s in zip(expected.study_id, expected.scores[:, 0], strict=True):
        assert got[sid] == pytest.approx(s, rel=1e-6)
    assert out.with_suffix(".html").read_text().count("data:image/png;base64,") == 3
