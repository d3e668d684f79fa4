"""Tests of the MONAI-style transforms: each equals its windowing function, and they compose
with MONAI's own transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureTyped, RandFlipd, RandRotate90d

from sinotriage.transforms import (
    BrainCoverageFilter,
    BrainCoverageFilterd,
    CenterCropSlices,
    CenterCropSlicesd,
    HistEqualize,
    HistEqualized,
    MultiWindow,
    MultiWindowd,
    ResizeSlices,
    SliceAverage,
    SliceAveraged,
    StackAdjacent,
    StackAdjacentd,
    Window,
    Windowd,
)
from sinotriage.windowing import hist_equalize, multi_window, window


def hu_volume(d=4, n=16, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = np.full((1, d, n, n), -1000.0, np.float32)
    vol[:, :, 3:13, 3:13] = rng.uniform(-50, 150, size=(1, d, 10, 10))
    vol[:, :, 2, 2:14] = 1200.0  # a strip of bone
    return vol


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_array_transforms_equal_functions(kind):
    hu = hu_volume()
    x = {"numpy": hu, "torch": torch.from_numpy(hu), "meta": MetaTensor(torch.from_numpy(hu))}[kind]

    def np_(a):
        return a if isinstance(a, np.ndarray) else a.as_tensor().numpy() if isinstance(a, MetaTensor) else a.numpy()

    np.testing.assert_array_equal(np_(Window("brain")(x)), window(hu, "brain"))
    np.testing.assert_array_equal(np_(Window(level=75, width=215)(x)), window(hu, "subdural"))
    mw = np_(MultiWindow(("brain", "bone", "histeq"))(x))
    assert mw.shape == (3, 4, 16, 16)
    ref = multi_window(hu[0], ("brain", "bone", "histeq"))  # (D, 3, H, W)
    np.testing.assert_array_equal(mw, np.moveaxis(ref, 1, 0))
    np.testing.assert_array_equal(np_(HistEqualize()(x)), hist_equalize(hu))
    np.testing.assert_allclose(np_(SliceAverage()(x)), hu.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np_(CenterCropSlices(8)(x)), hu[..., 4:12, 4:12])
    assert np_(ResizeSlices(32)(x)).shape == (1, 4, 32, 32)
    st = np_(StackAdjacent(1)(x))
    assert st.shape == (3, 4, 16, 16)
    np.testing.assert_array_equal(st[0, 1], hu[0, 0])
    np.testing.assert_array_equal(st[1, 1], hu[0, 1])
    np.testing.assert_array_equal(st[2, 1], hu[0, 2])


def test_multi_window_channel_order_with_several_inputs():
    hu = hu_volume()[0, :2]  # (2, H, W) two channels
    out = MultiWindow(("brain", "bone"))(hu)
    assert out.shape == (4, 16, 16)
    np.testing.assert_array_equal(out[1], window(hu[0], "bone"))
    np.testing.assert_array_equal(out[2], window(hu[1], "brain"))


def test_brain_coverage_filter_drops_empty_slices_from_all_keys():
    hu = hu_volume(d=5)
    hu[:, [0, 4]] = -1000.0  # air only
    mask = np.arange(5, dtype=np.float32)[None, :, None, None] * np.ones_like(hu)
    # about 40% of the 100 head pixels are in 0-80 HU: ~16% of the slice
    assert BrainCoverageFilter(0.2)(hu).shape == (1, 0, 16, 16)
    assert BrainCoverageFilter(0.1)(hu).shape == (1, 3, 16, 16)
    out = BrainCoverageFilterd(("image", "mask"), 0.1)({"image": hu, "mask": torch.from_numpy(mask)})
    assert out["image"].shape == (1, 3, 16, 16)
    assert out["mask"][0, :, 0, 0].tolist() == [1.0, 2.0, 3.0]


def test_dictionary_transforms_compose_with_monai_augmentations():
    hu = hu_volume()
    sample = {"image": hu.copy(), "label": np.array([1.0, 0.0])}
    pipeline = Compose([
        EnsureTyped(keys="image"),
        MultiWindowd("image", ("brain", "subdural", "bone")),
        RandFlipd("image", prob=1.0, spatial_axis=2),           # left-right flip of (C, D, H, W)
        RandRotate90d("image", prob=1.0, max_k=1, spatial_axes=(1, 2)),
    ])
    out = pipeline(sample)
    expected = np.moveaxis(multi_window(hu[0], ("brain", "subdural", "bone")), 1, 0)
    expected = np.rot90(np.flip(expected, axis=3), k=1, axes=(2, 3))
    got = out["image"]
    got = got.as_tensor().numpy() if isinstance(got, MetaTensor) else np.asarray(got)
    np.testing.assert_array_equal(got, expected)
    assert out["label"].tolist() == [1.0, 0.0]


def test_dictionary_forms_match_array_forms():
    hu = hu_volume()
    d = {"a": hu, "b": hu + 10}
    out = Compose([Windowd(("a", "b"), "stroke"), SliceAveraged("a"), CenterCropSlicesd("b", 8),
                   HistEqualized("b", allow_missing_keys=True)])(d)
    np.testing.assert_allclose(out["a"], window(hu, "stroke").mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(
        out["b"], hist_equalize(window(hu + 10, "stroke")[..., 4:12, 4:12], head_threshold=-500))
    st = StackAdjacentd("a", k=2)({"a": hu})
    assert st["a"].shape == (5, 4, 16, 16)


def test_transform_arguments_checked_at_construction():
    with pytest.raises(ValueError, match="unknown window name"):
        Window("brian")
    with pytest.raises(ValueError, match="unknown channel name"):
        MultiWindow(("brain", "lung"))
    with pytest.raises(ValueError, match="min_fraction"):
        BrainCoverageFilter(2.0)
    with pytest.raises(ValueError, match="resize mode"):
        ResizeSlices(8, mode="cubic")
    with pytest.raises(ValueError, match="one channel"):
        StackAdjacent(1)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="at least 4 dimensions"):
        SliceAverage()(np.zeros((2, 4, 4), np.float32))


def test_scale_bin_resize_transforms_match_their_references() -> None:
    """ScaleHU is hu / scale (MONAI's ScaleIntensityRange, plain tensors out), BinDetectors is
    the operator's ``subsample_detectors``, ResizeSlices(antialias) is ``F.interpolate``'s."""
    import torch.nn.functional as F

    from sinotriage import subsample_detectors
    from sinotriage.geometry import sinoct
    from sinotriage.transforms import BinDetectors, ResizeSlices, ScaleHU, ScaleHUd

    gen = torch.Generator().manual_seed(0)
    hu = torch.rand(2, 1, 8, 8, generator=gen) * 3000 - 1000
    out = ScaleHU()(hu)
    assert type(out) is torch.Tensor
    torch.testing.assert_close(out, hu / 1000.0)
    arr = ScaleHU(500.0)(hu.numpy())
    assert isinstance(arr, np.ndarray)
    np.testing.assert_allclose(arr, hu.numpy() / 500.0, rtol=1e-6)
    torch.testing.assert_close(ScaleHUd("image")({"image": hu[0]})["image"], hu[0] / 1000.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        ScaleHU(0)
    g = sinoct(image_size=32, n_views=24, n_det=30)
    sino = torch.rand(2, 1, 24, 30, generator=gen)
    expected, _ = subsample_detectors(sino, g, 4)
    torch.testing.assert_close(BinDetectors(4)(sino), expected)
    with pytest.raises(ValueError, match="factor must be an integer"):
        BinDetectors(0)
    img = torch.rand(2, 3, 40, 40, generator=gen)
    ref = F.interpolate(img, size=(16, 16), mode="bilinear", align_corners=False,
                        antialias=True)
    torch.testing.assert_close(ResizeSlices(16, antialias=True)(img), ref)


def test_training_dataset_windows_through_the_exported_transform(tiny_store) -> None:
    """The engine reads the stored reconstruction and windows it with MultiWindowd; the
    dataset's ``windowed`` shorthand gives the same items."""
    from sinotriage.data import SliceDataset
    from sinotriage.training import TrainConfig
    from sinotriage.training.batch import make_dataset
    from sinotriage.transforms import MultiWindowd

    cfg = TrainConfig(store=str(tiny_store.path), out_dir="o", domain="windowed", views=61,
                      windows=("brain", "bone"), model="densenet_slim", context=1)
    ds = make_dataset(cfg, "train")
    assert ds.domain == "recon" and isinstance(ds.transform, MultiWindowd)
    short = SliceDataset(tiny_store, "train", domain="windowed", views=61,
                         windows=("brain", "bone"), context=1)
    for i in (0, 5):
        torch.testing.assert_close(ds[i]["image"], short[i]["image"])
    assert ds[0]["image"].shape == (6, 64, 64)
