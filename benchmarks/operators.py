"""Benchmark of the CT operators against ASTRA (CPU) and scikit-image.

Times ``project``, ``backproject`` and ``fbp`` of every available backend at 512 x 512
(parallel beam 720 views x 736 channels; SinoCT fan beam 984 x 888), in batches of 1, 8 and
32 slices, plus ASTRA's own single-threaded CPU parallel FBP and scikit-image's
``radon`` / ``iradon`` on one slice. Prints a table (ms per slice, slices/s and
giga-interpolations/s = V * N^2 * batch / time) and writes JSON and Markdown to
``benchmarks/results/operators_<device>.{json,md}``.

Timings: one warm-up call (JIT compilation, FFT plans), then the median of ``--repeats``
calls, through a cached :class:`~sinotriage.operators.Operator` per case and backend
(``auto`` is the default rule of ``sinotriage.operators.RULES``). Cases whose batch-1 time
predicts more than ``--budget`` seconds per call are skipped and reported as such.

``--targets`` runs only the issue's target measurements (a few minutes on two cores) and
merges them into the results file, keeping the last full table:

- batched (32) SinoCT fan FBP at 512 px split into rebinning, filtering and backprojection,
  against ASTRA's CPU parallel FBP per interpolation (one interpolation = one backprojected
  view at one pixel: the fan FBP backprojects ``V / 2 = 492`` rebinned views, ASTRA 720);
- ``fbp`` forward and forward + backward on the numba path, 64 x 64, 246 views, batch 32;
- batch-1 per-call overhead saved by a cached ``Operator`` against the function form, at
  64 and 512 px.

Usage::

    python benchmarks/operators.py                 # CPU, writes operators_cpu.json
    python benchmarks/operators.py --targets       # the targets only (merged into it)
    python benchmarks/operators.py --device cuda   # on a GPU machine
    python benchmarks/operators.py --quick         # small smoke run (128 px)
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

import numpy as np
import torch

from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.operators import Operator, fbp, project
from sinotriage.operators._backends import candidates
from sinotriage.operators._fbp import fbp_layout
from sinotriage.operators.filters import ramp_filter

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _phantom(n: int, batch: int, device: torch.device) -> torch.Tensor:
    c = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    img = 0.02 * ((xx / (0.36 * n)) ** 2 + (yy / (0.45 * n)) ** 2 < 1).float()
    img = img + 0.005 * ((xx - 0.1 * n) ** 2 + (yy + 0.1 * n) ** 2 < (0.08 * n) ** 2).float()
    return img.expand(batch, n, n).contiguous().to(device)


def _row(case: str, op: str, backend: str, batch: int, v: int, n: int, seconds: float | None,
         note: str = "") -> dict:
    if seconds is None:
        return dict(case=case, op=op, backend=backend, batch=batch, ms_per_slice=None,
                    slices_per_s=None, ginterp_per_s=None, note=note)
    return dict(case=case, op=op, backend=backend, batch=batch,
                ms_per_slice=1e3 * seconds / batch, slices_per_s=batch / seconds,
                ginterp_per_s=v * n * n * batch / seconds / 1e9, note=note)


def run(device: torch.device, n: int, batches: list[int], repeats: int, budget: float,
        backends: list[str] | None) -> list[dict]:
    geoms = {
        "parallel 720x736": ParallelBeamGeometry(n_views=720, n_det=int(736 * n / 512),
                                                 det_spacing=250 / n * 512 / 512,
                                                 image_size=n, pixel_size=250 / n),
        "sinoct fan 984x888": sinoct(n),
    }
    rows: list[dict] = []
    for case, g in geoms.items():
        v = g.n_views
        img1 = _phantom(n, 1, device)
        sino1 = project(img1, g)
        for op in ("project", "backproject", "fbp"):
            names = ["auto", *candidates(op, g, device)]
            if backends:
                names = [b for b in names if b in backends]
            for be in names:
                est = None
                for b in batches:
                    if est is not None and est * b > budget:
                        rows.append(_row(case, op, be, b, v, n, None,
                                         f"skipped: ~{est * b:.0f} s per call"))
                        continue
                    x = (_phantom(n, b, device) if op == "project"
                         else sino1.expand(b, *sino1.shape[1:]).contiguous())
                    fn = lambda x=x, f=getattr(Operator(g, be), op): f(x)  # noqa: E731
                    reps = repeats if (est is None or est * b < 5) else 1
                    sec = _time(fn, device, reps)
                    est = sec / b
                    rows.append(_row(case, op, be, b, v, n, sec))
                    print(_fmt(rows[-1]), flush=True)
    rows += _references(geoms["parallel 720x736"], n, repeats, device)
    return rows


def _references(g: ParallelBeamGeometry, n: int, repeats: int,
                device: torch.device) -> list[dict]:
    """ASTRA CPU parallel FBP (single-threaded) and scikit-image radon/iradon, one slice."""
    out = []
    img = _phantom(n, 1, torch.device("cpu"))[0].numpy()
    sino = project(torch.from_numpy(img), g).numpy()
    from sinotriage.operators import _astra

    if _astra.available():
        reference_fbp = _astra.reference_fbp
        sec = _time(lambda: reference_fbp(sino, g), torch.device("cpu"), repeats)
        out.append(_row("parallel 720x736", "fbp", "ASTRA CPU FBP (reference)", 1,
                        g.n_views, n, sec))
        print(_fmt(out[-1]), flush=True)
    else:
        out.append(_row("parallel 720x736", "fbp", "ASTRA CPU FBP (reference)", 1, g.n_views,
                        n, None, "unavailable: astra-toolbox does not import here"))
    try:
        from skimage.transform import iradon, radon

        theta = np.degrees(g.angles)
        sk_sino = radon(img, theta=theta, circle=False)
        sec = _time(lambda: iradon(sk_sino, theta=theta, output_size=n, filter_name="ramp",
                                   circle=False), torch.device("cpu"), repeats)
        out.append(_row("parallel 720x736", "fbp", "skimage iradon (reference)", 1, g.n_views,
                        n, sec))
        print(_fmt(out[-1]), flush=True)
        sec = _time(lambda: radon(img, theta=theta, circle=False), torch.device("cpu"), 1)
        out.append(_row("parallel 720x736", "project", "skimage radon (reference)", 1,
                        g.n_views, n, sec))
        print(_fmt(out[-1]), flush=True)
    except ImportError as exc:  # pragma: no cover
        out.append(_row("parallel 720x736", "fbp", "skimage (reference)", 1, g.n_views, n, None,
                        f"unavailable: {exc}"))
    return out


def _best(fn, repeats: int) -> float:
    """Best of ``repeats`` timed CPU calls after a warm-up (on a shared machine the minimum
    is the least disturbed estimate)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _astra_fbp_seconds(n: int, repeats: int) -> tuple[float, int] | None:
    """ASTRA's single-threaded CPU parallel FBP of one 720 x 736 slice: (seconds, views)."""
    from sinotriage.operators import _astra

    if not _astra.available():
        return None
    g = ParallelBeamGeometry(n_views=720, n_det=int(736 * n / 512), det_spacing=250 / n,
                             image_size=n, pixel_size=250 / n)
    sino = project(_phantom(n, 1, torch.device("cpu")), g)[0].numpy()
    return _best(lambda: _astra.reference_fbp(sino, g), repeats), 720


