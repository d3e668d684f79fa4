"""Tests of sinotriage.windowing against the formulas and independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from sinotriage import multi_window, window
from sinotriage.windowing import (
    WINDOWS,
    brain_coverage,
    brain_slices,
    center_crop,
    hist_equalize,
    resize,
    slice_average,
    stack_adjacent,
    window_bounds,
)

EXPECTED_WINDOWS = {
    "brain": (40, 80),
    "subdural": (75, 215),
    "subdural_rsna": (80, 200),
    "bone": (600, 2800),
    "blood": (50, 175),
    "stroke": (40, 40),
    "soft_tissue": (40, 380),
}


def random_hu(shape=(3, 32, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1100.0, 2100.0, size=shape).astype(np.float32)


def test_names_map_to_documented_values():
    assert {k: tuple(v) for k, v in WINDOWS.items()} == EXPECTED_WINDOWS
    import sinotriage.windowing as w

    for name, (level, width) in EXPECTED_WINDOWS.items():
        assert f"``{name}`` {level}/{width}" in w.__doc__ or f"{name}`` {level}/{width}" in w.__doc__
        assert window_bounds(name) == (level - width / 2, level + width / 2)


@pytest.mark.parametrize("name", sorted(EXPECTED_WINDOWS))
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_window_equals_formula_exactly(name, kind):
    hu = random_hu()
    level, width = EXPECTED_WINDOWS[name]
    lower = np.float32(level - width / 2)
    upper = level + width / 2
    # plant the exact bounds and points just beyond them
    hu.flat[:4] = [lower, upper, lower - 1, upper + 1]
    expected = np.clip((hu - lower) / np.float32(width), np.float32(0), np.float32(1))
    x = hu if kind == "numpy" else torch.from_numpy(hu)
    out = window(x, name)
    out = out if kind == "numpy" else out.numpy()
    assert out.dtype == np.float32 and out.shape == hu.shape
    np.testing.assert_array_equal(out, expected)
    # float64 reference of the formula, within float32 rounding
    ref64 = np.clip((hu.astype(np.float64) - (level - width / 2)) / width, 0, 1)
    np.testing.assert_allclose(out, ref64, rtol=0, atol=1e-6)
    # both clip ends are exercised, and hit exactly
    assert out.flat[0] == 0.0 and out.flat[1] == 1.0 and out.flat[2] == 0.0 and out.flat[3] == 1.0
    assert (hu < lower).any() and (out[hu < lower] == 0).all()
    assert (hu > upper).any() and (out[hu > upper] == 1).all()
    inside = (hu > lower) & (hu < upper)
    assert inside.any() and ((out[inside] > 0) & (out[inside] < 1)).all()


def test_window_level_width_and_errors():
    hu = random_hu(seed=1)
    np.testing.assert_array_equal(window(hu, level=40, width=80), window(hu, "brain"))
    assert window(np.array([0.0, 40.0, 80.0]), "brain").tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="unknown window name 'brian'.*brain"):
        window(hu, "brian")
    with pytest.raises(ValueError, match="not both"):
        window(hu, "brain", level=40, width=80)
    with pytest.raises(ValueError, match="width"):
        window(hu, level=40, width=0)
    with pytest.raises(ValueError, match="level= and width="):
        window(hu, level=40)
    with pytest.raises(TypeError, match="hu must be a numpy array or a torch tensor"):
        window([1.0, 2.0], "brain")


def test_multi_window_stacks_channels():
    hu = random_hu((2, 16, 16), seed=2)
    out = multi_window(hu, ("brain", "subdural", "bone"))
    assert out.shape == (2, 3, 16, 16)
    for k, name in enumerate(("brain", "subdural", "bone")):
        np.testing.assert_array_equal(out[:, k], window(hu, name))
    t = multi_window(torch.from_numpy(hu[0]), ("blood", "stroke", "histeq"))
    assert isinstance(t, torch.Tensor) and t.shape == (3, 16, 16)
    np.testing.assert_array_equal(t[2].numpy(), hist_equalize(hu[0]))
    with pytest.raises(ValueError, match="unknown channel name 'gray'.*histeq"):
        multi_window(hu, ("brain", "gray"))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        multi_window(np.zeros(4, np.float32), ("brain",))


def test_hist_equalize_is_the_empirical_cdf_over_the_head():
    rng = np.random.default_rng(3)
    img = np.full((24, 24), -1000.0, np.float32)
    img[4:20, 4:20] = rng.normal(40.0, 20.0, size=(16, 16)).round()  # ties included
    out = hist_equalize(img)
    head = img > -500
    # independent reference: rank with ties to the max / count
    ref = rankdata(img[head], method="max") / head.sum()
    np.testing.assert_allclose(out[head], ref, rtol=0, atol=1e-7)
    assert (out[~head] == 0).all()
    # over the head the values are spread uniformly: their mean is about 1/2, not skewed by air
    assert abs(out[head].mean() - 0.5) < 0.02
    # ordering preserved inside the head
    order = np.argsort(img[head], kind="stable")
    assert (np.diff(out[head][order]) >= 0).all()
    # volume mode uses one CDF across slices; slice mode one per slice
    vol = np.stack([img, img + 100.0])
    per_slice = hist_equalize(vol)
    np.testing.assert_array_equal(per_slice[0], per_slice[1])
    per_volume = hist_equalize(vol, per="volume")
    assert per_volume[1][head].mean() > per_volume[0][head].mean()
    with pytest.raises(ValueError, match="per"):
        hist_equalize(img, per="study")


def test_slice_average_and_keep():
    x = random_hu((5, 2, 4, 4), seed=4)
    np.testing.assert_allclose(slice_average(x), x.mean(axis=0), rtol=1e-6)
    keep = np.array([True, False, True, False, False])
    np.testing.assert_allclose(slice_average(x, keep), x[[0, 2]].mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="length 5"):
        slice_average(x, keep[:3])


def test_brain_coverage_and_filter():
    vol = np.full((3, 10, 10), -1000.0, np.float32)
    vol[1, :5, :] = 30.0    # 50% brain
    vol[2, :1, :5] = 30.0   # 5% brain
    vol[2, 1:, :] = 1000.0  # bone is not brain
    cov = brain_coverage(vol)
    np.testing.assert_allclose(cov, [0.0, 0.5, 0.05])
    assert brain_slices(vol).tolist() == [False, True, False]
    assert brain_slices(vol, min_fraction=0.05).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="min_fraction"):
        brain_slices(vol, min_fraction=1.5)


def test_resize_and_center_crop():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    up = resize(img, 8, mode="nearest")
    np.testing.assert_array_equal(up, np.repeat(np.repeat(img, 2, 0), 2, 1))
    down = resize(img, (2, 2), mode="area")
    np.testing.assert_allclose(down, img.reshape(2, 2, 2, 2).mean(axis=(1, 3)))
    batch = resize(torch.from_numpy(np.stack([img, img])), 8, mode="bilinear")
    assert tuple(batch.shape) == (2, 8, 8)
    np.testing.assert_array_equal(center_crop(img, 2), img[1:3, 1:3])
    padded = center_crop(img, (6, 5), pad_value=-1024)
    assert padded.shape == (6, 5)
    np.testing.assert_array_equal(padded[1:5, 0:4], img)
    assert (padded[0] == -1024).all() and (padded[:, 4] == -1024).all()
    with pytest.raises(ValueError, match="unknown resize mode 'linear'"):
        resize(img, 8, mode="linear")


def test_stack_adjacent():
    vol = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    out = stack_adjacent(vol, 1)
    assert out.shape == (4, 3, 2, 2)
    assert out[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    zero = stack_adjacent(vol + 1, 1, edge="zero")
    assert zero[:, :, 0, 0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0]]
    assert stack_adjacent(vol, 2).shape == (4, 5, 2, 2)
    with pytest.raises(ValueError, match="edge"):
        stack_adjacent(vol, 1, edge="wrap")


@pytest.mark.gpu
def test_cuda_tensors_match_cpu():
    hu = torch.from_numpy(random_hu((4, 32, 32), seed=5))
    cuda = hu.cuda()
    for name in ("brain", "subdural", "bone"):
        out = window(cuda, name)
        assert out.is_cuda
        torch.testing.assert_close(out.cpu(), window(hu, name), rtol=0, atol=0)
    torch.testing.assert_close(multi_window(cuda, ("blood", "stroke", "histeq")).cpu(),
                               multi_window(hu, ("blood", "stroke", "histeq")), rtol=0, atol=1e-7)
    torch.testing.assert_close(stack_adjacent(cuda, 1, edge="zero").cpu(), stack_adjacent(hu, 1, edge="zero"))
    torch.testing.assert_close(slice_average(cuda, [True, False, True, True]).cpu(),
                               slice_average(hu, [True, False, True, True]))
