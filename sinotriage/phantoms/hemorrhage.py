"""The five intracranial hemorrhage subtypes: drawing their parameters and painting them.

Each subtype has its own shape and place (head coordinates, mm; see :mod:`.head`):

- **epidural**: biconvex lens between the inner table and the dura, thickness profile
  ``T sqrt(1 - (a / a_max)^2)`` over the angular distance ``a`` from its centre, confined to one
  skull bone: it tapers to nothing at the sutures (coronal, lambdoid, sagittal, squamosal), where
  the dura is fixed to the bone.
- **subdural**: crescent along the inner table over a wide angle (crossing sutures), thickness
  ``T (1 - (a / a_max)^2)^0.7``, stopped by the falx and the cranial floor; the brain surface is
  pushed in and the sulci under it effaced.
- **subarachnoid**: blood filling sulci, Sylvian fissures, the interhemispheric fissure and/or
  the basal cisterns inside a region (convexity, Sylvian or basal pattern).
- **intraparenchymal**: round-to-irregular mass (ellipsoid with a noise-perturbed surface) in the
  basal ganglia, thalamus, a lobe or the cerebellum, optionally with a hypodense oedema rim.
- **intraventricular**: blood in the ventricles below a horizontal fluid level (gravity along
  the scanner's -y: supine, posterior horns dependent), one or both sides.

Large lesions produce mass effect (midline shift away, compressed ipsilateral ventricle), see
:func:`mass_effect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sinotriage.phantoms._raster import Compositor, Frame, WaveField, coverage, ellipsoid_sdf
from sinotriage.phantoms.head import BLOOD, EDEMA, Anatomy, Deformation, Fields, cranial_floor

__all__ = ["DIFFICULTIES", "SUBTYPES", "Lesion", "draw_lesions", "extra_axial_thickness",
           "mass_effect", "paint_lesions"]

#: RSNA subtype order; ``HeadCT.mask`` stores ``SUBTYPES.index(name) + 1``.
SUBTYPES: tuple[str, ...] = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid",
                             "subdural")

#: Relative frequency of each subtype in random abnormal studies (roughly RSNA 2019).
_SUBTYPE_WEIGHTS = np.array([0.07, 0.26, 0.17, 0.24, 0.26])

#: Difficulty levels: lesion size multiplier, blood HU range, range of the image noise SD (HU).
DIFFICULTIES: dict[str, dict[str, object]] = {
    "easy": {"size": 1.5, "blood_hu": (65.0, 88.0), "noise_sd": (2.0, 3.5)},
    "standard": {"size": 0.6, "blood_hu": (55.0, 82.0), "noise_sd": (3.5, 7.5)},
    "hard": {"size": 0.45, "blood_hu": (50.0, 68.0), "noise_sd": (5.0, 9.0)},
}


@dataclass
class Lesion:
    """One hemorrhage: its subtype and drawn parameters (mm, HU, radians)."""

    subtype: str
    params: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-able description."""
        def conv(x: object) -> object:
            if isinstance(x, (tuple, list, np.ndarray)):
                return [conv(y) for y in x]
            if isinstance(x, (np.floating, float)):
                return round(float(x), 3)
            if isinstance(x, np.integer):
                return int(x)
            return x
        return {"subtype": self.subtype, **{k: conv(v) for k, v in self.params.items()}}


