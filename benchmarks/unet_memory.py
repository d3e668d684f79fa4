"""Peak memory and time of one training step of the 3D mini U-Net on a sinogram stack.

One step = forward, BCE loss, backward and an Adam update, batch 1, input ``(1, 1, D, V, C)``.
Four configurations: gradient checkpointing off / on x autocast (bf16) off / on; on CUDA two
more with bf16 and ``offload=True`` (tensors saved for backward kept in pinned host memory).

Memory, by device:

- ``cuda``: ``torch.cuda.max_memory_allocated`` during the step (after a warm-up step, so
  Adam's state already exists), minus nothing: it is the whole footprint of the step, weights,
  gradients and optimizer state included (those are ~70 MB for the 5.65 M-parameter model).
  Default size: the full SinoCT stack, 40 x 984 x 888 (the network runs at that size; until
  the per-level size handling it padded the input to 48 x 992 x 896 first).
  The Stanford project ran out of a 16 GB GPU here; the target is < 8 GB with checkpointing
  and bf16. A configuration that runs out of memory is reported as ``OOM``.
- ``cpu``: each configuration runs in a fresh subprocess; the figure is the process's peak
  resident set size (``getrusage`` ``ru_maxrss``) over the first training step minus its
  resident size just before it (model, optimizer, input and Adam state already built by a
  warm-up step on a tiny input, which also loads the kernels): the step's activations and
  gradients. Default size: a reduced stack 16 x 64 x 64 (no padding needed); this CPU has no
  native bf16 instructions, so bf16 steps there are slow. Reported with the ratio
  checkpointing on / off. Caveat: peak RSS counts everything the process touches (convolution
  work buffers, the allocator's cached blocks), and at the reduced size it did not separate
  the configurations (ratio about 1.0, see docs/models.md); the CUDA figure, which counts
  tensor allocations only, is the one that shows the activation memory.

On every device the rows also give the **saved activations**: the bytes of the tensors autograd
keeps for the backward pass in one forward (``sinotriage.models.memory.saved_activation_bytes``),
which is the activation memory that checkpointing trades for recomputation, measured exactly
and the same on CPU and CUDA; their ratio checkpointing on / off is printed too.

Time: the median of ``--repeats`` steps after the first.

**Estimate without a GPU** (``--estimate``): the CUDA peak of the same step for all six
configurations, by ``estimate_step_memory`` (``benchmarks/memory_estimate.py``): the step runs on fake
tensors (no compute, seconds on a CPU) and the live tensor storages are counted, rounded to the
CUDA allocator's 512-byte blocks, with CUDA autocast's op lists. It is an estimate, not a
measurement: cuDNN/cuBLAS workspaces and allocator effects are not counted. At the full size it
also re-estimates the configurations measured on an H100 (the checkpointing scheme of that run,
one checkpoint per block, rebuilt here as ``BlockCheckpointedUNet``) and prints estimate against
measurement, and it counts the floating-point operations of a step (``FlopCounterMode``).
The model of that run also padded its input to a multiple of 16 on every axis (48 x 992 x 896);
the re-estimate pads the same way (``H100_PAD_MULTIPLE``), while the current model runs at the
input's size (``MiniUNet.padded_shape``).

Usage::

    python benchmarks/unet_memory.py                   # CPU, reduced size
    python benchmarks/unet_memory.py --device cuda     # full SinoCT stack on a GPU
    python benchmarks/unet_memory.py --shape 4 64 64   # any size
    python benchmarks/unet_memory.py --estimate        # estimated CUDA table, full size, no GPU

Writes ``benchmarks/results/unet_memory_<device>.json`` and ``.md`` (or ``--out DIR``);
``--estimate`` writes ``unet_memory_estimate.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sinotriage.io.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SHAPE = {"cpu": (16, 64, 64), "cuda": (40, 984, 888)}
#: (checkpointing, bf16, offload); offload (saved tensors in pinned host memory) on CUDA only
CONFIGS = [(False, False, False), (True, False, False), (False, True, False), (True, True, False)]
CUDA_EXTRA = [(False, True, True), (True, True, True)]
#: ``max_memory_allocated`` of the step measured on an NVIDIA H100 80GB (torch 2.11) in an earlier
#: session, GiB, by (checkpointing, bf16, offload); docs/models.md. Checkpointing then was one
#: checkpoint per block (:class:`BlockCheckpointedUNet`).
H100_MEASURED_GIB = {
    (False, False, False): 50.76,
    (True, False, False): 33.88,
    (False, True, False): 25.94,
    (True, True, False): 17.57,
    (False, True, True): 11.18,
    (True, True, True): 15.83,
}
#: the model of the H100 run padded its input to a multiple of this on every axis up front
H100_PAD_MULTIPLE = 16
#: the memory target of issue #7 (checkpointing + bf16), in both readings of "8 GB"
TARGETS = {"8 GiB": 8 * 2**30, "8e9 B": 8 * 10**9}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def run_config(
    shape: tuple[int, int, int],
    checkpointing: bool,
    bf16: bool,
    device: str,
    base_channels: int = 16,
    repeats: int = 2,
    seed: int = 0,
    offload: bool = False,
) -> dict:
    """Train ``repeats + 1`` steps of the 3D mini U-Net; return memory and time of a step.

    Returns a dict with ``peak_bytes`` (see the module docstring for the method per device),
    ``step_s`` (median time of the steps after the first), ``first_step_s`` and ``loss``.
    """
    from sinotriage.models import create
    from sinotriage.models.memory import saved_activation_bytes

    torch.manual_seed(seed)
    dev = torch.device(device)
    model = create(
        "mini_unet",
        in_channels=1,
        num_classes=1,
        spatial_dims=3,
        base_channels=base_channels,
        checkpointing=checkpointing,
        offload=offload,
    ).to(dev)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(1, 1, *shape, device=dev)
    y = torch.ones(1, 1, device=dev)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    result: dict = {"checkpointing": checkpointing, "bf16": bf16, "offload": offload}
    if dev.type == "cpu":
        # a warm-up step on a tiny input loads kernels and thread pools without raising the peak
        full = x
        x = torch.randn(1, 1, 2, 16, 32)
        step()
        x = full
        base = _rss_bytes()
        t0 = time.perf_counter()
        loss = step()
        result["first_step_s"] = time.perf_counter() - t0
        result["peak_bytes"] = max(0, _maxrss_bytes() - base)
    else:
        sync()
        t0 = time.perf_counter()
        loss = step()  # warm-up: cuDNN algorithm search, Adam state
        sync()
        result["first_step_s"] = time.perf_counter() - t0
        torch.cuda.reset_peak_memory_stats(dev)
        loss = step()
        sync()
        result["peak_bytes"] = torch.cuda.max_memory_allocated(dev)
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    result["step_s"] = statistics.median(times) if times else result["first_step_s"]
    # activation memory proper, the same on every device (after the timed steps, so it does not
    # raise the peak measured above); offloaded tensors are packed by the model's own hooks
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        result["saved_activation_bytes"] = saved_activation_bytes(model, x)
    result["loss"] = loss
    return result


def _run_cpu_subprocess(shape, ckpt, bf16, base_channels, repeats) -> dict:
    """One configuration in a fresh Python process, so its peak RSS is its own."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_child",
        json.dumps([list(shape), ckpt, bf16, base_channels, repeats, str(out)]),
    ]
    try:
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def benchmark(
    device: str,
    shape: tuple[int, int, int],
    base_channels: int = 16,
    repeats: int = 2,
) -> dict:
    """Run the four configurations; return the results dict written to JSON."""
    from rich.progress import Progress

    rows = []
    configs = CONFIGS + (CUDA_EXTRA if device == "cuda" else [])
    with Progress(transient=True) as progress:
        task = progress.add_task(f"mini_unet 3D {shape} on {device}", total=len(configs))
        for ckpt, bf16, offload in configs:
            if device == "cpu":
                row = _run_cpu_subprocess(shape, ckpt, bf16, base_channels, repeats)
                row["offload"] = False
            else:
                torch.cuda.empty_cache()
                try:
                    row = run_config(shape, ckpt, bf16, device, base_channels, repeats, 0, offload)
                except torch.cuda.OutOfMemoryError:
                    row = {"checkpointing": ckpt, "bf16": bf16, "offload": offload, "oom": True}
                torch.cuda.empty_cache()
            rows.append(row)
            progress.advance(task)
    by = {(r["checkpointing"], r["bf16"]): r for r in rows if not r["offload"]}
    ratios = {}
    for bf16 in (False, True):
        off, on = by[(False, bf16)], by[(True, bf16)]
        if "peak_bytes" in off and "peak_bytes" in on and off["peak_bytes"] > 0:
            ratios["bf16" if bf16 else "fp32"] = on["peak_bytes"] / off["peak_bytes"]
    saved_ratios = {
        ("bf16" if bf16 else "fp32"): by[(True, bf16)]["saved_activation_bytes"]
        / by[(False, bf16)]["saved_activation_bytes"]
        for bf16 in (False, True)
        if "saved_activation_bytes" in by[(False, bf16)]
        and "saved_activation_bytes" in by[(True, bf16)]
    }
    padded = _model_shape(shape)
    info = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0)
        if device == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input_shape": [1, 1, *shape],
        "padded_shape": [1, 1, *padded],
        "base_channels": base_channels,
        "method": (
            "torch.cuda.max_memory_allocated over one step after a warm-up step"
            if device == "cuda"
            else "peak RSS (ru_maxrss) of a fresh process over its first step minus RSS before it"
        ),
        "rows": rows,
        "ratio_checkpointing_on_off": ratios,
        "saved_activations_method": "bytes of the tensors autograd saves for backward in one "
        "forward (sinotriage.models.memory.saved_activation_bytes)",
        "saved_activation_ratio_checkpointing_on_off": saved_ratios,
    }
    return info


