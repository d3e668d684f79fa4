"""Names and constants shared by every layer: labels, splits and the attenuation of water.

This is the one home of these values; modules import them from here.
"""

from __future__ import annotations

__all__ = ["LABEL_NAMES", "MU_WATER", "SPLITS", "SUBTYPE_NAMES"]

#: slice / scan label names, in the RSNA 2019 challenge order used by every label array
LABEL_NAMES: tuple[str, ...] = (
    "any",
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
)
#: the five hemorrhage subtypes (:data:`LABEL_NAMES` without ``"any"``)
SUBTYPE_NAMES: tuple[str, ...] = LABEL_NAMES[1:]

#: the split names of a store, in order
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: linear attenuation of water at about 70 keV, in mm^-1 (NIST XCOM); HU are defined against it
MU_WATER: float = 0.0192
