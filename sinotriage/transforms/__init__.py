"""MONAI-style transforms wrapping :mod:`sinotriage.windowing`.

Array transforms take one channel-first array ``(C, *spatial)`` (numpy or torch, MONAI's
``MetaTensor`` included); dictionary transforms (suffix ``d``) apply the array transform to the
given keys of a sample dict. Both work inside ``monai.transforms.Compose`` next to MONAI's own
transforms (``RandFlipd``, ``RandAffined``, ...).

>>> from monai.transforms import Compose, RandFlipd
>>> from sinotriage.transforms import MultiWindowd
>>> pipeline = Compose([MultiWindowd("image", ("brain", "subdural", "bone")),
...                     RandFlipd("image", prob=0.5, spatial_axis=1)])
"""

from __future__ import annotations

from sinotriage.transforms.array import (
    BinDetectors,
    BrainCoverageFilter,
    CenterCropSlices,
    HistEqualize,
    MultiWindow,
    ResizeSlices,
    ScaleHU,
    SliceAverage,
    StackAdjacent,
    Window,
)
from sinotriage.transforms.dictionary import (
    BinDetectorsd,
    BrainCoverageFilterd,
    CenterCropSlicesd,
    HistEqualized,
    MultiWindowd,
    ResizeSlicesd,
    ScaleHUd,
    SliceAveraged,
    StackAdjacentd,
    Windowd,
)

__all__ = [
    "BinDetectors",
    "BinDetectorsd",
    "BrainCoverageFilter",
    "BrainCoverageFilterd",
    "CenterCropSlices",
    "CenterCropSlicesd",
    "HistEqualize",
    "HistEqualized",
    "MultiWindow",
    "MultiWindowd",
    "ResizeSlices",
    "ResizeSlicesd",
    "ScaleHU",
    "ScaleHUd",
    "SliceAverage",
    "SliceAveraged",
    "StackAdjacent",
    "StackAdjacentd",
    "Window",
    "Windowd",
]
