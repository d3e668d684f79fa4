"""Training-step throughput of the zoo's CPU-budget models, and the zoo's parameter counts.

Throughput: images (slices) per second of full training steps (forward, BCE loss, backward,
Adam update) at the quick preset's sizes: 128 x 128 images (and 64 x 64 for ResNet-18) and
2D sinograms of 492 views x 222 channels. Each case runs ``--warmup`` steps, then the median of
``--repeats`` timed steps; images/s = batch / median step time. Threads: torch's default.

Parameter counts: every registered model built with ``in_channels=1, num_classes=1`` and its
default options (DeiT at 224 x 224; ``cnn_lstm`` / ``slice_fusion`` on their default ResNet-50).

Usage::

    python benchmarks/model_throughput.py               # both parts
    python benchmarks/model_throughput.py --only params
    python benchmarks/model_throughput.py --only throughput

Writes ``benchmarks/results/model_throughput_cpu.{json,md}`` and
``benchmarks/results/model_params.{json,md}`` (or under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from sinotriage import models
from sinotriage.io.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"

#: (model, in_channels, spatial size (H, W), batch)
CASES = [
    ("densenet_slim", 3, (128, 128), 16),
    ("densenet_slim", 1, (492, 222), 4),
    ("densenet121", 3, (128, 128), 8),
    ("resnet18", 3, (64, 64), 16),
    ("mini_unet_slim", 1, (492, 222), 4),
    ("mini_unet", 1, (492, 222), 2),
    ("mini_unet_slim", 1, (128, 128), 16),
]


def throughput(
    name: str, in_channels: int, size: tuple[int, int], batch: int, warmup: int, repeats: int
) -> dict:
    """Images/s of training steps of ``name`` on the CPU (see the module docstring)."""
    torch.manual_seed(0)
    model = models.create(name, in_channels=in_channels, num_classes=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, in_channels, *size)
    y = torch.randint(0, 2, (batch, 1)).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {
        "model": name,
        "in_channels": in_channels,
        "size": list(size),
        "batch": batch,
        "step_s": t,
        "images_per_s": batch / t,
    }


def parameter_counts() -> list[dict]:
    """Parameter count of every registered model (``in_channels=1, num_classes=1``)."""
    rows = []
    for name in models.available():
        s = models.spec(name)
        for dims in s.spatial_dims:
            model = models.create(name, in_channels=1, num_classes=1, spatial_dims=dims)
            rows.append(
                {
                    "model": name,
                    "spatial_dims": dims,
                    "parameters": models.count_parameters(model),
                }
            )
            del model
    return rows


def throughput_markdown(info: dict) -> list[str]:
    """Markdown lines of the throughput table, with each case's speed relative to the first.

    The relative column (images/s over that of ``densenet_slim`` at 3 x 128 x 128, measured in
    the same run) carries over between machines and loads better than the absolute figures.
    """
    ref = info["rows"][0]
    md = [
        f"CPU training steps (forward + backward + Adam), {info['threads']} threads, "
        f"load average {info['load_average_1min']:.1f} on {info['cpu_count']} cores.",
        "",
        f"| model | input | batch | step (s) | images/s | relative to {ref['model']} "
        f"{ref['size'][0]} x {ref['size'][1]} |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in info["rows"]:
        md.append(
            f"| {r['model']} | {r['in_channels']} x {r['size'][0]} x {r['size'][1]} "
            f"| {r['batch']} | {r['step_s']:.2f} | {r['images_per_s']:.1f} "
            f"| {r['images_per_s'] / ref['images_per_s']:.3f} |"
        )
    return md



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["params", "throughput"], default=None)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the markdown from the saved JSON"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render:
        info = json.loads((args.out / "model_throughput_cpu.json").read_text())
        md = throughput_markdown(info)
        print("\n".join(md))
        atomic_write_text(args.out / "model_throughput_cpu.md", "\n".join(md) + "\n")
        return 0
    if args.only in (None, "params"):
        rows = parameter_counts()
        md = ["| model | spatial dims | parameters |", "| --- | ---: | ---: |"]
        md += [f"| {r['model']} | {r['spatial_dims']}D | {r['parameters']:,} |" for r in rows]
        print("\n".join(md))
        atomic_write_text(args.out / "model_params.json", json.dumps(rows, indent=2) + "\n")
        atomic_write_text(args.out / "model_params.md", "\n".join(md) + "\n")
    if args.only in (None, "throughput"):
        from rich.progress import track

        rows = [
            throughput(*case, warmup=args.warmup, repeats=args.repeats)
            for case in track(CASES, description="training steps", transient=True)
        ]
        info = {
            "device": "cpu",
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "torch": torch.__version__,
            "rows": rows,
        }
        md = throughput_markdown(info)
        print("\n".join(md))
        atomic_write_text(args.out / "model_throughput_cpu.json", json.dumps(info, indent=2) + "\n")
        atomic_write_text(args.out / "model_throughput_cpu.md", "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
