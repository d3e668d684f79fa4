"""Geometry values: validation, round trips, slicing and the SinoCT preset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sinotriage.geometry import (
    FanBeamGeometry,
    ParallelBeamGeometry,
    geometry_from_dict,
    sinoct,
)


def _fan(**kw):
    base = dict(n_views=60, n_det=80, det_spacing=4.0, sid=500.0, sdd=900.0, image_size=64,
                pixel_size=2.0)
    base.update(kw)
    return FanBeamGeometry(**base)


def _par(**kw):
    base = dict(n_views=60, n_det=80, det_spacing=1.0, image_size=64, pixel_size=1.0)
    base.update(kw)
    return ParallelBeamGeometry(**base)


@pytest.mark.parametrize("make", [_fan, _par])
def test_repr_evals_back_and_dict_round_trips(make):
    g = make(det_offset=0.25)
    assert eval(repr(g)) == g
    d = json.loads(json.dumps(g.to_dict()))
    assert d["type"] in ("fan", "parallel")
    assert geometry_from_dict(d) == g
    assert hash(geometry_from_dict(d)) == hash(g)


def test_equality_tolerates_float_noise_and_frozen():
    g = _fan(pixel_size=0.1 + 0.2)
    assert g == _fan(pixel_size=0.3)
    assert g != _fan(pixel_size=0.31)
    with pytest.raises(AttributeError):
        g.n_views = 3  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value", "exc"), [
    ("n_views", 0, ValueError), ("n_det", 2.5, TypeError), ("det_spacing", -1.0, ValueError),
    ("sid", float("nan"), ValueError), ("sdd", 400.0, ValueError), ("image_size", True, TypeError),
    ("pixel_size", 0.0, ValueError), ("detector", "banana", ValueError),
    ("arc", 20.0, ValueError),
])
def test_fan_validation_names_the_field(field, value, exc):
    with pytest.raises(exc, match=field):
        _fan(**{field: value})


def test_parallel_validation_names_the_field():
    with pytest.raises(ValueError, match="det_spacing"):
        _par(det_spacing=0)
    with pytest.raises(TypeError, match="n_views"):
        _par(n_views="10")


def test_geometry_from_dict_rejects_bad_input():
    with pytest.raises(ValueError, match="type"):
        geometry_from_dict({"type": "cone"})
    with pytest.raises(ValueError, match="unknown field"):
        geometry_from_dict({**_par().to_dict(), "magic": 1})


def test_ray_lines_follow_the_design_conventions():
    g = _fan(n_views=4, n_det=3, det_offset=0.0, allow_truncation=True)
    phi, s = g.ray_lines()
    # central channel of view 0: source on +x, ray through the isocentre along -x, i.e.
    # the line y = 0 (normal angle 3 pi / 2, distance 0)
    assert math.isclose(s[0, 1], 0.0, abs_tol=1e-12)
    assert math.isclose(math.sin(phi[0, 1]), -1.0, abs_tol=1e-12)
    # every ray passes through its source
    src = g.sid * np.stack([np.cos(g.angles), np.sin(g.angles)], 1)
    resid = src[:, None, 0] * np.cos(phi) + src[:, None, 1] * np.sin(phi) - s
    np.testing.assert_allclose(resid, 0.0, atol=1e-9)
    # flat detector: gamma = atan(u / sdd)
    gf = g.replace(detector="flat")
    np.testing.assert_allclose(np.tan(gf.fan_angles) * gf.sdd, gf.det_positions, rtol=1e-12)


def test_sinoct_preset_numbers():
    g = sinoct()
    assert g.sinogram_shape == (984, 888) and g.image_shape == (512, 512)
    assert (g.sid, g.sdd, g.det_spacing, g.det_offset) == (541.0, 949.075, 1.0239, 1.25)
    assert g.detector == "curved" and math.isclose(g.arc, 2 * math.pi)
    assert math.isclose(g.field_of_view, 250.0)
    # fan angle 888 * 1.0239 / 949.075 rad ~ 54.9 degrees; it covers the 250 mm field
    assert math.isclose(np.ptp(g.fan_angles) + g.det_spacing / g.sdd, 888 * 1.0239 / 949.075)
    assert g.fov_radius > 250.0 / math.sqrt(2)
    small = sinoct(image_size=128, n_views=246, n_det=444)
    assert math.isclose(small.pixel_size, 250 / 128)
    assert math.isclose(np.ptp(small.fan_angles) + small.det_spacing / small.sdd,
                        np.ptp(g.fan_angles) + g.det_spacing / g.sdd)
    # same physical quarter-channel offset (mm at the detector)
    assert math.isclose(small.det_offset * small.det_spacing, g.det_offset * g.det_spacing)


def test_view_slicing_matches_a_directly_built_geometry():
    g = sinoct(image_size=64)
    assert g[::4] == sinoct(image_size=64, n_views=246)
    assert g[::4] == g.with_views(246)
    np.testing.assert_allclose(g[::4].angles, g.angles[::4], atol=1e-12)
    sub = g[3::8]
    np.testing.assert_allclose(sub.angles, g.angles[3::8], atol=1e-12)
    with pytest.raises(TypeError):
        g[3]
    p = _par(n_views=90)
    np.testing.assert_allclose(p[::3].angles, p.angles[::3], atol=1e-12)


def test_with_image_keeps_the_field_of_view():
    g = sinoct().with_image(128)
    assert g == sinoct(image_size=128)


def test_equal_geometries_hash_equal_across_rounding_boundaries():
    """Tolerant equality with a hash that never splits equal values: pixel sizes that
    straddle a rounding boundary (1e-9 relative apart) are equal and hash equal."""
    a = _par(pixel_size=0.12345649999999)
    b = _par(pixel_size=0.12345650000001)
    assert a == b and hash(a) == hash(b)
    assert len({a, b, _par(pixel_size=0.2)}) == 2
    assert sinoct(64).with_views(246) == sinoct(64, 246)
    assert hash(sinoct(64).with_views(246)) == hash(sinoct(64, 246))


@pytest.mark.parametrize("make", [
    lambda **kw: _fan(n_det=20, **kw),  # fan of +-22 mm on a 64 mm image radius
    lambda **kw: _par(n_det=40, **kw),  # +-19.5 mm on 32 mm
    lambda **kw: _par(det_offset=30.0, **kw),  # shifted by 30 channels
])
def test_detector_must_cover_the_image_unless_opted_out(make):
    with pytest.raises(ValueError, match=r"field radius .* mm .* image radius .* mm") as err:
        make()
    assert "allow_truncation=True" in str(err.value)
    g = make(allow_truncation=True)
    assert g.allow_truncation and g.fov_radius < g.field_of_view / 2
    assert geometry_from_dict(g.to_dict()) == g  # the opt-in survives the round trip
    assert g.with_views(10).allow_truncation


def test_coverage_boundary_and_dict_without_the_flag():
    # C channels of the pixel pitch cover the image edge to edge: accepted
    g = _par(n_det=64, det_spacing=1.0)
    assert "allow_truncation" not in g.to_dict()
    with pytest.raises(ValueError, match="field radius"):
        _par(n_det=62, det_spacing=1.0)
    with pytest.raises(TypeError, match="allow_truncation"):
        _par(allow_truncation="yes")
    assert sinoct(512).fov_radius > 125.0  # the SinoCT fan covers its 250 mm field