def _lognormal(rng: np.random.Generator, median: float, sigma: float, lo: float,
               hi: float) -> float:
    return float(np.clip(median * np.exp(sigma * rng.normal()), lo, hi))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _plate_margin(n: np.ndarray, plate: str, side: float) -> np.ndarray:
    """Signed margin (normalized units, > 0 inside) of directions ``n`` inside a skull bone.

    ``n`` has shape (..., 3): unit vectors in vault-normalized coordinates (u/A, v/B, w/C).
    """
    nu, nv, nw = n[..., 0], n[..., 1], n[..., 2]
    top = np.maximum(nw, 0.0)
    coronal = 0.22 + 0.12 * (1.0 - top)  # nv of the coronal suture
    lambdoid = -0.5 - 0.15 * (1.0 - top)
    squamosal = 0.12
    if plate == "parietal":
        parts = [side * nu, coronal - nv, nv - lambdoid, nw - squamosal]
    elif plate == "temporal":
        parts = [side * nu - 0.5, squamosal - nw, nv + 0.45, 0.33 - nv, nw + 0.35]
    elif plate == "frontal":
        parts = [nv - coronal, nw + 0.05]
    elif plate == "occipital":
        parts = [lambdoid - nv, nw + 0.3]
    else:
        raise ValueError(f"unknown plate {plate!r}")
    return np.minimum.reduce(parts)


def draw_lesions(rng: np.random.Generator, subtypes: tuple[str, ...], anat: Anatomy,
                 difficulty: str) -> list[Lesion]:
    """Draw the parameters of one lesion per requested subtype."""
    prof = DIFFICULTIES[difficulty]
    size = float(prof["size"])  # type: ignore[arg-type]
    blo, bhi = prof["blood_hu"]  # type: ignore[misc]
    A, B, C = anat.axes
    lesions = []
    for name in subtypes:
        hu = float(rng.uniform(blo, bhi))
        side = float(rng.choice([-1.0, 1.0]))
        p: dict[str, object] = {"hu": hu, "side": side, "seed": int(rng.integers(0, 2**31))}
        if name == "epidural":
            plate = str(rng.choice(["temporal", "parietal", "frontal", "occipital"],
                                   p=[0.5, 0.25, 0.15, 0.1]))
            p["thickness"] = _lognormal(rng, 9.0 * size, 0.45, 2.0, 32.0)
            p["half_length"] = float(np.clip(2.2 * p["thickness"] + rng.uniform(6, 16), 10, 55))
            for _ in range(200):  # a centre well inside the bone plate
                n = _unit(rng.normal(size=3) * [1, 1, 0.7] + [side * 1.2, 0, 0.2])
                if _plate_margin(n, plate, side) > 0.12:
                    break
            p.update(plate=plate, direction=tuple(n))
        elif name == "subdural":
            n = _unit(np.array([side * rng.uniform(0.6, 1.0), rng.uniform(-0.5, 0.6),
                                rng.uniform(0.0, 0.7)]))
            p.update(direction=tuple(n), thickness=_lognormal(rng, 6.0 * size, 0.5, 1.5, 24.0),
                     angle=float(rng.uniform(0.6, 1.15)))
        elif name == "intraparenchymal":
            site = str(rng.choice(["putamen", "thalamus", "lobar", "cerebellar"],
                                  p=[0.3, 0.15, 0.43, 0.12]))
            r = _lognormal(rng, 8.0 * size, 0.55, 2.0, 30.0)
            if site == "putamen":
                c = (side * 23.0, 3.0, 4.0)
            elif site == "thalamus":
                c = (side * 10.0, -11.0, 6.0)
            elif site == "cerebellar":
                c = (side * 22.0, -45.0, -28.0)
                r = min(r, 18.0)
            else:
                n = _unit(rng.normal(size=3) * [1, 1, 0.5] + [side * 0.8, 0, 0.5])
                n[0] = side * abs(n[0])  # on the lesion's side (mass effect)
                depth = rng.uniform(max(r, 8.0) + 6.0, max(r, 8.0) + 18.0)
                rad = np.array([A, B, C]) * n
                c = tuple(rad * (1.0 - depth / np.linalg.norm(rad)))
            p.update(site=site, centre=tuple(float(x) for x in c), radius=r,
                     ratios=tuple(rng.uniform(0.7, 1.3, size=3)),
                     irregular=float(rng.uniform(0.0, 0.3)),
                     edema=float(rng.uniform(0.25, 0.6) * r + 1.0) if rng.uniform() < 0.6
                     else 0.0)
        elif name == "intraventricular":
            p.update(level=_lognormal(rng, 6.0 * size, 0.6, 1.5, 35.0),
                     bilateral=bool(rng.uniform() < 0.65))
        elif name == "subarachnoid":
            pattern = str(rng.choice(["convexity", "sylvian", "basal"], p=[0.45, 0.3, 0.25]))
            if pattern == "convexity":
                n = _unit(rng.normal(size=3) * [1, 1, 0.6] + [side * 0.7, 0, 0.7])
                c = tuple(np.array([A, B, C]) * n * 0.92)
            elif pattern == "sylvian":
                c = (side * A * 0.7, 10.0, -2.0)
            else:
                c = (0.0, -2.0, -8.0)
            radius = _lognormal(rng, 22.0 * size, 0.45, 8.0, 60.0)
            if pattern == "basal":  # the cisterns and the medial Sylvian fissures
                radius = max(radius, 32.0)
            p.update(pattern=pattern, centre=tuple(float(x) for x in c), radius=radius)
            p["hu"] = float(rng.uniform(blo, 0.5 * (blo + bhi)))  # diluted by CSF
        else:  # pragma: no cover - guarded by the caller
            raise ValueError(f"unknown subtype {name!r}")
        lesions.append(Lesion(name, p))
    return lesions


