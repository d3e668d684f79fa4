"""Pure-torch kernels (CPU and CUDA): a Joseph projector, its exact transpose, and the
pixel-driven parallel backprojection used by FBP.

Projector (P. M. Joseph, "An improved algorithm for reprojecting rays through pixel
images", IEEE Trans. Med. Imaging 1(3):192-196, 1982): a ray ``x cos(phi) + y sin(phi) = s``
is sampled once per image column (when ``|sin phi| >= |cos phi|``) or once per row (else),
with linear interpolation across the other axis and step length ``d / max(|sin|, |cos|)``.
The transpose scatters with the same indices and weights, so ``backproject`` is the exact
adjoint of ``project`` (up to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry

Geometry = FanBeamGeometry | ParallelBeamGeometry

# elements of intermediate tensors per chunk (bounds memory: ~ 4 bytes * this * a few)
_CHUNK_ELEMENTS = 1 << 23


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def ray_table(g: Geometry, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(R, 3)`` rows ``(cos phi, sin phi, s)`` for the ``R = V * C`` rays, view-major."""
    phi, s = g.ray_lines()
    tab = np.stack([np.cos(phi).ravel(), np.sin(phi).ravel(), s.ravel()], axis=1)
    return torch.as_tensor(tab, dtype=dtype, device=device)


