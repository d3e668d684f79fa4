"""The dataset store: layout, dtypes and chunks, atomic writes, manifest, splits, errors."""

from __future__ import annotations

import csv
import json
import os
import pickle

import numpy as np
import pytest
import zarr

import sinotriage.io.store as store_mod
from sinotriage.geometry import sinoct
from sinotriage.io.store import (
    LABEL_NAMES,
    create_store,
    derived_key,
    open_store,
    stratified_splits,
)

GEOM = sinoct(image_size=16, n_views=24, n_det=20)
D = 4


def _study(rng: np.random.Generator, positive_slice: int | None = 1, subtype: int = 5) -> dict:
    labels = np.zeros((D, 6), np.uint8)
    mask = np.zeros((D, 16, 16), np.uint8)
    if positive_slice is not None:
        labels[positive_slice, [0, subtype]] = 1
        mask[positive_slice, 4:6, 4:6] = subtype
    return {
        "hu": rng.normal(0, 300, (D, 16, 16)).astype(np.float32),
        "sinogram": rng.random((D, 24, 20), dtype=np.float32),
        "tissues": rng.integers(0, 8, (D, 16, 16)).astype(np.uint8),
        "mask": mask,
        "labels": labels,
    }


@pytest.fixture
def store(tmp_path):
    return create_store(tmp_path / "s.zarr", {"source": "test", "settings": {"a": 1}}, geometry=GEOM)