def _cap_box(frame: Frame, n: np.ndarray, axes: tuple[float, float, float],
             reach: float) -> tuple[slice, slice, slice] | None:
    centre = np.asarray(axes) * n
    lo, hi = centre - reach, centre + reach
    return frame.box(tuple(lo), tuple(hi))


def _angle(u: np.ndarray, v: np.ndarray, w: np.ndarray, axes: tuple[float, float, float],
           n: np.ndarray) -> np.ndarray:
    a, b, c = axes
    qa, qb, qc = u / a, v / b, w / c
    norm = np.sqrt(qa * qa + qb * qb + qc * qc) + 1e-6
    cosang = (qa * n[0] + qb * n[1] + qc * n[2]) / norm
    return np.arccos(np.clip(cosang, -1.0, 1.0))


def _extra_axial(les: Lesion, u: np.ndarray, v: np.ndarray, w: np.ndarray, anat: Anatomy,
                 scale: float, min_thick: float) -> np.ndarray:
    """Thickness (mm) of an epidural or subdural collection along the inner table."""
    A, B, C = anat.axes
    rm = (A + B + C) / 3.0
    n = np.asarray(les.params["direction"])
    ang = _angle(u, v, w, anat.axes, n)
    thick = max(float(les.params["thickness"]) * scale, min_thick)  # type: ignore[arg-type]
    side = float(les.params["side"])  # type: ignore[arg-type]
    floor, _ = cranial_floor(u, v)
    if les.subtype == "epidural":
        amax = float(les.params["half_length"]) * scale / rm  # type: ignore[arg-type]
        prof = np.sqrt(np.clip(1.0 - (ang / amax) ** 2, 0.0, 1.0))
        q = np.stack([u / A, v / B, w / C], axis=-1)
        q /= np.linalg.norm(q, axis=-1, keepdims=True) + 1e-6
        margin = _plate_margin(q, str(les.params["plate"]), side) * rm  # mm to the suture
        prof = prof * np.sqrt(np.clip(margin / 10.0, 0.0, 1.0))
    else:
        amax = float(les.params["angle"])  # type: ignore[arg-type]
        prof = np.clip(1.0 - (ang / amax) ** 2, 0.0, 1.0) ** 0.7
        prof = prof * np.clip((side * u - 1.0) / 4.0, 0.0, 1.0)  # the falx stops it
    prof = prof * np.clip((w - floor - 2.0) / 5.0, 0.0, 1.0)  # and the cranial floor
    return (thick * prof).astype(np.float32)


