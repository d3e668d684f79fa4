"""Public operators: dispatch to a backend, flatten batch dims, autograd wiring."""

from __future__ import annotations

import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators import _backends
from sinotriage.operators._checks import (
    check_float_tensor,
    check_geometry,
    check_trailing_shape,
)
from sinotriage.operators._fbp import check_fbp_geometry, fbp_rows
from sinotriage.operators.filters import check_filter

Geometry = FanBeamGeometry | ParallelBeamGeometry


def _flatten(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    lead = tuple(x.shape[:-2])
    return x.reshape(-1, *x.shape[-2:]), lead


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, g: Geometry, backend: str) -> torch.Tensor:  # type: ignore[override]
        ctx.g, ctx.backend = g, backend
        return _backends.get(backend).project(x, g)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _Backproject.apply(grad.contiguous(), ctx.g, ctx.backend), None, None


class _Backproject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: torch.Tensor, g: Geometry, backend: str) -> torch.Tensor:  # type: ignore[override]
        ctx.g, ctx.backend = g, backend
        return _backends.get(backend).backproject(y, g)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _Project.apply(grad.contiguous(), ctx.g, ctx.backend), None, None


def project(mu: torch.Tensor, g: Geometry, backend: str = "auto") -> torch.Tensor:
    """Forward projection: line integrals of ``mu`` along every ray of ``g``.

    Parameters
    ----------
    mu : torch.Tensor
        ``(..., N, N)`` attenuation (mm^-1), floating point, CPU or CUDA; pixel ``(i, j)``
        centred at ``x = (j - (N-1)/2) d``, ``y = ((N-1)/2 - i) d`` (row 0 at the top).
    g : FanBeamGeometry or ParallelBeamGeometry
        The scanner; ``N = g.image_size``.
    backend : {"auto", "torch", "numba", "astra", "triton"}
        ``"auto"`` picks the fastest available one for the device and geometry, measured on
        first use and cached.

    Returns
    -------
    torch.Tensor
        ``(..., V, C)`` dimensionless line integrals, same dtype and device as ``mu``.
        Differentiable; the gradient is :func:`backproject`.

    Raises
    ------
    TypeError
        ``mu`` is not a floating torch tensor or ``g`` not a geometry.
    ValueError
        The last two dims are not ``(N, N)``, values are not finite, or the backend is
        unknown / cannot run this geometry on this device.
    """
    g = check_geometry(g, "g")
    check_float_tensor(mu, "mu", finite=True)
    check_trailing_shape(mu, "mu", g.image_shape, "image_shape")
    x, lead = _flatten(_compute_dtype(mu))
    name = _backends.resolve(backend, "project", g, x)
    y = _Project.apply(x.contiguous(), g, name)
    return y.reshape(*lead, *g.sinogram_shape).to(mu.dtype)


def backproject(sino: torch.Tensor, g: Geometry, backend: str = "auto") -> torch.Tensor:
    """The adjoint of :func:`project`: ``(..., V, C) -> (..., N, N)``.

    ``<project(x), y> = <x, backproject(y)>`` to float rounding for the same backend.
    Units: sinogram units times mm. Differentiable (its gradient is :func:`project`).
    Same parameters and errors as :func:`project`.
    """
    g = check_geometry(g, "g")
    check_float_tensor(sino, "sino", finite=True)
    check_trailing_shape(sino, "sino", g.sinogram_shape, "sinogram_shape")
    y, lead = _flatten(_compute_dtype(sino))
    name = _backends.resolve(backend, "backproject", g, y)
    x = _Backproject.apply(y.contiguous(), g, name)
    return x.reshape(*lead, *g.image_shape).to(sino.dtype)


def fbp(sino: torch.Tensor, g: Geometry, filter: str = "ram-lak", cutoff: float = 1.0,
        backend: str = "auto") -> torch.Tensor:
    """Filtered backprojection: line integrals ``(..., V, C)`` -> ``mu`` image ``(..., N, N)``.

    Parameters
    ----------
    sino : torch.Tensor
        ``(..., V, C)`` line integrals (dimensionless), floating point.
    g : FanBeamGeometry or ParallelBeamGeometry
        Parallel beam needs ``arc >= pi``; fan beam a full ``2 pi`` scan (curved or flat).
    filter : {"ram-lak", "shepp-logan", "cosine", "hamming", "hann"}
        Ramp apodisation window.
    cutoff : float
        In ``(0, 1]``: the window reaches zero at ``cutoff`` times the Nyquist frequency.
    backend : {"auto", "torch", "numba", "astra", "triton"}
        Backend of the backprojection step.

    Returns
    -------
    torch.Tensor
        ``(..., N, N)`` attenuation (mm^-1), same dtype and device; ``fbp(project(x)) ~ x``.

    Notes
    -----
    Parallel beam: Kak & Slaney ch. 3 eq. (45) with the discrete ramp of eq. (61). Fan beam:
    exact rebinning to parallel rays (``theta = beta + gamma + 3 pi / 2``,
    ``u = sid sin gamma``), averaging of the two redundant halves, then the parallel FBP; see
    :mod:`sinotriage.operators._fbp`. Differentiable when the backend is ``"torch"``.
    """
    g = check_geometry(g, "g")
    check_float_tensor(sino, "sino", finite=True)
    check_trailing_shape(sino, "sino", g.sinogram_shape, "sinogram_shape")
    filter, cutoff = check_filter(filter, cutoff)
    check_fbp_geometry(g)
    y, lead = _flatten(_compute_dtype(sino))
    name = _backends.resolve(backend, "fbp", g, y)
    be = _backends.get(name)
    if hasattr(be, "fbp_direct") and be.fbp_direct(g):
        img = be.fbp(y.contiguous(), g, filter, cutoff)
    else:
        q, angles, u0, du, weight = fbp_rows(y, g, filter, cutoff,
                                             rebin_kernel=getattr(be, "rebin", None))
        img = be.fbp_backproject(q.contiguous(), angles, u0, du, g.image_size, g.pixel_size,
                                 weight)
    return img.reshape(*lead, *g.image_shape).to(sino.dtype)
