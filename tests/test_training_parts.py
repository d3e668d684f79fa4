"""Training parts against independent references: losses, schedules, augmentations, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from sinotriage.training.augment import cutmix, mirror_sinogram, shift_views
from sinotriage.training.losses import bce_loss, rsna_weighted_loss
from sinotriage.training.schedules import lr_at


def test_bce_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50)
    y = rng.integers(0, 2, 50)
    p = 1 / (1 + np.exp(-logits))
    got = float(bce_loss(torch.tensor(logits), torch.tensor(y, dtype=torch.float64)))
    assert got == pytest.approx(log_loss(y, p), rel=1e-5)


def test_rsna_loss_matches_weighted_formula_and_metrics() -> None:
    from sinotriage.metrics import weighted_log_loss

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 6))
    y = rng.integers(0, 2, (40, 6))
    p = 1 / (1 + np.exp(-logits))
    w = np.array([2, 1, 1, 1, 1, 1.0])
    per_label = [log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(6)]
    ref = float(np.dot(w, per_label) / w.sum())
    got = float(rsna_weighted_loss(torch.tensor(logits), torch.tensor(y, dtype=torch.float64)))
    assert got == pytest.approx(ref, rel=1e-5)
    assert got == pytest.approx(weighted_log_loss(y, p), rel=1e-4)
    with pytest.raises(ValueError, match="6"):
        rsna_weighted_loss(torch.zeros(4, 3), torch.zeros(4, 3))


def test_schedules_against_torch() -> None:
    total, lr = 100, 0.1
    # step decay at 1/3 and 2/3
    assert lr_at("step", 0, total, lr) == lr
    assert lr_at("step", 34, total, lr) == pytest.approx(0.01)
    assert lr_at("step", 67, total, lr) == pytest.approx(0.001)
    # cosine with warm-up: linear ramp, peak, then the half cosine
    assert lr_at("cosine", 0, total, lr, warmup_steps=10) == pytest.approx(0.01)
    assert lr_at("cosine", 10, total, lr, warmup_steps=10) == pytest.approx(lr)
    assert lr_at("cosine", 55, total, lr, warmup_steps=10) == pytest.approx(
        0.5 * lr * (1 + math.cos(math.pi * 45 / 90)))
    # one-cycle: torch's OneCycleLR (cosine annealing, pct_start 0.3, div 25, final div 1e4)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                pct_start=0.3, cycle_momentum=False)
    ref = []
    for _ in range(total):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_at("onecycle", s, total, lr) for s in range(total)]
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_at("linear", 0, 10, lr)


def _fan_geometry():
    from sinotriage.geometry import FanBeamGeometry

    return FanBeamGeometry(n_views=64, n_det=63, det_spacing=1.2, sid=300.0, sdd=500.0,
                           image_size=32, pixel_size=2.0, allow_truncation=True)


def test_sinogram_mirror_and_view_shift_are_physical() -> None:
    from sinotriage.operators import project

    g = _fan_geometry()
    rng = np.random.default_rng(0)
    img = torch.zeros(32, 32)
    img[6:20, 9:14] = 1.0
    img[18:26, 15:27] = torch.from_numpy(rng.uniform(0.5, 1.0, (8, 12))).float()
    sino = project(img, g, backend="torch")
    scale = float(sino.abs().max())
    # mirror about the x axis (rows reversed: y -> -y) == channels and views reversed
    mirrored = project(img.flip(0), g, backend="torch")
    assert float((mirror_sinogram(sino) - mirrored).abs().max()) < 0.02 * scale
    # a 90 degree rotation of the object == a circular shift of V/4 views
    rotated = project(torch.rot90(img, 1), g, backend="torch")
    errs = [float((shift_views(sino, s) - rotated).abs().max()) for s in (16, -16)]
    assert min(errs) < 0.02 * scale
    assert float((sino - rotated).abs().max()) > 0.1 * scale  # the test can fail


def test_cutmix_mixes_labels_by_area() -> None:
    x = torch.stack([torch.full((1, 16, 16), float(i)) for i in range(4)])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    xm, ym = cutmix(x, y, 1.0, g)
    for i in range(4):
        values, counts = torch.unique(xm[i], return_counts=True)
        area_own = float(counts[values == i].sum()) / 256 if (values == i).any() else 0.0
        other = float(xm[i][xm[i] != i].mean()) if area_own < 1 else 0.0
        expected = area_own * float(y[i]) + (1 - area_own) * float(y[int(other)])
        assert float(ym[i]) == pytest.approx(expected, abs=1e-6)


def test_prepare_batch_scales_hu_bins_channels_and_resizes() -> None:
    """Model inputs: HU / 1000 for reconstructions, channel binning equal to the operator's
    ``subsample_detectors`` for sinograms, bilinear resize of 4D and 5D batches."""
    from sinotriage import subsample_detectors
    from sinotriage.geometry import sinoct
    from sinotriage.training import TrainConfig
    from sinotriage.training.engine import prepare_batch

    gen = torch.Generator().manual_seed(0)
    hu = torch.rand(2, 1, 16, 16, generator=gen) * 2000 - 1000
    cfg = TrainConfig(store="x.zarr", out_dir="o", domain="recon", model="resnet18")
    torch.testing.assert_close(prepare_batch(hu, cfg, None), hu / 1000.0)

    g = sinoct(image_size=32, n_views=24, n_det=30)
    sino = torch.rand(2, 1, 24, 30, generator=gen)
    cfg = TrainConfig(store="x.zarr", out_dir="o", domain="sinogram", model="resnet18",
                      detector_factor=4)
    expected, _ = subsample_detectors(sino, g, 4)
    out = prepare_batch(sino, cfg, None)
    assert out.shape == (2, 1, 24, 7)
    torch.testing.assert_close(out, expected)

    vol = torch.rand(2, 1, 3, 24, 30, generator=gen)
    cfg = TrainConfig(store="x.zarr", out_dir="o", domain="sinogram", model="resnet18")
    out5 = prepare_batch(vol, cfg, 12)
    assert out5.shape == (2, 1, 3, 12, 12)
    ref = torch.nn.functional.interpolate(vol[:, :, 1], size=(12, 12), mode="bilinear",
                                          align_corners=False, antialias=True)
    torch.testing.assert_close(out5[:, :, 1], ref)