def extra_axial_thickness(lesions: list[Lesion], frame: Frame, coords: tuple[np.ndarray, ...],
                          anat: Anatomy, scale: float, min_thick: float) -> np.ndarray | None:
    """Summed thickness (mm) of epidural and subdural blood at every grid point, or None."""
    out = None
    u, v, w = coords
    for les in lesions:
        if les.subtype not in ("epidural", "subdural"):
            continue
        if out is None:
            out = np.zeros(u.shape, np.float32)
        out += _extra_axial(les, u, v, w, anat, scale, min_thick)
    return out


def _volume_ml(les: Lesion, anat: Anatomy, scale: float) -> float:
    p = les.params
    rm = sum(anat.axes) / 3.0
    if les.subtype == "epidural":
        half = float(p["half_length"]) * scale  # type: ignore[arg-type]
        return float(0.5 * np.pi * half ** 2 * float(p["thickness"]) * scale * 0.6 / 1000.0)  # type: ignore[arg-type]
    if les.subtype == "subdural":
        area = 2 * np.pi * rm ** 2 * (1 - np.cos(float(p["angle"])))  # type: ignore[arg-type]
        return float(area * float(p["thickness"]) * scale * 0.45 / 1000.0)  # type: ignore[arg-type]
    if les.subtype == "intraparenchymal":
        r = float(p["radius"]) * scale  # type: ignore[arg-type]
        edema = float(p["edema"])  # type: ignore[arg-type]
        return float(4 / 3 * np.pi * np.prod(p["ratios"]) * ((r + 0.5 * edema) ** 3) / 1000.0)  # type: ignore[arg-type]
    return 0.0


def mass_effect(lesions: list[Lesion], anat: Anatomy, scale: float) -> Deformation:
    """Midline shift and ventricle compression from the lesions' volumes.

    The shift grows with the volume on the more affected side, ``0.16 mm/ml`` above 8 ml,
    at most 15 mm, away from the lesions; the ipsilateral lateral ventricle narrows to
    ``1 - V / 90`` of its width (at least 0.35).
    """
    vol = {-1.0: 0.0, 1.0: 0.0}
    where = {-1.0: (0.0, 20.0), 1.0: (0.0, 20.0)}
    for les in lesions:
        side = float(les.params["side"])  # type: ignore[arg-type]
        v = _volume_ml(les, anat, scale)
        if v > vol[side]:
            if les.subtype == "intraparenchymal":
                c = les.params["centre"]
                where[side] = (float(c[1]), float(c[2]))  # type: ignore[index]
            elif "direction" in les.params:
                n = np.asarray(les.params["direction"]) * np.asarray(anat.axes)
                where[side] = (float(n[1]), float(max(n[2], 5.0)))
        vol[side] += v
    side = 1.0 if vol[1.0] >= vol[-1.0] else -1.0
    net = vol[side] - 0.5 * vol[-side]
    if net <= 8.0:
        return Deformation()
    mag = min(15.0, 0.16 * net)
    return Deformation(shift=-side * mag, v0=where[side][0], w0=where[side][1],
                       compress_side=side, compress=float(max(0.35, 1.0 - net / 90.0)))


def _blood_value(rng_seed: int, frame: Frame, box: tuple[slice, slice, slice], hu: float,
                 amplitude: float = 3.0) -> np.ndarray:
    """Blood HU with a smooth heterogeneity of +-``amplitude``, clipped to 50 .. 90 HU."""
    wf = WaveField(np.random.default_rng(rng_seed), 5, 12.0)
    val = hu + amplitude * 0.5 * wf.evaluate(frame, box)
    return np.clip(val, 50.0, 90.0)


