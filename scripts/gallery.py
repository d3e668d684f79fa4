"""Render the synthetic head-CT gallery: each hemorrhage subtype and a normal study.

Rows: normal, epidural, intraparenchymal, intraventricular, subarachnoid, subdural. Columns:
brain window (40/80), subdural window (75/215), the lesion outlined in red, and the slice's
fan-beam sinogram (SinoCT geometry: 2 pi arc, curved detector; half the views and channels by
default to keep the run short). For every subtype the first seed from ``--seed0`` whose lesion
covers at least ``--min-area`` pixels on its largest slice is shown (deterministic).

    python scripts/gallery.py --out docs/figures/gallery.png
"""

from __future__ import annotations

import argparse
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sinotriage.geometry import sinoct  # noqa: E402
from sinotriage.operators import hu_to_mu, project  # noqa: E402
from sinotriage.phantoms import SUBTYPES, head_ct  # noqa: E402

WINDOWS = {"brain": (40.0, 80.0), "subdural": (75.0, 215.0)}


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Linear display window: ``clip((hu - (level - width / 2)) / width, 0, 1)``."""
    try:
        from sinotriage.windowing import window as lib_window
    except ImportError:
        return np.clip((hu - (level - width / 2.0)) / width, 0.0, 1.0)
    return np.asarray(lib_window(torch.from_numpy(np.array(hu)), level=level, width=width))


def pick(subtype: str | None, seed0: int, args: argparse.Namespace):
    """First study (and its slice) from ``seed0`` whose lesion is large enough to show."""
    for seed in range(seed0, seed0 + 200):
        subtypes = (subtype,) if subtype else ()
        case = head_ct(seed, n_slices=args.slices, image_size=args.image_size,
                       pixel_size=250.0 / args.image_size, subtypes=subtypes,
                       difficulty=args.difficulty)
        if subtype is None:
            return case, int(0.45 * args.slices)  # the level of the lateral ventricles
        area = (case.mask > 0).sum(axis=(1, 2))
        if area.max() >= args.min_area[subtype]:
            return case, int(np.argmax(area))
    raise RuntimeError(f"no {subtype} study with a large enough lesion from seed {seed0}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/figures/gallery.png")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--difficulty", default="standard")
    ap.add_argument("--seed0", type=int, default=100)
    ap.add_argument("--views", type=int, default=492)
    ap.add_argument("--channels", type=int, default=444)
    ap.add_argument("--dpi", type=int, default=80)
    args = ap.parse_args()
    scale = (args.image_size / 256) ** 2
    args.min_area = {"epidural": 350 * scale, "intraparenchymal": 250 * scale,
                     "intraventricular": 60 * scale, "subarachnoid": 200 * scale,
                     "subdural": 700 * scale}
    geom = sinoct(image_size=args.image_size, n_views=args.views, n_det=args.channels)

    rows = [None, *SUBTYPES]
    fig, axes = plt.subplots(len(rows), 4, figsize=(4 * 3.2, len(rows) * 3.3))
    for r, subtype in enumerate(rows):
        case, k = pick(subtype, args.seed0, args)
        hu = case.hu[k]
        sino = project(hu_to_mu(torch.from_numpy(np.array(hu))), geom).numpy()
        title = subtype or "normal"
        s = case.settings
        info = f"seed {s['seed']}, slice {k}/{case.hu.shape[0]}"
        for c, (name, (lv, wd)) in enumerate(WINDOWS.items()):
            axes[r, c].imshow(window(hu, lv, wd), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"{title}: {name} {lv:g}/{wd:g}", fontsize=9)
        axes[r, 2].imshow(window(hu, 40, 80), cmap="gray", vmin=0, vmax=1)
        if case.mask[k].any():
            axes[r, 2].contour(case.mask[k] > 0, levels=[0.5], colors="red", linewidths=0.8)
        axes[r, 2].set_title(f"mask ({info})", fontsize=9)
        axes[r, 3].imshow(sino, cmap="gray", aspect="auto")
        axes[r, 3].set_title(f"sinogram {sino.shape[0]} views x {sino.shape[1]} ch", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        print(title, info, "lesions:", s["lesions"])
    fig.suptitle(f"sinotriage synthetic head CT ({args.difficulty}, {args.image_size} px, "
                 f"{args.slices} slices)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=args.dpi)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
