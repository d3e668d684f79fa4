"""Head anatomy: scalp, skull with sutures and skull base, brain, CSF spaces, falx.

All shapes are analytic in the subject's *head coordinates* ``(u, v, w)`` in mm: ``u`` to the
subject's left-right axis, ``v`` posterior (-) to anterior (+), ``w`` inferior (-) to superior
(+), origin at the centre of the cranial vault. The head frame is rotated (tilt, in-plane
rotation) and shifted with respect to the scanner, so slices cut the anatomy obliquely as on a
real scan. Gravity points along the scanner's -y axis (supine patient, posterior dependent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sinotriage.phantoms._raster import Compositor, Frame, WaveField, coverage, ellipsoid_sdf
from sinotriage.phantoms.tissues import tissue_id

__all__ = ["Anatomy", "Deformation", "Fields", "draw_anatomy", "render_anatomy", "rotation"]

AIR, FAT, SOFT, CORT, DIPLOE, CSF, GM, WM, DURA, BLOOD, EDEMA, VITREOUS = (
    tissue_id(n) for n in ("air", "fat", "soft_tissue", "cortical_bone", "diploe", "csf",
                           "gray_matter", "white_matter", "dura", "blood", "edema", "vitreous"))


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head -> world rotation: roll about v, then pitch about u, then yaw about the world z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cr, 0, sr], [0, 1, 0], [-sr, 0, cr]])
    return rz @ rx @ ry


@dataclass(frozen=True)
class Anatomy:
    """Subject parameters (mm, radians, HU) drawn by :func:`draw_anatomy`."""

    axes: tuple[float, float, float]  # inner-table semi-axes (u, v, w)
    egg: float  # posterior widening of the vault
    yaw: float
    pitch: float
    roll: float
    offset: tuple[float, float]  # head centre in the scanner (x, y)
    z_centre: float  # scanner z of the head origin
    t_inner: float
    t_diploe: float
    t_outer: float
    scalp: float
    atrophy: float  # 0 young .. 1 marked atrophy: CSF spaces, ventricles, sulci grow
    frontal_sinus: float  # 0 (absent) .. 1
    hu: dict[str, float] = field(default_factory=dict)  # one value per tissue
    seeds: tuple[int, ...] = ()  # seeds of the random fields

    @property
    def skull(self) -> float:
        """Skull thickness of the vault, mm."""
        return self.t_inner + self.t_diploe + self.t_outer


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one subject's anatomy; consumes a fixed number of draws from ``rng``."""
    u = rng.uniform
    hu = {
        "fat": u(-95, -65), "soft_tissue": u(30, 50), "cortical_bone": u(1250, 1600),
        "diploe": u(400, 600), "csf": u(4, 11), "gray_matter": u(37.5, 42.5),
        "white_matter": u(23, 27.5), "dura": u(52, 64), "vitreous": u(6, 14),
    }
    return Anatomy(
        axes=(u(61, 69), u(77, 88), u(68, 76)), egg=u(0.0, 0.08),
        yaw=np.deg2rad(u(-12, 12)), pitch=np.deg2rad(u(-7, 7)), roll=np.deg2rad(u(-4, 4)),
        offset=(u(-6, 6), u(-6, 6)), z_centre=u(-2, 2),
        t_inner=u(1.5, 2.2), t_diploe=u(2.0, 3.8), t_outer=u(1.5, 2.2), scalp=u(4.0, 7.0),
        atrophy=float(rng.beta(1.4, 3.0)), frontal_sinus=float(u(0, 1)) if u() < 0.85 else 0.0,
        hu=hu, seeds=tuple(int(s) for s in rng.integers(0, 2**31, size=6)),
    )


@dataclass
class Deformation:
    """Mass effect: a lateral midline shift and compression of one lateral ventricle."""

    shift: float = 0.0  # mm along +u at the centre of the field (signed)
    v0: float = 0.0
    w0: float = 20.0
    compress_side: float = 0.0  # +1 / -1: side of the compressed ventricle, 0 none
    compress: float = 1.0  # width factor of that ventricle (<= 1)
    extra_axial: np.ndarray | None = None  # (Dz, H, W) thickness of epi/subdural blood, mm


