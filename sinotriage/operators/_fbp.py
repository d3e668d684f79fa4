"""FBP: ramp filtering, fan-to-parallel rebinning and the backprojection step.

Parallel beam: ``f(x, y) = (pi / V) sum_k q_k(x cos theta_k + y sin theta_k)`` with ``q`` the
ramp-filtered rows (Kak & Slaney ch. 3, eq. (45)); valid for ``arc = pi`` and ``arc = 2 pi``.

Fan beam (full 2 pi scan, curved or flat detector): the fan rays are rebinned exactly onto
parallel rays, ``theta = beta + gamma + 3 pi / 2``, ``u = sid sin(gamma)``, with the parallel
channel pitch ``det_spacing * sid / sdd / k`` (the magnified central pitch, oversampled by
``k = ceil(that / pixel_size)``). For each output channel the fan angle is fixed, so the
rebinning separates into a cubic (Catmull-Rom) interpolation across channels and a periodic
Catmull-Rom shift along the views (as accurate as a band-limited FFT shift, measured). The two halves of the 2 pi parallel sinogram (``p(theta + pi, u) = p(theta, -u)``) are averaged, which halves
the backprojection work; then the parallel FBP above runs on ``V / 2`` views over ``pi``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators import _torch
from sinotriage.operators._plan import Plan
from sinotriage.operators._torch import cubic_columns, shift_rows_cubic_periodic
from sinotriage.operators.filters import ramp_filter, scaled_response

Geometry = FanBeamGeometry | ParallelBeamGeometry


def check_fbp_geometry(g: Geometry) -> None:
    """FBP needs ``arc >= pi`` (parallel) or a full ``2 pi`` scan (fan)."""
    if isinstance(g, ParallelBeamGeometry):
        if g.arc < math.pi * (1 - 1e-6):
            raise ValueError(f"fbp of parallel-beam data needs arc >= pi, got arc={g.arc}")
    elif abs(g.arc - 2 * math.pi) > 1e-6 * 2 * math.pi:
        raise ValueError("fbp of fan-beam data needs a full scan, arc = 2*pi "
                         f"(short scans need Parker weights), got arc={g.arc}")


REBIN_INTERP = "cubic"


def rebin_oversampling(g: FanBeamGeometry) -> int:
    """Parallel channels per magnified fan channel: ``ceil(du0 / pixel_size)``.

    The parallel pitch is kept at or below the pixel size (``du0 = det_spacing sid / sdd``
    is the fan pitch at the isocentre) so that the backprojection's linear interpolation
    is not coarser than the image; a finer pitch than needed lets the ramp pass more than
    the image grid can hold. Chosen by measurement against the textbook FBP (SinoCT at
    128, 256 and 512 px: RMSE ratios 0.96, 0.88, 0.89; with ``oversample=1`` the 512 px
    ratio was 1.39).
    """
    du0 = g.det_spacing * g.sid / g.sdd
    return max(1, math.ceil(du0 / g.pixel_size - 1e-6))


def rebin_plan(g: FanBeamGeometry, oversample: int) -> tuple[np.ndarray, np.ndarray, float,
                                                               float]:
    """Fractional fan channel ``t`` and view shift of each parallel channel ``(M,)``, the
    first parallel channel position ``u0`` and the pitch ``du`` (mm)."""
    du = g.det_spacing * g.sid / g.sdd / oversample
    half = int(math.floor(g.fov_radius / du * (1 - 1e-9)))
    u = (np.arange(2 * half + 1, dtype=np.float64) - half) * du
    gam = np.arcsin(u / g.sid)
    if g.detector == "curved":
        t = gam / (g.det_spacing / g.sdd)
    else:
        t = g.sdd * np.tan(gam) / g.det_spacing
    t = t + (g.n_det - 1) / 2 - g.det_offset
    return t, -gam / g.angle_step, float(u[0]), du


@dataclass(frozen=True, eq=False)
class FbpLayout:
    """Where the filtered parallel rows live: their angles ``(V',)`` (rad), first channel
    ``u0`` and pitch ``du`` (mm), channel count ``m``, the backprojection weight
    ``pi / V'``, and for fan beam the rebinning taps (``t``, ``shift``) and ``fold``."""

    angles: np.ndarray
    u0: float
    du: float
    m: int
    weight: float
    t: np.ndarray | None = None
    shift: np.ndarray | None = None
    fold: bool = False


def fbp_layout(g: Geometry) -> FbpLayout:
    """The :class:`FbpLayout` of ``g`` (built once per :class:`Operator`)."""
    if isinstance(g, ParallelBeamGeometry):
        return FbpLayout(g.angles, float(g.det_positions[0]), g.det_spacing, g.n_det,
                         math.pi / g.n_views)
    t, shift, u0, du = rebin_plan(g, rebin_oversampling(g))
    v = g.n_views
    fold = v % 2 == 0
    angles = g.start_angle + 1.5 * math.pi + np.arange(v, dtype=np.float64) * g.angle_step
    if fold:
        angles = angles[: v // 2]
    return FbpLayout(angles, u0, du, len(t), math.pi / len(angles), t, shift, fold)


def _torch_rebin(sino: torch.Tensor, lay: FbpLayout, plan: Plan) -> torch.Tensor:
    """Rebinning with differentiable torch operations (any backend without a kernel)."""
    t, shift = plan.get(("torch-rebin", str(sino.device), sino.dtype), lambda: (
        torch.as_tensor(lay.t, dtype=sino.dtype, device=sino.device),
        torch.as_tensor(lay.shift, device=sino.device)))
    p2 = shift_rows_cubic_periodic(cubic_columns(sino, t), shift)
    if lay.fold:
        v = sino.shape[-2]
        p2 = 0.5 * (p2[:, : v // 2] + p2[:, v // 2:].flip(-1))
    return p2


class _Rebin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lay, be, plan):  # type: ignore[override]
        ctx.args, ctx.shape = (lay, be, plan), tuple(x.shape[-2:])
        return be.rebin(x, lay.t, lay.shift, lay.fold, plan)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _RebinAdjoint.apply(grad.contiguous(), *ctx.args, ctx.shape), None, None, None


class _RebinAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, lay, be, plan, shape):  # type: ignore[override]
        ctx.args = (lay, be, plan)
        return be.rebin_adjoint(g, lay.t, lay.shift, lay.fold, shape, plan)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _Rebin.apply(grad.contiguous(), *ctx.args), None, None, None, None


class _Filter(torch.autograd.Function):
    """The ramp filter; its backward pass is the same filter (it is self-adjoint)."""

    @staticmethod
    def forward(ctx, rows, du, name, cutoff, h):  # type: ignore[override]
        ctx.args = (du, name, cutoff, h)
        return ramp_filter(rows, du, name, cutoff, h)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _Filter.apply(grad, *ctx.args), None, None, None, None


def _torch_bp_adjoint(img: torch.Tensor, lay: FbpLayout, d: float) -> torch.Tensor:
    """Adjoint of the pixel-driven backprojection by autograd through the torch one."""
    with torch.enable_grad():
        q0 = torch.zeros(img.shape[0], len(lay.angles), lay.m, dtype=img.dtype,
                         device=img.device, requires_grad=True)
        out = _torch.parallel_fbp_backproject(q0, lay.angles, lay.u0, lay.du, img.shape[-1],
                                              d, lay.weight)
        (gq,) = torch.autograd.grad(out, q0, img.to(out.dtype))
    return gq.to(img.dtype)


class _RowsBackproject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, lay, n, d, be, plan):  # type: ignore[override]
        ctx.args = (lay, n, d, be, plan)
        return be.fbp_backproject(q, lay.angles, lay.u0, lay.du, n, d, lay.weight, plan)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return (_RowsBackprojectAdjoint.apply(grad.contiguous(), *ctx.args),
                None, None, None, None, None)


class _RowsBackprojectAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, img, lay, n, d, be, plan):  # type: ignore[override]
        ctx.args = (lay, n, d, be, plan)
        if hasattr(be, "fbp_backproject_adjoint"):
            return be.fbp_backproject_adjoint(img, lay.angles, lay.u0, lay.du, lay.m, d,
                                              lay.weight, plan)
        return _torch_bp_adjoint(img, lay, d)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _RowsBackproject.apply(grad.contiguous(), *ctx.args), None, None, None, None, None


