"""CT windowing and the slice operations of the head-CT pipelines.

Every function takes Hounsfield units (HU) as a ``numpy.ndarray`` or a ``torch.Tensor``
and returns the same kind (float32; a tensor stays on its device). Images are ``(..., H, W)``,
volumes ``(D, H, W)`` with ``D`` the axial slice index (inferior to superior).

A *window* ``(L, W)`` (level, width, both in HU) maps HU to ``[0, 1]``::

    window(hu) = clip((hu - (L - W / 2)) / W, 0, 1)

so ``L - W/2`` and below is black (0) and ``L + W/2`` and above is white (1).

Named windows (:data:`WINDOWS`, level/width in HU, with their sources):

``brain`` 40/80
    The standard brain (parenchyma) window; used as the first RGB channel by the CNN-LSTM
    (Nguyen et al. 2020, "A novel method ... CNN-LSTM ... intracranial hemorrhage", Sec. 2:
    "brain window (l = 40, w = 80)") and the adjacent-slice paper (Nguyen et al. 2021,
    "Slice-level detection of intracranial hemorrhage on CT using deep descriptors of adjacent
    slices", Sec. 2.1); RADnet thresholds to it as its only window.
``subdural`` 75/215
    The subdural window of the same two papers ("subdural window (l = 75, w = 215)").
``subdural_rsna`` 80/200
    The subdural window of the RSNA 2019 challenge kernels (the widely shared "brain /
    subdural / bone = 40/80, 80/200, 600/2800" 3-channel recipe).
``bone`` 600/2800
    The bone window of the CNN-LSTM and adjacent-slice papers ("bony window (l = 600, w = 2800)").
``blood`` 50/175 and ``stroke`` 40/40
    The SinoCT study (Hooper et al. 2021, Radiology: AI 3(4):e200229) and the Stanford DeiT
    follow-up (``stanford-sinogram-unet-deit``, Sec. 4.1 and Fig. 1) use a *blood* and a
    *stroke* window plus histogram equalization as the three input channels, but neither text
    states the values. We use the values of Radiopaedia's "CT head: an approach" that CT
    preprocessing code of that line of work uses: blood 50/175 (inside Radiopaedia's
    blood/subdural range of level 50-100, width 130-300, wide enough to keep acute blood,
    ~50-90 HU, apart from bone) and stroke 40/40 (the narrow grey/white-matter window,
    Radiopaedia's W:40 L:40, also Mainali et al. 2014 "stroke windows").
``soft_tissue`` 40/380
    The usual soft-tissue window (Radiopaedia's range W:350-400, L:20-60).

Besides the windows, :func:`multi_window` accepts the name ``"histeq"``: histogram
equalization over the head (:func:`hist_equalize`), the third SinoCT channel.

Slice operations used by the seed projects: :func:`slice_average` (the DeiT pipeline's
average over slices), :func:`brain_coverage` / :func:`brain_slices` (drop slices with less
than 20% brain pixels, as in the ICH transfer-learning project), :func:`resize` and
:func:`center_crop`, and :func:`stack_adjacent` (slices k-1, k, k+1 as channels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "WINDOWS",
    "HISTEQ",
    "CHANNEL_NAMES",
    "window",
    "window_bounds",
    "multi_window",
    "hist_equalize",
    "head_mask",
    "slice_average",
    "brain_coverage",
    "brain_slices",
    "resize",
    "center_crop",
    "stack_adjacent",
]

#: named CT windows: name -> (level, width) in HU; sources in the module docstring
WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "subdural_rsna": (80.0, 200.0),
    "bone": (600.0, 2800.0),
    "blood": (50.0, 175.0),
    "stroke": (40.0, 40.0),
    "soft_tissue": (40.0, 380.0),
}

#: the channel name of histogram equalization over the head in :func:`multi_window`
HISTEQ = "histeq"

#: every name :func:`multi_window` accepts
CHANNEL_NAMES: tuple[str, ...] = (*WINDOWS, HISTEQ)

#: HU above which a pixel belongs to the head (air is about -1000 HU, fat about -100 HU)
HEAD_THRESHOLD_HU = -500.0

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

_RESIZE_MODES = ("bilinear", "nearest", "bicubic", "area")
_EDGE_MODES = ("replicate", "zero")


# ----------------------------------------------------------------------------- helpers
def _to_tensor(x: Any, name: str, min_dim: int = 0) -> tuple[torch.Tensor, bool]:
    """Convert ``x`` to a float32 tensor; return it and whether the input was numpy."""
    if isinstance(x, torch.Tensor):
        t, was_numpy = x, False
    elif isinstance(x, np.ndarray):
        t, was_numpy = torch.from_numpy(np.ascontiguousarray(x)), True
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers (HU), got dtype {t.dtype}")
    if t.ndim < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(t.shape)}")
    return t.to(torch.float32), was_numpy


def _back(t: torch.Tensor, was_numpy: bool) -> Any:
    return t.numpy() if was_numpy else t


def _check_name(name: str, choices: Sequence[str], what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, got {type(name).__name__}")
    if name not in choices:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(choices)}")
    return name


def window_bounds(name: str | None = None, *, level: float | None = None,
                  width: float | None = None) -> tuple[float, float]:
    """Return the ``(lower, upper)`` HU bounds ``(L - W/2, L + W/2)`` of a window.

    Parameters
    ----------
    name
        A key of :data:`WINDOWS`; or ``None`` with ``level`` and ``width`` given.
    level, width
        Window level and width in HU (``width > 0``).

    Raises
    ------
    ValueError
        Unknown name, both or neither of name and level/width, or ``width <= 0``.
    """
    level, width = _resolve(name, level, width)
    return level - width / 2.0, level + width / 2.0


def _resolve(name: str | None, level: float | None, width: float | None) -> tuple[float, float]:
    if name is not None:
        if level is not None or width is not None:
            raise ValueError(f"give either a window name or level=/width=, not both (name={name!r}, "
                             f"level={level}, width={width})")
        return WINDOWS[_check_name(name, tuple(WINDOWS), "window name")]
    if level is None or width is None:
        raise ValueError(f"give a window name (one of {', '.join(WINDOWS)}) or both level= and "
                         f"width=, got level={level}, width={width}")
    level, width = float(level), float(width)
    if not np.isfinite(level) or not np.isfinite(width) or width <= 0:
        raise ValueError(f"window width must be a finite number > 0 and level finite, "
                         f"got level={level}, width={width}")
    return level, width


# ----------------------------------------------------------------------------- windows
def window(hu: ArrayT, name: str | None = None, *, level: float | None = None,
           width: float | None = None) -> ArrayT:
    """Apply a CT window: ``clip((hu - (L - W/2)) / W, 0, 1)``.

    Parameters
    ----------
    hu
        Hounsfield units, any shape, numpy array or torch tensor.
    name
        A key of :data:`WINDOWS` (``brain`` 40/80, ``subdural`` 75/215, ``subdural_rsna``
        80/200, ``bone`` 600/2800, ``blood`` 50/175, ``stroke`` 40/40, ``soft_tissue`` 40/380).
    level, width
        Instead of a name: window level and width in HU (``width > 0``).

    Returns
    -------
    Same kind and shape as ``hu``, float32, values in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> window(np.array([0.0, 40.0, 80.0]), "brain").tolist()
    [0.0, 0.5, 1.0]
    """
    level, width = _resolve(name, level, width)
    t, was_numpy = _to_tensor(hu, "hu")
    lower = torch.tensor(level - width / 2.0, dtype=torch.float32)
    out = ((t - lower) / torch.tensor(width, dtype=torch.float32)).clamp_(0.0, 1.0)
    return _back(out, was_numpy)


def multi_window(hu: ArrayT, names: Sequence[str] = ("brain", "subdural", "bone"), *,
                 head_threshold: float = HEAD_THRESHOLD_HU) -> ArrayT:
    """Stack several windows as channels: ``(..., H, W) -> (..., K, H, W)``.

    Parameters
    ----------
    hu
        HU images ``(..., H, W)`` (at least 2-D).
    names
        ``K`` channel names, each a key of :data:`WINDOWS` or ``"histeq"`` (histogram
        equalization over the head of each slice, :func:`hist_equalize`). The default is the
        brain/subdural/bone RGB-like stack of the CNN-LSTM paper; SinoCT uses
        ``("blood", "stroke", "histeq")``.
    head_threshold
        HU threshold of the head mask for ``"histeq"``.

    Returns
    -------
    float32 ``(..., K, H, W)`` in ``[0, 1]``, same kind as ``hu``.
    """
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ValueError("names must list at least one window name, got an empty sequence")
    for n in names:
        _check_name(n, CHANNEL_NAMES, "channel name")
    t, was_numpy = _to_tensor(hu, "hu", min_dim=2)
    channels = [hist_equalize(t, head_threshold=head_threshold) if n == HISTEQ else window(t, n)
                for n in names]
    return _back(torch.stack(channels, dim=-3), was_numpy)


# ----------------------------------------------------------------------------- histogram eq.
def head_mask(hu: ArrayT, threshold: float = HEAD_THRESHOLD_HU) -> ArrayT:
    """Boolean mask of the head: ``hu > threshold`` (default -500 HU, between air and fat)."""
    t, was_numpy = _to_tensor(hu, "hu")
    return _back(t > float(threshold), was_numpy)


def hist_equalize(hu: ArrayT, mask: ArrayT | None = None, *,
                  head_threshold: float = HEAD_THRESHOLD_HU, per: str = "slice") -> ArrayT:
    """Histogram equalization over the head, not the air.

    Each head pixel becomes the empirical CDF of the head's HU at its value,
    ``(number of head pixels with HU <= x) / (number of head pixels)``, so the head's values
    spread uniformly over ``(0, 1]``; pixels outside the head are 0. Equalizing over the
    whole image instead would spend half the grey levels on air.

    Parameters
    ----------
    hu
        HU images ``(..., H, W)``.
    mask
        Boolean head mask of the same shape; default ``hu > head_threshold``.
    head_threshold
        HU threshold of the default head mask (-500 HU).
    per
        ``"slice"``: one CDF per ``(H, W)`` image; ``"volume"``: one CDF over all of ``hu``.

    Returns
    -------
    float32 of the shape of ``hu``, values in ``[0, 1]``.
    """
    _check_name(per, ("slice", "volume"), "per")
    t, was_numpy = _to_tensor(hu, "hu", min_dim=2)
    if mask is None:
        m = t > float(head_threshold)
    else:
        m, _ = _to_tensor(mask, "mask")
        if m.shape != t.shape:
            raise ValueError(f"mask must have the shape of hu {tuple(t.shape)}, got {tuple(m.shape)}")
        m = m.to(t.device) != 0
    if per == "volume":
        flat, mflat = t.reshape(1, -1), m.reshape(1, -1)
    else:
        flat, mflat = t.reshape(-1, t.shape[-2] * t.shape[-1]), m.reshape(-1, t.shape[-2] * t.shape[-1])
    out = torch.zeros_like(flat)
    for i in range(flat.shape[0]):
        values = flat[i][mflat[i]]
        if values.numel() == 0:
            continue
        ordered = torch.sort(values).values
        ranks = torch.searchsorted(ordered, values, right=True)
        out[i][mflat[i]] = ranks.to(torch.float32) / float(values.numel())
    return _back(out.reshape(t.shape), was_numpy)


# ----------------------------------------------------------------------------- slice operations
def slice_average(x: ArrayT, keep: ArrayT | Sequence[bool] | None = None, *, axis: int = 0) -> ArrayT:
    """Average the slices of a (windowed) volume into one image per channel.

    The DeiT pipeline of the SinoCT follow-up windows every slice into ``K`` channels and
    averages over the slices: ``(D, K, H, W) -> (K, H, W)``.

    Parameters
    ----------
    x
        Volume with the slice axis at ``axis`` (e.g. ``(D, H, W)`` or ``(D, K, H, W)``).
    keep
        Optional boolean ``(D,)``: average only these slices (e.g. :func:`brain_slices`).
    axis
        The slice axis (default 0).

    Returns
    -------
    float32, ``x`` without the slice axis.
    """
    t, was_numpy = _to_tensor(x, "x", min_dim=1)
    if not -t.ndim <= axis < t.ndim:
        raise ValueError(f"axis must be in [{-t.ndim}, {t.ndim}) for x of shape {tuple(t.shape)}, got {axis}")
    if keep is not None:
        k = torch.as_tensor(np.asarray(keep) if not isinstance(keep, torch.Tensor) else keep)
        if k.ndim != 1 or k.shape[0] != t.shape[axis]:
            raise ValueError(f"keep must be a boolean vector of length {t.shape[axis]} (the slices), "
                             f"got shape {tuple(k.shape)}")
        k = k.to(torch.bool)
        if not bool(k.any()):
            raise ValueError("keep selects no slice; nothing to average")
        t = t.index_select(axis, torch.nonzero(k.to(t.device)).flatten())
    return _back(t.mean(dim=axis), was_numpy)


def brain_coverage(hu: ArrayT, *, name: str = "brain") -> np.ndarray:
    """Fraction of each slice's pixels inside a window's open HU range (default brain, 0-80 HU).

    The "img_pct_window" of the RSNA kernels used by the ICH transfer-learning project: the
    share of pixels whose HU lies strictly between the window's bounds, i.e. that the
    window neither clips to black nor to white.

    Parameters
    ----------
    hu
        HU ``(..., H, W)``.
    name
        Window whose bounds define "brain" (a key of :data:`WINDOWS`).

    Returns
    -------
    numpy float64 ``(...)``: one fraction in ``[0, 1]`` per slice.
    """
    lower, upper = window_bounds(name)
    t, _ = _to_tensor(hu, "hu", min_dim=2)
    inside = (t > lower) & (t < upper)
    return inside.flatten(-2).to(torch.float64).mean(dim=-1).cpu().numpy()


def brain_slices(hu: ArrayT, min_fraction: float = 0.2, *, name: str = "brain") -> np.ndarray:
    """Boolean ``(D,)`` of the slices of a volume ``(D, H, W)`` to keep.

    A slice is kept when at least ``min_fraction`` (default 20%, as in the ICH
    transfer-learning project) of its pixels lie in the brain window's range
    (:func:`brain_coverage`). Use ``volume[brain_slices(volume)]`` to drop the rest.
    """
    if not 0.0 <= float(min_fraction) <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    t, _ = _to_tensor(hu, "hu", min_dim=3)
    if t.ndim != 3:
        raise ValueError(f"hu must be a volume (D, H, W), got shape {tuple(t.shape)}")
    return brain_coverage(t, name=name) >= float(min_fraction)


def _size_pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int or a pair (H, W), got {size}")
    return size  # type: ignore[return-value]


def resize(x: ArrayT, size: int | Sequence[int], *, mode: str = "bilinear",
           antialias: bool = False) -> ArrayT:
    """Resize images ``(..., H, W) -> (..., h, w)`` by interpolation.

    Parameters
    ----------
    x
        Images (HU or windowed), at least 2-D.
    size
        Output ``(h, w)`` or one int for a square.
    mode
        One of ``bilinear`` (default), ``nearest`` (for label maps), ``bicubic``, ``area``.
        Bilinear and bicubic use ``align_corners=False`` (pixel centres, as in the geometry).
    antialias
        Low-pass filter when shrinking (bilinear and bicubic only; ``F.interpolate``'s option).
    """
    _check_name(mode, _RESIZE_MODES, "resize mode")
    h, w = _size_pair(size, "size")
    t, was_numpy = _to_tensor(x, "x", min_dim=2)
    lead = t.shape[:-2]
    flat = t.reshape(-1, 1, *t.shape[-2:])
    kwargs: dict[str, Any] = ({"align_corners": False, "antialias": bool(antialias)}
                              if mode in ("bilinear", "bicubic") else {})
    out = F.interpolate(flat, size=(h, w), mode=mode, **kwargs)
    return _back(out.reshape(*lead, h, w), was_numpy)


def center_crop(x: ArrayT, size: int | Sequence[int], *, pad_value: float = 0.0) -> ArrayT:
    """Crop the centre ``(h, w)`` of images ``(..., H, W)``, padding with ``pad_value`` if smaller.

    With an odd difference the extra row/column is removed from (or added at) the bottom/right.
    Pad HU images with air (-1024), windowed images with 0.
    """
    h, w = _size_pair(size, "size")
    t, was_numpy = _to_tensor(x, "x", min_dim=2)
    H, W = t.shape[-2:]
    pad_h, pad_w = max(h - H, 0), max(w - W, 0)
    if pad_h or pad_w:
        t = F.pad(t, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                  value=float(pad_value))
        H, W = t.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return _back(t[..., top:top + h, left:left + w].contiguous(), was_numpy)


def stack_adjacent(volume: ArrayT, k: int = 1, *, edge: str = "replicate") -> ArrayT:
    """Stack each slice with its neighbours as channels: ``(D, ...) -> (D, 2k+1, ...)``.

    Channel ``j`` of output slice ``i`` is input slice ``i - k + j`` (so with ``k=1``: slices
    ``i-1, i, i+1``). Beyond the ends, ``edge="replicate"`` repeats the end slice and
    ``edge="zero"`` uses zeros.
    """
    _check_name(edge, _EDGE_MODES, "edge")
    if not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    t, was_numpy = _to_tensor(volume, "volume", min_dim=1)
    D = t.shape[0]
    idx = torch.arange(D).unsqueeze(1) + torch.arange(-k, k + 1).unsqueeze(0)  # (D, 2k+1)
    out = t[idx.clamp(0, D - 1).to(t.device)]
    if edge == "zero":
        outside = ((idx < 0) | (idx >= D)).to(t.device)
        out[outside] = 0.0
    return _back(out, was_numpy)
