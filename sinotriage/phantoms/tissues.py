"""Tissue classes of the synthetic head and their Hounsfield-unit ranges, with sources.

Every voxel of :func:`sinotriage.phantoms.head_ct` carries one tissue class (the class that
covers the majority of the voxel). The ranges below are the *noise-free* values the generator
draws from: each subject gets one value per tissue inside its range (plus a small smooth
inhomogeneity that stays inside it), and image noise of a few HU is added afterwards.

Sources (standard radiology references for CT numbers of head tissues)
----------------------------------------------------------------------
[K] W. A. Kalender, *Computed Tomography: Fundamentals, System Technology, Image Quality,
    Applications*, 3rd ed., Publicis, 2011, ch. 1 (CT-value scale of body tissues: air -1000,
    fat -100 .. -80, water 0, CSF 0 .. 15, soft tissue 20 .. 60, bone 400 .. >1500).
[L] M. H. Lev, R. G. Gonzalez, "CT angiography and CT perfusion imaging", in *Brain Mapping:
    The Methods*, 2nd ed., Academic Press, 2002, pp. 427-484 (gray matter 35 .. 45, white matter
    20 .. 30 HU on unenhanced head CT).
[N] P. F. J. New, S. Aronow, "Attenuation measurements of whole blood and blood fractions in
    computed tomography", *Radiology* 121(3):635-640, 1976 (whole blood about 56 HU rising
    linearly with haematocrit; retracted clot up to about 80-90 HU).
[P] P. M. Parizel et al., "Intracranial hemorrhage: principles of CT and MRI interpretation",
    *Eur. Radiol.* 11(9):1770-1783, 2001 (acute haematoma 50 .. 90 HU, perihaematomal oedema
    hypodense relative to white matter).
[S] Skull: cortical tables 1000 .. 1800 HU and diploe 300 .. 700 HU, the ranges of the project
    issue, consistent with [K] (compact bone above 1000 HU, spongy bone a few hundred HU) and
    Radiopaedia, "Hounsfield unit" (https://radiopaedia.org/articles/hounsfield-unit).
[D] Dural reflections (falx, tentorium) are slightly hyperdense to brain, 45 .. 70 HU
    (Radiopaedia, "Falx cerebri"; the normal falx is a well-known mimic of interhemispheric
    subdural blood).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TISSUES", "TISSUE_NAMES", "BRAIN_TISSUES", "Tissue", "tissue_id"]


@dataclass(frozen=True)
class Tissue:
    """One tissue class.

    Attributes
    ----------
    id : int
        Value stored in ``HeadCT.tissues``.
    name : str
        Class name (``HeadCT.tissue_names[id]``).
    hu_range : tuple of float
        Inclusive noise-free HU range ``(low, high)``.
    source : str
        Reference key(s) in this module's docstring.
    """

    id: int
    name: str
    hu_range: tuple[float, float]
    source: str


TISSUES: tuple[Tissue, ...] = (
    Tissue(0, "air", (-1000.0, -1000.0), "K"),
    Tissue(1, "fat", (-100.0, -60.0), "K"),
    Tissue(2, "soft_tissue", (20.0, 60.0), "K"),
    Tissue(3, "cortical_bone", (1000.0, 1800.0), "S"),
    Tissue(4, "diploe", (300.0, 700.0), "S"),
    Tissue(5, "csf", (0.0, 15.0), "K"),
    Tissue(6, "gray_matter", (35.0, 45.0), "L"),
    Tissue(7, "white_matter", (20.0, 30.0), "L"),
    Tissue(8, "dura", (45.0, 70.0), "D"),
    Tissue(9, "blood", (50.0, 90.0), "N, P"),
    Tissue(10, "edema", (10.0, 22.0), "P"),
    Tissue(11, "vitreous", (0.0, 20.0), "K"),
)

TISSUE_NAMES: tuple[str, ...] = tuple(t.name for t in TISSUES)

#: Intracranial tissue classes that make up "brain voxels" for the intensity baseline.
BRAIN_TISSUES: tuple[str, ...] = ("csf", "gray_matter", "white_matter", "blood", "edema")


def tissue_id(name: str) -> int:
    """Class id of tissue ``name``; raises ``ValueError`` listing the names if unknown."""
    try:
        return TISSUE_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown tissue {name!r}; expected one of {TISSUE_NAMES}") from None
