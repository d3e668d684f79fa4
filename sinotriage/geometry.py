"""Scanner geometries: immutable values that travel with every sinogram.

Conventions (docs/operators.md; lengths in mm, angles in radians)
--------------------------------------------------------------------
Image pixel ``(i, j)`` of an ``N x N`` image with pixel size ``d`` has its centre at
``x = (j - (N-1)/2) * d``, ``y = ((N-1)/2 - i) * d``: row 0 is the top (+y), column 0 the
left (-x); the isocentre is the image centre.

Parallel beam: view ``k`` has angle ``theta_k = start_angle + k * arc / V``; channel ``m``
sits at ``u_m = (m - (C-1)/2 + det_offset) * det_spacing``; the ray is the line
``x cos(theta) + y sin(theta) = u``.

Fan beam: view ``k`` puts the source at ``sid * (cos(beta_k), sin(beta_k))`` with
``beta_k = start_angle + k * arc / V`` (counter-clockwise). On a curved (equiangular)
detector channel ``m`` has fan angle ``gamma_m = (m - (C-1)/2 + det_offset) * det_spacing / sdd``;
on a flat detector it sits at ``u_m = (m - (C-1)/2 + det_offset) * det_spacing`` on a line at
distance ``sdd`` from the source and ``gamma_m = atan(u_m / sdd)``. The ray ``(beta, gamma)`` is
the line with normal angle ``beta + gamma + 3 pi / 2`` at signed distance ``sid * sin(gamma)``.

Every ray of either geometry is therefore a line ``x cos(phi) + y sin(phi) = s``;
:meth:`FanBeamGeometry.ray_lines` / :meth:`ParallelBeamGeometry.ray_lines` give ``(phi, s)``.

Coverage
--------
``fov_radius`` is the radius of the centred circle that every view sees (outermost channel
centres: ``min(-u_0, u_{C-1})`` parallel, ``sid sin(min(-gamma_0, gamma_{C-1}))`` fan). A
geometry whose field radius plus half a channel (at the isocentre) is smaller than the
image radius ``N d / 2`` (the inscribed circle) raises ValueError naming both radii: FBP of
such data is wrong inside the object (hundreds of HU), not only outside the field. Truncated
(interior) data takes the explicit ``allow_truncation=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sinotriage.errors import InputError

__all__ = [
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "geometry_from_dict",
    "sinoct",
]

DETECTOR_KINDS = ("curved", "flat")
_REL_TOL = 1e-9

# --- SinoCT scanner (GE LightSpeed-class third-generation fan beam) -----------------------
# 984 views per rotation and 888 channels: the SinoCT sinograms are 984 x 888 (Stanford
# "sinogram U-Net / DeiT" study: Coronado & Sheen, "Exploring Deep Learning Methods for Head CT Triage", section Data).
# Source-to-isocentre 541 mm and source-to-detector 949.075 mm: DICOM tags (0018,1111)
# DistanceSourceToPatient = "541.000000" and (0018,1110) DistanceSourceToDetector =
# "949.075012" written by GE LightSpeed scanners (e.g. the LightSpeed headers in the TCIA
# LDCT-and-Projection-data collection, McCollough et al., Med. Phys. 48(2), 2021).
# Channel pitch 1.0239 mm at the detector arc and the 1.25-channel (quarter-channel) offset:
# J. Wang, T. Li, H. Lu, Z. Liang, "Penalized weighted least-squares approach to sinogram
# noise reduction ... for low-dose X-ray CT", IEEE Trans. Med. Imaging 25(10):1272-1283, 2006,
# as used by J. Fessler's Michigan Image Reconstruction Toolbox, sino_geom('ge1')
# (nb=888, na=984, ds=1.0239, offset_s=1.25, dsd=949.075, dod=408.075, dfs=0 i.e. an arc).
SINOCT_N_VIEWS = 984
SINOCT_N_DET = 888
SINOCT_DET_SPACING = 1.0239  # mm on the detector arc
SINOCT_SID = 541.0  # mm, source to isocentre
SINOCT_SDD = 949.075  # mm, source to detector
SINOCT_DET_OFFSET = 1.25  # channels (quarter-channel offset)
SINOCT_FOV = 250.0  # mm, reconstructed field (512 pixels of 250/512 mm)


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: Any, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=_REL_TOL, abs_tol=1e-12)
    return a == b


class _GeometryBase:
    """Shared behaviour: equality tolerant to float noise, dict round trip, view slicing."""

    _TYPE = ""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_close(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def __hash__(self) -> int:
        # Equality tolerates float noise, so floats cannot enter the hash (two equal values
        # may round apart); the exact fields (ints, strings, flags) can: equal geometries
        # hash equal, and geometries differing only in a float merely collide.
        key = tuple(
            v for v in (getattr(self, f.name) for f in fields(self))
            if isinstance(v, int | str | np.integer)
        )
        return hash((type(self).__name__, key))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with a ``"type"`` key (``"fan"`` or ``"parallel"``);
        ``allow_truncation`` appears only when True."""
        out: dict[str, Any] = {"type": self._TYPE}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "allow_truncation":
                if v:
                    out[f.name] = True
                continue
            out[f.name] = int(v) if isinstance(v, int | np.integer) else (
                float(v) if isinstance(v, float | np.floating) else v)
        return out

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated like the constructor)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown geometry field(s) {unknown}; "
                             f"fields are {[f.name for f in fields(self)]}")
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        return type(self)(**kw)

    def _check_coverage(self) -> None:
        if not isinstance(self.allow_truncation, bool):
            raise TypeError(f"allow_truncation must be a bool, got {self.allow_truncation!r}")
        field, image = self.fov_radius, self.image_size * self.pixel_size / 2
        # tolerance: half a channel at the isocentre (a detector of N channels of the pixel
        # pitch covers the image edge to edge)
        if not self.allow_truncation and field + 0.5 * self._iso_pitch < image * (1 - 1e-9):
            raise InputError(
                f"the detector does not cover the image: field radius {field:.2f} mm (seen by "
                f"every view) < image radius {image:.2f} mm (the inscribed circle of "
                f"{self.image_size} x {self.pixel_size:g} mm pixels); widen the detector "
                "(n_det, det_spacing), centre it (det_offset) or shrink the image, or pass "
                "allow_truncation=True for truncated (interior) data")

    # every geometry below defines these fields
    n_views: int
    n_det: int
    image_size: int
    pixel_size: float
    arc: float
    start_angle: float

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """``(V, C)``: views x detector channels."""
        return (self.n_views, self.n_det)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(N, N)``."""
        return (self.image_size, self.image_size)

    @property
    def angle_step(self) -> float:
        """Angle between consecutive views, ``arc / n_views`` (rad)."""
        return self.arc / self.n_views

    @property
    def angles(self) -> np.ndarray:
        """View angles ``start_angle + k * arc / V`` (rad), float64 ``(V,)``."""
        return self.start_angle + np.arange(self.n_views, dtype=np.float64) * self.angle_step

    @property
    def field_of_view(self) -> float:
        """Side of the image square, ``image_size * pixel_size`` (mm)."""
        return self.image_size * self.pixel_size

    def with_views(self, n_views: int) -> Any:
        """Same scan arc sampled with ``n_views`` equally spaced views."""
        return self.replace(n_views=n_views)

    def with_image(self, image_size: int, pixel_size: float | None = None) -> Any:
        """A new image grid; by default over the same field of view."""
        if pixel_size is None:
            _check_int("image_size", image_size)
            pixel_size = self.field_of_view / image_size
        return self.replace(image_size=image_size, pixel_size=pixel_size)

    def __getitem__(self, key: slice) -> Any:
        """Slice the views: ``g[::4]`` keeps every 4th view (arc and start updated)."""
        if not isinstance(key, slice):
            raise TypeError(f"geometries are sliced over views with a slice, got {key!r}")
        idx = range(self.n_views)[key]
        if len(idx) == 0:
            raise ValueError(f"view slice {key} selects no view of {self.n_views}")
        step = idx.step
        return self.replace(
            n_views=len(idx),
            start_angle=self.start_angle + idx.start * self.angle_step,
            arc=self.arc * step * len(idx) / self.n_views,
        )


@dataclass(frozen=True, eq=False)
class ParallelBeamGeometry(_GeometryBase):
    """Parallel-beam geometry (``theta_k = start_angle + k arc / V``; see module docstring).

    Parameters
    ----------
    n_views, n_det : int
        Views ``V`` and detector channels ``C``; sinograms are ``(..., V, C)``.
    det_spacing : float
        Channel pitch (mm).
    image_size : int
        ``N``: images are ``(..., N, N)``.
    pixel_size : float
        Pixel side (mm).
    det_offset : float
        Detector shift in channels (``u_m = (m - (C-1)/2 + det_offset) * det_spacing``).
    arc : float
        Angular range (rad), default ``pi``.
    start_angle : float
        Angle of view 0 (rad).
    allow_truncation : bool
        Accept a detector that does not cover the image's inscribed circle (truncated or
        interior data); by default such a geometry raises ValueError (see the module
        docstring, "Coverage").
    """

    n_views: int
    n_det: int
    det_spacing: float
    image_size: int
    pixel_size: float
    det_offset: float = 0.0
    arc: float = math.pi
    start_angle: float = 0.0
    allow_truncation: bool = False

    _TYPE = "parallel"

    def __post_init__(self) -> None:
        _check_int("n_views", self.n_views)
        _check_int("n_det", self.n_det)
        _check_int("image_size", self.image_size)
        _check_float("det_spacing", self.det_spacing, positive=True)
        _check_float("pixel_size", self.pixel_size, positive=True)
        _check_float("det_offset", self.det_offset, positive=False)
        _check_float("arc", self.arc, positive=True)
        _check_float("start_angle", self.start_angle, positive=False)
        if self.arc > 4 * math.pi:
            raise ValueError(f"arc must be <= 4*pi rad, got {self.arc}")
        self._check_coverage()

    @property
    def det_positions(self) -> np.ndarray:
        """Channel positions ``u_m`` (mm), float64 ``(C,)``."""
        m = np.arange(self.n_det, dtype=np.float64)
        return (m - (self.n_det - 1) / 2 + self.det_offset) * self.det_spacing

    @property
    def fov_radius(self) -> float:
        """Radius of the centred circle every view sees, ``min(-u_0, u_{C-1})`` (mm; negative
        when the detector does not reach the isocentre)."""
        u = self.det_positions
        return float(min(-u[0], u[-1]))

    @property
    def _iso_pitch(self) -> float:
        return self.det_spacing

    def ray_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, s)``, float64 ``(V, C)``: ray ``x cos(phi) + y sin(phi) = s``."""
        phi = np.repeat(self.angles[:, None], self.n_det, axis=1)
        s = np.broadcast_to(self.det_positions[None, :], phi.shape).copy()
        return phi, s


