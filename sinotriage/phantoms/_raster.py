"""Rasterization helpers: the sampling grid, approximate signed distances and the compositor.

Partial volume
--------------
Shapes are implicit: each returns an approximate signed distance ``d`` in mm (negative inside).
In-plane, a voxel of size ``dx`` is covered by the fraction ``clip(0.5 - d / dx, 0, 1)``, which
is the exact box-filter coverage of a planar edge aligned with the grid and a good
approximation for smooth surfaces (analytic anti-aliasing). Along z each slice is sampled at
``zs`` sub-slices spread over its thickness and the results are averaged, so the slice
thickness equals the spacing (thick-slice partial volume, as on a scanner).

Compositing is painter's-style: ``hu <- (1 - a) hu + a value`` for coverage ``a``; a voxel's
class becomes the painted class where ``a >= 0.5``. ``purity`` tracks a lower bound of the
fraction of the sub-voxel occupied by its class; ``purity == 1`` marks unambiguous voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Compositor", "Frame", "coverage", "ellipsoid_sdf", "WaveField"]

_EPS = 1e-6


def coverage(sdf: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a voxel of in-plane size ``width`` (mm) inside ``sdf < 0``; float32."""
    a = 0.5 - sdf * np.float32(1.0 / width)
    return np.clip(a, 0.0, 1.0, out=a)


