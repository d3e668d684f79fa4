"""Bad input, units, subsampling and noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.operators import (
    add_poisson_noise,
    backproject,
    fbp,
    hu_to_mu,
    mu_to_hu,
    project,
    select_views,
    subsample_detectors,
    subsample_views,
)

G = sinoct(32, 60, 50)
P = ParallelBeamGeometry(n_views=30, n_det=48, det_spacing=1.0, image_size=32, pixel_size=1.0)


def test_wrong_shapes_name_expected_and_given():
    with pytest.raises(ValueError, match=r"\(\.\.\., 32, 32\).*\(2, 31, 32\)"):
        project(torch.zeros(2, 31, 32), G)
    with pytest.raises(ValueError, match=r"\(\.\.\., 60, 50\).*\(60, 51\)"):
        fbp(torch.zeros(60, 51), G)
    with pytest.raises(ValueError, match=r"\(\.\.\., 60, 50\)"):
        backproject(torch.zeros(50, 60), G)
    with pytest.raises(ValueError, match="shape"):
        project(torch.zeros(32), G)


@pytest.mark.parametrize("op", [project, backproject, fbp])
def test_non_finite_integer_and_non_tensor_inputs(op):
    shape = G.image_shape if op is project else G.sinogram_shape
    bad = torch.zeros(shape)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        op(bad, G)
    with pytest.raises(TypeError, match="floating dtype"):
        op(torch.zeros(shape, dtype=torch.int32), G)
    with pytest.raises(TypeError, match="torch.Tensor"):
        op(np.zeros(shape, dtype=np.float32), G)
    with pytest.raises(TypeError, match="FanBeamGeometry"):
        op(torch.zeros(shape), {"type": "fan"})


def test_options_are_checked_and_listed():
    y = torch.zeros(G.sinogram_shape)
    with pytest.raises(ValueError, match="ram-lak"):
        fbp(y, G, filter="butterworth")
    with pytest.raises(ValueError, match="cutoff"):
        fbp(y, G, cutoff=0.0)
    with pytest.raises(ValueError, match="'auto', 'fastest', 'torch', 'numba', 'astra', 'triton'"):
        fbp(y, G, backend="cuda")
    with pytest.raises(ValueError, match="2\\*pi"):
        fbp(torch.zeros(G.sinogram_shape), G.replace(arc=math.pi))
    with pytest.raises(ValueError, match="arc >= pi"):
        fbp(torch.zeros(P.sinogram_shape), P.replace(arc=1.0))


def test_mismatched_devices_are_refused():
    y = torch.zeros(G.sinogram_shape)
    with pytest.raises(ValueError, match="device"):
        add_poisson_noise(y, torch.full((50,), 1e4, device="meta"))
    with pytest.raises(ValueError, match="cpu or cuda device"):
        project(torch.zeros(G.image_shape, device="meta"), G, backend="numba")
    with pytest.raises(ValueError, match="cpu or cuda"):
        add_poisson_noise(y.to("meta"), 1e4)


def test_units_round_trip_and_anchor_points():
    hu = torch.tensor([-1000.0, 0.0, 1000.0, 40.0])
    mu = hu_to_mu(hu)
    torch.testing.assert_close(mu[:3], torch.tensor([0.0, 0.0192, 0.0384]))
    torch.testing.assert_close(mu_to_hu(mu), hu, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(hu_to_mu(hu, mu_water=0.02)[1], torch.tensor(0.02))
    with pytest.raises(ValueError, match="mu_water"):
        hu_to_mu(hu, mu_water=-1.0)
    with pytest.raises(TypeError, match="hu"):
        hu_to_mu(torch.tensor([1, 2]))


def test_subsample_views_rejects_non_divisors_and_returns_views():
    y = torch.rand(2, *G.sinogram_shape)
    sub, g2 = subsample_views(y, G, 3)
    assert sub.shape == (2, 20, 50) and g2.n_views == 20
    torch.testing.assert_close(sub, y[:, ::3])
    with pytest.raises(ValueError, match="divisors"):
        subsample_views(y, G, 7)
    with pytest.raises(TypeError, match="factor"):
        subsample_views(y, G, 2.0)


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("geo", ["fan", "parallel"])
def test_subsample_detectors_bins_channels_and_tracks_their_centres(geo, factor):
    g = sinoct(32, 60, 50) if geo == "fan" else P.replace(det_offset=0.4)
    y = torch.rand(3, *g.sinogram_shape)
    sub, g2 = subsample_detectors(y, g, factor)
    c2 = g.n_det // factor
    assert sub.shape == (3, g.n_views, c2) and g2.n_det == c2
    torch.testing.assert_close(sub[..., 1], y[..., factor:2 * factor].mean(-1))
    # each new channel sits at the mean position of the channels it bins
    old = g.det_positions[: c2 * factor].reshape(c2, factor).mean(1)
    np.testing.assert_allclose(g2.det_positions, old, atol=1e-9)
    np.testing.assert_allclose(g2.angles, g.angles)


def test_subsample_detectors_matches_projection_on_the_coarse_geometry():
    """Binning pairs of channels ~ projecting with the coarse detector (smooth object)."""
    g = sinoct(64, 120, 444)
    c = (np.arange(64) - 31.5) * g.pixel_size
    xx, yy = np.meshgrid(c, -c)
    x = torch.tensor(0.02 * np.exp(-(xx ** 2 + yy ** 2) / (2 * 40.0 ** 2)), dtype=torch.float32)
    sub, g2 = subsample_detectors(project(x, g), g, 2)
    direct = project(x, g2)
    assert float((sub - direct).norm() / direct.norm()) < 0.01


def test_poisson_noise_statistics_and_reproducibility():
    """Mean ~ the line integral, variance ~ exp(p) / photons (delta method), seeded."""
    p = torch.full((200, 500), 2.0)
    photons = 1e5
    noisy = add_poisson_noise(p, photons, generator=torch.Generator().manual_seed(0))
    var_expected = math.exp(2.0) / photons
    assert abs(float(noisy.mean()) - 2.0) < 5 * math.sqrt(var_expected / p.numel()) + 1e-4
    assert abs(float(noisy.var()) / var_expected - 1) < 0.05
    again = add_poisson_noise(p, photons, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, again)
    loud = add_poisson_noise(p, photons, generator=torch.Generator().manual_seed(0),
                             electronic_noise=30.0)
    # electronic noise adds sigma_e^2 / I^2 to the variance of -log(counts / I0)
    mean_counts = photons * math.exp(-2.0)
    expected = var_expected + 30.0 ** 2 / mean_counts ** 2
    assert abs(float(loud.var()) / expected - 1) < 0.05
    assert noisy.dtype == p.dtype and noisy.shape == p.shape


def test_poisson_noise_rejects_bad_arguments():
    y = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="photons"):
        add_poisson_noise(y, 0.0)
    with pytest.raises(ValueError, match="electronic_noise"):
        add_poisson_noise(y, 1e4, electronic_noise=-1.0)
    with pytest.raises(TypeError, match="generator"):
        add_poisson_noise(y, 1e4, generator=0)
    # few photons: counts are clamped to >= 1, so the result stays finite
    assert torch.isfinite(add_poisson_noise(torch.full((100,), 20.0), 10.0)).all()


@pytest.mark.parametrize("photons", [1e-3, 0.5, 2e19, float("inf")])
def test_poisson_photons_outside_the_sane_range_are_refused(photons):
    with pytest.raises(ValueError, match=r"photons must be in \[1, 1e\+15\]"):
        add_poisson_noise(torch.zeros(4, 4), photons)
    if math.isfinite(photons):
        with pytest.raises(ValueError, match="photons must be in"):
            add_poisson_noise(torch.zeros(4, 4), torch.full((4,), photons))


@pytest.mark.parametrize("photons", [1.0, 3.0, 1e5, 1e15])
def test_poisson_line_integrals_stay_in_range(photons):
    """Thick rays: at most log(photons), and the >= 1 count clamp never gives a negative value
    (the old bug: photons = 1e-3 gave -log(1 / 1e-3) < 0). Air rays: unbiased, negative only
    by the counting noise (> -6 / sqrt(photons)). At 1e15 photons the mean is kept (no
    overflow to log(photons))."""
    p = torch.cat([torch.zeros(2000), torch.full((2000,), 3.0), torch.full((2000,), 60.0)])
    noisy = add_poisson_noise(p, photons, generator=torch.Generator().manual_seed(1))
    assert float(noisy.max()) <= math.log(photons) + 1e-6
    torch.testing.assert_close(noisy[4000:], torch.full((2000,), math.log(photons)))
    assert float(noisy[:2000].min()) > -6 / math.sqrt(photons) - 1e-6
    if photons >= 1e5:
        assert abs(float(noisy[2000:4000].mean()) - 3.0) < 0.01
        assert abs(float(noisy[:2000].mean())) < 0.2 / math.sqrt(photons)


@pytest.mark.parametrize("n_views", [60, 30, 20, 12, 5, 1])
def test_select_views_is_subsample_views_where_the_factor_divides(n_views):
    sino = torch.rand(2, *G.sinogram_shape)
    sub, g2, err = select_views(sino, G, n_views)
    ref, gref = subsample_views(sino, G, 60 // n_views)
    assert torch.equal(sub, ref) and g2 == gref and err == 0.0


def test_select_views_nearest_view_and_its_angle_error():
    """7 of 60 views: view round(j * 60 / 7) for angle j * 2 pi / 7, error <= half a step."""
    sino = torch.arange(60.0)[:, None].expand(60, 50).contiguous()
    sub, g2, err = select_views(sino, G, 7)
    idx = [int(math.floor(j * 60 / 7 + 0.5)) for j in range(7)]
    assert sub[:, 0].tolist() == idx
    assert g2 == G.with_views(7)
    assert err == pytest.approx(max(abs(i * 2 * math.pi / 60 - j * 2 * math.pi / 7)
                                    for j, i in enumerate(idx)))
    assert err <= math.pi / 60 + 1e-12
    with pytest.raises(ValueError, match=r"n_views must be an integer in \[1, 60\]"):
        select_views(sino, G, 61)
