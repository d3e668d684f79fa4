"""Operators against exact physics: analytic line integrals, textbook FBP, ASTRA FBP.

References live in ``tests/_ct_reference.py`` (numpy only, independent of sinotriage).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _ct_reference import (
    ellipse_line_integrals,
    rasterize,
    shepp_logan_mm,
    textbook_equiangular_fbp,
)

from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.operators import FILTERS, fbp, project, subsample_views

# a head-sized ellipse phantom with inserts (mm^-1), inside the 250 mm field
ELLIPSES = [(0.02, 0, 0, 90, 115, 0), (-0.004, 0, -5, 80, 105, 0),
            (0.003, 30, 20, 20, 40, 0.4), (0.005, -35, -30, 15, 25, -0.3), (0.01, 10, 60, 8, 8, 0)]


def _geometries(n: int, full: bool):
    v, c = (984, 888) if full else (246, 444)
    return {
        "fan-curved": sinoct(n, v, c),
        "fan-flat": sinoct(n, v, c).replace(detector="flat"),
        "parallel": ParallelBeamGeometry(n_views=v // 2 if full else 180, n_det=int(1.5 * n),
                                         det_spacing=250 / n, image_size=n, pixel_size=250 / n),
    }


def _rel_l2(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _check_projection(n: int, full: bool, backends: tuple[str, ...], tol: float) -> None:
    for name, g in _geometries(n, full).items():
        img = torch.tensor(rasterize(ELLIPSES, n, g.pixel_size), dtype=torch.float32)
        exact = ellipse_line_integrals(*g.ray_lines(), ELLIPSES)
        for be in backends:
            if be == "astra" and name == "fan-curved":
                continue
            err = _rel_l2(project(img, g, backend=be).numpy(), exact)
            assert err <= tol, f"{name}/{be}: relative L2 {err:.4f} > {tol}"


def test_projection_matches_exact_line_integrals_128px():
    """128 pixels across the field: relative L2 <= 1% (measured ~0.6%)."""
    _check_projection(128, full=False, backends=("torch", "astra"), tol=0.01)


@pytest.mark.slow
def test_projection_matches_exact_line_integrals_512px():
    """The issue's case: 512 pixels, SinoCT 984 x 888 and parallel; <= 1% (measured ~0.15%)."""
    _check_projection(512, full=True, backends=("numba", "astra"), tol=0.01)
    g = sinoct(512, 984, 888)
    img = torch.tensor(rasterize(ELLIPSES, 512, g.pixel_size), dtype=torch.float32)
    exact = ellipse_line_integrals(*g.ray_lines(), ELLIPSES)
    assert _rel_l2(project(img, g, backend="torch").numpy(), exact) <= 0.01


def _fbp_vs_textbook(n: int) -> tuple[float, float]:
    g = sinoct(n)  # 984 x 888, curved, 250 mm field
    ells = shepp_logan_mm()
    sino = ellipse_line_integrals(*g.ray_lines(), ells)
    truth = rasterize(ells, n, g.pixel_size)
    head = rasterize(ells[:1], n, g.pixel_size) > 0.999 * ells[0][0]
    ref = textbook_equiangular_fbp(sino, g.angles, g.fan_angles, g.sid, n, g.pixel_size)
    ours = fbp(torch.tensor(sino, dtype=torch.float32), g).numpy()
    rmse = lambda a: float(np.sqrt(np.mean((a - truth)[head] ** 2)))  # noqa: E731
    return rmse(ours), rmse(ref)


@pytest.mark.parametrize("n", [128, pytest.param(256, marks=pytest.mark.slow)])
def test_fan_fbp_no_worse_than_textbook_small(n):
    """SinoCT 984 x 888 at 128 / 256 px: RMSE in the head <= 1.1 x the textbook's
    (measured 0.71 / 0.88)."""
    ours, ref = _fbp_vs_textbook(n)
    assert ours <= 1.1 * ref, (ours, ref)


@pytest.mark.slow
def test_fan_fbp_no_worse_than_textbook_512px():
    """The issue's case: 984 x 888, 512 x 512 over 250 mm; RMSE ratio <= 1.1."""
    ours, ref = _fbp_vs_textbook(512)
    assert ours <= 1.1 * ref, (ours, ref)