def fan_fbp_split(n: int, batch: int, repeats: int) -> dict:
    """Batched numba fan FBP at ``n`` px (SinoCT 984 x 888), whole and by step (seconds)."""
    from sinotriage.operators import _numba

    g = sinoct(n)
    op = Operator(g, "numba")
    y = project(_phantom(n, 1, torch.device("cpu")), g, backend="numba")
    y = y.expand(batch, *g.sinogram_shape).contiguous()
    lay, plan = fbp_layout(g), op._plan
    rows = _numba.rebin(y, lay.t, lay.shift, lay.fold, plan)
    q = ramp_filter(rows, lay.du)
    out = {
        "fbp": _best(lambda: op.fbp(y), repeats),
        "rebin": _best(lambda: _numba.rebin(y, lay.t, lay.shift, lay.fold, plan), repeats),
        "filter": _best(lambda: ramp_filter(rows, lay.du), repeats),
        "backprojection": _best(lambda: _numba.fbp_backproject(
            q, lay.angles, lay.u0, lay.du, n, g.pixel_size, lay.weight, plan), repeats),
    }
    out["other (checks, copies)"] = out["fbp"] - out["rebin"] - out["filter"] - out[
        "backprojection"]
    out["backprojected_views"] = len(lay.angles)
    return out