def ellipsoid_sdf(u: np.ndarray, v: np.ndarray, w: np.ndarray,
                  center: tuple[float, float, float], axes: tuple[float, float, float],
                  yaw: float = 0.0) -> np.ndarray:
    """First-order signed distance (mm) to an ellipsoid in head coordinates.

    ``(r - 1) / |grad r|`` with ``r`` the normalized radius: exact on the surface's normal
    direction to first order, exact everywhere for a sphere. ``yaw`` rotates the ellipsoid about
    the w (superior) axis, radians.
    """
    du, dv, dw = u - center[0], v - center[1], w - center[2]
    if yaw:
        c, s = np.cos(yaw), np.sin(yaw)
        du, dv = c * du + s * dv, -s * du + c * dv
    qa, qb, qc = du / axes[0], dv / axes[1], dw / axes[2]
    r = np.sqrt(qa * qa + qb * qb + qc * qc)
    g = np.sqrt((qa / axes[0]) ** 2 + (qb / axes[1]) ** 2 + (qc / axes[2]) ** 2)
    return ((r - 1.0) * r / (g + _EPS)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Frame:
    """Sampling grid and the subject's head coordinate frame.

    World coordinates follow the project convention (``x`` to the right of the image, ``y`` to
    its top = anterior, ``z`` superior); pixel ``(i, j)`` is centred at
    ``x = (j - (N-1)/2) d``, ``y = ((N-1)/2 - i) d``. Head coordinates ``(u, v, w)`` are
    left-right, posterior-anterior and inferior-superior axes of the skull, ``q = R^T p``.
    """

    x: np.ndarray  # (W,) mm
    y: np.ndarray  # (H,) mm
    z: np.ndarray  # (Dz,) mm, sub-slice centres
    rot: np.ndarray  # (3, 3) head -> world rotation

    def head_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head coordinates ``(u, v, w)`` on the grid, each ``(Dz, H, W)`` float32."""
        x = self.x.astype(np.float32)[None, None, :]
        y = self.y.astype(np.float32)[None, :, None]
        z = self.z.astype(np.float32)[:, None, None]
        r = self.rot.astype(np.float32)
        return tuple(r[0, k] * x + r[1, k] * y + r[2, k] * z for k in range(3))  # type: ignore[return-value]

    def box(self, lo: tuple[float, float, float], hi: tuple[float, float, float],
            margin: float = 2.0) -> tuple[slice, slice, slice] | None:
        """Index slices ``(z, y, x)`` of the grid covering the head-frame box ``[lo, hi]``.

        Returns None when the box misses the grid.
        """
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                            for c in (lo[2], hi[2])])
        world = corners @ self.rot.T
        wlo, whi = world.min(axis=0) - margin, world.max(axis=0) + margin
        out = []
        for axis_vals, k in ((self.z, 2), (self.y, 1), (self.x, 0)):
            inside = np.nonzero((axis_vals >= wlo[k]) & (axis_vals <= whi[k]))[0]
            if inside.size == 0:
                return None
            out.append(slice(int(inside[0]), int(inside[-1]) + 1))
        return out[0], out[1], out[2]


class WaveField:
    """A smooth random field: a sum of plane waves in head coordinates, evaluated separably.

    ``f(q) = sum_i a_i cos(k_i . q + phi_i)``; since ``q = R^T p`` is linear in world
    coordinates each wave factorizes into 1-D complex exponentials along x, y and z, so a wave
    costs one complex multiply per voxel instead of a cosine.
    """

    def __init__(self, rng: np.random.Generator, n_waves: int, wavelength: float,
                 anisotropy: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
        dirs = rng.normal(size=(n_waves, 3)) * np.asarray(anisotropy)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lam = wavelength * rng.uniform(0.8, 1.25, size=n_waves)
        self.k = dirs * (2 * np.pi / lam)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, size=n_waves)
        amp = np.ones(n_waves)
        self.amp = amp / np.sqrt(0.5 * np.sum(amp ** 2))  # unit rms value
        # rms of |grad f| (waves independent): sqrt(sum a^2 |k|^2 / 2)
        self.grad_rms = float(np.sqrt(0.5 * np.sum(self.amp ** 2 * np.sum(self.k ** 2, 1))))

    def evaluate(self, frame: Frame, box: tuple[slice, slice, slice] | None = None) -> np.ndarray:
        """Field values on the grid (or on ``box`` of it), float32."""
        bz, by, bx = box if box is not None else (slice(None),) * 3
        x, y, z = frame.x[bx], frame.y[by], frame.z[bz]
        kw = self.k @ frame.rot.T  # wave vectors in world coordinates, (n, 3)
        out = np.zeros((z.size, y.size, x.size), np.float32)
        for i in range(len(self.amp)):
            ex = np.exp(1j * kw[i, 0] * x).astype(np.complex64)
            ey = np.exp(1j * kw[i, 1] * y).astype(np.complex64)
            ez = (self.amp[i] * np.exp(1j * (kw[i, 2] * z + self.phase[i]))).astype(np.complex64)
            zy = ez[:, None] * ey[None, :]
            out += (zy[:, :, None] * ex[None, None, :]).real
        return out


class Compositor:
    """Painter's-style accumulation of HU, tissue class, hemorrhage subtype and purity.

    Arrays are ``(Dz, H, W)`` over sub-slices; :meth:`finish` averages them to slices.
    """

    def __init__(self, shape: tuple[int, int, int], background_hu: float, background_class: int):
        self.hu = np.full(shape, background_hu, np.float32)
        self.cls = np.full(shape, background_class, np.uint8)
        self.sub = np.zeros(shape, np.uint8)
        self.purity = np.ones(shape, np.float32)

    def paint(self, alpha: np.ndarray, value: float | np.ndarray, cls: int, sub: int = 0,
              box: tuple[slice, slice, slice] | None = None) -> None:
        """Paint class ``cls`` (hemorrhage subtype ``sub``) with coverage ``alpha`` in ``box``."""
        box = box if box is not None else (slice(None),) * 3
        hit = alpha > 0
        if not hit.any():
            return
        hu, cl, sb, pu = self.hu[box], self.cls[box], self.sub[box], self.purity[box]
        val = np.asarray(value, np.float32)
        hu += alpha * (val - hu)
        major = alpha >= 0.5
        cl[major] = cls
        sb[major] = sub
        np.copyto(pu, np.where(major, alpha, pu * (1.0 - alpha)), where=hit)

    def finish(self, zs: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray]:
        """Average ``zs`` sub-slices per slice.

        Returns
        -------
        hu : (D, H, W) float32, mean over sub-slices.
        cls : (D, H, W) uint8, majority class (ties go to the higher class id, i.e. the
            later-painted, smaller structure).
        sub : (D, H, W) uint8, majority hemorrhage subtype among blood sub-voxels where the
            class is blood, else 0.
        pure : (D, H, W) bool, all sub-voxels of the same class and fully covered by it.
        """
        dz, h, w = self.hu.shape
        d = dz // zs
        hu = self.hu.reshape(d, zs, h, w).mean(axis=1, dtype=np.float32)
        cls4 = self.cls.reshape(d, zs, h, w)
        best = np.zeros((d, h, w), np.uint8)
        best_n = np.zeros((d, h, w), np.int16)
        for k in range(n_classes):
            n = (cls4 == k).sum(axis=1, dtype=np.int16)
            take = n >= best_n
            take &= n > 0
            best[take] = k
            best_n[take] = n[take]
        sub4 = self.sub.reshape(d, zs, h, w)
        sub = np.zeros((d, h, w), np.uint8)
        sub_n = np.zeros((d, h, w), np.int16)
        for k in range(1, 6):
            n = (sub4 == k).sum(axis=1, dtype=np.int16)
            take = n > sub_n
            sub[take] = k
            sub_n[take] = n[take]
        pure = (best_n == zs) & (self.purity.reshape(d, zs, h, w).min(axis=1) >= 1.0)
        return hu, best, sub, pure