def paint_lesions(lesions: list[Lesion], frame: Frame, f: Fields, comp: Compositor,
                  width: float, anat: Anatomy, scale: float, min_thick: float,
                  y_world: np.ndarray) -> None:
    """Paint all lesions into ``comp`` (subtype ids in RSNA order, 1..5)."""
    A, B, C = anat.axes
    full = (slice(None),) * 3
    order = ("epidural", "subdural", "subarachnoid", "intraventricular", "intraparenchymal")
    for les in sorted(lesions, key=lambda le: order.index(le.subtype)):
        p = les.params
        sub = SUBTYPES.index(les.subtype) + 1
        hu = float(p["hu"])  # type: ignore[arg-type]
        seed = int(p["seed"])  # type: ignore[arg-type]
        side = float(p["side"])  # type: ignore[arg-type]
        if les.subtype in ("epidural", "subdural"):
            n = np.asarray(p["direction"])
            reach = (float(p.get("half_length", 0.0)) * scale + 20.0  # type: ignore[arg-type]
                     if les.subtype == "epidural" else 200.0)
            if les.subtype == "epidural":
                bx = _cap_box(frame, n, anat.axes, reach)
            else:  # one hemisphere
                lo, hi = sorted((0.0, side * (A + 5.0)))
                bx = frame.box((lo, -B - 5.0, -60.0), (hi, B + 5.0, C + 5.0))
            if bx is None:
                continue
            t = _extra_axial(les, f.u[bx], f.v[bx], f.w[bx], anat, scale, min_thick)
            d = f.d_cav[bx]
            sdf = np.where(t > 0.05, np.maximum(d, -d - t), 1e3)
            comp.paint(coverage(sdf, width), _blood_value(seed, frame, bx, hu), BLOOD, sub,
                       box=bx)
        elif les.subtype == "subarachnoid":
            c = p["centre"]
            r = float(p["radius"]) * scale  # type: ignore[arg-type]
            bx = frame.box(tuple(np.subtract(c, r)), tuple(np.add(c, r)))  # type: ignore[arg-type]
            if bx is None:
                continue
            region = ellipsoid_sdf(f.u[bx], f.v[bx], f.w[bx], c, (r, r, r))  # type: ignore[arg-type]
            sdf = np.maximum.reduce([f.csf_spaces[bx], region, -f.ventricles[bx]])
            comp.paint(coverage(sdf, width), _blood_value(seed, frame, bx, hu, 2.0), BLOOD, sub,
                       box=bx)
        elif les.subtype == "intraventricular":
            vent = f.ventricles - max(2.0, min_thick) * (scale - 1.0)
            inside = vent < 0
            if not inside.any():
                continue
            ys = np.broadcast_to(y_world, vent.shape)
            level = float(ys[inside].min()) + max(float(p["level"]) * scale, 1.2 * width)  # type: ignore[arg-type]
            sdf = np.maximum(vent, ys - level)
            if not p["bilateral"]:
                sdf = np.maximum(sdf, -side * f.ub + 1.0)
            comp.paint(coverage(sdf, width), _blood_value(seed, frame, full, hu, 2.0), BLOOD,
                       sub)
        else:  # intraparenchymal
            c = p["centre"]
            r = max(float(p["radius"]) * scale, min_thick)  # type: ignore[arg-type]
            ax = tuple(r * np.asarray(p["ratios"]))
            rim = float(p["edema"])  # type: ignore[arg-type]
            reach = max(ax) * 1.4 + rim + 3.0
            bx = frame.box(tuple(np.subtract(c, reach)), tuple(np.add(c, reach)))  # type: ignore[arg-type]
            if bx is None:
                continue
            sdf = ellipsoid_sdf(f.u[bx], f.v[bx], f.w[bx], c, ax)  # type: ignore[arg-type]
            irr = float(p["irregular"])  # type: ignore[arg-type]
            if irr > 0:
                wf = WaveField(np.random.default_rng(seed + 1), 6, max(1.5 * r, 6.0))
                sdf = sdf + irr * r * 0.5 * wf.evaluate(frame, bx)
            sdf = np.maximum(sdf, f.d_cav[bx] + 1.0)
            if rim > 0:
                ed = np.maximum(sdf - rim, f.parenchyma[bx])
                edema_hu = anat.hu["white_matter"] - 9.0
                comp.paint(coverage(ed, width), edema_hu, EDEMA, box=bx)
            comp.paint(coverage(sdf, width), _blood_value(seed, frame, bx, hu), BLOOD, sub,
                       box=bx)
