"""Adjointness, gradients and agreement of the backends (torch, numba, astra); gradcheck of
every backend is in test_operators_object.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.operators import backproject, fbp, project
from sinotriage.operators._backends import candidates, rule_backend

GEOMETRIES = {
    "parallel": ParallelBeamGeometry(n_views=40, n_det=70, det_spacing=1.0, image_size=48,
                                     pixel_size=1.0, det_offset=0.25),
    "parallel-2pi": ParallelBeamGeometry(n_views=41, n_det=60, det_spacing=1.2, image_size=48,
                                         pixel_size=1.0, arc=2 * np.pi, start_angle=0.3),
    "fan-curved": sinoct(48, 60, 74),
    "fan-flat": sinoct(48, 60, 74).replace(detector="flat", start_angle=0.7),
}
PAIRS = [(g, b) for g in GEOMETRIES for b in ("torch", "numba", "astra")
         if not (b == "astra" and g == "fan-curved")]


@pytest.mark.parametrize(("gname", "backend"), PAIRS)
def test_backproject_is_the_adjoint_of_project(gname, backend):
    """|<A x, y> - <x, A^T y>| / (||A x|| ||y||) < 1e-5 for random x, y."""
    g = GEOMETRIES[gname]
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, *g.image_shape, generator=gen)
    y = torch.rand(2, *g.sinogram_shape, generator=gen)
    ax = project(x, g, backend=backend).double()
    aty = backproject(y, g, backend=backend).double()
    lhs = float((ax * y.double()).sum())
    rhs = float((x.double() * aty).sum())
    rel = abs(lhs - rhs) / (float(ax.norm()) * float(y.double().norm()))
    assert rel < 1e-5, rel


def test_gradient_of_project_is_backproject():
    g = GEOMETRIES["fan-curved"]
    x = torch.rand(*g.image_shape, requires_grad=True)
    w = torch.rand(*g.sinogram_shape)
    (project(x, g, backend="torch") * w).sum().backward()
    torch.testing.assert_close(x.grad, backproject(w, g, backend="torch"), rtol=1e-5, atol=1e-4)


def test_fbp_is_differentiable_with_torch():
    g = GEOMETRIES["fan-flat"]
    y = torch.rand(*g.sinogram_shape, requires_grad=True)
    fbp(y, g, backend="torch").square().sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _phantom(n: int) -> torch.Tensor:
    c = torch.arange(n) - (n - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    img = 0.02 * ((xx / (0.4 * n)) ** 2 + (yy / (0.45 * n)) ** 2 < 1).float()
    img += 0.01 * ((xx - 0.1 * n) ** 2 + (yy + 0.15 * n) ** 2 < (0.1 * n) ** 2).float()
    return img


@pytest.mark.parametrize("gname", list(GEOMETRIES))
def test_torch_and_numba_agree_to_rounding(gname):
    g = GEOMETRIES[gname]
    x = _phantom(g.image_size)[None].repeat(2, 1, 1)
    y = project(x, g, backend="torch")
    torch.testing.assert_close(project(x, g, backend="numba"), y, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(backproject(y, g, backend="numba"),
                               backproject(y, g, backend="torch"), rtol=1e-4, atol=1e-3)
    if g.arc >= np.pi:
        torch.testing.assert_close(fbp(y, g, backend="numba"), fbp(y, g, backend="torch"),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gname", ["parallel", "fan-flat"])
def test_torch_and_astra_agree(gname):
    """Relative L2 < 1% for project and backproject of a phantom (measured 3e-6 parallel,
    ~0.3% fan: ASTRA's fan projector is a line-length one, ours Joseph)."""
    g = {"parallel": ParallelBeamGeometry(n_views=180, n_det=190, det_spacing=250 / 128,
                                          image_size=128, pixel_size=250 / 128, det_offset=0.25),
         "fan-flat": sinoct(128, 360, 444).replace(detector="flat", start_angle=0.7)}[gname]
    x = _phantom(128)[None]
    y = project(x, g, backend="torch")
    assert _rel(project(x, g, backend="astra"), y) < 0.01
    assert _rel(backproject(y, g, backend="astra"), backproject(y, g, backend="torch")) < 0.01


@pytest.mark.parametrize("gname", ["parallel", "fan-flat"])
def test_torch_and_astra_fbp_agree_at_512(gname):
    """FBP, torch vs astra backend, relative L2 < 1% at the issue's size: 512 x 512 over 250 mm,
    parallel 720 x 736 and the SinoCT fan geometry (984 x 888) with a flat detector (ASTRA has
    no curved one). Measured 0.66% and 0.58%. The whole difference is at the highest
    frequencies (ASTRA backprojects ray-driven, ours pixel-driven): after a 3 x 3 box filter
    it is 0.10% and 0.16%. It is an edge effect, so it shrinks with the grid: the same
    phantom at 128 px (180 x 190 parallel; 360 x 444 flat fan) differs by 1.2% and 1.6%,
    at 256 px by 0.9% and 1.1%; both backends are equally far from the phantom."""
    n = 512
    g = {"parallel": ParallelBeamGeometry(n_views=720, n_det=736, det_spacing=250 / n,
                                          image_size=n, pixel_size=250 / n, det_offset=0.25),
         "fan-flat": sinoct(n).replace(detector="flat", start_angle=0.7)}[gname]
    y = project(_phantom(n)[None], g, backend="torch")
    a, t = fbp(y, g, backend="astra"), fbp(y, g, backend="torch")
    assert _rel(a, t) < 0.01
    box = torch.ones(1, 1, 3, 3) / 9
    smooth = lambda z: torch.nn.functional.conv2d(z[:, None], box)  # noqa: E731
    assert _rel(smooth(a), smooth(t)) < 0.003


def test_batch_dims_and_batch_invariance():
    g = GEOMETRIES["fan-curved"]
    x = torch.rand(2, 3, *g.image_shape)
    y = project(x, g)
    assert y.shape == (2, 3, *g.sinogram_shape)
    torch.testing.assert_close(y[1, 2], project(x[1, 2], g), rtol=1e-5, atol=1e-5)
    r = fbp(y, g)
    assert r.shape == x.shape
    torch.testing.assert_close(r[0, 1], fbp(y[0, 1], g), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_are_kept(dtype):
    g = GEOMETRIES["parallel"]
    x = _phantom(48).to(dtype)
    y = project(x, g)
    assert y.dtype == dtype
    ref = project(x.float(), g)
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)
    assert fbp(y, g).dtype == dtype and backproject(y, g).dtype == dtype


def test_auto_is_the_rule_backend():
    g = GEOMETRIES["fan-curved"]
    x = torch.rand(1, *g.image_shape)
    chosen = rule_backend("project", g, x.device, x.dtype)
    assert chosen == "numba"  # the CPU row of RULES (numba is installed here)
    assert "astra" not in candidates("project", g, x.device)  # no curved detector in ASTRA
    assert torch.equal(project(x, g), project(x, g, backend=chosen))


def test_astra_refuses_the_curved_detector_with_a_reason():
    g = GEOMETRIES["fan-curved"]
    with pytest.raises(ValueError, match="curved"):
        project(torch.rand(*g.image_shape), g, backend="astra")
