"""Cost of the learned domain's FBP inside a training step, at the quick preset's size.

A training step of ``learned_fbp`` (raw sinogram -> learnable-filter FBP -> learnable windows ->
``densenet_slim``) is split into its parts and compared with the same step of the windowed arm
(``densenet_slim`` on three fixed windows of a stored reconstruction):

- ``fbp forward``: rebinning, filtering and the sparse backprojection of a batch;
- ``fbp backward``: the gradient from the HU image to the filter gain;
- ``image model step``: forward, BCE loss, backward of ``densenet_slim`` on the windowed batch;
- ``learned step``: the whole step of ``learned_fbp`` (the sum of the above, plus the windows).

Sizes are the quick preset's (the ``tiny`` data preset: 64 x 64 images, 246 x 111 sinograms),
batch 32, at the study's view counts (246, 61 and 15 views). Each case runs ``--warmup`` steps,
then the median of ``--repeats``. The acceptance question is whether the FBP's backward pass
dominates an epoch: the table gives it as a share of the learned step.

Usage::

    python benchmarks/learned_recon.py [--repeats 5] [--threads 2] [--out DIR]

Writes ``learned_recon.{json,md}`` under ``benchmarks/results`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from sinotriage import models
from sinotriage.geometry import sinoct
from sinotriage.presets import get_preset

RESULTS = Path(__file__).resolve().parent / "results"


def _median_time(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(views: int, batch: int, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of each part of a training step at ``views`` views."""
    p = get_preset("tiny")
    g = sinoct(image_size=p.image_size, n_views=p.n_views, n_det=p.n_det).with_views(views)
    torch.manual_seed(0)
    sino = torch.rand(batch, 1, views, p.n_det) * 4
    y = (torch.rand(batch) < 0.5).float()
    net = models.create("learned_fbp", geometry=g.to_dict(), num_classes=1)
    image = models.create("densenet_slim", in_channels=3, num_classes=1)
    windowed = torch.rand(batch, 3, p.image_size, p.image_size)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def fbp_forward() -> None:
        with torch.no_grad():
            net.fbp(sino)

    hu = net.fbp(sino)
    weights = torch.randn_like(hu)

    def fbp_backward() -> None:
        net.fbp.gain.grad = None
        (hu * weights).sum().backward(retain_graph=True)

    def image_step() -> None:
        image.zero_grad()
        loss_fn(image(windowed)[:, 0], y).backward()

    def learned_step() -> None:
        net.zero_grad()
        loss_fn(net(sino)[:, 0], y).backward()

    return {
        "views": views,
        "batch": batch,
        "fbp_forward_s": _median_time(fbp_forward, warmup, repeats),
        "fbp_backward_s": _median_time(fbp_backward, warmup, repeats),
        "image_model_step_s": _median_time(image_step, warmup, repeats),
        "learned_step_s": _median_time(learned_step, warmup, repeats),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, nargs="+", default=[246, 61, 15])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(v, args.batch, args.warmup, args.repeats) for v in args.views]
    lines = ["| views | FBP forward (s) | FBP backward (s) | image model step (s) | "
             "learned step (s) | FBP backward / learned step |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        share = r["fbp_backward_s"] / r["learned_step_s"]
        r["fbp_backward_share"] = share
        lines.append(f"| {r['views']} | {r['fbp_forward_s']:.3f} | {r['fbp_backward_s']:.3f} | "
                     f"{r['image_model_step_s']:.3f} | {r['learned_step_s']:.3f} | "
                     f"{share:.0%} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    (args.out / "learned_recon.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                            indent=2) + "\n")
    (args.out / "learned_recon.md").write_text(
        f"Learned-domain step at the quick preset's size, batch {args.batch}, "
        f"{meta['torch_threads']} torch threads ({meta['machine']}).\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