@pytest.mark.parametrize("n", [256, pytest.param(512, marks=pytest.mark.slow)])
def test_parallel_fbp_no_worse_than_astra_cpu_fbp(n):
    """Parallel 360 views: RMSE in the head <= 1.1 x ASTRA's CPU FBP (ram-lak)."""
    from sinotriage.operators._astra import reference_fbp

    g = ParallelBeamGeometry(n_views=360, n_det=int(1.5 * n), det_spacing=250 / n,
                             image_size=n, pixel_size=250 / n)
    ells = shepp_logan_mm()
    sino = ellipse_line_integrals(*g.ray_lines(), ells)
    truth = rasterize(ells, n, g.pixel_size)
    head = rasterize(ells[:1], n, g.pixel_size) > 0.999 * ells[0][0]
    ref = reference_fbp(sino, g)
    # ASTRA must be reconstructing the same object (a convention check of the reference)
    assert _rel_l2(ref[head], truth[head]) < 0.1
    ours = fbp(torch.tensor(sino, dtype=torch.float32), g, backend="torch").numpy()
    rmse_ours = np.sqrt(np.mean((ours - truth)[head] ** 2))
    rmse_ref = np.sqrt(np.mean((ref - truth)[head] ** 2))
    assert rmse_ours <= 1.1 * rmse_ref, (rmse_ours, rmse_ref)


@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("kind", ["parallel", "fan-curved", "fan-flat"])
def test_uniform_disc_has_the_right_value(kind, filt):
    """A uniform disc (r = 80 mm, mu = 0.02) reconstructs to its value: mean inside
    r < 70 mm within 0.5%, for every filter."""
    g = _geometries(128, full=False)[kind]
    disc = [(0.02, 0.0, 0.0, 80.0, 80.0, 0.0)]
    sino = torch.tensor(ellipse_line_integrals(*g.ray_lines(), disc), dtype=torch.float32)
    rec = fbp(sino, g, filter=filt).numpy()
    c = (np.arange(128) - 63.5) * g.pixel_size
    inside = (c[None, :] ** 2 + c[:, None] ** 2) < 70.0 ** 2
    assert abs(rec[inside].mean() / 0.02 - 1) < 0.005


def test_cutoff_lowers_the_resolution_but_keeps_the_value():
    g = _geometries(128, full=False)["parallel"]
    disc = [(0.02, 0.0, 0.0, 80.0, 80.0, 0.0)]
    sino = torch.tensor(ellipse_line_integrals(*g.ray_lines(), disc), dtype=torch.float32)
    sharp = fbp(sino, g).numpy()
    soft = fbp(sino, g, filter="hann", cutoff=0.5).numpy()
    row = 64
    assert np.abs(np.diff(soft[row])).max() < 0.7 * np.abs(np.diff(sharp[row])).max()
    c = (np.arange(128) - 63.5) * g.pixel_size
    inside = (c[None, :] ** 2 + c[:, None] ** 2) < 60.0 ** 2
    assert abs(soft[inside].mean() / 0.02 - 1) < 0.005


@pytest.mark.parametrize("factor", [2, 4, 6])
def test_subsample_views_then_fbp_equals_direct_geometry(factor):
    g = sinoct(64, 984, 222)
    sino = torch.tensor(ellipse_line_integrals(*g.ray_lines(), ELLIPSES), dtype=torch.float32)
    sub, g_sub = subsample_views(sino, g, factor)
    direct = sinoct(64, 984 // factor, 222)
    assert g_sub == direct
    exact_sub = torch.tensor(ellipse_line_integrals(*direct.ray_lines(), ELLIPSES),
                             dtype=torch.float32)
    torch.testing.assert_close(sub, exact_sub, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fbp(sub, g_sub), fbp(exact_sub, direct), rtol=1e-4, atol=2e-6)


def test_fbp_of_projection_recovers_a_smooth_image():
    """Round trip ``fbp(project(x)) ~ x`` for a smooth blob: relative L2 < 3% in the field."""
    g = sinoct(64, 492, 444)
    c = (np.arange(64) - 31.5) * g.pixel_size
    xx, yy = np.meshgrid(c, -c)
    x = 0.02 * np.exp(-((xx - 20) ** 2 + (yy + 10) ** 2) / (2 * 30.0 ** 2))
    x = torch.tensor(x, dtype=torch.float32)
    rec = fbp(project(x, g), g)
    inside = torch.tensor(xx ** 2 + yy ** 2 < 110 ** 2)
    assert _rel_l2(rec[inside].numpy(), x[inside].numpy()) < 0.03
    assert math.isfinite(float(rec.sum()))


@pytest.mark.parametrize("g", [
    ParallelBeamGeometry(n_views=361, n_det=192, det_spacing=250 / 128, image_size=128,
                         pixel_size=250 / 128, arc=2 * math.pi, start_angle=0.2),
    sinoct(128, 247, 444),  # odd view count: no folding of the redundant halves
], ids=["parallel-2pi", "fan-odd-views"])
def test_disc_value_for_full_turn_parallel_and_odd_fan_views(g):
    disc = [(0.02, 0.0, 0.0, 80.0, 80.0, 0.0)]
    sino = torch.tensor(ellipse_line_integrals(*g.ray_lines(), disc), dtype=torch.float32)
    rec = fbp(sino, g).numpy()
    c = (np.arange(128) - 63.5) * g.pixel_size
    inside = (c[None, :] ** 2 + c[:, None] ** 2) < 70.0 ** 2
    assert abs(rec[inside].mean() / 0.02 - 1) < 0.005