@dataclass
class Fields:
    """Signed-distance fields (mm, negative inside) the hemorrhage painter needs."""

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    ub: np.ndarray  # u after the midline shift
    d_cav: np.ndarray  # cranial cavity (inner table)
    d_brain: np.ndarray  # brain surface
    csf_spaces: np.ndarray  # sulci, fissures and basal cisterns (widened to be resolvable)
    cisterns: np.ndarray  # basal cisterns only
    ventricles: np.ndarray
    parenchyma: np.ndarray  # brain tissue (not CSF), approximate


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cranial_floor(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height of the cranial floor and the v of the petrous ridge line, both mm.

    Anterior fossa high (orbital roofs), middle fossae low (temporal lobes), posterior fossa
    lowest (cerebellum), separated by the sphenoid ridges and the petrous ridges; a raised
    petrous crest along the line from the petrous apex posterolaterally.
    """
    au = np.abs(u)
    v_pet = 2.0 - 0.56 * np.maximum(au - 12.0, 0.0)
    v_sph = 18.0 + 0.35 * np.maximum(au - 12.0, 0.0)
    post = _sig((v_pet - v) / 2.5)
    ant = _sig((v - v_sph) / 2.5)
    mid = -37.0 + 12.0 * np.exp(-(u * u) / 200.0)
    roofs = -13.0 + 6.0 * np.exp(-((au - 27.0) ** 2) / 300.0
                                 - ((v - 50.0) ** 2) / 900.0)  # gently domed orbital roofs
    floor = post * (-46.0 + 0.004 * u * u) + (1 - post) * ((1 - ant) * mid + ant * roofs)
    ridge = 24.0 * np.exp(-((v - v_pet) ** 2) / 18.0) * _sig(au - 13.0) * _sig((56.0 - au) / 2)
    return (floor + ridge).astype(np.float32), v_pet.astype(np.float32)


def render_anatomy(frame: Frame, coords: tuple[np.ndarray, np.ndarray, np.ndarray],
                   anat: Anatomy, comp: Compositor, width: float, deform: Deformation,
                   min_feature: float) -> Fields:
    """Paint the normal anatomy into ``comp`` and return the fields lesions need.

    ``coords`` are the head coordinates ``(u, v, w)`` of the grid (:meth:`Frame.head_coords`).

    ``width`` is the in-plane voxel size (mm, the coverage ramp); ``min_feature`` the smallest
    CSF-space width (mm) that lesions filling it are widened to, so subarachnoid blood stays
    resolvable on coarse grids.
    """
    A, B, C = anat.axes
    hu = anat.hu
    u, v, w = coords
    paint = comp.paint

    # --- vault, skull base, scalp -----------------------------------------------------------
    ue = u / (1.0 + anat.egg * np.clip(-v / B, -1, 1))
    d_vault = ellipsoid_sdf(ue, v, w, (0, 0, 0), (A, B, C))
    floor, v_pet = cranial_floor(u, v)
    au = np.abs(u)
    d_cav = np.maximum(d_vault, floor - w)
    base = np.clip((-w - 15.0) / 20.0, 0.0, 1.0)  # the skull thickens towards the base
    t_in = anat.t_inner * (1 + 0.5 * base)
    t_dip = anat.t_diploe * (1 + 0.8 * base)
    t_all = t_in + t_dip + anat.t_outer * (1 + 0.5 * base)
    # the orbital roofs (floor of the anterior fossa) are a thin cortical plate
    v_sph = 18.0 + 0.35 * np.maximum(au - 12.0, 0.0)
    roof = (v > v_sph - 5.0) & (floor - w > d_vault)
    t_in = np.where(roof, 1.6, t_in)
    t_dip = np.where(roof, 0.0, t_dip)
    t_all = np.where(roof, 1.6, t_all)
    outer = anat.skull + anat.scalp
    d_head = ellipsoid_sdf(u, v, np.where(w < 0, w * 0.55, w), (0, 0, 0),
                           (A + outer + 1.5, B + outer + 2.0, C + outer))
    paint(coverage(d_head, width), hu["soft_tissue"], SOFT)
    bx = frame.box((-A, B - 40, -60), (A, B + 40, -5))
    if bx is not None:  # face: soft tissue in front of the orbits
        face = ellipsoid_sdf(u[bx], v[bx], w[bx], (0, B - 10, -40), (A * 0.72, 32, 30))
        paint(coverage(face, width), hu["soft_tissue"], SOFT, box=bx)

    # thick cancellous skull base below the floor
    block = np.maximum.reduce([w - floor, floor - 11.0 - w, d_vault - anat.skull - 4.0,
                               v - v_sph])
    paint(coverage(block, width), hu["diploe"], DIPLOE)
    # skull shells (follow the floor too)
    paint(coverage(d_cav - t_all, width), hu["cortical_bone"], CORT)
    paint(coverage(d_cav - t_in - t_dip, width), hu["diploe"], DIPLOE)
    # petrous bones: dense pyramids along the petrous ridge lines
    pet = np.maximum.reduce([np.abs(v - v_pet) - 7.0, np.abs(au - 35.0) - 22.0, w - floor + 1.0,
                             -52.0 - w])
    paint(coverage(pet, width), min(hu["cortical_bone"] + 180.0, 1790.0), CORT)
    # mastoid air cells (honeycomb lateral-posterior to the petrous bone)
    for side in (-1, 1):
        c = (side * (A * 0.78), -20.0, -38.0)
        bx = frame.box((c[0] - 12, c[1] - 12, c[2] - 12), (c[0] + 12, c[1] + 12, c[2] + 12))
        if bx is None:
            continue
        honey = WaveField(np.random.default_rng(anat.seeds[0] + side), 8, 7.0).evaluate(frame, bx)
        e = ellipsoid_sdf(u[bx], v[bx], w[bx], c, (9.0, 10.0, 9.0))
        paint(coverage(np.maximum(e, 0.35 - honey), width) * (d_cav[bx] > 1.0), -1000.0, AIR,
              box=bx)
    # sphenoid sinus, nasal cavity / ethmoid cells, frontal sinus
    bx = frame.box((-16, -4, -48), (16, 26, -20))
    if bx is not None:
        e = ellipsoid_sdf(u[bx], v[bx], w[bx], (0, 10, -34), (14, 11, 9))
        paint(coverage(np.maximum(e, floor[bx] + 2.5 - w[bx]), width), -1000.0, AIR, box=bx)
    bx = frame.box((-12, B - 40, -50), (12, B + 12, -10))
    if bx is not None:
        e = ellipsoid_sdf(u[bx], v[bx], w[bx], (0, B - 12, -34), (9, 24, 14))
        paint(coverage(np.maximum(e, floor[bx] + 3.0 - w[bx]), width), -1000.0, AIR, box=bx)
    if anat.frontal_sinus > 0:
        fs = anat.frontal_sinus
        c = (0.0, B + anat.skull * 0.5 + 2.0, -2.0)
        bx = frame.box((-20, c[1] - 10, -20), (20, c[1] + 10, 20))
        if bx is not None:
            e = ellipsoid_sdf(u[bx], v[bx], w[bx], c, (6 + 6 * fs, 2.5 + 1.5 * fs, 5 + 6 * fs))
            # the frontal bone bulges around the sinus
            paint(coverage(e - 2.5, width) * (d_cav[bx] > 0), hu["cortical_bone"], CORT, box=bx)
            paint(coverage(np.maximum(e, t_in[bx] + 0.3 - d_cav[bx]), width), -1000.0, AIR,
                  box=bx)
    # orbits: fat cone with the globe
    for side in (-1, 1):
        c = (side * 30.0, B - 12.0, -25.0)
        bx = frame.box((c[0] - 20, c[1] - 25, c[2] - 18), (c[0] + 20, c[1] + 35, c[2] + 18))
        if bx is None:
            continue
        ub_, vb_, wb_ = u[bx], v[bx], w[bx]
        e = ellipsoid_sdf(ub_, vb_, wb_, c, (14, 24, 12), yaw=-side * 0.25)
        e = np.maximum(e, floor[bx] + 1.5 - wb_)
        paint(coverage(e - 1.5, width), hu["cortical_bone"], CORT, box=bx)
        paint(coverage(e, width), hu["fat"], FAT, box=bx)
        g = ellipsoid_sdf(ub_, vb_, wb_, (side * 31.0, B + 3.0, -26.0), (11.5, 11.5, 11.5))
        paint(coverage(g, width), hu["soft_tissue"], SOFT, box=bx)  # sclera
        paint(coverage(g + 1.0, width), hu["vitreous"], VITREOUS, box=bx)
        nerve = ellipsoid_sdf(ub_, vb_, wb_, (side * 26.0, B - 16.0, -26.0), (2.2, 16, 2.2),
                              yaw=-side * 0.35)
        paint(coverage(nerve, width), hu["soft_tissue"], SOFT, box=bx)
    paint(coverage(d_cav - t_in, width), hu["cortical_bone"], CORT)

    # --- intracranial: extra-axial CSF, brain, cortex, sulci --------------------------------
    paint(coverage(d_cav, width), hu["csf"], CSF)
    ub = u
    if deform.shift:
        ub = u - deform.shift * np.exp(-((v - deform.v0) ** 2) / (2 * 40.0 ** 2)
                                       - ((w - deform.w0) ** 2) / (2 * 35.0 ** 2)) * np.clip(
            1.0 - (u / A) ** 2, 0.0, 1.0)
        ub = ub.astype(np.float32)
    atro = anat.atrophy
    delta = 0.8 + 3.2 * atro + 1.2 * atro * _sig(v / 15.0)  # frontal-predominant atrophy
    ex = deform.extra_axial if deform.extra_axial is not None else 0.0
    d_brain = (d_cav + np.maximum(delta, ex + 0.3)).astype(np.float32)
    depth = -d_brain
    # gyri and sulci: zero set of a smooth random field, depth-limited
    gyr = WaveField(np.random.default_rng(anat.seeds[1]), 10, 26.0)
    s_dist = np.abs(gyr.evaluate(frame)) / gyr.grad_rms
    w_sulc = 0.9 + 2.6 * atro
    effaced = np.clip(1.0 - np.asarray(ex) / 3.0, 0.15, 1.0)
    sulc_depth = 14.0 + 4.0 * atro
    hw = 0.5 * w_sulc * effaced * (1.0 - 0.6 * np.clip(depth / sulc_depth, 0, 1))
    sulc = np.maximum(np.maximum(s_dist - hw, depth - sulc_depth), d_cav)
    cortex = 2.7
    paint(coverage(d_brain, width), hu["gray_matter"], GM)
    near = np.minimum(depth, np.maximum(s_dist - hw, depth - sulc_depth))
    paint(coverage(cortex - near, width), hu["white_matter"], WM)
    paint(coverage(sulc, width), hu["csf"], CSF)
    csf_spaces = np.maximum(np.maximum(s_dist - np.maximum(hw, min_feature / 2),
                                       depth - sulc_depth), d_brain - 1.0)

    # Sylvian fissures (lined by insular / opercular cortex)
    aub = np.abs(ub)
    v_syl = 6.0 + 0.6 * (aub - 38.0) + 0.012 * (aub - 38.0) ** 2
    syl_hw = 0.9 + 1.6 * atro
    syl = np.maximum.reduce([np.abs(v - v_syl) - syl_hw, A * 0.5 - aub, np.abs(w + 2.0) - 9.0,
                             aub - A * 0.8, d_cav])
    paint(coverage(np.maximum(syl - cortex, d_brain), width), hu["gray_matter"], GM)
    paint(coverage(syl, width), hu["csf"], CSF)
    csf_spaces = np.minimum(csf_spaces, syl - max(0.0, min_feature / 2 - syl_hw))

    # interhemispheric fissure above the corpus callosum, and in front of / behind it
    s = 1.0 + 1.3 * atro  # ventricular size factor
    w_cc = -40.0 + (63.0 + 4.5 * s) * _sig((34.0 - np.abs(v + 4.0)) / 3.0)
    ihf_hw = 0.5 + 1.2 * atro
    ihf = np.maximum.reduce([aub - ihf_hw, w_cc - w, d_cav])
    paint(coverage(np.maximum(ihf - cortex, d_brain), width), hu["gray_matter"], GM)
    paint(coverage(ihf, width), hu["csf"], CSF)
    csf_spaces = np.minimum(csf_spaces, np.maximum.reduce(
        [aub - max(ihf_hw, min_feature / 2), w_cc - w, d_cav]))
    del s_dist, near, sulc, depth

    def shape(c, ax, yaw=0.0, pad=2.0):
        r = max(ax[0], ax[1]) * 1.05 + pad
        bx = frame.box((c[0] - r, c[1] - r, c[2] - ax[2] - pad), (c[0] + r, c[1] + r,
                                                                  c[2] + ax[2] + pad))
        if bx is None:
            return None, None
        return bx, ellipsoid_sdf(ub[bx], v[bx], w[bx], c, ax, yaw)

    # --- deep gray nuclei: caudate heads, lentiform nuclei, thalami --------------------------
    comp_l = deform.compress if deform.compress_side < 0 else 1.0
    comp_r = deform.compress if deform.compress_side > 0 else 1.0
    for side, k in ((-1, comp_l), (1, comp_r)):
        for c, ax, yaw in (((side * (11 + 2 * s * k), 16, 11), (5.0, 9.0, 7.0), 0.0),
                           ((side * (22 + 1.5 * s * k), 3, 4), (6.0, 13.0, 9.0), side * 0.3),
                           ((side * (9 + 1.0 * s * k), -11, 6), (8.0, 11.0, 8.0), side * 0.2)):
            bx, e = shape(c, ax, yaw)
            if bx is not None:
                paint(coverage(e, width), hu["gray_matter"] - 1.5, GM, box=bx)

    # --- ventricles (lateral: frontal horn, body, atrium, occipital and temporal horns) -----
    vent = np.full(u.shape, 1e3, np.float32)
    parts = []
    for side, k in ((-1, comp_l), (1, comp_r)):
        ks = s * k
        parts += [
            ((side * (5.0 + 2.5 * ks), 17.0, 14.0), (3.0 * ks, 11.0, 6.5 * s), -side * 0.12),
            ((side * (5.5 + 3.0 * ks), -3.0, 19.0), (3.2 * ks, 22.0, 4.5 * s), side * 0.1),
            ((side * (14.0 + 2.0 * ks), -24.0, 12.0), (5.0 * ks, 9.0, 7.5 * s), side * 0.5),
            ((side * (17.0 + 1.5 * ks), -36.0, 9.0), (2.8 * ks, 11.0, 4.0 * s), side * 0.25),
            ((side * (27.0 + 1.0 * ks), -6.0, -12.0), (2.2 * ks, 13.0, 2.8 * s), side * 0.35),
        ]
    parts += [((0.0, -3.0, 3.0), (1.2 * s, 13.0, 8.0), 0.0),  # third ventricle
              ((0.0, -30.0, -30.0), (5.0 + s, 3.5 + s, 6.0), 0.0)]  # fourth ventricle
    for c, ax, yaw in parts:
        bx, e = shape(c, ax, yaw)
        if bx is not None:
            np.minimum(vent[bx], e, out=vent[bx])

    # --- posterior fossa: cerebellum with folia, brainstem, basal cisterns, tentorium ------
    w_tent = (-3.0 - 0.33 * np.maximum(-v - 22.0, 0.0) - 0.006 * u * u).astype(np.float32)
    pf = np.maximum(w - w_tent, v - v_pet)
    paint(coverage(np.maximum(pf, d_cav), width), hu["csf"], CSF)
    bx = frame.box((-60, -90, -52), (60, 8, 2))
    if bx is not None:
        ubx, vbx, wbx = ub[bx], v[bx], w[bx]
        # the cerebellum fills the posterior fossa, a CSF rim (and the cisterns) around it
        cereb = np.maximum(pf[bx] + 1.0, d_cav[bx] + 1.0 + 1.5 * atro)
        paint(coverage(cereb, width), hu["gray_matter"] - 2.0, GM, box=bx)
        folia = WaveField(np.random.default_rng(anat.seeds[2]), 6, 9.0, (1.0, 0.6, 1.6))
        fol = np.abs(folia.evaluate(frame, bx)) / folia.grad_rms
        paint(coverage(np.maximum(fol - 0.35 - 0.4 * atro, cereb + 2.0), width),
              hu["csf"], CSF, box=bx)
        core = np.minimum(ellipsoid_sdf(ubx, vbx, wbx, (-17, -38, -28), (9, 11, 7), 0.4),
                          ellipsoid_sdf(ubx, vbx, wbx, (17, -38, -28), (9, 11, 7), -0.4))
        core = np.minimum.reduce([core,
                                  ellipsoid_sdf(ubx, vbx, wbx, (-13, -22, -29), (7, 11, 6), 0.5),
                                  ellipsoid_sdf(ubx, vbx, wbx, (13, -22, -29), (7, 11, 6), -0.5)])
        paint(coverage(core, width), hu["white_matter"] + 1.0, WM, box=bx)
    cist = np.full(u.shape, 1e3, np.float32)
    for c, ax in (((0, -14, -4), (16.0 + 2 * atro, 15.0 + 2 * atro, 6.5)),  # ambient
                  ((0, 9, -9), (11.0, 8.0, 4.5)),  # suprasellar
                  ((0, -3, -30), (9.0, 5.0, 14.0))):  # prepontine
        bx, e = shape(c, ax)
        if bx is not None:
            np.minimum(cist[bx], np.maximum(e, d_cav[bx]), out=cist[bx])
    paint(coverage(cist, width), hu["csf"], CSF)
    for c, ax, dv in (((0, -14, -5), (11.5, 10.0, 9.0), 2.0),  # midbrain
                      ((0, -13, -32), (12.5, 11.0, 18.0), 2.5)):  # pons
        bx, e = shape(c, ax)
        if bx is not None:
            paint(coverage(e, width), hu["white_matter"] + dv, WM, box=bx)
            np.maximum(cist[bx], -e, out=cist[bx])
    csf_spaces = np.minimum(csf_spaces, cist)
    notch = np.minimum(12.0 - aub, -v - 32.0)  # > 0 inside the tentorial notch
    tent = np.maximum.reduce([np.abs(w - w_tent) - 0.5, v - v_pet + 3.0, d_cav, notch])
    paint(coverage(tent, width), hu["dura"], DURA)

    # ventricles on top of the brain; falx in the interhemispheric fissure
    paint(coverage(vent, width), hu["csf"], CSF)
    falx = np.maximum.reduce([aub - 0.55, w_cc + 1.5 - w, d_cav])
    paint(coverage(falx, width), hu["dura"], DURA)

    parenchyma = np.maximum.reduce([d_brain, -csf_spaces, -vent])
    return Fields(u=u, v=v, w=w, ub=ub, d_cav=d_cav, d_brain=d_brain, csf_spaces=csf_spaces,
                  cisterns=cist, ventricles=vent, parenchyma=parenchyma)
