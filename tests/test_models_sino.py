"""Sinogram-native models: circular view padding makes them rotation (view-shift) invariant."""

from __future__ import annotations

import pytest
import torch

from sinotriage import models
from sinotriage.models.sino_cnn import SinoOutput, circular_view_pad


def test_circular_view_pad_wraps_views_and_zero_pads_channels() -> None:
    x = torch.arange(12.0).reshape(1, 1, 4, 3)
    y = circular_view_pad(x, 1, 2)
    assert y.shape == (1, 1, 6, 7)
    assert torch.equal(y[0, 0, 0, 2:5], x[0, 0, 3])  # view -1 is view V-1
    assert torch.equal(y[0, 0, 5, 2:5], x[0, 0, 0])  # view V is view 0
    assert float(y[..., :2].abs().sum() + y[..., 5:].abs().sum()) == 0.0
    # padding wider than the axis wraps several times
    assert torch.equal(circular_view_pad(x, 5, 0)[0, 0, :, 0],
                       x[0, 0, torch.arange(-5, 9) % 4, 0])


@pytest.mark.parametrize("name", ["sino_cnn", "sino_viewconv", "sino_net"])
@pytest.mark.parametrize("pooling", ["max", "topk", "attention", "mean"])
def test_logits_are_invariant_to_view_shifts_by_the_pooling_stride(name: str, pooling: str) -> None:
    """With V divisible by the total pooling stride (8 for four blocks), shifting the views by
    a multiple of it is an exact rotation that the network sees as a shift of its features:
    logits equal to float rounding (abs. 1e-4). A shift by 3 views is not (the pooling grid
    moves), which shows the test can fail; zero padding would break even the first."""
    torch.manual_seed(0)
    net = models.create(name, pooling=pooling, band_head=True).eval()
    x = torch.randn(2, 1, 64, 37)
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(net(torch.roll(x, 8, dims=-2)), ref, atol=1e-4)
        assert torch.allclose(net(torch.roll(x, -16, dims=-2)), ref, atol=1e-4)
        if name != "sino_viewconv":  # pools channels only: every view shift is exact
            assert not torch.allclose(net(torch.roll(x, 3, dims=-2)), ref, atol=1e-4)
        out = net(x, return_band=True)
    assert isinstance(out, SinoOutput)
    assert out.band.shape == (2, 1, 64, 37)
    assert torch.equal(out.logits, ref)


@pytest.mark.parametrize("name", ["sino_cnn", "sino_viewconv", "sino_net"])
def test_zero_view_padding_breaks_the_invariance(name: str) -> None:
    """The ablation's ``view_padding="zeros"`` pads the views like an image: the seam at view 0
    moves with the object, so a shift by the pooling stride changes the logits (beyond 1e-4),
    while the default circular padding keeps them (the test above)."""
    torch.manual_seed(0)
    net = models.create(name, view_padding="zeros").eval()
    x = torch.randn(2, 1, 64, 37)
    with torch.no_grad():
        ref = net(x)
        assert ref.shape == (2, 1)
        assert not torch.allclose(net(torch.roll(x, 8, dims=-2)), ref, atol=1e-4)


def test_max_pooling_keeps_a_small_lesion_signal_that_mean_pooling_dilutes() -> None:
    """A feature that fires on 2 % of the positions: max/top-k pool it at full strength, the
    mean at 2 %."""
    from sinotriage.models.sino_cnn import _GlobalPool

    x = torch.zeros(1, 1, 50, 100)
    x[..., 10:20, 40:50] = 1.0  # 100 of 5000 positions
    assert float(_GlobalPool("max", 1, 0.03)(x)) == 1.0
    assert float(_GlobalPool("topk", 1, 0.02)(x)) == 1.0
    assert float(_GlobalPool("mean", 1, 0.03)(x)) == pytest.approx(0.02)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="pooling must be one of"):
        models.create("sino_cnn", pooling="sum")
    with pytest.raises(ValueError, match="view_padding must be one of"):
        models.create("sino_cnn", view_padding="reflect")
    with pytest.raises(ValueError, match="topk_fraction"):
        models.create("sino_cnn", topk_fraction=0.0)
    with pytest.raises(ValueError, match="band_head=True"):
        models.create("sino_cnn")(torch.zeros(1, 1, 32, 32), return_band=True)