def test_layout_dtypes_chunks_and_attributes(store):
    rng = np.random.default_rng(0)
    arrays = _study(rng)
    assert store.write_study("st1", arrays, {"note": "x"}) is True
    root = store.path
    assert (root / "zarr.json").is_file() and (root / "studies" / "st1" / "zarr.json").is_file()
    meta = json.loads((root / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    attrs = meta["attributes"]
    assert attrs["sinotriage_store"] == 1 and attrs["label_names"] == list(LABEL_NAMES)
    assert attrs["source"] == "test" and attrs["settings"] == {"a": 1}
    assert store.geometry == GEOM
    grp = zarr.open_group(str(root / "studies" / "st1"), mode="r")
    expected = {"hu": ("int16", (1, 16, 16)), "sinogram": ("float32", (1, 24, 20)),
                "tissues": ("uint8", (1, 16, 16)), "mask": ("uint8", (1, 16, 16)),
                "labels": ("uint8", (D, 6))}
    for name, (dtype, chunks) in expected.items():
        assert grp[name].dtype == np.dtype(dtype), name
        assert grp[name].chunks == chunks, name
        codec = json.loads((root / "studies" / "st1" / name / "zarr.json").read_text())["codecs"]
        assert any(c["name"] == "blosc" and c["configuration"]["cname"] == "zstd" for c in codec)
    # HU: rounded to nearest integer (reference: numpy rint) and stored as int16
    np.testing.assert_array_equal(store.read("st1", "hu"), np.rint(arrays["hu"]).astype(np.int16))
    np.testing.assert_array_equal(store.read("st1", "sinogram"), arrays["sinogram"])
    np.testing.assert_array_equal(store.read("st1", "labels"), arrays["labels"])
    assert store.arrays("st1") == sorted(expected)


def test_hu_is_clipped_to_int16(store):
    arrays = {"hu": np.full((2, 16, 16), 40000.0), "labels": np.zeros((2, 6))}
    arrays["hu"][1] = -40000.0
    store.write_study("c", arrays)
    hu = store.read("c", "hu")
    assert hu[0].min() == 32767 and hu[1].max() == -32768


def test_record_from_labels_and_manifest(store):
    rng = np.random.default_rng(1)
    store.write_study("a", _study(rng, positive_slice=2, subtype=1))
    store.write_study("b", _study(rng, positive_slice=None))
    store.write_study("c", {"hu": np.zeros((3, 16, 16))}, {"label": 1, "site": "x"})
    m = {r["study_id"]: r for r in store.manifest}
    assert m["a"]["label"] == 1 and m["a"]["epidural"] == 1 and m["a"]["subdural"] == 0
    assert m["b"]["label"] == 0 and all(m["b"][n] == 0 for n in LABEL_NAMES[1:])
    assert m["c"]["label"] == 1 and m["c"]["subdural"] == -1 and m["c"]["site"] == "x"
    assert [m[s]["n_slices"] for s in "abc"] == [D, D, 3]
    assert all(r["split"] == "unassigned" for r in m.values())
    with pytest.raises(ValueError, match="contradicts the slice labels"):
        store.write_study("d", _study(rng, positive_slice=None), {"label": 1})


def test_manifest_files_and_splits(store):
    rng = np.random.default_rng(2)
    for i in range(10):
        store.write_study(f"s{i}", _study(rng, positive_slice=1 if i % 2 else None))
    splits = store.assign_splits((0.6, 0.2, 0.2), seed=3)
    records = store.write_manifest()
    assert {r["study_id"]: r["split"] for r in records} == splits
    with open(store.path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["study_id"] for r in rows] == [f"s{i}" for i in range(10)]
    assert {r["study_id"]: r["split"] for r in rows} == splits
    assert {r["study_id"]: int(r["label"]) for r in rows} == {f"s{i}": i % 2 for i in range(10)}
    # 5 studies per label, 0.6/0.2/0.2 -> exactly 3/1/1 per label
    for label in (0, 1):
        counts = [sum(splits[f"s{i}"] == s for i in range(10) if i % 2 == label)
                  for s in ("train", "val", "test")]
        assert counts == [3, 1, 1]
    assert store.study_ids(split="val") == sorted(s for s, v in splits.items() if v == "val")
    # a study written after the gathering is still listed (read from its own attributes)
    store.write_study("t", _study(rng))
    assert [r["study_id"] for r in open_store(store.path).manifest][-1] == "t"


def test_stratified_splits_exact_counts_and_order_independent():
    ids = [f"x{i:03d}" for i in range(40)]
    labels = [1] * 22 + [0] * 18
    a = stratified_splits(ids, labels, (0.7, 0.15, 0.15), seed=5)
    b = stratified_splits(ids[::-1], labels[::-1], (0.7, 0.15, 0.15), seed=5)
    assert a == b
    # largest remainder: 22 studies -> quotas 15.4, 3.3, 3.3 -> 16, 3, 3;
    # 18 studies -> quotas 12.6, 2.7, 2.7 -> 12, 3, 3
    for lab, expected in ((1, [16, 3, 3]), (0, [12, 3, 3])):
        got = [sum(a[i] == s for i, lb in zip(ids, labels, strict=True) if lb == lab)
               for s in ("train", "val", "test")]
        assert got == expected
    assert stratified_splits(ids, labels, seed=6) != a
    with pytest.raises(ValueError, match="fractions"):
        stratified_splits(ids, labels, (0.5, 0.5, 0.5))


def test_write_is_atomic_when_interrupted(store, monkeypatch):
    rng = np.random.default_rng(3)
    calls = []
    original = store_mod._write_array

    def failing(group, name, arr):
        calls.append(name)
        if len(calls) == 3:
            raise RuntimeError("simulated crash in the middle of a study")
        original(group, name, arr)

    monkeypatch.setattr(store_mod, "_write_array", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.write_study("half", _study(rng))
    assert len(calls) == 3
    assert not store.has_study("half") and store.study_ids() == []
    assert not (store.path / "studies" / "half").exists()
    assert os.listdir(store.path / ".partial") == []
    monkeypatch.setattr(store_mod, "_write_array", original)
    assert store.write_study("half", _study(rng)) is True
    assert store.study_ids() == ["half"]


def test_write_is_idempotent_and_overwrite(store):
    rng = np.random.default_rng(4)
    first = _study(rng)
    assert store.write_study("a", first)
    assert store.write_study("a", _study(rng)) is False
    np.testing.assert_array_equal(store.read("a", "sinogram"), first["sinogram"])
    second = _study(rng)
    assert store.write_study("a", second, overwrite=True)
    np.testing.assert_array_equal(store.read("a", "sinogram"), second["sinogram"])


def test_read_selections_match_numpy_indexing(store):
    arrays = _study(np.random.default_rng(5))
    store.write_study("a", arrays)
    full = store.read("a", "sinogram")
    np.testing.assert_array_equal(store.read("a", "sinogram", slices=2), full[2])
    np.testing.assert_array_equal(store.read("a", "sinogram", slices=slice(1, 3)), full[1:3])
    np.testing.assert_array_equal(store.read("a", "sinogram", slices=[3, 0, 0]), full[[3, 0, 0]])


def test_derived_round_trip(store):
    rng = np.random.default_rng(6)
    store.write_study("a", _study(rng))
    store.write_study("b", _study(rng))
    g12 = GEOM[::2]
    recon = rng.normal(0, 50, (D, 16, 16))
    sino = rng.random((D, 12, 20), dtype=np.float32)
    assert store.write_derived("a", 12, {"sinogram": sino, "recon": recon}, g12, attrs={"f": 1})
    assert store.write_derived("a", 12, {"recon": recon}, g12) is False
    np.testing.assert_array_equal(store.read("a", "recon", views=12), np.rint(recon).astype(np.int16))
    np.testing.assert_array_equal(store.read("a", "sinogram", views=12), sino)
    # the full view count reads the original sinogram
    np.testing.assert_array_equal(store.read("a", "sinogram", views=24), store.read("a", "sinogram"))
    assert store.views_available("a") == [12]
    assert store.views_available("a", name="sinogram") == [12, 24]
    assert store.views_available() == []  # "b" has no derived arrays
    assert store.derived_geometry(12) == g12
    assert store.derived_keys("a") == ["v0012"]
    store.write_derived("a", 12, {"recon": recon}, g12, photons=1e4)
    assert store.derived_keys("a") == ["v0012", "v0012_p10000"]
    assert store.views_available("a", photons=1e4) == [12]
    with pytest.raises(ValueError, match=r"geometry.n_views \(12\) != views \(6\)"):
        store.write_derived("a", 6, {"recon": recon}, g12)
    with pytest.raises(ValueError, match="expected"):
        store.write_derived("a", 12, {"recon": recon[:, :8]}, g12)
    with pytest.raises(KeyError, match="sinotriage preprocess"):
        store.read("b", "recon", views=12)


def test_derived_key():
    assert derived_key(984) == "v0984"
    assert derived_key(61, 2.5e5) == "v0061_p250000"
    with pytest.raises(ValueError, match="views"):
        derived_key(0)


def test_errors_name_store_and_study(store, tmp_path):
    rng = np.random.default_rng(7)
    store.write_study("a", {"hu": np.zeros((2, 16, 16))})
    with pytest.raises(KeyError, match=r"s\.zarr: no study 'zz'"):
        store.read("zz", "hu")
    with pytest.raises(KeyError, match=r"study 'a' has no array 'sinogram' \(it has \['hu'\]\)"):
        store.read("a", "sinogram")
    with pytest.raises(FileNotFoundError, match="no dataset store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a sinotriage store"):
        open_store(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"mode must be one of \('r', 'r\+'\)"):
        open_store(store.path, mode="w")
    with pytest.raises(ValueError, match="read-only"):
        open_store(store.path).write_study("b", _study(rng))
    with pytest.raises(ValueError, match="study_id"):
        store.write_study("../evil", _study(rng))
    with pytest.raises(ValueError, match=r"store geometry expects \(D, 24, 20\)"):
        store.write_study("b", {"sinogram": np.zeros((2, 20, 24))})
    with pytest.raises(ValueError, match="differ in slice count"):
        store.write_study("b", {"hu": np.zeros((2, 16, 16)), "labels": np.zeros((3, 6))})
    with pytest.raises(ValueError, match="outside uint8"):
        store.write_study("b", {"hu": np.zeros((2, 16, 16)), "mask": np.full((2, 16, 16), 300)})
    with pytest.raises(ValueError, match="NaN"):
        store.write_study("b", {"hu": np.full((2, 16, 16), np.nan)})
    with pytest.raises(FileExistsError, match="already exists"):
        create_store(store.path)
    assert store.study_ids() == ["a"] and os.listdir(store.path / ".partial") == []


def test_store_pickles_and_reopens(store):
    store.write_study("a", {"hu": np.ones((2, 16, 16))})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path and clone.mode == store.mode
    np.testing.assert_array_equal(clone.read("a", "hu"), np.ones((2, 16, 16), np.int16))


def test_clean_partial_removes_leftovers(store):
    leftover = store.path / ".partial" / "123-dead"
    leftover.mkdir(parents=True)
    (leftover / "zarr.json").write_text("{}")
    assert store.study_ids() == []
    assert store.clean_partial() == 1
    assert os.listdir(store.path / ".partial") == []


def test_group_cleaned_under_a_writer_is_not_committed(store, monkeypatch):
    """An orphaned writer whose .partial directory is removed mid-write must not commit."""
    import shutil

    original = store_mod._write_array
    calls = []

    def clean_then_write(group, name, arr):
        calls.append(name)
        if len(calls) == 3:  # another run's clean_partial removes the directory
            for d in (store.path / ".partial").iterdir():
                shutil.rmtree(d)
        original(group, name, arr)

    monkeypatch.setattr(store_mod, "_write_array", clean_then_write)
    with pytest.raises(RuntimeError, match="not committed"):
        store.write_study("orphan", _study(np.random.default_rng(8)))
    assert not store.has_study("orphan") and store.study_ids() == []
