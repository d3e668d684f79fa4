"""The learnable window: its relation to the clinical window, its gradients and its plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sinotriage import models
from sinotriage.models.learned_window import SLOPE, LearnableWindow, WindowedModel
from sinotriage.windowing import WINDOWS, window


def test_brain_init_is_the_smooth_equivalent_of_the_brain_window() -> None:
    """Inside the brain window, ``1/2 + logit(y) / (2 ln 99)`` of the layer's output equals
    ``window(hu, "brain")`` to 1e-3; at the level the output is 0.5, at the bounds 0.01 / 0.99."""
    hu = torch.linspace(-1000, 2000, 30001)
    layer = LearnableWindow(("brain",))
    y = layer(hu.view(1, 1, 1, -1))[0, 0, 0].detach().double()
    ref = torch.as_tensor(window(hu, "brain")).double()
    inside = (ref > 0) & (ref < 1)
    assert int(inside.sum()) > 700
    recovered = 0.5 + torch.logit(y) / (2 * SLOPE)
    np.testing.assert_allclose(recovered[inside].numpy(), ref[inside].numpy(), atol=1e-3)
    lv, wd = WINDOWS["brain"]
    at = layer(torch.tensor([lv - wd / 2, lv, lv + wd / 2]).view(1, 1, 1, 3))[0, 0, 0]
    np.testing.assert_allclose(at.detach().numpy(), [0.01, 0.5, 0.99], atol=1e-5)


def test_gradients_are_nonzero_across_the_hu_range() -> None:
    """From the wide start (level 0, width 2000 HU) every HU value from air to dense bone moves
    the level and the width, and the input gradient is nonzero everywhere; the clinical
    window's clipped ramp has none outside its bounds. The gradients equal finite differences."""
    hu = torch.linspace(-1000, 3000, 401, dtype=torch.float64)
    layer = LearnableWindow(((0.0, 2000.0),))
    x = hu.float().view(1, 1, 1, -1).requires_grad_(True)
    for i in range(0, 401, 40):
        out = layer(x)[0, 0, 0, i]
        g_in, g_level, g_width = torch.autograd.grad(out, (x, layer.level, layer.log_width))
        assert float(g_in[0, 0, 0, i]) > 0 and float(g_level[0]) < 0
        assert float(g_width[0]) != 0 or abs(float(hu[i])) < 1e-6
        # the exact derivative d sigmoid(2 s (hu - L) / W) / dL in float64
        z = 2 * SLOPE * hu[i] / 2000.0
        exact = -float(torch.sigmoid(z) * torch.sigmoid(-z)) * 2 * SLOPE / 2000.0
        assert float(g_level[0]) == pytest.approx(exact, rel=1e-4)
    clipped = hu.float().clone().requires_grad_(True)
    (g_clip,) = torch.autograd.grad(window(clipped, "brain").sum(), clipped)
    assert float(g_clip[(hu < 0) | (hu > 80)].abs().max()) == 0.0
    # the clinical three: every HU value reaches some window's level
    three = LearnableWindow(("brain", "subdural", "bone"))
    out = three(hu.float().view(1, 1, 1, -1))
    g = torch.stack([torch.autograd.grad(out[0, :, 0, i].sum(), three.level,
                                         retain_graph=True)[0] for i in range(401)])
    assert torch.all(g.abs().amax(dim=1) > 0)


def test_windows_read_back_in_hu_and_own_learning_rates() -> None:
    layer = LearnableWindow(("brain", "subdural", (0.0, 2000.0)), input_scale=1000.0)
    np.testing.assert_allclose(layer.windows(), [(40, 80), (75, 215), (0, 2000)], rtol=1e-6)
    groups = layer.param_groups()
    assert {id(p) for g in groups for p in g["params"]} == {id(layer.level),
                                                           id(layer.log_width)}
    # input_scale: HU / 1000 in gives the same output as HU in
    hu = torch.randn(2, 1, 4, 4) * 500
    torch.testing.assert_close(layer(hu / 1000.0), LearnableWindow(
        ("brain", "subdural", (0.0, 2000.0)))(hu))
    # one Adam step moves a level by about its own learning rate, whatever the network's
    from sinotriage.training.engine import param_groups

    net = WindowedModel(LearnableWindow(("brain",)), torch.nn.Conv2d(1, 1, 1))
    opt = torch.optim.Adam(param_groups(net, lr=1e-3, weight_decay=0.0))
    net(torch.randn(1, 1, 8, 8) * 100).sum().backward()
    before = net.window.windows()[0]
    opt.step()
    after = net.window.windows()[0]
    assert abs(after[0] - before[0]) == pytest.approx(3.0, rel=1e-3)
    assert abs(math.log(after[1] / before[1])) == pytest.approx(0.03, rel=1e-3)


def test_create_puts_a_window_in_front_of_any_image_model() -> None:
    net = models.create("densenet_slim", in_channels=1, num_classes=1,
                        window=["brain", "subdural", "bone"])
    assert isinstance(net, WindowedModel) and net.window.k == 3
    assert net(torch.randn(2, 1, 32, 32) * 100).shape == (2, 1)
    net2 = models.create("resnet18", window={"init": [[0, 2000]], "input_scale": 1000})
    np.testing.assert_allclose(net2.window.windows(), [(0, 2000)], rtol=1e-6)
    with pytest.raises(ValueError, match="window must be one of"):
        models.create("densenet_slim", window=["brian"])
    with pytest.raises(ValueError, match="width must be > 0"):
        LearnableWindow(((40.0, -5.0),))