def _model_shape(shape) -> list[int]:
    """The spatial size the current model runs at for an input of spatial size ``shape``."""
    from sinotriage.models.mini_unet import MiniUNet

    return list(MiniUNet.padded_shape(shape))


def _h100_shape(shape) -> list[int]:
    """The spatial size the model of the H100 run ran at: padded to a multiple of 16."""
    return _pad16_shape(shape, H100_PAD_MULTIPLE)


def _pad16_shape(shape, m: int) -> list[int]:
    size = [s + (-s) % m for s in shape]
    if all(n <= m for n in size):
        size[-1] += m
    return size


def _h100_unet(block_checkpoints: bool):
    """The 3D mini U-Net class as it was when the H100 figures were measured: the input
    zero-padded up front to a multiple of 16 on every axis (``_pad16_shape``; at such sizes the
    current per-level logic pools and up-samples exactly as that model did) and, if
    ``block_checkpoints``, its checkpointing (see :class:`BlockCheckpointedUNet`); built lazily
    so the module imports without torch models."""
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    from sinotriage.models.mini_unet import MiniUNet

    class PaddedUNet(MiniUNet):
        """``MiniUNet`` with the input padded to a multiple of 16 first, as in the H100 run."""

        def _pad(self, x: torch.Tensor) -> torch.Tensor:
            target = _pad16_shape(list(x.shape[2:]), H100_PAD_MULTIPLE)
            pad: list[int] = []
            for size, want in zip(reversed(x.shape[2:]), reversed(target), strict=True):
                pad += [0, want - size]
            return F.pad(x, pad) if any(pad) else x

    if not block_checkpoints:
        return PaddedUNet

    class BlockCheckpointedUNet(PaddedUNet):
        """``MiniUNet`` with its checkpointing as it was when the H100 figures were measured: one
        non-reentrant checkpoint per block (encoder blocks, bottleneck, decoder blocks with their
        up-convolution and concatenation, head), nothing finer; same weights; input padded to a
        multiple of 16 as then."""

        def _forward_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
            def run(block, *args):
                return checkpoint(block, *args, use_reentrant=False)

            x = self._pad(x)
            skips = []
            for enc in self.encoders:
                x = run(enc, x)
                skips.append(x)
                x = self.pool(x)
            x = run(self.bottleneck, x)
            for dec, skip in zip(self.decoders, reversed(skips), strict=True):
                x = run(dec, x, skip)
            x = run(self.head_conv, x)
            x = x.mean(dim=tuple(range(2, x.dim())))
            return self.fc(x)

    return BlockCheckpointedUNet


