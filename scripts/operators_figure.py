"""Figure for docs/operators.md: the fan-beam conventions, a sinogram and reconstructions.

Usage::

    python scripts/operators_figure.py [--out docs/figures/operators_conventions.png]
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sinotriage.geometry import sinoct  # noqa: E402
from sinotriage.operators import fbp, hu_to_mu, mu_to_hu, project, subsample_views  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Toft's modified Shepp-Logan: (value, x0, y0, a, b, angle in degrees), unit half-size
SHEPP_LOGAN = [(1.0, 0, 0, 0.69, 0.92, 0), (-0.8, 0, -0.0184, 0.6624, 0.874, 0),
               (-0.2, 0.22, 0, 0.11, 0.31, -18), (-0.2, -0.22, 0, 0.16, 0.41, 18),
               (0.1, 0, 0.35, 0.21, 0.25, 0), (0.1, 0, 0.1, 0.046, 0.046, 0),
               (0.1, 0, -0.1, 0.046, 0.046, 0), (0.1, -0.08, -0.605, 0.046, 0.023, 0),
               (0.1, 0, -0.606, 0.023, 0.023, 0), (0.1, 0.06, -0.605, 0.023, 0.046, 0)]


def phantom_hu(n: int, pixel: float, half: float = 110.0) -> np.ndarray:
    """Shepp-Logan head in HU on the sinotriage pixel grid (4 x 4 supersampled): air
    -1000, skull +800, brain 0, the small ellipses +-20 to 40 HU."""
    ss = 4
    c = (np.arange(n * ss) - (n * ss - 1) / 2) * pixel / ss
    xx, yy = np.meshgrid(c, -c)
    img = np.full_like(xx, -1000.0)
    for k, (v, x0, y0, a, b, t) in enumerate(SHEPP_LOGAN):
        v = v * 1800 if k == 0 else (v * 1000 if k == 1 else v * 200)
        t = math.radians(t)
        xr = (xx - x0 * half) * math.cos(t) + (yy - y0 * half) * math.sin(t)
        yr = -(xx - x0 * half) * math.sin(t) + (yy - y0 * half) * math.cos(t)
        img += v * ((xr / (a * half)) ** 2 + (yr / (b * half)) ** 2 <= 1)
    return img.reshape(n, ss, n, ss).mean(axis=(1, 3))


def sketch(ax: plt.Axes) -> None:
    """Source circle, one view's fan, the curved detector and the image square."""
    g = sinoct(8)
    beta = math.radians(60)
    src = g.sid * np.array([math.cos(beta), math.sin(beta)])
    ax.add_patch(plt.Circle((0, 0), g.sid, fill=False, ls=":", color="0.6"))
    ax.add_patch(plt.Rectangle((-125, -125), 250, 250, fill=False, color="k"))
    ax.add_patch(plt.Circle((0, 0), g.fov_radius, fill=False, ls="--", color="tab:green"))
    gam = g.fan_angles
    central = -src / np.linalg.norm(src)
    for k, gm in enumerate(np.linspace(gam[0], gam[-1], 9)):
        d = np.array([central[0] * math.cos(gm) - central[1] * math.sin(gm),
                      central[0] * math.sin(gm) + central[1] * math.cos(gm)])
        end = src + g.sdd * d
        ax.plot(*zip(src, end, strict=True), color="tab:orange" if k != 4 else "tab:red",
                lw=0.8 if k != 4 else 1.5)
    arc = np.linspace(gam[0], gam[-1], 100)
    det = np.array([src + g.sdd * np.array([central[0] * math.cos(a) - central[1] * math.sin(a),
                                            central[0] * math.sin(a) + central[1] * math.cos(a)])
                    for a in arc])
    ax.plot(det[:, 0], det[:, 1], color="tab:blue", lw=3)
    ax.plot(*src, "o", color="tab:red")
    ax.annotate("source, beta = 60 deg\n(counter-clockwise from +x)", src, (src[0] + 40, src[1]),
                fontsize=7)
    ax.text(-580, -680, "curved detector, 888 channels\n(channel 0 at the most negative gamma)",
            fontsize=7, color="tab:blue")
    ax.annotate("pixel (0, 0)", (-125, 125), (-420, 230), fontsize=7,
                arrowprops=dict(arrowstyle="->", lw=0.6))
    ax.arrow(0, 0, 120, 0, head_width=15, color="k")
    ax.arrow(0, 0, 0, 120, head_width=15, color="k")
    ax.text(130, -30, "x", fontsize=8)
    ax.text(-40, 130, "y", fontsize=8)
    ax.set_xlim(-600, 700)
    ax.set_ylim(-700, 620)
    ax.set_aspect("equal")
    ax.set_title("SinoCT geometry (mm): sid 541, sdd 949.075", fontsize=8)
    ax.tick_params(labelsize=6)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/figures/operators_conventions.png")
    ap.add_argument("--size", type=int, default=256, help="image size (pixels over 250 mm)")
    args = ap.parse_args(argv)
    g = sinoct(args.size)
    mu = hu_to_mu(torch.tensor(phantom_hu(args.size, g.pixel_size), dtype=torch.float32))
    sino = project(mu, g)
    rec = fbp(sino, g)
    sub, g8 = subsample_views(sino, g, 8)
    rec8 = fbp(sub, g8)
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    sketch(axes[0])
    win = dict(cmap="gray", vmin=-60, vmax=90)
    axes[1].imshow(mu_to_hu(mu).numpy(), **win)
    axes[1].set_title(f"phantom, {args.size}$^2$ over 250 mm (window -60..90 HU)", fontsize=8)
    axes[2].imshow(sino.numpy(), cmap="gray", aspect="auto")
    axes[2].set_title("sinogram 984 views x 888 channels", fontsize=8)
    axes[2].set_xlabel("channel m (gamma grows to the right)", fontsize=7)
    axes[2].set_ylabel("view k (beta = 2 pi k / 984)", fontsize=7)
    axes[3].imshow(mu_to_hu(rec).numpy(), **win)
    axes[3].set_title("fbp, 984 views (ram-lak)", fontsize=8)
    axes[4].imshow(mu_to_hu(rec8).numpy(), **win)
    axes[4].set_title("fbp after subsample_views(factor=8): 123 views", fontsize=8)
    for ax in axes[1:]:
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