def fbp_forward_backward(repeats: int) -> dict:
    """numba fbp at 64 x 64, 246 views x 111 channels (the tiny preset), batch 32."""
    g = sinoct(64, 246, 111)
    op = Operator(g, "numba")
    y = torch.rand(32, *g.sinogram_shape, generator=torch.Generator().manual_seed(0))

    def fwd_bwd():
        yy = y.clone().requires_grad_()
        out = op.fbp(yy)
        out.backward(torch.ones_like(out))

    with torch.no_grad():
        fwd = _best(lambda: op.fbp(y), 3 * repeats)
    both = _best(fwd_bwd, 3 * repeats)
    return {"forward_s": fwd, "forward_backward_s": both, "ratio": both / fwd}


def _plan_build_s(g, op: str, repeats: int) -> float:
    """Seconds to build what a cached Operator keeps for ``op`` (numba, float32): the work the
    function form repeats on every call (single-threaded numpy, little disturbed by load)."""
    import numpy as np

    from sinotriage.operators import _numba
    from sinotriage.operators._plan import Plan
    from sinotriage.operators.filters import scaled_response

    def build():
        if op == "project":
            _numba._rays(g, np.float32, Plan())
            return
        lay = fbp_layout(g)
        _numba._rebin_taps(lay.t, lay.shift, g.n_views, np.float32, Plan())
        _numba._trig(lay.angles, np.float32, Plan())
        scaled_response(lay.m, lay.du, "ram-lak", 1.0, torch.device("cpu"), torch.float32)

    return _best(build, repeats)


def call_overhead(repeats: int) -> list[dict]:
    """Batch-1 seconds per call, function form vs a cached Operator (same backend), and the
    plan-building time the cached Operator saves."""
    rows = []
    for n, g in ((64, sinoct(64, 246, 111)), (512, sinoct(512))):
        x = _phantom(n, 1, torch.device("cpu"))
        y = project(x, g, backend="numba")
        op = Operator(g, "numba")
        for name, f_fn, f_op, arg in (
                ("project", lambda a, g=g: project(a, g, backend="numba"), op, x),
                ("fbp", lambda a, g=g: fbp(a, g, backend="numba"), op.fbp, y)):
            reps = repeats * (10 if n == 64 else 1)
            t_fn = _best(lambda f=f_fn, a=arg: f(a), reps)
            t_op = _best(lambda f=f_op, a=arg: f(a), reps)
            plan = _plan_build_s(g, name, 5)
            rows.append(dict(image_size=n, op=name, function_s=t_fn, operator_s=t_op,
                             saved_ms=1e3 * (t_fn - t_op), plan_build_ms=1e3 * plan))
            print(f"batch 1, {n} px, {name}: function {1e3 * t_fn:.1f} ms, cached Operator "
                  f"{1e3 * t_op:.1f} ms, saved {1e3 * (t_fn - t_op):.1f} ms; plan build "
                  f"{1e3 * plan:.2f} ms", flush=True)
    return rows


