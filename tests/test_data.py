"""Torch datasets over a store: every domain, slice and scan items, labels, options, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sinotriage.data import ScanDataset, SliceDataset
from sinotriage.io.store import create_store
from sinotriage.windowing import multi_window


def _slices(store, split=None):
    return [(r["study_id"], s) for r in store.manifest if split in (None, r["split"])
            for s in range(r["n_slices"])]


def test_slice_items_hu_and_labels(tiny_store):
    ds = SliceDataset(tiny_store)
    assert len(ds) == sum(r["n_slices"] for r in tiny_store.manifest)
    assert [(ds.index[i][1]) for i in range(3)] == [0, 1, 2]
    for i in (0, len(ds) // 2, len(ds) - 1):
        item = ds[i]
        sid, s = _slices(tiny_store)[i]
        assert (item["study_id"], item["slice"]) == (sid, s)
        assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 64, 64)
        np.testing.assert_array_equal(item["image"][0].numpy(), tiny_store.read(sid, "hu")[s])
        np.testing.assert_array_equal(item["label"].numpy(), tiny_store.read(sid, "labels")[s])
    binary = SliceDataset(tiny_store, target="binary")
    assert binary[5]["label"].shape == () and binary[5]["label"] == ds[5]["label"][0]


def test_split_filter(tiny_store):
    for split in ("train", "val", "test"):
        ds = SliceDataset(tiny_store, split)
        assert len(ds) == len(_slices(tiny_store, split)) > 0
        assert {ds[i]["split"] for i in range(0, len(ds), 7)} == {split}
        assert ScanDataset(tiny_store, split).study_ids == tiny_store.study_ids(split=split)


def test_windowed_recon_and_sinogram_domains(tiny_store):
    sid, s = _slices(tiny_store)[3]
    win = SliceDataset(tiny_store, domain="windowed", windows=("brain", "subdural", "bone"))[3]
    ref = multi_window(torch.from_numpy(tiny_store.read(sid, "hu")[s].astype(np.float32)),
                       ("brain", "subdural", "bone"))
    assert win["image"].shape == (3, 64, 64) and torch.equal(win["image"], ref)
    rwin = SliceDataset(tiny_store, domain="windowed", views=61, windows=("brain",))[3]
    ref = multi_window(torch.from_numpy(tiny_store.read(sid, "recon", views=61)[s].astype(
        np.float32)), ("brain",))
    assert torch.equal(rwin["image"], ref)
    rec = SliceDataset(tiny_store, domain="recon", views=123)[3]["image"]
    np.testing.assert_array_equal(rec[0].numpy(), tiny_store.read(sid, "recon", views=123)[s])
    full = SliceDataset(tiny_store, domain="recon")[3]["image"]  # default: full view count
    np.testing.assert_array_equal(full[0].numpy(), tiny_store.read(sid, "recon", views=246)[s])
    sino = SliceDataset(tiny_store, domain="sinogram")[3]["image"]
    assert sino.shape == (1, 246, 111)
    np.testing.assert_array_equal(sino[0].numpy(), tiny_store.read(sid, "sinogram")[s])
    sub = SliceDataset(tiny_store, domain="sinogram", views=61)[3]["image"]
    assert sub.shape == (1, 61, 111)


def test_context_stacks_clamped_neighbours(tiny_store):
    ds = SliceDataset(tiny_store, domain="windowed", windows=("brain", "bone"), context=1)
    sid = tiny_store.study_ids()[0]
    hu = torch.from_numpy(tiny_store.read(sid, "hu").astype(np.float32))
    for s, neighbours in ((0, [0, 0, 1]), (4, [3, 4, 5])):
        item = ds[s]
        assert item["image"].shape == (6, 64, 64)
        ref = multi_window(hu[neighbours], ("brain", "bone")).reshape(6, 64, 64)
        assert torch.equal(item["image"], ref)


def test_scan_items_and_depth(tiny_store):
    ds = ScanDataset(tiny_store, domain="hu")
    assert len(ds) == len(tiny_store.study_ids())
    np.testing.assert_array_equal(ds.labels(), [r["label"] for r in tiny_store.manifest])
    item = ds[0]
    sid, d = item["study_id"], item["n_slices"]
    assert item["image"].shape == (1, d, 64, 64) and item["label"].shape == ()
    assert item["slice_labels"].shape == (d, 6)
    fixed = ScanDataset(tiny_store, domain="windowed", windows=("brain", "blood"), depth=8)
    item = fixed[0]
    idx = np.rint(np.linspace(0, d - 1, 8)).astype(int)
    ref = multi_window(torch.from_numpy(tiny_store.read(sid, "hu")[idx].astype(np.float32)),
                       ("brain", "blood")).transpose(0, 1)
    assert item["image"].shape == (2, 8, 64, 64) and torch.equal(item["image"], ref)
    np.testing.assert_array_equal(item["slice_labels"].numpy(),
                                  tiny_store.read(sid, "labels")[idx])
    multi = ScanDataset(tiny_store, target="multilabel")[0]["label"]
    rec = tiny_store.manifest[0]
    names = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
    assert multi.tolist() == [rec["label"], *[rec[n] for n in names]]
    sino = ScanDataset(tiny_store, domain="sinogram", views=123, depth=8)[0]["image"]
    assert sino.shape == (1, 8, 123, 111)


def test_cache_and_transform_and_loader(tiny_store):
    lazy = SliceDataset(tiny_store, "train", domain="windowed")
    cached = SliceDataset(tiny_store, "train", domain="windowed", cache=True)
    for i in (0, 9, len(lazy) - 1):
        assert torch.equal(lazy[i]["image"], cached[i]["image"])
    assert len(cached._cache) >= 1
    scans = ScanDataset(tiny_store, "train", depth=6, cache=True)
    assert torch.equal(scans[0]["image"], ScanDataset(tiny_store, "train", depth=6)[0]["image"])

    def flip(item):
        item["image"] = item["image"].flip(-1)
        return item

    flipped = SliceDataset(tiny_store, "train", transform=flip)
    assert torch.equal(flipped[2]["image"], lazy_hu(tiny_store)[2]["image"].flip(-1))
    loader = DataLoader(SliceDataset(tiny_store, "train", domain="windowed"), batch_size=5,
                        num_workers=2, shuffle=False)
    batch = next(iter(loader))
    assert batch["image"].shape == (5, 3, 64, 64) and batch["label"].shape == (5, 6)
    assert len(batch["study_id"]) == 5
    scan_loader = DataLoader(ScanDataset(tiny_store, depth=8), batch_size=3)
    assert next(iter(scan_loader))["image"].shape == (3, 1, 8, 64, 64)


def lazy_hu(store):
    return SliceDataset(store, "train")


def test_errors(tiny_store, tmp_path):
    with pytest.raises(ValueError, match=r"domain must be one of \('hu', 'sinogram', 'recon'"):
        SliceDataset(tiny_store, domain="image")
    with pytest.raises(ValueError, match="target must be one of"):
        SliceDataset(tiny_store, target="soft")
    with pytest.raises(ValueError, match="split must be one of"):
        SliceDataset(tiny_store, split="training")
    with pytest.raises(ValueError, match="window must be one of"):
        SliceDataset(tiny_store, domain="windowed", windows=("brian",))
    with pytest.raises(KeyError, match="sinotriage preprocess"):
        SliceDataset(tiny_store, domain="recon", views=41)
    with pytest.raises(ValueError, match="context"):
        SliceDataset(tiny_store, context=-1)
    with pytest.raises(ValueError, match="depth"):
        ScanDataset(tiny_store, depth=0)
    with pytest.raises(IndexError):
        ScanDataset(tiny_store)[100]
    unlabeled = create_store(tmp_path / "u.zarr")
    unlabeled.write_study("a", {"hu": np.zeros((2, 8, 8))}, {"label": 1})
    with pytest.raises(ValueError, match="has no slice labels; use ScanDataset"):
        SliceDataset(unlabeled)
    scan = ScanDataset(unlabeled)[0]
    assert scan["label"] == 1 and "slice_labels" not in scan
