"""Fewer views or coarser channels: the data and its geometry change together."""

from __future__ import annotations

import numpy as np
import torch

from sinotriage.errors import InputError
from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators._checks import check_float_tensor, check_geometry, check_trailing_shape

Geometry = FanBeamGeometry | ParallelBeamGeometry


def _check_factor(factor: object, total: int, what: str, must_divide: bool) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int):
        raise TypeError(f"factor must be an int, got {type(factor).__name__} {factor!r}")
    if factor < 1 or factor > total:
        raise ValueError(f"factor must be in [1, {total}] ({what}), got {factor}")
    if must_divide and total % factor:
        divisors = [k for k in range(1, total + 1) if total % k == 0]
        raise ValueError(f"factor must divide the {total} {what} so that the views stay evenly "
                         f"spaced over the arc; got {factor}, divisors are {divisors}")
    return factor


def subsample_views(sino: torch.Tensor, g: Geometry, factor: int
                    ) -> tuple[torch.Tensor, Geometry]:
    """Keep every ``factor``-th view (views 0, k, 2k, ...).

    Parameters
    ----------
    sino : torch.Tensor
        ``(..., V, C)``.
    g : geometry
        Its geometry; ``factor`` must divide ``V``.
    factor : int

    Returns
    -------
    (torch.Tensor, geometry)
        ``(..., V / factor, C)`` (a view of ``sino``) and ``g[::factor]``, which equals the
        geometry built directly with ``V / factor`` views over the same arc.
    """
    g = check_geometry(g, "g")
    check_float_tensor(sino, "sino")
    check_trailing_shape(sino, "sino", g.sinogram_shape, "sinogram_shape")
    k = _check_factor(factor, g.n_views, "views", must_divide=True)
    return sino[..., ::k, :], g[::k]


def select_views(sino: torch.Tensor, g: Geometry, n_views: int
                 ) -> tuple[torch.Tensor, Geometry, float]:
    """Keep ``n_views`` of the views: every ``k``-th where ``k = V / n_views`` is an integer,
    else the measured view nearest to each of ``n_views`` evenly spaced angles.

    The nearest view to angle ``j * arc / n_views`` is view ``floor(j * V / n_views + 1/2)``
    (exact integer arithmetic, halves rounded up); the data are labelled with the evenly
    spaced geometry ``g.with_views(n_views)``. The angle error is at most half the original
    view step (0.18 degrees at ``V = 984``), e.g. for 61 of 984 views as in the SinoCT ladder
    (984/492/246/123/61). A full rotation stays a full rotation, as fan-beam FBP needs.

    Parameters
    ----------
    sino : torch.Tensor
        ``(..., V, C)`` line integrals.
    g : geometry
        Its geometry.
    n_views : int
        ``1 <= n_views <= V``.

    Returns
    -------
    (torch.Tensor, geometry, float)
        ``(..., n_views, C)`` (a view of ``sino`` when ``n_views`` divides ``V``), the
        geometry of the kept views, and the largest difference in radians between a kept
        view's true angle and its angle in that geometry (0 when ``n_views`` divides ``V``).
    """
    g = check_geometry(g, "g")
    check_float_tensor(sino, "sino")
    check_trailing_shape(sino, "sino", g.sinogram_shape, "sinogram_shape")
    v0 = g.n_views
    if (isinstance(n_views, bool) or not isinstance(n_views, int | np.integer)
            or not 1 <= n_views <= v0):
        raise InputError(f"n_views must be an integer in [1, {v0}] (the measured view count), "
                         f"got {n_views!r}")
    n_views = int(n_views)
    if v0 % n_views == 0:
        sub, g2 = subsample_views(sino, g, v0 // n_views)
        return sub, g2, 0.0
    j = np.arange(n_views, dtype=np.int64)
    idx = (2 * j * v0 + n_views) // (2 * n_views)  # round(j * v0 / n_views), halves up
    step = g.arc / v0
    error = float(np.max(np.abs(idx * step - j * g.arc / n_views)))
    return sino[..., torch.from_numpy(idx).to(sino.device), :], g.with_views(n_views), error


def bin_channels(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of each run of ``factor`` adjacent entries of the last axis (remainder dropped).

    ``(..., C) -> (..., C // factor)``; the array part of :func:`subsample_detectors`, also
    used on training batches, where no geometry travels with the tensor.
    """
    c2 = x.shape[-1] // factor
    return x[..., : c2 * factor].reshape(*x.shape[:-1], c2, factor).mean(-1)


def subsample_detectors(sino: torch.Tensor, g: Geometry, factor: int
                        ) -> tuple[torch.Tensor, Geometry]:
    """Bin ``factor`` adjacent channels (mean of their line integrals).

    Channels beyond ``factor * (C // factor)`` are dropped. The new channel pitch is
    ``factor * det_spacing`` and ``det_offset`` is set so that each new channel sits at the
    centre of the channels it bins (``det_offset / factor`` when ``factor`` divides ``C``).

    Returns
    -------
    (torch.Tensor, geometry)
        ``(..., V, C // factor)`` and the matching geometry.
    """
    g = check_geometry(g, "g")
    check_float_tensor(sino, "sino")
    check_trailing_shape(sino, "sino", g.sinogram_shape, "sinogram_shape")
    f = _check_factor(factor, g.n_det, "channels", must_divide=False)
    c = g.n_det
    c2 = c // f
    binned = bin_channels(sino, f)
    offset = ((f - 1) / 2 - (c - 1) / 2 + g.det_offset) / f + (c2 - 1) / 2
    g2 = g.replace(n_det=c2, det_spacing=g.det_spacing * f, det_offset=offset)
    return binned, g2
