"""Dictionary forms of the windowing transforms (MONAI ``MapTransform``s).

Each ``Xd(keys, ...)`` applies the array transform ``X(...)`` to ``data[key]`` for each key and
returns a shallow copy of the dict; ``allow_missing_keys`` as in MONAI.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from sinotriage import windowing as W
from sinotriage.transforms import array as A

__all__ = [
    "Windowd",
    "MultiWindowd",
    "HistEqualized",
    "SliceAveraged",
    "BrainCoverageFilterd",
    "ResizeSlicesd",
    "CenterCropSlicesd",
    "StackAdjacentd",
    "ScaleHUd",
    "BinDetectorsd",
]


class _Mapped(MapTransform):
    """Apply ``self.transform`` to every key."""

    transform: Any

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class Windowd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.Window`."""

    def __init__(self, keys: KeysCollection, name: str | None = None, *, level: float | None = None,
                 width: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.Window(name, level=level, width=width)


class MultiWindowd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.MultiWindow`."""

    def __init__(self, keys: KeysCollection, names: Sequence[str] = ("brain", "subdural", "bone"), *,
                 head_threshold: float = W.HEAD_THRESHOLD_HU, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.MultiWindow(names, head_threshold=head_threshold)


class HistEqualized(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.HistEqualize`."""

    def __init__(self, keys: KeysCollection, per: str = "slice", *,
                 head_threshold: float = W.HEAD_THRESHOLD_HU, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.HistEqualize(per, head_threshold=head_threshold)


class SliceAveraged(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.SliceAverage`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.SliceAverage()


class BrainCoverageFilterd(MapTransform):
    """Drop the same slices from every key, chosen on ``source_key`` (default: the first key).

    The slices of ``data[source_key]`` (HU, ``(C, D, H, W)``) with less than ``min_fraction``
    brain pixels are dropped from all ``keys`` (e.g. the image and its mask), so they stay
    aligned.
    """

    def __init__(self, keys: KeysCollection, min_fraction: float = 0.2, *,
                 source_key: Hashable | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.filter = A.BrainCoverageFilter(min_fraction)
        self.source_key = self.keys[0] if source_key is None else source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.source_key not in d:
            raise KeyError(f"BrainCoverageFilterd: source_key {self.source_key!r} not in the sample "
                           f"(keys: {list(d)})")
        index = np.flatnonzero(self.filter.keep(d[self.source_key]))
        for key in self.key_iterator(d):
            x = d[key]
            d[key] = x[:, index] if isinstance(x, np.ndarray) else x[:, torch.as_tensor(index)]
        return d


class ResizeSlicesd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.ResizeSlices`."""

    def __init__(self, keys: KeysCollection, size: int | Sequence[int], mode: str = "bilinear",
                 allow_missing_keys: bool = False, *, antialias: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.ResizeSlices(size, mode, antialias=antialias)


class ScaleHUd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.ScaleHU`."""

    def __init__(self, keys: KeysCollection, scale: float = 1000.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.ScaleHU(scale)


class BinDetectorsd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.BinDetectors`."""

    def __init__(self, keys: KeysCollection, factor: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.BinDetectors(factor)


class CenterCropSlicesd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.CenterCropSlices`."""

    def __init__(self, keys: KeysCollection, size: int | Sequence[int], pad_value: float = 0.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.CenterCropSlices(size, pad_value)


class StackAdjacentd(_Mapped):
    """Dictionary form of :class:`~sinotriage.transforms.array.StackAdjacent`."""

    def __init__(self, keys: KeysCollection, k: int = 1, edge: str = "replicate",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = A.StackAdjacent(k, edge)
