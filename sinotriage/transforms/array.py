"""Array forms of the windowing transforms: settings in ``__init__``, work in ``__call__``.

Inputs are channel-first, MONAI's convention: ``(C, H, W)`` images or ``(C, D, H, W)``
volumes (``D`` axial slices), numpy arrays or torch tensors; the output has the input's kind.
Values are Hounsfield units unless a transform says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import ScaleIntensityRange, Transform

from sinotriage import windowing as W
from sinotriage.operators.subsampling import bin_channels

__all__ = [
    "Window",
    "MultiWindow",
    "HistEqualize",
    "SliceAverage",
    "BrainCoverageFilter",
    "ResizeSlices",
    "CenterCropSlices",
    "StackAdjacent",
    "ScaleHU",
    "BinDetectors",
]


def _check_channel_first(img: Any, min_dim: int, name: str) -> None:
    if not isinstance(img, np.ndarray | torch.Tensor):
        raise TypeError(f"{name} expects a numpy array or torch tensor, got {type(img).__name__}")
    if img.ndim < min_dim:
        raise ValueError(f"{name} expects a channel-first array with at least {min_dim} dimensions, "
                         f"got shape {tuple(img.shape)}")


class Window(Transform):
    """Apply one CT window, ``clip((hu - (L - W/2)) / W, 0, 1)``, element-wise (any shape).

    Parameters
    ----------
    name
        A key of :data:`sinotriage.windowing.WINDOWS`, or ``None`` with ``level``/``width`` (HU).
    """

    def __init__(self, name: str | None = None, *, level: float | None = None,
                 width: float | None = None) -> None:
        W.window_bounds(name, level=level, width=width)  # validate now, not at the first sample
        self.name, self.level, self.width = name, level, width

    def __call__(self, img: Any) -> Any:
        return W.window(img, self.name, level=self.level, width=self.width)


class MultiWindow(Transform):
    """Replace each channel by ``K`` windowed copies: ``(C, *spatial) -> (C*K, *spatial)``.

    For a single-channel HU image ``(1, H, W)`` this is the RGB-like ``(K, H, W)`` stack of the
    CNN-LSTM paper (``names=("brain", "subdural", "bone")``) or of SinoCT
    (``("blood", "stroke", "histeq")``). Output channel ``c*K + k`` is window ``k`` of input
    channel ``c``.
    """

    def __init__(self, names: Sequence[str] = ("brain", "subdural", "bone"), *,
                 head_threshold: float = W.HEAD_THRESHOLD_HU) -> None:
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names:
            raise ValueError("names must list at least one window name, got an empty sequence")
        for n in names:
            W._check_name(n, W.CHANNEL_NAMES, "channel name")
        self.names, self.head_threshold = names, head_threshold

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 3, "MultiWindow")
        out = W.multi_window(img, self.names, head_threshold=self.head_threshold)  # (C, *sp[:-2], K, H, W)
        k = len(self.names)
        if isinstance(out, np.ndarray):
            out = np.moveaxis(out, -3, 1)
        else:
            out = torch.movedim(out, -3, 1)
        return out.reshape((img.shape[0] * k, *img.shape[1:]))


class HistEqualize(Transform):
    """Histogram equalization over the head of each ``(H, W)`` slice (or each channel's volume).

    See :func:`sinotriage.windowing.hist_equalize`; ``per="volume"`` equalizes each channel
    ``(D, H, W)`` with one CDF.
    """

    def __init__(self, per: str = "slice", *, head_threshold: float = W.HEAD_THRESHOLD_HU) -> None:
        W._check_name(per, ("slice", "volume"), "per")
        self.per, self.head_threshold = per, head_threshold

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 3, "HistEqualize")
        if self.per == "slice":
            return W.hist_equalize(img, head_threshold=self.head_threshold)
        parts = [W.hist_equalize(img[c], head_threshold=self.head_threshold, per="volume")
                 for c in range(img.shape[0])]
        return np.stack(parts) if isinstance(img, np.ndarray) else torch.stack(parts)


class SliceAverage(Transform):
    """Average a channel-first volume over its slices: ``(C, D, H, W) -> (C, H, W)``.

    The DeiT pipeline's reduction of a windowed study to one 2-D image per channel.
    """

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 4, "SliceAverage")
        return W.slice_average(img, axis=1)


class BrainCoverageFilter(Transform):
    """Drop the slices of ``(C, D, H, W)`` HU volumes with too little brain.

    A slice is kept when at least ``min_fraction`` of channel 0's pixels lie in the brain
    window's HU range (:func:`sinotriage.windowing.brain_slices`). Apply it before windowing.
    """

    def __init__(self, min_fraction: float = 0.2) -> None:
        if not 0.0 <= float(min_fraction) <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
        self.min_fraction = float(min_fraction)

    def keep(self, img: Any) -> np.ndarray:
        """Boolean ``(D,)`` of the slices to keep."""
        _check_channel_first(img, 4, "BrainCoverageFilter")
        return W.brain_slices(img[0], self.min_fraction)

    def __call__(self, img: Any) -> Any:
        keep = self.keep(img)
        index = np.flatnonzero(keep)
        if isinstance(img, np.ndarray):
            return img[:, index]
        return img[:, torch.as_tensor(index, device=img.device)]


class ResizeSlices(Transform):
    """Resize the last two (in-plane) axes to ``size`` (see :func:`sinotriage.windowing.resize`).

    It acts on the trailing axes only, so it applies to one item ``(C, ...)`` or to a batch
    ``(B, C, ...)`` alike. ``antialias`` low-pass filters when shrinking (bilinear/bicubic).
    """

    def __init__(self, size: int | Sequence[int], mode: str = "bilinear", *,
                 antialias: bool = False) -> None:
        W._check_name(mode, W._RESIZE_MODES, "resize mode")
        self.size, self.mode, self.antialias = W._size_pair(size, "size"), mode, bool(antialias)

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 3, "ResizeSlices")
        return W.resize(img, self.size, mode=self.mode, antialias=self.antialias)


class ScaleHU(ScaleIntensityRange):
    """Hounsfield units to model units: ``hu / scale`` (water 0, air -1 for ``scale=1000``).

    MONAI's ``ScaleIntensityRange(a_min=0, a_max=scale, b_min=0, b_max=1)`` without clipping;
    the output has the input's kind (a plain tensor for a tensor, not a ``MetaTensor``). Any
    shape: items and batches alike.
    """

    def __init__(self, scale: float = 1000.0) -> None:
        if not float(scale) > 0:
            raise ValueError(f"scale must be > 0 HU, got {scale}")
        super().__init__(a_min=0.0, a_max=float(scale), b_min=0.0, b_max=1.0, clip=False)
        self.scale = float(scale)

    def __call__(self, img: Any) -> Any:  # type: ignore[override]
        out = super().__call__(img)
        if isinstance(img, np.ndarray):
            return np.asarray(out.as_tensor() if hasattr(out, "as_tensor") else out)
        return out.as_tensor() if hasattr(out, "as_tensor") else out


class BinDetectors(Transform):
    """Mean of each run of ``factor`` adjacent detector channels (the last axis) of sinograms.

    ``(..., V, C) -> (..., V, C // factor)``, the array part of
    :func:`sinotriage.operators.subsample_detectors` (remainder channels dropped); items and
    batches alike.
    """

    def __init__(self, factor: int) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
        self.factor = factor

    def __call__(self, img: Any) -> Any:
        if self.factor == 1:
            return img
        if isinstance(img, np.ndarray):
            return bin_channels(torch.from_numpy(img), self.factor).numpy()
        return bin_channels(img, self.factor)


class CenterCropSlices(Transform):
    """Centre-crop (or pad with ``pad_value``) the in-plane axes to ``size``."""

    def __init__(self, size: int | Sequence[int], pad_value: float = 0.0) -> None:
        self.size, self.pad_value = W._size_pair(size, "size"), float(pad_value)

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 3, "CenterCropSlices")
        return W.center_crop(img, self.size, pad_value=self.pad_value)


class StackAdjacent(Transform):
    """Adjacent slices as channels: ``(1, D, H, W) -> (2k+1, D, H, W)``.

    Channel ``j`` at slice ``i`` holds slice ``i - k + j`` (ends handled by ``edge``:
    ``"replicate"`` or ``"zero"``), so ``out[:, i]`` is the ``(2k+1, H, W)`` input of a 2-D
    model for slice ``i``: slices ``i-1, i, i+1`` for ``k=1``.
    """

    def __init__(self, k: int = 1, edge: str = "replicate") -> None:
        W._check_name(edge, W._EDGE_MODES, "edge")
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        self.k, self.edge = k, edge

    def __call__(self, img: Any) -> Any:
        _check_channel_first(img, 4, "StackAdjacent")
        if img.shape[0] != 1:
            raise ValueError(f"StackAdjacent expects one channel (1, D, H, W), got shape {tuple(img.shape)}")
        out = W.stack_adjacent(img[0], self.k, edge=self.edge)  # (D, 2k+1, H, W)
        return np.swapaxes(out, 0, 1).copy() if isinstance(out, np.ndarray) else out.transpose(0, 1).contiguous()
