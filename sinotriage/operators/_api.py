"""The function forms: each call builds an :class:`Operator` (no cached tables) and runs it."""

from __future__ import annotations

import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators._operator import Operator

Geometry = FanBeamGeometry | ParallelBeamGeometry


def project(mu: torch.Tensor, g: Geometry, backend: str | None = "auto") -> torch.Tensor:
    """Forward projection: line integrals of ``mu`` along every ray of ``g``.

    Parameters
    ----------
    mu : torch.Tensor
        ``(..., N, N)`` attenuation (mm^-1), floating point, CPU or CUDA; pixel ``(i, j)``
        centred at ``x = (j - (N-1)/2) d``, ``y = ((N-1)/2 - i) d`` (row 0 at the top).
    g : FanBeamGeometry or ParallelBeamGeometry
        The scanner; ``N = g.image_size``.
    backend : {"auto", None, "fastest", "torch", "numba", "astra", "triton"}
        ``"auto"`` / None: the fixed rule table :data:`sinotriage.operators.RULES` (same
        backend, same bits, in every process); ``"fastest"``: timed on first use (see
        :class:`Operator`).

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

    Notes
    -----
    Repeated calls on one geometry are cheaper through ``Operator(g)(mu)``, which keeps
    the ray tables.
    """
    return Operator(g, backend).project(mu)


def backproject(sino: torch.Tensor, g: Geometry, backend: str | None = "auto") -> torch.Tensor:
    """The adjoint of :func:`project`: ``(..., V, C) -> (..., N, N)``.

    ``<project(x), y> = <x, backproject(y)>`` to float rounding for the same backend.
    Units: sinogram units times mm. Differentiable (its gradient is :func:`project`).
    Same parameters and errors as :func:`project`; ``Operator(g).T(sino)`` caches.
    """
    return Operator(g, backend).backproject(sino)


def fbp(sino: torch.Tensor, g: Geometry, filter: str = "ram-lak", cutoff: float = 1.0,
        backend: str | None = "auto") -> torch.Tensor:
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
    backend : {"auto", None, "fastest", "torch", "numba", "astra", "triton"}
        Backend of the rebinning and backprojection steps (see :func:`project`).

    Returns
    -------
    torch.Tensor
        ``(..., N, N)`` attenuation (mm^-1), same dtype and device; ``fbp(project(x)) ~ x``.

    Notes
    -----
    Parallel beam: Kak & Slaney ch. 3 eq. (45) with the discrete ramp of eq. (61). Fan beam:
    exact rebinning to parallel rays (``theta = beta + gamma + 3 pi / 2``,
    ``u = sid sin gamma``), averaging of the two redundant halves, then the parallel FBP; see
    :mod:`sinotriage.operators._fbp`. Differentiable on every backend: the backward pass is
    the adjoint of (rebinning, filter, backprojection), run by the same backend.
    """
    return Operator(g, backend).fbp(sino, filter=filter, cutoff=cutoff)