@dataclass(frozen=True, eq=False)
class FanBeamGeometry(_GeometryBase):
    """Fan-beam geometry, curved (equiangular) or flat detector (see module docstring).

    Parameters
    ----------
    n_views, n_det : int
        Views ``V`` and detector channels ``C``; sinograms are ``(..., V, C)``.
    det_spacing : float
        Channel pitch at the detector (mm); on a curved detector the angular pitch is
        ``det_spacing / sdd`` rad.
    sid, sdd : float
        Source-to-isocentre and source-to-detector distances (mm), ``sdd > sid``.
    image_size : int
        ``N``: images are ``(..., N, N)``.
    pixel_size : float
        Pixel side (mm).
    detector : {"curved", "flat"}
        Detector shape.
    det_offset : float
        Detector shift in channels (GE's quarter-channel offset is 1.25).
    arc : float
        Source rotation (rad), default ``2 pi``, counter-clockwise.
    start_angle : float
        Source angle of view 0 (rad).
    allow_truncation : bool
        Accept a fan that does not cover the image's inscribed circle (truncated or
        interior data); by default such a geometry raises ValueError (module docstring,
        "Coverage").
    """

    n_views: int
    n_det: int
    det_spacing: float
    sid: float
    sdd: float
    image_size: int
    pixel_size: float
    detector: str = "curved"
    det_offset: float = 0.0
    arc: float = 2 * math.pi
    start_angle: float = 0.0
    allow_truncation: bool = False

    _TYPE = "fan"

    def __post_init__(self) -> None:
        _check_int("n_views", self.n_views)
        _check_int("n_det", self.n_det)
        _check_int("image_size", self.image_size)
        for name in ("det_spacing", "sid", "sdd", "pixel_size", "arc"):
            _check_float(name, getattr(self, name), positive=True)
        _check_float("det_offset", self.det_offset, positive=False)
        _check_float("start_angle", self.start_angle, positive=False)
        if not isinstance(self.detector, str) or self.detector not in DETECTOR_KINDS:
            raise ValueError(f"detector must be one of {DETECTOR_KINDS}, got {self.detector!r}")
        if self.sdd <= self.sid:
            raise ValueError(f"sdd must be > sid, got sdd={self.sdd} and sid={self.sid}")
        if self.arc > 4 * math.pi:
            raise ValueError(f"arc must be <= 4*pi rad, got {self.arc}")
        if np.max(np.abs(self.fan_angles)) >= math.pi / 2:
            raise ValueError("det_spacing, n_det and det_offset give fan angles of 90 degrees or "
                             f"more (max |gamma| = {np.max(np.abs(self.fan_angles)):.3f} rad)")
        if self.image_size * self.pixel_size / 2 >= self.sid:
            raise ValueError(f"the image (field {self.image_size * self.pixel_size} mm) must "
                             f"lie inside the source circle (sid={self.sid} mm)")
        self._check_coverage()

    @property
    def det_positions(self) -> np.ndarray:
        """Channel coordinate along the detector (mm), float64 ``(C,)``: arc length on a
        curved detector, position on the line for a flat one."""
        m = np.arange(self.n_det, dtype=np.float64)
        return (m - (self.n_det - 1) / 2 + self.det_offset) * self.det_spacing

    @property
    def fan_angles(self) -> np.ndarray:
        """Fan angle ``gamma_m`` of every channel (rad), float64 ``(C,)``."""
        if self.detector == "curved":
            return self.det_positions / self.sdd
        return np.arctan(self.det_positions / self.sdd)

    @property
    def fov_radius(self) -> float:
        """Radius of the centred circle every view sees, ``sid * sin(min(-gamma_0,
        gamma_{C-1}))`` (mm; negative when the fan does not reach the isocentre)."""
        gam = self.fan_angles
        return float(self.sid * math.sin(min(-gam[0], gam[-1])))

    @property
    def _iso_pitch(self) -> float:
        return self.det_spacing * self.sid / self.sdd

    def ray_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, s)``, float64 ``(V, C)``: ray ``x cos(phi) + y sin(phi) = s`` with
        ``phi = beta + gamma + 3 pi / 2`` and ``s = sid sin(gamma)``."""
        gam = self.fan_angles[None, :]
        phi = self.angles[:, None] + gam + 1.5 * math.pi
        s = np.broadcast_to(self.sid * np.sin(gam), phi.shape).copy()
        return phi, s


Geometry = FanBeamGeometry | ParallelBeamGeometry

_TYPES: dict[str, type] = {"fan": FanBeamGeometry, "parallel": ParallelBeamGeometry}


def geometry_from_dict(d: dict[str, Any]) -> Geometry:
    """Rebuild a geometry from :meth:`to_dict` output (``d["type"]`` in ``{"fan", "parallel"}``)."""
    if not isinstance(d, dict):
        raise TypeError(f"geometry_from_dict expects a dict, got {type(d).__name__}")
    kind = d.get("type")
    if kind not in _TYPES:
        raise ValueError(f"geometry dict 'type' must be one of {sorted(_TYPES)}, got {kind!r}")
    cls = _TYPES[kind]
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in d.items() if k != "type"}
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} for a {kind} geometry; fields are "
                         f"{sorted(names)}")
    return cls(**kw)


def sinoct(image_size: int = 512, n_views: int = SINOCT_N_VIEWS,
           n_det: int = SINOCT_N_DET) -> FanBeamGeometry:
    """The SinoCT scanner: GE LightSpeed-class fan beam, curved detector, 2 pi rotation.

    Parameters
    ----------
    image_size : int
        Image grid over the 250 mm field (``pixel_size = 250 / image_size`` mm).
    n_views : int
        Views over the full 2 pi rotation (984 on the scanner).
    n_det : int
        Channels (888 on the scanner); fewer channels keep the same fan angle with a wider
        pitch (``1.0239 * 888 / n_det`` mm) and the same physical quarter-channel offset.

    Returns
    -------
    FanBeamGeometry
        Sinograms ``(n_views, n_det)``, images ``(image_size, image_size)``.

    Notes
    -----
    Sources of each number are given beside the ``SINOCT_*`` constants in this module.
    """
    _check_int("image_size", image_size)
    _check_int("n_views", n_views)
    _check_int("n_det", n_det)
    scale = SINOCT_N_DET / n_det
    return FanBeamGeometry(
        n_views=n_views,
        n_det=n_det,
        det_spacing=SINOCT_DET_SPACING * scale,
        sid=SINOCT_SID,
        sdd=SINOCT_SDD,
        image_size=image_size,
        pixel_size=SINOCT_FOV / image_size,
        detector="curved",
        det_offset=SINOCT_DET_OFFSET / scale,
        arc=2 * math.pi,
        start_angle=0.0,
    )