def targets(repeats: int) -> dict:
    """The issue's target measurements, in one run (see the module docstring)."""
    n, batch = 512, 32
    split = fan_fbp_split(n, batch, repeats)
    for k, v in split.items():
        print(f"fan FBP {n} px batch {batch}: {k} = {v:.3f}",
              flush=True)
    out: dict = {"fan_fbp_split_s": split}
    ast = _astra_fbp_seconds(n, repeats)
    if ast is not None:
        sec, views = ast
        ours = split["backprojected_views"] * n * n * batch / split["fbp"]
        theirs = views * n * n / sec
        out["astra_fbp_s"] = sec
        out["fan_fbp_vs_astra_per_interpolation"] = ours / theirs
        out["fan_fbp_ms_per_slice"] = 1e3 * split["fbp"] / batch
        print(f"ASTRA CPU FBP 720 views: {sec:.3f} s; ours per interpolation: "
              f"{ours / theirs:.1f}x ASTRA", flush=True)
    fb = fbp_forward_backward(repeats)
    print(f"fbp 64 px 246 views batch 32: forward {1e3 * fb['forward_s']:.1f} ms, forward + "
          f"backward {1e3 * fb['forward_backward_s']:.1f} ms ({fb['ratio']:.2f}x)", flush=True)
    out["fbp_forward_backward_64px_b32"] = fb
    out["call_overhead_batch1"] = call_overhead(repeats)
    return out


def _fmt(r: dict) -> str:
    if r["ms_per_slice"] is None:
        return f"{r['case']:<20} {r['op']:<12} {r['backend']:<28} {r['batch']:>3}  {r['note']}"
    return (f"{r['case']:<20} {r['op']:<12} {r['backend']:<28} {r['batch']:>3} "
            f"{r['ms_per_slice']:>10.1f} {r['slices_per_s']:>9.2f} {r['ginterp_per_s']:>8.3f}")


