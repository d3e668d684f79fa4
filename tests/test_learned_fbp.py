"""The learned domain's FBP: equal to the operator at its start, gradients reach the filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinotriage import models
from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.models.learned_fbp import LearnableFBP, LearnedDomainModel, backprojection_matrix
from sinotriage.operators import fbp, mu_to_hu, project


@pytest.mark.parametrize("views", [48, 12, 9])
def test_start_is_the_operators_hann_fbp(views: int) -> None:
    """With the initial gain the layer is ``mu_to_hu(fbp(sino, filter="hann"))`` of the operator
    (torch backend), fan beam, even and odd view counts."""
    g = sinoct(image_size=24, n_views=views, n_det=31)
    torch.manual_seed(0)
    phantom = torch.zeros(24, 24)
    phantom[6:18, 8:16] = 0.02
    sino = project(phantom[None], g, backend="torch")  # (1, V, C)
    layer = LearnableFBP(g.to_dict())
    ref = mu_to_hu(fbp(sino, g, filter="hann", backend="torch"))
    out = layer(sino[:, None])
    assert out.shape == (1, 1, 24, 24)
    torch.testing.assert_close(out[:, 0].detach(), ref, atol=0.05, rtol=1e-5)


def test_backprojection_matrix_equals_the_torch_backprojection() -> None:
    from sinotriage.operators._torch import parallel_fbp_backproject

    g = ParallelBeamGeometry(image_size=16, pixel_size=1.0, n_views=10, n_det=23,
                             det_spacing=1.0)
    q = torch.randn(3, 10, 23, dtype=torch.float64)
    u0 = float(g.det_positions[0])
    ref = parallel_fbp_backproject(q, g.angles, u0, 1.0, 16, 1.0, 0.3)
    a = backprojection_matrix(g.angles, u0, 1.0, 23, 16, 1.0, 0.3)
    out = (a.to(torch.float64) @ q.reshape(3, -1).t()).t().reshape(3, 16, 16)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)  # float32 weights


def test_filter_gradient_equals_finite_differences() -> None:
    """d loss / d gain of a tiny problem against central differences. The image is linear in
    the gain, so the differences are exact up to rounding for any step."""
    g = sinoct(image_size=12, n_views=16, n_det=15)
    layer = LearnableFBP(g)
    torch.manual_seed(1)
    sino = torch.rand(2, 1, 16, 15)
    weights = torch.randn(2, 1, 12, 12)

    def loss() -> torch.Tensor:
        return (layer(sino) * weights).sum()

    (grad,) = torch.autograd.grad(loss(), layer.gain)
    assert grad.shape == layer.gain.shape and torch.count_nonzero(grad) > grad.numel() // 2
    step = 0.5
    for i in (0, 1, 3, len(grad) // 3, len(grad) // 2, len(grad) - 1):
        with torch.no_grad():
            layer.gain[i] += step
            up = float(loss())
            layer.gain[i] -= 2 * step
            down = float(loss())
            layer.gain[i] += step
        fd = (up - down) / (2 * step)
        assert float(grad[i]) == pytest.approx(fd, rel=2e-3, abs=1e-3 * float(grad.abs().max()))


def test_learned_model_end_to_end_at_several_view_counts() -> None:
    """``models.create("learned_fbp")`` classifies raw sinograms at any view count; the filter
    and window parameters all receive gradients; the filter starts at ramp x Hann."""
    for views in (32, 8):
        g = sinoct(image_size=32, n_views=views, n_det=21)
        net = models.create("learned_fbp", geometry=g.to_dict(), num_classes=1)
        assert isinstance(net, LearnedDomainModel)
        x = torch.rand(3, 1, views, 21)
        out = net(x)
        assert out.shape == (3, 1)
        out.sum().backward()
        assert float(net.fbp.gain.grad.abs().max()) > 0
        assert float(net.window.level.grad.abs().max()) > 0
    np.testing.assert_allclose(net.fbp.response().detach().numpy(), net.fbp.reference(),
                               rtol=1e-5, atol=1e-7)
    import copy

    twin = copy.deepcopy(net)
    torch.testing.assert_close(twin(x), net(x))


def test_learned_parameters_read_back() -> None:
    from sinotriage.models.learned_fbp import learned_parameters

    g = sinoct(image_size=16, n_views=12, n_det=15)
    net = models.create("learned_fbp", geometry=g, window=["brain", (0, 2000)])
    with torch.no_grad():
        net.window.level[1] += 35.0
        net.fbp.gain.mul_(2.0)
    got = learned_parameters(net)
    assert got["windows"][0] == pytest.approx({"level": 40, "width": 80, "init_level": 40,
                                              "init_width": 80})
    assert got["windows"][1]["level"] == pytest.approx(35.0)
    f = got["filter"]
    assert len(f["frequency"]) == len(f["response"]) == len(f["reference"])
    np.testing.assert_allclose(f["response"], 2 * np.asarray(f["reference"]), rtol=1e-5,
                               atol=1e-7)
    assert learned_parameters(models.create("densenet_slim")) is None


def test_filter_gain_trains_in_its_own_group_without_weight_decay() -> None:
    """The engine gives the gain its own learning rate and no weight decay (weight decay would
    pull the reconstruction's HU scale toward zero); the image model keeps the run's own."""
    from sinotriage.training.engine import param_groups

    g = sinoct(image_size=16, n_views=12, n_det=15)
    net = models.create("learned_fbp", geometry=g, filter_lr=3e-4)
    groups = param_groups(net, lr=2e-3, weight_decay=1e-4)
    gain = [grp for grp in groups if any(p is net.fbp.gain for p in grp["params"])]
    assert len(gain) == 1 and gain[0]["params"] == [net.fbp.gain]
    assert (gain[0]["lr"], gain[0]["peak_lr"], gain[0]["weight_decay"]) == (3e-4, 3e-4, 0.0)
    rest = groups[0]
    assert (rest["lr"], rest["weight_decay"]) == (2e-3, 1e-4)
    assert all(p is not net.fbp.gain for p in rest["params"])
    # one Adam step on a zero loss gradient leaves the gain where it started (no decay)
    opt = torch.optim.Adam(groups, lr=2e-3, weight_decay=1e-4)
    before = net.fbp.gain.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(net.fbp.gain.detach(), before, rtol=0, atol=0)
    with pytest.raises(ValueError, match="filter_lr"):
        models.create("learned_fbp", geometry=g, filter_lr=0.0)
