"""CUDA kernels (Triton): the Joseph projector, its transpose, and FBP's pixel-driven
parallel backprojection.

The projector is the same as :mod:`sinotriage.operators._torch` (one program per block of
rays of one slice, looping over the N samples of each ray); its transpose scatters with
``atomic_add`` using the same weights, so it is the adjoint to float rounding. The FBP
kernel handles a block of pixels of one slice and loops over the views; the filtered rows
of a slice (a few MB) stay in L2. Linear interpolation, zero outside the detector.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from sinotriage.operators._plan import Plan

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None

_BLOCK = 256


def available() -> bool:
    return triton is not None and torch.cuda.is_available()


def supports(op: str, g: object, device: torch.device) -> str | None:
    if device.type != "cuda":
        return f"the triton backend runs on CUDA tensors only, got device {device}"
    return None


@lru_cache(maxsize=1)
def _kernel():
    @triton.jit
    def parallel_bp(q_ptr, cs_ptr, sn_ptr, out_ptr, n_views, n_ch, n, d, u0, inv_du, weight,
                    BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        b = tl.program_id(1)
        p = pid * BLOCK + tl.arange(0, BLOCK)
        inside = p < n * n
        i = p // n
        j = p % n
        h = (n - 1) * 0.5
        x = (j.to(tl.float32) - h) * d
        y = (h - i.to(tl.float32)) * d
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        base = q_ptr + b.to(tl.int64) * n_views * n_ch
        for k in range(0, n_views):
            c = tl.load(cs_ptr + k)
            s = tl.load(sn_ptr + k)
            t = (x * c + y * s - u0) * inv_du
            t0 = tl.floor(t)
            f = t - t0
            i0 = t0.to(tl.int32)
            m0 = inside & (i0 >= 0) & (i0 < n_ch)
            m1 = inside & (i0 >= -1) & (i0 < n_ch - 1)
            row = base + k * n_ch
            v0 = tl.load(row + i0, mask=m0, other=0.0)
            v1 = tl.load(row + i0 + 1, mask=m1, other=0.0)
            acc += v0 + f * (v1 - v0)
        tl.store(out_ptr + b.to(tl.int64) * n * n + p, acc * weight, mask=inside)

    return parallel_bp


@lru_cache(maxsize=1)
def _joseph():
    @triton.jit
    def joseph(img_ptr, sino_ptr, cs_ptr, sn_ptr, off_ptr, n_rays, n, d,
               ADJOINT: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        b = tl.program_id(1)
        r = pid * BLOCK + tl.arange(0, BLOCK)
        ok = r < n_rays
        c = tl.load(cs_ptr + r, mask=ok, other=1.0)
        s = tl.load(sn_ptr + r, mask=ok, other=0.0)
        o = tl.load(off_ptr + r, mask=ok, other=0.0)
        by_col = tl.abs(s) >= tl.abs(c)
        along = tl.where(by_col, s, c)
        across = tl.where(by_col, c, s)
        sign = tl.where(by_col, -1.0, 1.0)
        step = d / tl.maximum(tl.abs(c), tl.abs(s))
        h = (n - 1) * 0.5
        img = img_ptr + b.to(tl.int64) * n * n
        sino = sino_ptr + b.to(tl.int64) * n_rays + r
        if ADJOINT:
            val = tl.load(sino, mask=ok, other=0.0)
        else:
            acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k in range(0, n):
            a = (k - h) * d
            t = h + sign * (o + tl.where(by_col, -a * across, a * across)) / (along * d)
            t0 = tl.floor(t)
            f = t - t0
            i0 = t0.to(tl.int32)
            m0 = ok & (i0 >= 0) & (i0 <= n - 1)
            m1 = ok & (i0 >= -1) & (i0 <= n - 2)
            # pixel (row, col): by column -> (i0, k); by row -> (k, i0)
            p0 = tl.where(by_col, i0 * n + k, k * n + i0)
            p1 = tl.where(by_col, p0 + n, p0 + 1)
            w0 = (1.0 - f) * step
            w1 = f * step
            if ADJOINT:
                tl.atomic_add(img + p0, w0 * val, mask=m0)
                tl.atomic_add(img + p1, w1 * val, mask=m1)
            else:
                acc += w0 * tl.load(img + p0, mask=m0, other=0.0)
                acc += w1 * tl.load(img + p1, mask=m1, other=0.0)
        if not ADJOINT:
            tl.store(sino, acc, mask=ok)

    return joseph


def _rays(g, device: torch.device, plan: Plan) -> tuple[torch.Tensor, ...]:
    def build():
        phi, s = g.ray_lines()
        as32 = lambda a: torch.as_tensor(np.ascontiguousarray(a.ravel()),  # noqa: E731
                                         dtype=torch.float32, device=device)
        return as32(np.cos(phi)), as32(np.sin(phi)), as32(s)

    return plan.get(("triton-rays", str(device)), build)


def project(x: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    b = x.shape[0]
    img = x.to(torch.float32).contiguous()
    cs, sn, off = _rays(g, x.device, plan)
    out = torch.empty(b, g.n_views, g.n_det, dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(cs.numel(), _BLOCK), b)
    _joseph()[grid](img, out, cs, sn, off, cs.numel(), g.image_size, float(g.pixel_size),
                    ADJOINT=False, BLOCK=_BLOCK)
    return out.to(x.dtype)


def backproject(y: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    b = y.shape[0]
    sino = y.to(torch.float32).contiguous()
    cs, sn, off = _rays(g, y.device, plan)
    out = torch.zeros(b, g.image_size, g.image_size, dtype=torch.float32, device=y.device)
    grid = (triton.cdiv(cs.numel(), _BLOCK), b)
    _joseph()[grid](out, sino, cs, sn, off, cs.numel(), g.image_size, float(g.pixel_size),
                    ADJOINT=True, BLOCK=_BLOCK)
    return out.to(y.dtype)


def fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float, n: int,
                    d: float, weight: float, plan: Plan) -> torch.Tensor:
    b, v, m = q.shape
    qq = q.to(torch.float32).contiguous()
    cs, sn = plan.get(("triton-fbp-trig", str(q.device)), lambda: (
        torch.as_tensor(np.cos(angles), dtype=torch.float32, device=q.device),
        torch.as_tensor(np.sin(angles), dtype=torch.float32, device=q.device)))
    out = torch.empty(b, n, n, dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(n * n, _BLOCK), b)
    _kernel()[grid](qq, cs, sn, out, v, m, n, float(d), float(u0), float(1.0 / du),
                    float(weight), BLOCK=_BLOCK)
    return out.to(q.dtype)
