"""Synthetic head CT with and without intracranial hemorrhage.

>>> from sinotriage.phantoms import head_ct
>>> case = head_ct(seed=7, n_slices=8, image_size=64, pixel_size=250 / 64, subtypes=("subdural",))
>>> case.hu.shape, case.label, bool(case.labels[:, 5].any())
((8, 64, 64), 1, True)

See ``docs/data.md`` ("Synthetic head CT") for the anatomy, the HU table and its sources, how
each subtype is drawn, the difficulty levels and the intensity-baseline AUC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from sinotriage.phantoms._raster import Compositor, Frame
from sinotriage.phantoms.head import BLOOD, draw_anatomy, render_anatomy, rotation
from sinotriage.phantoms.hemorrhage import (
    _SUBTYPE_WEIGHTS,
    DIFFICULTIES,
    SUBTYPES,
    draw_lesions,
    extra_axial_thickness,
    mass_effect,
    paint_lesions,
)
from sinotriage.phantoms.tissues import BRAIN_TISSUES, TISSUE_NAMES, TISSUES

__all__ = ["DIFFICULTIES", "LABEL_NAMES", "SUBTYPES", "TISSUES", "TISSUE_NAMES", "HeadCT",
           "brain_mask", "head_ct", "intensity_baseline"]

#: Slice-label columns (RSNA order).
LABEL_NAMES: tuple[str, ...] = ("any", *SUBTYPES)

GENERATOR_VERSION = "1"
_MIN_FOV_MM = 220.0
_BOTTOM_MM = 50.0  # the lowest slice starts this far below the vault centre (posterior fossa)


@dataclass(frozen=True, eq=False)
class HeadCT:
    """One synthetic head CT study (arrays are read-only).

    Attributes
    ----------
    hu : ndarray, (D, H, W) float32
        Hounsfield units, slices ordered inferior to superior, with image noise.
    tissues : ndarray, (D, H, W) uint8
        Majority tissue class per voxel; names in ``tissue_names``.
    tissue_names : tuple of str
        ``tissue_names[k]`` is the name of class ``k`` (:data:`~.tissues.TISSUES`).
    mask : ndarray, (D, H, W) uint8
        Hemorrhage subtype per voxel, 0 none, 1..5 = epidural, intraparenchymal,
        intraventricular, subarachnoid, subdural; ``mask > 0`` exactly where tissue is blood.
    labels : ndarray, (D, 6) uint8
        Slice labels: any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural.
    label : int
        Scan label, 1 when any slice is positive.
    spacing : tuple of float
        ``(dz, dy, dx)`` in mm; the slice thickness equals ``dz``.
    settings : dict
        Generator arguments, drawn anatomy, lesions and noise level (JSON-able).
    pure : ndarray, (D, H, W) bool
        Voxels whose class is unambiguous: fully covered by one tissue in every sub-slice
        (no partial volume).
    """

    hu: np.ndarray
    tissues: np.ndarray
    tissue_names: tuple[str, ...]
    mask: np.ndarray
    labels: np.ndarray
    label: int
    spacing: tuple[float, float, float]
    settings: dict[str, Any] = field(default_factory=dict)
    pure: np.ndarray | None = None

    @property
    def subtypes(self) -> tuple[str, ...]:
        """Names of the subtypes present (any voxel), RSNA order."""
        return tuple(n for k, n in enumerate(SUBTYPES) if self.labels[:, k + 1].any())


def brain_mask(case: HeadCT) -> np.ndarray:
    """Intracranial "brain voxels" (CSF, gray and white matter, blood, oedema), (D, H, W) bool."""
    ids = [TISSUE_NAMES.index(n) for n in BRAIN_TISSUES]
    return np.isin(case.tissues, ids)


def intensity_baseline(case: HeadCT, low: float = 50.0, high: float = 90.0) -> float:
    """Fraction of brain voxels (:func:`brain_mask`) with ``low <= hu <= high`` HU.

    The simple scan-level score whose AUC the difficulty levels are tuned against (acute blood
    is 50-90 HU; normal brain sits below 50 HU apart from noise and partial volume).
    """
    brain = brain_mask(case)
    n = int(brain.sum())
    if n == 0:
        return 0.0
    hu = case.hu[brain]
    return float(np.count_nonzero((hu >= low) & (hu <= high)) / n)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_args(seed: Any, n_slices: Any, image_size: Any, pixel_size: Any, subtypes: Any,
                difficulty: Any, prevalence: Any) -> tuple[int, int, int, float,
                                                           tuple[str, ...] | None, float]:
    seed = _check_int("seed", seed, 0)
    n_slices = _check_int("n_slices", n_slices, 1)
    image_size = _check_int("image_size", image_size, 16)
    if isinstance(pixel_size, bool) or not isinstance(pixel_size, (int, float, np.floating)):
        raise TypeError(f"pixel_size must be a number (mm), got {type(pixel_size).__name__}")
    pixel_size = float(pixel_size)
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number of mm, got {pixel_size}")
    if image_size * pixel_size < _MIN_FOV_MM:
        raise ValueError(f"image_size * pixel_size (field of view) must be >= {_MIN_FOV_MM} mm "
                         f"to hold the head, got {image_size} x {pixel_size:g} = "
                         f"{image_size * pixel_size:g} mm")
    if subtypes is not None:
        if isinstance(subtypes, str) or not isinstance(subtypes, Sequence):
            raise TypeError(f"subtypes must be None or a tuple of names from {SUBTYPES}, "
                            f"got {subtypes!r}")
        bad = [s for s in subtypes if s not in SUBTYPES]
        if bad:
            raise ValueError(f"unknown subtypes {bad}; expected names from {SUBTYPES}")
        if len(set(subtypes)) != len(subtypes):
            raise ValueError(f"subtypes must not repeat a name, got {tuple(subtypes)}")
        subtypes = tuple(s for s in SUBTYPES if s in subtypes)
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of "
                         f"{tuple(DIFFICULTIES)}")
    if isinstance(prevalence, bool) or not isinstance(prevalence, (int, float, np.floating)):
        raise TypeError(f"prevalence must be a number in [0, 1], got {prevalence!r}")
    prevalence = float(prevalence)
    if not 0.0 <= prevalence <= 1.0:
        raise ValueError(f"prevalence must be in [0, 1], got {prevalence}")
    return seed, n_slices, image_size, pixel_size, subtypes, prevalence


def _image_noise(seed: int, shape: tuple[int, ...], difficulty: str) -> tuple[np.ndarray, float]:
    """The study's image noise (HU) and its SD: Gaussian, slightly correlated in-plane.

    Drawn from the third child of ``SeedSequence(seed)``, independent of the anatomy and
    lesion draws; the SD is uniform in the difficulty's ``noise_sd`` range.
    """
    ss_noise = np.random.SeedSequence(seed).spawn(3)[2]
    sd_lo, sd_hi = DIFFICULTIES[difficulty]["noise_sd"]  # type: ignore[misc]
    rng = np.random.default_rng(ss_noise)
    sd = float(rng.uniform(sd_lo, sd_hi))
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = gaussian_filter(noise, sigma=(0.0, 0.6, 0.6))
    noise *= np.float32(sd / max(float(noise.std()), 1e-6))
    return noise, sd


def head_ct(seed: int, n_slices: int = 32, image_size: int = 256, pixel_size: float = 250 / 256,
            subtypes: Sequence[str] | None = None, difficulty: str = "standard",
            prevalence: float = 0.55) -> HeadCT:
    """Generate one synthetic head CT study, deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same arguments give byte-identical arrays. The anatomy and the
        noise depend on the seed only, so ``subtypes=()`` and ``subtypes=("subdural",)`` with
        one seed give the same head with and without the lesion.
    n_slices : int
        Number of axial slices D, spread from the posterior fossa / skull base (air sinuses,
        petrous bones, orbits) to the vertex; the thickness is the spacing (about 4.3 mm at 32).
    image_size : int
        In-plane size N (H = W = N), at least 16.
    pixel_size : float
        In-plane pixel size, mm; ``image_size * pixel_size`` must be >= 220 mm.
    subtypes : None, or sequence of str
        None: abnormal with probability ``prevalence`` and then 1-3 random subtypes;
        ``()`` normal; names from :data:`SUBTYPES`: exactly those subtypes.
    difficulty : {"easy", "standard", "hard"}
        Lesion size and blood-contrast distribution and image noise (:data:`DIFFICULTIES`).
    prevalence : float
        Probability of an abnormal study when ``subtypes`` is None, in [0, 1].

    Returns
    -------
    HeadCT
        ``hu`` (D, N, N) float32 HU, ``tissues``, ``mask``, ``labels`` (D, 6), ``label``,
        ``spacing`` (dz, dx, dx) mm, ``settings``.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or value (the message names it).

    Notes
    -----
    The world frame is the one of docs/operators.md (Conventions): pixel ``(i, j)`` is centred at
    ``x = (j - (N-1)/2) d``, ``y = ((N-1)/2 - i) d``; anterior is up (+y), gravity is -y
    (supine). Each slice averages sub-slices spread over its thickness and edges are
    anti-aliased in-plane (partial volume, :mod:`._raster`). When a requested lesion is too
    small to cover half of any voxel at this grid, all lesions are redrawn 1.5x larger (up to
    three times); ``settings["lesion_scale"]`` records the factor used.
    """
    seed, n_slices, image_size, pixel_size, subtypes, prevalence = _check_args(
        seed, n_slices, image_size, pixel_size, subtypes, difficulty, prevalence)
    ss_anat, ss_les, _ = np.random.SeedSequence(seed).spawn(3)
    anat = draw_anatomy(np.random.default_rng(ss_anat))
    rng_les = np.random.default_rng(ss_les)
    if subtypes is None:
        if rng_les.uniform() < prevalence:
            k = int(rng_les.choice([1, 2, 3], p=[0.62, 0.28, 0.10]))
            pick = rng_les.choice(len(SUBTYPES), size=k, replace=False, p=_SUBTYPE_WEIGHTS)
            subtypes = tuple(SUBTYPES[i] for i in sorted(pick))
        else:
            subtypes = ()
    lesions = draw_lesions(rng_les, subtypes, anat, difficulty)

    # --- grid: slices from below the posterior fossa floor to the vertex ------------------
    rot = rotation(anat.yaw, anat.pitch, anat.roll)
    outer = np.asarray(anat.axes) + anat.skull + anat.scalp
    top = float(np.sqrt(np.sum((rot[2] * outer) ** 2)))
    z_lo, z_hi = anat.z_centre - _BOTTOM_MM, anat.z_centre + top - 9.0
    dz = (z_hi - z_lo) / n_slices
    zs = int(np.clip(math.ceil(dz / 1.6), 1, 6))
    z = z_lo + (np.arange(n_slices * zs) + 0.5) * dz / zs
    c = (np.arange(image_size) - (image_size - 1) / 2) * pixel_size
    frame = Frame(x=c - anat.offset[0], y=c[::-1] - anat.offset[1], z=z - anat.z_centre,
                  rot=rot)
    coords = frame.head_coords()
    y_world = frame.y.astype(np.float32)[None, :, None]
    min_thick = 1.3 * pixel_size

    scale = 1.0
    for attempt in range(4):
        scale = 1.5 ** attempt
        deform = mass_effect(lesions, anat, scale)
        deform.extra_axial = extra_axial_thickness(lesions, frame, coords, anat, scale,
                                                   min_thick)
        comp = Compositor(coords[0].shape, -1000.0, 0)
        fields = render_anatomy(frame, coords, anat, comp, pixel_size, deform,
                                min_feature=1.1 * pixel_size)
        paint_lesions(lesions, frame, fields, comp, pixel_size, anat, scale, min_thick, y_world)
        del fields
        hu, tissues, sub, pure = comp.finish(zs, len(TISSUE_NAMES))
        del comp
        mask = np.where(tissues == BLOOD, sub, 0).astype(np.uint8)
        present = {SUBTYPES[k - 1] for k in np.unique(mask) if k > 0}
        if present >= set(subtypes):
            break

    # --- image noise: slightly correlated Gaussian, fixed SD -----------------------------
    noise, noise_sd = _image_noise(seed, hu.shape, difficulty)
    hu += noise

    labels = np.zeros((n_slices, 1 + len(SUBTYPES)), np.uint8)
    for k in range(1, len(SUBTYPES) + 1):
        labels[:, k] = (mask == k).any(axis=(1, 2))
    labels[:, 0] = labels[:, 1:].any(axis=1)
    settings = {
        "generator": "sinotriage.phantoms.head_ct", "version": GENERATOR_VERSION,
        "seed": seed, "n_slices": n_slices, "image_size": image_size,
        "pixel_size": pixel_size, "difficulty": difficulty, "prevalence": prevalence,
        "subtypes": list(subtypes), "lesions": [le.to_dict() for le in lesions],
        "lesion_scale": scale, "noise_sd_hu": noise_sd, "z_range_mm": [z_lo, z_hi],
        "sub_slices": zs, "midline_shift_mm": round(abs(deform.shift), 2),
        "anatomy": {"axes_mm": [round(a, 2) for a in anat.axes],
                    "atrophy": round(anat.atrophy, 3),
                    "yaw_deg": round(float(np.rad2deg(anat.yaw)), 2),
                    "pitch_deg": round(float(np.rad2deg(anat.pitch)), 2),
                    "roll_deg": round(float(np.rad2deg(anat.roll)), 2),
                    "tissue_hu": {k: round(v, 2) for k, v in anat.hu.items()}},
    }
    for arr in (hu, tissues, mask, labels, pure):
        arr.setflags(write=False)
    return HeadCT(hu=hu, tissues=tissues, tissue_names=TISSUE_NAMES, mask=mask, labels=labels,
                  label=int(labels[:, 0].any()), spacing=(float(dz), pixel_size, pixel_size),
                  settings=settings, pure=pure)
