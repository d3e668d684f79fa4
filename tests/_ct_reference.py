"""Independent references for the operator tests (numpy only; no sinotriage code).

* exact line integrals of ellipses;
* area-weighted rasterisation of ellipses by supersampling;
* a plain textbook equiangular fan-beam FBP: Kak & Slaney, *Principles of Computerized
  Tomographic Imaging* (IEEE Press 1988), ch. 3.4.2, eqs. (3.97)-(3.104) in the SIAM
  reprint: pre-weight ``R'(beta, gamma) = R(beta, gamma) D cos(gamma)``; convolve with
  ``g(n a) = 1/2 (n a / sin(n a))^2 h(n a)`` with ``a`` the angular pitch and ``h`` the
  band-limited ramp ``h(0) = 1/(4 a^2)``, ``h(odd n) = -1/(n pi a)^2``, 0 for even ``n``;
  ``Q = a (R' * g)``; backproject
  ``f(x, y) = sum_beta dbeta Q_beta(gamma') / L^2`` with linear interpolation in gamma.
"""

from __future__ import annotations

import numpy as np

# (value relative to mu_head, x0, y0, a, b, angle) in units of the head half-size: Toft's
# "modified Shepp-Logan" (P. Toft, PhD thesis, 1996, table B.3).
MODIFIED_SHEPP_LOGAN = [
    (1.0, 0.0, 0.0, 0.69, 0.92, 0.0),
    (-0.8, 0.0, -0.0184, 0.6624, 0.874, 0.0),
    (-0.2, 0.22, 0.0, 0.11, 0.31, np.deg2rad(-18)),
    (-0.2, -0.22, 0.0, 0.16, 0.41, np.deg2rad(18)),
    (0.1, 0.0, 0.35, 0.21, 0.25, 0.0),
    (0.1, 0.0, 0.1, 0.046, 0.046, 0.0),
    (0.1, 0.0, -0.1, 0.046, 0.046, 0.0),
    (0.1, -0.08, -0.605, 0.046, 0.023, 0.0),
    (0.1, 0.0, -0.606, 0.023, 0.023, 0.0),
    (0.1, 0.06, -0.605, 0.023, 0.046, 0.0),
]


def shepp_logan_mm(half_size: float = 120.0, mu: float = 0.02) -> list[tuple]:
    """Ellipses ``(rho mm^-1, x0, y0, a, b, alpha)`` in mm for a head of that half-size."""
    return [(r * mu, x * half_size, y * half_size, a * half_size, b * half_size, t)
            for r, x, y, a, b, t in MODIFIED_SHEPP_LOGAN]


def ellipse_line_integrals(phi: np.ndarray, s: np.ndarray, ellipses: list[tuple]) -> np.ndarray:
    """Exact integrals along the lines ``x cos(phi) + y sin(phi) = s``."""
    out = np.zeros(np.broadcast(phi, s).shape)
    for rho, x0, y0, a, b, alpha in ellipses:
        sp = s - (x0 * np.cos(phi) + y0 * np.sin(phi))
        t = phi - alpha
        a2 = (a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2
        inside = sp ** 2 < a2
        out += np.where(inside, 2 * rho * a * b * np.sqrt(np.where(inside, a2 - sp ** 2, 0)) / a2,
                        0.0)
    return out


def rasterize(ellipses: list[tuple], n: int, d: float, supersample: int = 4) -> np.ndarray:
    """Pixel averages of the ellipse phantom, pixel ``(i, j)`` at ``x = (j-(n-1)/2) d``,
    ``y = ((n-1)/2 - i) d``."""
    m = n * supersample
    c = (np.arange(m) - (m - 1) / 2) * d / supersample
    xx, yy = np.meshgrid(c, -c)
    img = np.zeros_like(xx)
    for rho, x0, y0, a, b, alpha in ellipses:
        xr = (xx - x0) * np.cos(alpha) + (yy - y0) * np.sin(alpha)
        yr = -(xx - x0) * np.sin(alpha) + (yy - y0) * np.cos(alpha)
        img += rho * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0)
    return img.reshape(n, supersample, n, supersample).mean(axis=(1, 3))


def textbook_equiangular_fbp(sino: np.ndarray, betas: np.ndarray, gammas: np.ndarray,
                             sid: float, n: int, d: float) -> np.ndarray:
    """Kak & Slaney ch. 3 equiangular FBP of a full 2 pi scan; ``sino`` is ``(V, C)``
    with source angles ``betas`` and uniformly spaced fan angles ``gammas``."""
    v, c = sino.shape
    alpha = gammas[1] - gammas[0]
    k = np.arange(-(c - 1), c)
    h = np.zeros(k.shape)
    h[k == 0] = 1.0 / (4 * alpha ** 2)
    odd = (k % 2) != 0
    h[odd] = -1.0 / (k[odd] * np.pi * alpha) ** 2
    ratio = np.ones(k.shape)
    nz = k != 0
    ratio[nz] = (k[nz] * alpha) / np.sin(k[nz] * alpha)
    g = 0.5 * ratio ** 2 * h
    rp = sino * sid * np.cos(gammas)[None, :]
    q = np.stack([alpha * np.convolve(row, g, mode="full")[c - 1: 2 * c - 1] for row in rp])
    coords = (np.arange(n) - (n - 1) / 2) * d
    xx, yy = np.meshgrid(coords, -coords)
    img = np.zeros((n, n))
    dbeta = 2 * np.pi / v
    for kk in range(v):
        cb, sb = np.cos(betas[kk]), np.sin(betas[kk])
        vx, vy = xx - sid * cb, yy - sid * sb  # source -> pixel
        cx, cy = -cb, -sb  # central ray direction
        gam = np.arctan2(cx * vy - cy * vx, cx * vx + cy * vy)
        l2 = vx ** 2 + vy ** 2
        img += dbeta * np.interp(gam, gammas, q[kk], left=0.0, right=0.0) / l2
    return img