def fbp_batch(y: torch.Tensor, g: Geometry, lay: FbpLayout, filter_name: str, cutoff: float,
              be: ModuleType, plan: Plan) -> torch.Tensor:
    """``(B, V, C)`` float32/64 line integrals -> ``(B, N, N)`` through backend ``be``;
    differentiable with respect to ``y`` on every backend."""
    native = be.__name__.endswith("_torch_backend")
    if isinstance(g, FanBeamGeometry):
        rows = (_Rebin.apply(y, lay, be, plan) if hasattr(be, "rebin")
                else _torch_rebin(y, lay, plan))
    else:
        rows = y
    dtype = torch.float64 if rows.dtype == torch.float64 else torch.float32
    h = plan.get(("filter", filter_name, cutoff, str(y.device), dtype),
                 lambda: scaled_response(rows.shape[-1], lay.du, filter_name, cutoff,
                                         y.device, dtype))
    q = (ramp_filter(rows, lay.du, filter_name, cutoff, h) if native
         else _Filter.apply(rows, lay.du, filter_name, cutoff, h))
    if native:
        return be.fbp_backproject(q, lay.angles, lay.u0, lay.du, g.image_size, g.pixel_size,
                                  lay.weight, plan)
    return _RowsBackproject.apply(q.contiguous(), lay, g.image_size, g.pixel_size, be, plan)