def summary(rows: list[dict]) -> dict:
    """The issue's targets: batched default fan FBP vs ASTRA CPU parallel FBP and iradon."""
    def best(case, op, backend, batched):
        vals = [r for r in rows if r["case"] == case and r["op"] == op and r["backend"] == backend
                and r["ms_per_slice"] is not None and (r["batch"] > 1) == batched]
        return max(vals, key=lambda r: r["ginterp_per_s"]) if vals else None

    fan = best("sinoct fan 984x888", "fbp", "auto", True)
    ast = best("parallel 720x736", "fbp", "ASTRA CPU FBP (reference)", False)
    sk = best("parallel 720x736", "fbp", "skimage iradon (reference)", False)
    out: dict = {}
    if fan and ast:
        out["fan_fbp_vs_astra_parallel_fbp_per_view"] = fan["ginterp_per_s"] / ast["ginterp_per_s"]
    if fan and sk:
        out["fan_fbp_speedup_vs_iradon_per_slice"] = sk["ms_per_slice"] / fan["ms_per_slice"]
    if fan:
        out["fan_fbp_batched_ginterp_per_s"] = fan["ginterp_per_s"]
        out["fan_fbp_batched_ms_per_slice"] = fan["ms_per_slice"]
    return out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown(rows: list[dict], meta: dict, summ: dict) -> str:
    lines = [f"Device: {meta['device_name']}; torch {meta['torch']}; threads {meta['threads']}; "
             f"N = {meta['image_size']}.", "",
             "| case | op | backend | batch | ms/slice | slices/s | Ginterp/s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["ms_per_slice"] is None:
            lines.append(f"| {r['case']} | {r['op']} | {r['backend']} | {r['batch']} | "
                         f"{r['note']} | | |")
        else:
            lines.append(f"| {r['case']} | {r['op']} | {r['backend']} | {r['batch']} | "
                         f"{r['ms_per_slice']:.1f} | {r['slices_per_s']:.2f} | "
                         f"{r['ginterp_per_s']:.3f} |")
    lines += ["", *(f"- {k}: {v:.3f}" for k, v in summ.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="skip a case whose predicted time per call exceeds this (s)")
    ap.add_argument("--backends", nargs="+", default=None,
                    help="restrict to these backends (auto, torch, numba, astra)")
    ap.add_argument("--quick", action="store_true", help="128 px, batches 1 and 8")
    ap.add_argument("--targets", action="store_true",
                    help="only the target measurements, merged into the results file")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if args.targets:
        return _main_targets(args)
    n = 128 if args.quick else 512
    batches = [1, 8] if args.quick else args.batches
    print(f"{'case':<20} {'op':<12} {'backend':<28} {'B':>3} {'ms/slice':>10} {'slices/s':>9} "
          f"{'Ginterp/s':>8}")
    rows = run(device, n, batches, args.repeats, args.budget, args.backends)
    summ = summary(rows)
    meta = dict(device=args.device,
                device_name=(torch.cuda.get_device_name(device) if device.type == "cuda"
                             else platform.processor() or platform.machine()),
                cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                torch=torch.__version__, python=platform.python_version(), image_size=n,
                repeats=args.repeats, backends=args.backends or "all", budget_s=args.budget,
                time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    for k, v in summ.items():
        print(f"{k}: {v:.3f}")
    out = args.out or RESULTS / f"operators_{args.device}{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, json.dumps(dict(meta=meta, summary=summ, rows=rows), indent=1))
    _write(out.with_suffix(".md"), markdown(rows, meta, summ))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _meta(args) -> dict:
    return dict(device=args.device, device_name=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                torch=torch.__version__, python=platform.python_version(),
                load_average=os.getloadavg(), repeats=args.repeats,
                time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _targets_markdown(t: dict, meta: dict) -> str:
    sp = t["fan_fbp_split_s"]
    loaded = meta["load_average"][0] > meta["cpu_count"]
    note = (" (more runnable jobs than CPUs: absolute times are pessimistic)" if loaded else "")
    lines = ["## Targets", "",
             f"Run {meta['time']} on {meta['cpu_count']} CPUs, {meta['threads']} threads, load "
             f"average {', '.join(f'{x:.1f}' for x in meta['load_average'])}{note}.", "",
             "| SinoCT fan FBP, 512 px, batch 32 (numba) | s per batch | share |",
             "|---|---:|---:|"]
    for k in ("rebin", "filter", "backprojection", "other (checks, copies)", "fbp"):
        lines.append(f"| {k} | {sp[k]:.3f} | {100 * sp[k] / sp['fbp']:.0f}% |")
    lines.append("")
    if "fan_fbp_vs_astra_per_interpolation" in t:
        lines.append(f"- fan FBP {t['fan_fbp_ms_per_slice']:.1f} ms per slice; ASTRA CPU FBP "
                     f"(720 views, one slice) {t['astra_fbp_s']:.3f} s; per interpolation the "
                     f"fan FBP is **{t['fan_fbp_vs_astra_per_interpolation']:.1f}x** ASTRA.")
    fb = t["fbp_forward_backward_64px_b32"]
    lines.append(f"- numba fbp, 64 px, 246 x 111, batch 32: forward {1e3 * fb['forward_s']:.1f} "
                 f"ms, forward + backward {1e3 * fb['forward_backward_s']:.1f} ms "
                 f"(**{fb['ratio']:.2f}x** the forward).")
    lines += ["", "| batch 1 | op | function form (ms) | cached Operator (ms) | difference (ms) "
              "| plan build saved per call (ms) |", "|---|---|---:|---:|---:|---:|"]
    for r in t["call_overhead_batch1"]:
        lines.append(f"| {r['image_size']} px | {r['op']} | {1e3 * r['function_s']:.2f} | "
                     f"{1e3 * r['operator_s']:.2f} | {r['saved_ms']:.2f} | "
                     f"{r['plan_build_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def _main_targets(args) -> int:
    out = args.out or RESULTS / f"operators_{args.device}.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    meta = _meta(args)
    t = targets(args.repeats)
    data["targets"] = dict(meta=meta, **t)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, json.dumps(data, indent=1))
    md = out.with_suffix(".md")
    old = md.read_text().split("## Targets")[0].rstrip() + "\n\n" if md.exists() else ""
    _write(md, old + _targets_markdown(data["targets"], meta))
    print(f"wrote {out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
