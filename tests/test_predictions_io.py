"""Round trip and error messages of the predictions CSV."""

from __future__ import annotations

import numpy as np
import pytest

from sinotriage.errors import InputError
from sinotriage.io.predictions import Predictions, header, read_predictions, write_predictions
from sinotriage.metrics import aggregate_scan


def _slice_predictions() -> Predictions:
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(3) for _ in range(4)]
    z = [3, 0, 2, 1] * 3
    labels = (rng.random((12, 2)) < 0.5).astype(int)
    labels[5, 1] = -1
    scores = rng.random((12, 2))
    return Predictions(ids, ["test"] * 12, z, labels, scores, ("any", "subdural"))


def test_round_trip_exact(tmp_path):
    p = _slice_predictions()
    out = write_predictions(tmp_path / "sub" / "pred.csv", p)
    text = out.read_text().splitlines()
    assert text[0] == "study_id,split,slice,label_any,score_any,label_subdural,score_subdural"
    assert header(("any",)) == ["study_id", "split", "slice", "label_any", "score_any"]
    q = read_predictions(out)
    assert q.study_id == p.study_id and q.split == p.split and q.label_names == p.label_names
    np.testing.assert_array_equal(q.slice, p.slice)
    np.testing.assert_array_equal(q.labels, p.labels)
    np.testing.assert_array_equal(q.scores, p.scores)  # repr() of floats round-trips exactly
    assert not list(tmp_path.joinpath("sub").glob(".*tmp"))  # no temporary left behind


def test_with_scan_rows_aggregates_in_z_order():
    p = _slice_predictions()
    q = p.with_scan_rows("consecutive", k=2)
    scans = q.scans()
    assert scans.study_id == ["s0", "s1", "s2"] and len(q.slices()) == 12
    for r, sid in enumerate(scans.study_id):
        rows = [i for i in range(12) if p.study_id[i] == sid]
        rows.sort(key=lambda i: p.slice[i])
        assert scans.scores[r, 0] == pytest.approx(aggregate_scan(p.scores[rows, 0], "consecutive", 2))
        assert scans.labels[r, 0] == p.labels[rows, 0].max()
    assert scans.labels[1, 1] == -1  # an unknown slice label makes the scan label unknown
    y, s = scans.column("any")
    assert y.shape == s.shape == (3,)
    with pytest.raises(ValueError, match="not in these predictions"):
        scans.column("epidural")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty file"),
        ("id,split,slice,label_any,score_any\n", "must start with study_id,split,slice"),
        ("study_id,split,slice,label_any,score_sdh\n", "bad column pair"),
        ("study_id,split,slice,label_bleed,score_bleed\n", "unknown label 'bleed'"),
        ("study_id,split,slice,label_subdural,score_subdural,label_any,score_any\n", "order"),
        ("study_id,split,slice,label_any,score_any\na,test,x,1,0.5\n", "line 2, column slice"),
        ("study_id,split,slice,label_any,score_any\na,test,0,2,0.5\n", "column label_any"),
        ("study_id,split,slice,label_any,score_any\na,test,0,1,high\n", "column score_any"),
        ("study_id,split,slice,label_any,score_any\na,test,0,1,nan\n", "finite"),
        ("study_id,split,slice,label_any,score_any\na,test,0,1\n", "expected 5 columns"),
        ("study_id,split,slice,label_any,score_any\na,test,0,1,0.5\nb,test,0,1,0.5\n"
         "a,test,0,1,0.7\n", r"line 4: duplicate row for study 'a', slice 0 \(first on line 2\)"),
        ("study_id,split,slice,label_any,score_any\na,val,-1,1,0.5\na,test,0,1,0.5\n",
         "line 3: study 'a' is in split 'test' here but in 'val' on line 2"),
    ],
)
def test_read_errors_name_file_and_column(tmp_path, content, match):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_predictions(f)
    assert "bad.csv" in str(info.value)


def test_missing_file_and_bad_shapes(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_predictions(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="scores must have shape"):
        Predictions(["a", "b"], ["t", "t"], [-1, -1], [0, 1], [0.1], ("any",))
    with pytest.raises(ValueError, match="unknown label"):
        Predictions(["a"], ["t"], [-1], [0], [0.1], ("bleed",))
    with pytest.raises(TypeError, match="Predictions"):
        write_predictions(tmp_path / "x.csv", {"a": 1})