def _step_tflop(cls, shape, base_channels, ckpt, bf16) -> float:
    """Floating-point operations of forward + backward (fake tensors, ``FlopCounterMode``)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    with FakeTensorMode():
        model = cls(1, 1, 3, base_channels, ckpt)
        x = torch.randn(1, 1, *shape)
        counter = FlopCounterMode(display=False)
        with counter, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x).float().sum().backward()
    return counter.get_total_flops() / 1e12


def estimate(shape: tuple[int, int, int], base_channels: int = 16) -> dict:
    """Estimated CUDA peak of the step for the six configurations (no GPU needed).

    Returns the results dict written to JSON: ``rows`` for the current model and, at the full
    SinoCT size with 16 base channels, ``validation``: the estimate of the configurations
    measured on the H100 (with the checkpointing of that run) against the measurement.
    """
    from functools import partial

    from memory_estimate import estimate_step_memory

    from sinotriage.models.mini_unet import MiniUNet

    padded_cls, block_cls = _h100_unet(False), _h100_unet(True)

    def run(cls, ckpt, bf16, offload):
        est = estimate_step_memory(
            partial(cls, 1, 1, 3, base_channels, ckpt, offload),
            (1, 1, *shape),
            torch.bfloat16 if bf16 else None,
            device="cuda",
        )
        return est

    rows, validation = [], []
    for ckpt, bf16, offload in CONFIGS + CUDA_EXTRA:
        est = run(MiniUNet, ckpt, bf16, offload)
        row = {
            "checkpointing": ckpt,
            "bf16": bf16,
            "offload": offload,
            "estimated_peak_bytes": est.peak_bytes,
            "estimated_host_peak_bytes": est.host_peak_bytes,
            "start_bytes": est.start_bytes,
            "peak_where": est.peak_where,
            "step_tflop": None
            if offload
            else _step_tflop(MiniUNet, shape, base_channels, ckpt, bf16),
            "under_target": {k: est.peak_bytes < v for k, v in TARGETS.items()},
        }
        rows.append(row)
        if tuple(shape) == DEFAULT_SHAPE["cuda"] and base_channels == 16:
            old = run(block_cls if ckpt else padded_cls, ckpt, bf16, offload)
            measured = H100_MEASURED_GIB[(ckpt, bf16, offload)] * 2**30
            validation.append(
                {
                    "checkpointing": ckpt,
                    "bf16": bf16,
                    "offload": offload,
                    "scheme": "one checkpoint per block" if ckpt else "-",
                    "measured_h100_bytes": measured,
                    "estimated_peak_bytes": old.peak_bytes,
                    "relative_error": old.peak_bytes / measured - 1,
                    "step_tflop": None
                    if offload or not ckpt
                    else _step_tflop(block_cls, shape, base_channels, ckpt, bf16),
                }
            )
    return {
        "device": "cuda (estimated, no GPU)",
        "torch": torch.__version__,
        "input_shape": [1, 1, *shape],
        "padded_shape": [1, 1, *_model_shape(shape)],
        "h100_padded_shape": [1, 1, *_h100_shape(shape)],
        "base_channels": base_channels,
        "method": "estimate: benchmarks/memory_estimate.py estimate_step_memory (fake tensors, live "
        "storage bytes rounded to 512 B, CUDA autocast op lists; cuDNN/cuBLAS workspaces and "
        "allocator fragmentation not counted); one step after a warm-up step",
        "targets_bytes": TARGETS,
        "rows": rows,
        "validation": validation,
    }


def markdown_estimate(info: dict) -> str:
    """Markdown tables of :func:`estimate`."""
    g = 2**30
    runs_at = tuple(info["padded_shape"])
    at = "its own size" if runs_at == tuple(info["input_shape"]) else f"{runs_at}"
    lines = [
        f"**Estimate, not a measurement.** 3D mini_unet training step, input "
        f"{tuple(info['input_shape'])} (the network runs at {at}), estimated CUDA "
        f"peak (torch {info['torch']}). Method: {info['method']}.",
        "",
        "| checkpointing | autocast bf16 | offload | estimated peak (GiB) | (GB, 1e9 B) "
        "| under 8 GiB | under 8e9 B | host memory (GiB) | step TFLOP |",
        "| --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for r in info["rows"]:
        peak = r["estimated_peak_bytes"]
        tf = "-" if r["step_tflop"] is None else f"{r['step_tflop']:.1f}"
        lines.append(
            f"| {'on' if r['checkpointing'] else 'off'} | {'on' if r['bf16'] else 'off'} "
            f"| {'on' if r['offload'] else 'off'} | {peak / g:.2f} | {peak / 1e9:.2f} "
            f"| {'yes' if r['under_target']['8 GiB'] else 'no'} "
            f"| {'yes' if r['under_target']['8e9 B'] else 'no'} "
            f"| {r['estimated_host_peak_bytes'] / g:.2f} | {tf} |"
        )
    if info["validation"]:
        lines += [
            "",
            "Validation against the H100 measurement (`torch.cuda.max_memory_allocated`) of "
            "the model as it was then: input padded up front to "
            f"{tuple(info.get('h100_padded_shape', info['padded_shape']))}, checkpointing one "
            "checkpoint per block:",
            "",
            "| checkpointing | autocast bf16 | offload | measured H100 (GiB) | estimated (GiB) "
            "| estimate - measured | step TFLOP |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for v in info["validation"]:
            tf = "-" if v["step_tflop"] is None else f"{v['step_tflop']:.1f}"
            lines.append(
                f"| {'on' if v['checkpointing'] else 'off'} | {'on' if v['bf16'] else 'off'} "
                f"| {'on' if v['offload'] else 'off'} | {v['measured_h100_bytes'] / g:.2f} "
                f"| {v['estimated_peak_bytes'] / g:.2f} | {v['relative_error']:+.1%} | {tf} |"
            )
    return "\n".join(lines) + "\n"


def _fmt_gb(row: dict) -> str:
    return "OOM" if row.get("oom") else f"{row['peak_bytes'] / 2**30:.2f}"


def markdown(info: dict) -> str:
    """A small markdown table of the results."""
    lines = [
        f"3D mini_unet training step, input {tuple(info['input_shape'])} "
        f"(the network runs at {tuple(info['padded_shape'])}), device {info['device']} "
        f"({info['device_name']}), torch {info['torch']}. Memory: {info['method']}.",
        "",
        "| checkpointing | autocast bf16 | offload | peak memory (GiB) "
        "| saved activations (GiB) | step time (s) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in info["rows"]:
        t = "-" if r.get("oom") else f"{r['step_s']:.2f}"
        saved = r.get("saved_activation_bytes")
        saved_s = "-" if saved is None or r.get("offload") else f"{saved / 2**30:.3f}"
        lines.append(
            f"| {'on' if r['checkpointing'] else 'off'} | {'on' if r['bf16'] else 'off'} "
            f"| {'on' if r['offload'] else 'off'} | {_fmt_gb(r)} | {saved_s} | {t} |"
        )
    lines.append("")
    for k, v in info["ratio_checkpointing_on_off"].items():
        lines.append(f"Peak memory ratio checkpointing on / off ({k}): {v:.2f}")
    for k, v in info.get("saved_activation_ratio_checkpointing_on_off", {}).items():
        lines.append(f"Saved-activation ratio checkpointing on / off ({k}): {v:.2f}")
    return "\n".join(lines) + "\n"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("D", "V", "C"), default=None)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="estimate the CUDA table without a GPU (fake tensors), full size by default",
    )
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        shape, ckpt, bf16, base, repeats, out = json.loads(args._child)
        row = run_config(tuple(shape), ckpt, bf16, "cpu", base, repeats)
        Path(out).write_text(json.dumps(row))
        return 0
    if args.estimate:
        torch.set_num_threads(1)
        shape = tuple(args.shape) if args.shape else DEFAULT_SHAPE["cuda"]
        info = estimate(shape, args.base_channels)
        table = markdown_estimate(info)
        print(table)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "unet_memory_estimate.json", json.dumps(info, indent=2) + "\n")
        atomic_write_text(args.out / "unet_memory_estimate.md", table)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    shape = tuple(args.shape) if args.shape else DEFAULT_SHAPE[args.device]
    info = benchmark(args.device, shape, args.base_channels, args.repeats)
    table = markdown(info)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"unet_memory_{args.device}"
    atomic_write_text(args.out / f"{stem}.json", json.dumps(info, indent=2) + "\n")
    atomic_write_text(args.out / f"{stem}.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