def _joseph_chunk(rays: torch.Tensor, n: int, d: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
    """Indices into the stacked padded buffer and the two interpolation weights.

    The buffer (length ``2 (N+2) N``) holds the image with a zero row above and below
    (``[N+2, N]``) followed by its transpose padded the same way. Returns ``idx`` (int64
    ``(r, N)``), ``w0`` and ``w1`` (``(r, N)``): sample value ``buf[idx] w0 + buf[idx+N] w1``.
    """
    c, s_, off = rays[:, 0:1], rays[:, 1:2], rays[:, 2:3]
    k = torch.arange(n, device=rays.device, dtype=rays.dtype)[None, :]
    a = (k - (n - 1) / 2) * d  # coordinate along the stepping axis
    by_col = s_.abs() >= c.abs()
    # stepping over columns: x = a_j, y = (s - x c) / sin, row index r = (N-1)/2 - y / d
    # stepping over rows:    y = -a_i (row i has y = ((N-1)/2 - i) d), so a = -y,
    #                        x = (s - y sin) / cos, column index q = x / d + (N-1)/2
    along = torch.where(by_col, s_, c)
    across = torch.where(by_col, c, s_)
    safe = torch.where(along.abs() > 0, along, torch.ones_like(along))
    # by_col: r = (N-1)/2 - (off - a c)/(sin d);   by_row: q = (N-1)/2 + (off + a sin)/(cos d)
    sign = torch.where(by_col, -torch.ones_like(c), torch.ones_like(c))
    t = (n - 1) / 2 + sign * (off + torch.where(by_col, -a * across, a * across)) / (safe * d)
    t0 = torch.floor(t)
    f = t - t0
    valid0 = (t0 >= 0) & (t0 <= n - 1)
    valid1 = (t0 >= -1) & (t0 <= n - 2)
    step = d / torch.maximum(c.abs(), s_.abs())
    w0 = (1 - f) * step * valid0
    w1 = f * step * valid1
    row = torch.clamp(t0, -1, n - 1).to(torch.int64) + 1  # padded row of the lower tap
    base = torch.where(by_col, torch.zeros_like(row), torch.full_like(row, (n + 2) * n))
    kk = torch.arange(n, device=rays.device, dtype=torch.int64)[None, :]
    idx = base + row * n + kk
    return idx, w0, w1


def _rays_per_chunk(n: int, batch: int) -> int:
    return max(1, _CHUNK_ELEMENTS // (n * max(batch, 1) + 4 * n))


def joseph_project(img: torch.Tensor, g: Geometry, rays: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """``(B, N, N) -> (B, V, C)`` line integrals (units of img times mm).

    The stacked buffer is laid out ``(L, B)`` so one gathered row serves the whole batch.
    ``rays``: the :func:`ray_table` of ``g`` for this device and work dtype (built if None).
    """
    b, n = img.shape[0], g.image_size
    dt = work_dtype(img.dtype)
    x = img.to(dt)
    pad = torch.zeros(b, 1, n, dtype=dt, device=img.device)
    buf = torch.cat([pad, x, pad, pad, x.transpose(1, 2), pad], dim=1).reshape(b, -1)
    buf = buf.t().contiguous()  # (L, B)
    rays = ray_table(g, img.device, dt) if rays is None else rays
    out = torch.empty(rays.shape[0], b, dtype=dt, device=img.device)
    step = _rays_per_chunk(n, b)
    for r0 in range(0, rays.shape[0], step):
        idx, w0, w1 = _joseph_chunk(rays[r0:r0 + step], n, g.pixel_size)
        flat = idx.reshape(-1)
        v0 = buf.index_select(0, flat).view(*idx.shape, b)
        v1 = buf.index_select(0, flat + n).view(*idx.shape, b)
        out[r0:r0 + idx.shape[0]] = (v0 * w0[..., None] + v1 * w1[..., None]).sum(1)
    return out.t().reshape(b, g.n_views, g.n_det)


def joseph_backproject(sino: torch.Tensor, g: Geometry, rays: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Exact transpose of :func:`joseph_project`: ``(B, V, C) -> (B, N, N)``."""
    b, n = sino.shape[0], g.image_size
    dt = work_dtype(sino.dtype)
    y = sino.to(dt).reshape(b, -1).t()  # (R, B)
    buf = torch.zeros(2 * (n + 2) * n, b, dtype=dt, device=sino.device)
    rays = ray_table(g, sino.device, dt) if rays is None else rays
    step = _rays_per_chunk(n, b)
    for r0 in range(0, rays.shape[0], step):
        idx, w0, w1 = _joseph_chunk(rays[r0:r0 + step], n, g.pixel_size)
        yy = y[r0:r0 + idx.shape[0], None, :]
        flat = idx.reshape(-1)
        buf.index_add_(0, flat, (yy * w0[..., None]).reshape(-1, b))
        buf.index_add_(0, flat + n, (yy * w1[..., None]).reshape(-1, b))
    buf = buf.t().reshape(b, 2, n + 2, n)
    return buf[:, 0, 1:-1, :] + buf[:, 1, 1:-1, :].transpose(1, 2)


# ------------------------------------------------------------------------------------------
# FBP pieces


def parallel_fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float,
                             n: int, d: float, weight: float) -> torch.Tensor:
    """Pixel-driven backprojection with linear interpolation (not the Joseph adjoint).

    ``q``: ``(B, V, M)`` filtered rows, channel ``m`` at ``u0 + m du``; returns
    ``weight * sum_k q_k(x cos theta_k + y sin theta_k)``, ``(B, N, N)``, zero outside the
    detector. Coordinates are computed once per view chunk and reused over the batch
    (the batch is the channel axis of ``grid_sample``).
    """
    b, v, m = q.shape
    dt = work_dtype(q.dtype)
    dev = q.device
    coord = (torch.arange(n, device=dev, dtype=dt) - (n - 1) / 2) * d
    xs, ys = coord[None, :], -coord[:, None]  # x along columns, y down the rows
    cs = torch.as_tensor(np.cos(angles), dtype=dt, device=dev)
    sn = torch.as_tensor(np.sin(angles), dtype=dt, device=dev)
    out = torch.zeros(b, n * n, dtype=dt, device=dev)
    inp = q.to(dt).permute(1, 0, 2)  # (V, B, M)
    vc = max(1, _CHUNK_ELEMENTS // (n * n * max(b, 1)))
    scale = 2.0 / max(m - 1, 1)
    for k0 in range(0, v, vc):
        k1 = min(v, k0 + vc)
        u = xs[None] * cs[k0:k1, None, None] + ys[None] * sn[k0:k1, None, None]  # (v, N, N)
        t = (u - u0) / du  # fractional channel
        gx = (t * scale - 1.0).reshape(k1 - k0, 1, n * n)
        grid = torch.stack([gx, torch.zeros_like(gx)], dim=-1)  # (v, 1, N*N, 2)
        src = inp[k0:k1].unsqueeze(2)  # (v, B, 1, M)
        smp = torch.nn.functional.grid_sample(src, grid, mode="bilinear",
                                              padding_mode="zeros", align_corners=True)
        out += smp.sum(0).reshape(b, n * n)
    return (out * weight).view(b, n, n)


def interp_columns(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along the last axis at fractional indices ``t`` (``(M,)``),
    zero outside ``[0, C-1]``: ``(B, V, C) -> (B, V, M)``."""
    c = x.shape[-1]
    t0 = torch.floor(t)
    f = (t - t0).to(x.dtype)
    i0 = t0.to(torch.int64)
    ok0 = ((i0 >= 0) & (i0 <= c - 1)).to(x.dtype)
    ok1 = ((i0 >= -1) & (i0 <= c - 2)).to(x.dtype)
    a = x.index_select(-1, i0.clamp(0, c - 1))
    b = x.index_select(-1, (i0 + 1).clamp(0, c - 1))
    return a * ((1 - f) * ok0) + b * (f * ok1)


def cubic_columns(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Catmull-Rom (Keys a = -1/2) cubic interpolation along the last axis at fractional
    indices ``t`` (``(M,)``), samples outside ``[0, C-1]`` taken as zero: ``(B, V, C) ->
    (B, V, M)``."""
    c = x.shape[-1]
    t0 = torch.floor(t)
    f = (t - t0).to(x.dtype)
    i0 = t0.to(torch.int64)
    f2, f3 = f * f, f * f * f
    weights = (-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1.0,
               -1.5 * f3 + 2.0 * f2 + 0.5 * f, 0.5 * f3 - 0.5 * f2)
    out = torch.zeros(*x.shape[:-1], t.shape[0], dtype=x.dtype, device=x.device)
    for k, w in zip((-1, 0, 1, 2), weights, strict=True):
        idx = i0 + k
        ok = ((idx >= 0) & (idx <= c - 1)).to(x.dtype)
        out += x.index_select(-1, idx.clamp(0, c - 1)) * (w * ok)
    return out


def _keys_weights(f: torch.Tensor) -> tuple[torch.Tensor, ...]:
    f2, f3 = f * f, f * f * f
    return (-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1.0,
            -1.5 * f3 + 2.0 * f2 + 0.5 * f, 0.5 * f3 - 0.5 * f2)


def shift_rows_cubic_periodic(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Periodic Catmull-Rom shift along dim -2: ``out[..., k, m] = x(k + shift[m])``."""
    v, m = x.shape[-2], x.shape[-1]
    s0 = torch.floor(shift)
    f = (shift - s0).to(x.dtype)
    base = s0.to(torch.int64)
    k = torch.arange(v, device=x.device)[:, None]
    cols = torch.arange(m, device=x.device)[None, :]
    flat = x.reshape(*x.shape[:-2], v * m)
    out = torch.zeros_like(x)
    for off, w in zip((-1, 0, 1, 2), _keys_weights(f), strict=True):
        idx = ((k + base[None, :] + off) % v) * m + cols
        out += flat.index_select(-1, idx.reshape(-1)).view_as(x) * w
    return out
