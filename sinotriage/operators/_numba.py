"""CPU kernels compiled with numba (multi-threaded over views or image rows).

The same Joseph projector as :mod:`sinotriage.operators._torch` (so the two backends agree
to rounding), its exact transpose, and the pixel-driven parallel FBP backprojection. The
batch is the innermost (contiguous) axis: indices and weights are computed once per
sample and reused for every slice of the batch. Kernels are compiled on first use and
cached on disk. They are compiled without ``fastmath``: with it, a kernel compiled in this
process and one loaded from numba's disk cache gave results differing in the last bit, so
the same call depended on whether the cache was warm.
"""

from __future__ import annotations

import numpy as np
import torch

from sinotriage.operators._plan import Plan

try:  # numba is a dependency, but keep the package importable without it
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

_KERNELS: dict[str, object] = {}
#: pixel block of the FBP backprojection (32 x 32 x batch accumulators: L2-resident)
TILE = 32


def available() -> bool:
    return numba is not None


def supports(op: str, g: object, device: torch.device) -> str | None:
    if device.type != "cpu":
        return f"numba kernels run on CPU tensors only, got device {device}"
    return None


def _kernels() -> dict[str, object]:
    if _KERNELS:
        return _KERNELS

    @njit(parallel=True, fastmath=False, cache=True)
    def joseph_fp(img, cs, sn, off, n, d, out):  # img (N, N, B), out (R, B)
        nb = img.shape[2]
        nr = cs.shape[0]
        h = (n - 1) / 2.0
        for r in prange(nr):
            c = cs[r]
            s = sn[r]
            o = off[r]
            acc = np.zeros(nb, dtype=out.dtype)
            if abs(s) >= abs(c):
                step = d / abs(s)
                for k in range(n):
                    a = (k - h) * d
                    t = h - (o - a * c) / (s * d)
                    t0 = np.floor(t)
                    f = t - t0
                    i0 = int(t0)
                    if i0 >= 0 and i0 <= n - 1:
                        w = (1.0 - f) * step
                        for b in range(nb):
                            acc[b] += w * img[i0, k, b]
                    if i0 >= -1 and i0 <= n - 2:
                        w = f * step
                        for b in range(nb):
                            acc[b] += w * img[i0 + 1, k, b]
            else:
                step = d / abs(c)
                for k in range(n):
                    a = (k - h) * d
                    t = h + (o + a * s) / (c * d)
                    t0 = np.floor(t)
                    f = t - t0
                    i0 = int(t0)
                    if i0 >= 0 and i0 <= n - 1:
                        w = (1.0 - f) * step
                        for b in range(nb):
                            acc[b] += w * img[k, i0, b]
                    if i0 >= -1 and i0 <= n - 2:
                        w = f * step
                        for b in range(nb):
                            acc[b] += w * img[k, i0 + 1, b]
            for b in range(nb):
                out[r, b] = acc[b]

    @njit(parallel=True, fastmath=False, cache=True)
    def joseph_bp(sino, cs, sn, off, n, d, nthreads, out):  # sino (R, B), out (T, N, N, B)
        nb = sino.shape[1]
        nr = cs.shape[0]
        h = (n - 1) / 2.0
        for tid in prange(nthreads):
            o_ = out[tid]
            for r in range(tid, nr, nthreads):
                c = cs[r]
                s = sn[r]
                o = off[r]
                if abs(s) >= abs(c):
                    step = d / abs(s)
                    for k in range(n):
                        a = (k - h) * d
                        t = h - (o - a * c) / (s * d)
                        t0 = np.floor(t)
                        f = t - t0
                        i0 = int(t0)
                        if i0 >= 0 and i0 <= n - 1:
                            w = (1.0 - f) * step
                            for b in range(nb):
                                o_[i0, k, b] += w * sino[r, b]
                        if i0 >= -1 and i0 <= n - 2:
                            w = f * step
                            for b in range(nb):
                                o_[i0 + 1, k, b] += w * sino[r, b]
                else:
                    step = d / abs(c)
                    for k in range(n):
                        a = (k - h) * d
                        t = h + (o + a * s) / (c * d)
                        t0 = np.floor(t)
                        f = t - t0
                        i0 = int(t0)
                        if i0 >= 0 and i0 <= n - 1:
                            w = (1.0 - f) * step
                            for b in range(nb):
                                o_[k, i0, b] += w * sino[r, b]
                        if i0 >= -1 and i0 <= n - 2:
                            w = f * step
                            for b in range(nb):
                                o_[k, i0 + 1, b] += w * sino[r, b]

    @njit(parallel=True, fastmath=False, cache=True)
    def parallel_bp(q, cs, sn, u0, du, n, d, weight, tile, out):  # q (V, M, B), out (N, N, B)
        # one tile x tile block of pixels per iteration, all views: the block's accumulator
        # stays in L2 and each view reads only the few channels the block projects onto
        # (row by row, every row streamed all of q); the sum over views keeps its order.
        nv, m, nb = q.shape
        h = (n - 1) / 2.0
        nt = (n + tile - 1) // tile
        for tt in prange(nt * nt):
            i_lo = (tt // nt) * tile
            j_lo = (tt % nt) * tile
            i_hi = min(n, i_lo + tile)
            j_hi = min(n, j_lo + tile)
            acc = np.zeros((tile, tile, nb), dtype=out.dtype)
            for k in range(nv):
                a = cs[k] * d / du
                for i in range(i_lo, i_hi):
                    y = (h - i) * d
                    t_first = ((-h * d) * cs[k] + y * sn[k] - u0) / du
                    for j in range(j_lo, j_hi):
                        t = t_first + j * a
                        if t >= 0.0 and t < m - 1:  # q is zero padded: t in (-1, M) here
                            i0 = int(t)
                            f = t - i0
                            for b in range(nb):
                                acc[i - i_lo, j - j_lo, b] += q[k, i0, b] + f * (
                                    q[k, i0 + 1, b] - q[k, i0, b])
            for i in range(i_lo, i_hi):
                for j in range(j_lo, j_hi):
                    for b in range(nb):
                        out[i, j, b] = acc[i - i_lo, j - j_lo, b] * weight

    @njit(parallel=True, fastmath=False, cache=True)
    def rebin(p, kc, w16, kv, fold, out):  # p (B, V, C) -> out (B, V', M)
        # w16[n, 4 a + c] = wv[n, a] wc[n, c]: the 4 x 4 taps of output channel n; rows wrap
        # around the turn by a compare instead of an integer modulo
        nb, nv, nc = p.shape
        nvo, m = out.shape[1], out.shape[2]
        half = nv // 2
        for jj in prange(nb * nvo):
            b = jj // nvo
            j = jj % nvo
            for n in range(m):
                acc = 0.0
                r0 = j + kv[n] - 1
                for a in range(4):
                    row = r0 + a
                    while row >= nv:
                        row -= nv
                    if row < 0:
                        row += nv
                    for c in range(4):
                        col = kc[n] + c - 1
                        if col >= 0 and col < nc:
                            acc += w16[n, 4 * a + c] * p[b, row, col]
                if fold:
                    n2 = m - 1 - n
                    acc2 = 0.0
                    r0 = j + half + kv[n2] - 1
                    for a in range(4):
                        row = r0 + a
                        while row >= nv:
                            row -= nv
                        if row < 0:
                            row += nv
                        for c in range(4):
                            col = kc[n2] + c - 1
                            if col >= 0 and col < nc:
                                acc2 += w16[n2, 4 * a + c] * p[b, row, col]
                    acc = 0.5 * (acc + acc2)
                out[b, j, n] = acc

    @njit(parallel=True, fastmath=False, cache=True)
    def parallel_bp_adj(img, cs, sn, u0, du, n, d, weight, out):  # img (N, N, B) -> out (V, M, B)
        nv, m, nb = out.shape
        h = (n - 1) / 2.0
        for k in prange(nv):  # each view owns its row of out: no races, fixed order
            a = cs[k] * d / du
            for i in range(n):
                y = (h - i) * d
                t_first = ((-h * d) * cs[k] + y * sn[k] - u0) / du
                for j in range(n):
                    t = t_first + j * a
                    if t >= 0.0 and t < m - 1:
                        i0 = int(t)
                        f = t - i0
                        for b in range(nb):
                            gv = img[i, j, b] * weight
                            out[k, i0, b] += gv - f * gv
                            out[k, i0 + 1, b] += f * gv

    @njit(parallel=True, fastmath=False, cache=True)
    def rebin_adj(g, kc, wc, kv, wv, fold, out):  # g (B, V', M) -> out (B, V, C), zeroed
        nb, nv, nc = out.shape
        m = g.shape[2]
        half = nv // 2
        for jj in prange(nb * nv):  # one measured row per iteration: a gather, no races
            b = jj // nv
            r = jj % nv
            for n in range(m):
                acc = 0.0
                for a in range(4):
                    j = r - kv[n] - a + 1  # in [-nv - 2, nv]
                    while j < 0:
                        j += nv
                    if j >= nv:
                        j -= nv
                    if fold:
                        if j < half:
                            val = 0.5 * g[b, j, n]
                        else:
                            val = 0.5 * g[b, j - half, m - 1 - n]
                    else:
                        val = g[b, j, n]
                    acc += wv[n, a] * val
                for c in range(4):
                    col = kc[n] + c - 1
                    if col >= 0 and col < nc:
                        out[b, r, col] += wc[n, c] * acc

    _KERNELS.update(joseph_fp=joseph_fp, joseph_bp=joseph_bp, parallel_bp=parallel_bp,
                    rebin=rebin, parallel_bp_adj=parallel_bp_adj, rebin_adj=rebin_adj)
    return _KERNELS


def _set_threads() -> int:
    """Run numba's kernels on as many threads as torch's intra-op pool, and leave torch's as is.

    The first ``numba.set_num_threads`` starts numba's OpenMP pool, which sets the calling
    thread's OpenMP thread count to ``NUMBA_NUM_THREADS``; torch reads its intra-op count from
    the same setting, so a process held at one torch thread (a dask worker, ``preprocess``)
    silently ran torch on every core afterwards.
    """
    torch_threads = torch.get_num_threads()
    nt = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(nt)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return nt


def _dt(x: torch.Tensor) -> type:
    return np.float64 if x.dtype == torch.float64 else np.float32


def _rays(g, dt, plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def build():
        phi, s = g.ray_lines()
        return (np.ascontiguousarray(np.cos(phi).ravel(), dtype=dt),
                np.ascontiguousarray(np.sin(phi).ravel(), dtype=dt),
                np.ascontiguousarray(s.ravel(), dtype=dt))

    return plan.get(("numba-rays", dt), build)


def project(x: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    k = _kernels()
    _set_threads()
    dt = _dt(x)
    img = np.ascontiguousarray(x.detach().numpy().transpose(1, 2, 0), dtype=dt)
    cs, sn, off = _rays(g, dt, plan)
    out = np.empty((cs.shape[0], img.shape[2]), dtype=dt)
    k["joseph_fp"](img, cs, sn, off, g.image_size, dt(g.pixel_size), out)
    return torch.from_numpy(out.T.reshape(-1, g.n_views, g.n_det).copy())


def backproject(y: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    k = _kernels()
    nt = _set_threads()
    dt = _dt(y)
    b = y.shape[0]
    sino = np.ascontiguousarray(y.detach().numpy().reshape(b, -1).T, dtype=dt)
    cs, sn, off = _rays(g, dt, plan)
    n = g.image_size
    out = np.zeros((nt, n, n, b), dtype=dt)
    k["joseph_bp"](sino, cs, sn, off, n, dt(g.pixel_size), nt, out)
    return torch.from_numpy(np.ascontiguousarray(out.sum(0).transpose(2, 0, 1)))


def _trig(angles: np.ndarray, dt, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    return plan.get(("numba-fbp-trig", dt),
                    lambda: (np.cos(angles).astype(dt), np.sin(angles).astype(dt)))


def fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float, n: int,
                    d: float, weight: float, plan: Plan) -> torch.Tensor:
    k = _kernels()
    _set_threads()
    dt = _dt(q)
    v, m, b = q.shape[1], q.shape[2], q.shape[0]
    qq = np.zeros((v, m + 2, b), dtype=dt)  # one zero channel each side: linear ramp to 0
    qq[:, 1:-1, :] = q.detach().numpy().transpose(1, 2, 0)
    out = np.empty((n, n, b), dtype=dt)
    cs, sn = _trig(angles, dt, plan)
    k["parallel_bp"](qq, cs, sn, dt(u0 - du), dt(du), n, dt(d), dt(weight), TILE, out)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def fbp_backproject_adjoint(img: torch.Tensor, angles: np.ndarray, u0: float, du: float,
                            m: int, d: float, weight: float, plan: Plan) -> torch.Tensor:
    """Adjoint of :func:`fbp_backproject`: ``(B, N, N) -> (B, V, M)``, one view per thread
    (the same taps, scattered into the view's own row)."""
    k = _kernels()
    _set_threads()
    dt = _dt(img)
    b, n = img.shape[0], img.shape[-1]
    v = len(angles)
    im = np.ascontiguousarray(img.detach().numpy().transpose(1, 2, 0), dtype=dt)
    out = np.zeros((v, m + 2, b), dtype=dt)
    cs, sn = _trig(angles, dt, plan)
    k["parallel_bp_adj"](im, cs, sn, dt(u0 - du), dt(du), n, dt(d), dt(weight), out)
    return torch.from_numpy(np.ascontiguousarray(out[:, 1:-1, :].transpose(2, 0, 1)))


def _keys(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Catmull-Rom taps: base index (int64) and the 4 weights for offsets -1, 0, 1, 2."""
    t0 = np.floor(t)
    f = t - t0
    f2, f3 = f * f, f * f * f
    w = np.stack([-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1.0,
                  -1.5 * f3 + 2.0 * f2 + 0.5 * f, 0.5 * f3 - 0.5 * f2], axis=1)
    return t0.astype(np.int64), w


def _rebin_taps(t: np.ndarray, shift: np.ndarray, v: int, dt, plan: Plan) -> tuple:
    def build():
        kc, wc = _keys(t)
        kv, wv = _keys(shift)
        wc, wv = wc.astype(dt), wv.astype(dt)
        w16 = np.ascontiguousarray((wv[:, :, None] * wc[:, None, :]).reshape(-1, 16))
        return kc, np.ascontiguousarray(wc), kv % v, np.ascontiguousarray(wv), w16

    return plan.get(("numba-rebin", dt), build)


def rebin(sino: torch.Tensor, t: np.ndarray, shift: np.ndarray, fold: bool,
          plan: Plan) -> torch.Tensor:
    """Fan -> parallel rebinning: Catmull-Rom across channels (``t``) and periodic
    Catmull-Rom along views (``shift``); ``fold`` averages the two halves."""
    k = _kernels()
    _set_threads()
    dt = _dt(sino)
    p = np.ascontiguousarray(sino.detach().numpy(), dtype=dt)
    b, v, _ = p.shape
    kc, _, kv, _, w16 = _rebin_taps(t, shift, v, dt, plan)
    out = np.empty((b, v // 2 if fold else v, t.shape[0]), dtype=dt)
    k["rebin"](p, kc, w16, kv, fold, out)
    return torch.from_numpy(out)


def rebin_adjoint(grad: torch.Tensor, t: np.ndarray, shift: np.ndarray, fold: bool,
                  shape: tuple[int, int], plan: Plan) -> torch.Tensor:
    """Adjoint of :func:`rebin`: ``(B, V', M) -> (B, V, C)`` with ``shape = (V, C)``."""
    k = _kernels()
    _set_threads()
    dt = _dt(grad)
    gr = np.ascontiguousarray(grad.detach().numpy(), dtype=dt)
    v, c = shape
    kc, wc, kv, wv, _ = _rebin_taps(t, shift, v, dt, plan)
    out = np.zeros((gr.shape[0], v, c), dtype=dt)
    k["rebin_adj"](gr, kc, wc, kv, wv, fold, out)
    return torch.from_numpy(out)
