"""The GPU check: every CUDA figure the docs quote, measured in one run of at most 8 minutes.

Run it as ``bash benchmarks/gpu_check.sh``. On a GPU it first installs the wheels carried in
``.whl/`` (made by ``benchmarks/wheels.sh``) into a scratch site folder, timed. Steps, each in a subprocess of its own with a time cap, in this order,
skipped once the run's deadline (``--deadline``, default 420 s after the start) is near:

``operators``
    ``benchmarks/operators.py --device cuda``: project / backproject / FBP of every backend
    usable here (torch, triton, ASTRA CUDA when it imports), parallel 720 x 736 and SinoCT fan
    984 x 888 at 512 x 512, batch 1 / 8 / 32 -> ``operators_cuda.{json,md}``. Target: SinoCT fan
    FBP at batch 32 >= 5e11 interpolations/s.
``unet_memory``
    ``benchmarks/unet_memory.py --device cuda``: the full SinoCT stack (1, 1, 40, 984, 888),
    batch 1, one training step, peak ``torch.cuda.max_memory_allocated`` and step time for
    checkpointing off / on x bf16 off / on (and offload), with the fake-tensor estimate
    (``--estimate``: the committed ``unet_memory_estimate.json``, which needs no GPU, unless
    ``--fresh-estimate``) written beside each row -> ``unet_memory_cuda.{json,md}``. Target:
    <= 8 GiB with checkpointing and bf16.
``pytest_gpu``
    ``pytest -m gpu`` over ``tests/``: counts and the failures.
``compare_tiny``
    ``sinotriage compare --preset tiny --device cuda`` end to end, with its wall time.
``throughput``
    One training epoch of each arm of the ``standard`` study preset on CUDA, on a small store of
    that preset's data (``--studies``, default 12): train slices per second per arm, and from it
    the projected time of the full ``standard`` study on one GPU.

Everything lands in ``--results`` (default ``benchmarks/results``): the two tables above and
``gpu_check_cuda.{json,md}`` (machine, install time, step status and wall times, pytest,
compare, throughput, targets). With ``$OUT`` set (the device tool), those files and the log are
copied there too.

Without a GPU it prints a "no GPU" line and exits 0, writing nothing. ``--smoke`` instead runs
every step on the CPU at toy sizes into a scratch folder (``*_smoke`` files): a check of the
script's own code paths before GPU time is spent on it, never a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
#: seconds the wheel install took (NaN: nothing installed)
INSTALL_S = [float("nan")]
STEPS = ("operators", "unet_memory", "pytest_gpu", "compare_tiny", "throughput")
#: cap per step (seconds) on a GPU; the deadline can shorten it
CAPS = {"operators": 120, "unet_memory": 150, "pytest_gpu": 150, "compare_tiny": 150,
        "throughput": 200}
#: targets of issue 19
FAN_FBP_TARGET_GINTERP = 500.0  # 5e11 interpolations/s, SinoCT fan FBP at batch 32
UNET_TARGET_BYTES = 8 * 2**30  # checkpointing + bf16, full SinoCT stack
NO_GPU = ("no GPU: torch.cuda.is_available() is False here, so gpu_check measured nothing and "
          "wrote nothing. Run `bash benchmarks/gpu_check.sh` on a CUDA machine, or add --smoke "
          "for a CPU run of its code paths at toy sizes.")


def _atomic_text(path: Path, text: str) -> None:
    from sinotriage.io.files import atomic_write_text

    atomic_write_text(path, text)


def _atomic_json(path: Path, data: Any) -> None:
    from sinotriage.io.files import atomic_write_json

    atomic_write_json(path, data)


def _python_env() -> dict[str, str]:
    """The environment of the steps: the repository importable, unbuffered output."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def install_wheels(wheels: Path, site: Path) -> float | None:
    """Install every wheel of ``wheels`` (made by ``benchmarks/wheels.sh``) into ``site``
    offline, put ``site`` first on the path of this process and of the steps; seconds taken,
    None when there are no wheels."""
    files = sorted(wheels.glob("*.whl"))
    if not files:
        return None
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
                    *map(str, files)], check=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return time.monotonic() - start


class Run:
    """The run's clock, scratch folder, log and step records."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "gpu_check.log"
        self.steps: dict[str, dict[str, Any]] = {}

    def left(self) -> float:
        return self.args.deadline - (time.monotonic() - self.t0)

    def say(self, text: str) -> None:
        line = f"[gpu_check {time.monotonic() - self.t0:6.1f} s] {text}"
        print(line, flush=True)
        with self.log.open("a") as f:
            f.write(line + "\n")

    def command(self, step: str, cmd: list[str], cap: float) -> dict[str, Any]:
        """Run ``cmd`` with at most ``cap`` seconds (less if the deadline is nearer; a smoke run
        on a CPU gets 4 times the cap)."""
        limit = min(cap * (4 if self.args.smoke else 1), self.left())
        if limit < 20:
            self.say(f"{step}: skipped, {self.left():.0f} s left before the deadline")
            return {"status": "skipped", "reason": "deadline"}
        self.say(f"{step}: {' '.join(cmd)} (limit {limit:.0f} s)")
        start = time.monotonic()
        with self.log.open("a") as f:
            try:
                rc = subprocess.run(cmd, cwd=ROOT, env=_python_env(), stdout=f,
                                    stderr=subprocess.STDOUT, timeout=limit).returncode
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                rc, status = None, "timeout"
        wall = time.monotonic() - start
        self.say(f"{step}: {status} (rc {rc}) in {wall:.1f} s")
        return {"status": status, "rc": rc, "wall_s": round(wall, 2)}


# ------------------------------------------------------------------------------- the steps
def step_operators(run: Run, tag: str, cuda: bool) -> dict[str, Any]:
    out = run.args.results / f"operators_{tag}.json"
    cmd = [sys.executable, str(BENCH / "operators.py"), "--out", str(out)]
    cmd += (["--device", "cuda", "--repeats", "3", "--budget", "10"] if cuda
            else ["--device", "cpu", "--quick", "--backends", "torch", "--repeats", "1",
                  "--budget", "1"])
    rec = run.command("operators", cmd, CAPS["operators"])
    if out.exists():
        data = json.loads(out.read_text())
        fan = [r for r in data["rows"] if r["case"].startswith("sinoct fan") and r["op"] == "fbp"
               and r["batch"] == max(run_batches(cuda)) and r["ginterp_per_s"] is not None]
        best = max(fan, key=lambda r: r["ginterp_per_s"], default=None)
        rec["backends"] = sorted({r["backend"] for r in data["rows"] if r["ms_per_slice"]})
        if best is not None:
            rec["fan_fbp_best"] = {"backend": best["backend"], "batch": best["batch"],
                                   "ginterp_per_s": best["ginterp_per_s"],
                                   "meets_5e11": best["ginterp_per_s"] >= FAN_FBP_TARGET_GINTERP}
    return rec


def run_batches(cuda: bool) -> list[int]:
    return [1, 8, 32] if cuda else [1, 8]


def _est_by_config(est: dict[str, Any]) -> dict[tuple[bool, bool, bool], dict[str, Any]]:
    return {(r["checkpointing"], r["bf16"], r["offload"]): r for r in est["rows"]}


def merge_estimate(measured: dict[str, Any], est: dict[str, Any]) -> dict[str, Any]:
    """The measured rows with the estimator's figure of the same configuration beside each."""
    by = _est_by_config(est)
    rows = []
    for r in measured["rows"]:
        e = by.get((r["checkpointing"], r["bf16"], r["offload"]))
        row = dict(r)
        if e is not None:
            row["estimated_peak_bytes"] = e["estimated_peak_bytes"]
            if not r.get("oom") and r.get("peak_bytes"):
                row["estimate_minus_measured"] = e["estimated_peak_bytes"] / r["peak_bytes"] - 1
        rows.append(row)
    return {**measured, "rows": rows, "estimate_method": est["method"],
            "estimate_input_shape": est["input_shape"]}


def estimate_table(info: dict[str, Any]) -> str:
    g = 2**30
    lines = ["", "Measured against the fake-tensor estimate of the same step "
             "(`benchmarks/unet_memory.py --estimate`, no GPU needed):", "",
             "| checkpointing | autocast bf16 | offload | measured (GiB) | estimated (GiB) "
             "| estimate - measured | under 8 GiB |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in info["rows"]:
        onoff = [("on" if r[k] else "off") for k in ("checkpointing", "bf16", "offload")]
        meas = "OOM" if r.get("oom") else f"{r['peak_bytes'] / g:.2f}"
        est = "-" if "estimated_peak_bytes" not in r else f"{r['estimated_peak_bytes'] / g:.2f}"
        err = ("-" if "estimate_minus_measured" not in r
               else f"{r['estimate_minus_measured']:+.1%}")
        under = "-" if r.get("oom") else ("yes" if r["peak_bytes"] <= UNET_TARGET_BYTES else "no")
        lines.append(f"| {' | '.join(onoff)} | {meas} | {est} | {err} | {under} |")
    return "\n".join(lines) + "\n"


def step_unet_memory(run: Run, tag: str, cuda: bool) -> dict[str, Any]:
    device = "cuda" if cuda else "cpu"
    size = [] if cuda else ["--shape", "2", "16", "32", "--base-channels", "2"]
    scratch = run.work / "unet_memory"
    cmd = [sys.executable, str(BENCH / "unet_memory.py"), "--device", device, "--repeats",
           "2" if cuda else "1", "--out", str(scratch), *size]
    rec = run.command("unet_memory", cmd, CAPS["unet_memory"])
    measured_path = scratch / f"unet_memory_{device}.json"
    if not measured_path.exists():
        return rec
    committed = BENCH / "results" / "unet_memory_estimate.json"
    if cuda and committed.exists() and not run.args.fresh_estimate:
        # the estimate needs no GPU (fake tensors): the committed CPU run, not device time
        est_path = committed
        rec["estimate"] = {"status": "ok", "source": "benchmarks/results/unet_memory_estimate.json"}
    else:
        cmd = [sys.executable, str(BENCH / "unet_memory.py"), "--estimate", "--out",
               str(scratch), *size]
        rec["estimate"] = run.command("unet_memory (estimate)", cmd, CAPS["unet_memory"] / 3)
        est_path = scratch / "unet_memory_estimate.json"
    info = json.loads(measured_path.read_text())
    if est_path.exists():
        info = merge_estimate(info, json.loads(est_path.read_text()))
    sys.path.insert(0, str(BENCH))
    import unet_memory

    text = unet_memory.markdown(info) + estimate_table(info)
    _atomic_json(run.args.results / f"unet_memory_{tag}.json", info)
    _atomic_text(run.args.results / f"unet_memory_{tag}.md", text)
    target = [r for r in info["rows"] if r["checkpointing"] and r["bf16"] and not r["offload"]]
    if target and not target[0].get("oom"):
        rec["ckpt_bf16_peak_bytes"] = target[0]["peak_bytes"]
        rec["ckpt_bf16_under_8GiB"] = target[0]["peak_bytes"] <= UNET_TARGET_BYTES
    return rec


def junit_summary(path: Path) -> dict[str, Any]:
    """Counts and failures of a pytest ``--junitxml`` file."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in suite.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            msg = (bad.get("message") or "").splitlines()[:1]
            failed.append(f"{case.get('classname')}::{case.get('name')}: {' '.join(msg)}"[:300])
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "time_s": float(suite.get("time", 0.0)), "failed": failed}


def step_pytest_gpu(run: Run, tag: str, cuda: bool) -> dict[str, Any]:
    xml = run.work / "pytest_gpu.xml"
    where = ["tests"] if cuda else ["tests/test_operators_gpu.py"]
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}", *where]
    rec = run.command("pytest_gpu", cmd, CAPS["pytest_gpu"])
    if rec.get("rc") == 5:  # nothing collected is not a failure of the GPU code
        rec["status"] = "ok"
    if xml.exists():
        rec["junit"] = junit_summary(xml)
    return rec


def step_compare_tiny(run: Run, tag: str, cuda: bool) -> dict[str, Any]:
    out = run.work / "compare_tiny"
    cmd = [sys.executable, "-c", "from sinotriage.cli import main; main()", "compare",
           "--preset", "tiny", "--device", "cuda" if cuda else "cpu", "--out", str(out),
           "--workers", str(_workers()), "--no-progress"]
    rec = run.command("compare_tiny", cmd, CAPS["compare_tiny"])
    res = out / "results.json"
    if res.exists():
        data = json.loads(res.read_text())
        rec["arms"] = sorted(data.get("arms", {}))
        rec["timing"] = data.get("timing")
        rec["train_seconds"] = {k: v.get("train_seconds") for k, v in data.get("arms", {}).items()}
    return rec


def _workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def step_throughput(run: Run, tag: str, cuda: bool) -> dict[str, Any]:
    out = run.work / "throughput.json"
    cmd = [sys.executable, str(Path(__file__)), "--throughput-child", "--work",
           str(run.work / "throughput"), "--device", "cuda" if cuda else "cpu",
           "--preset", "standard" if cuda else "tiny", "--studies", str(run.args.studies),
           "--child-out", str(out)]
    rec = run.command("throughput", cmd, CAPS["throughput"])
    if out.exists():  # written after every arm: a timeout keeps the arms that finished
        rec.update(json.loads(out.read_text()))
    return rec


def throughput_child(args: argparse.Namespace) -> int:
    """One epoch of each arm of a study preset on a small store of its data (a subprocess)."""
    from dataclasses import replace

    from sinotriage.experiments.config import study_preset
    from sinotriage.experiments.runner import ArmJob, arm_views
    from sinotriage.experiments.train_arm import train_config
    from sinotriage.io.store import open_store
    from sinotriage.preprocess import preprocess
    from sinotriage.presets import get_preset
    from sinotriage.synth import synthesize
    from sinotriage.training import train

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = study_preset(args.preset)
    full = study_preset(args.preset)
    budget = config.training.model_copy(update={"epochs": 1, "num_workers": min(4, _workers())})
    config = config.model_copy(update={"n_studies": int(args.studies), "training": budget})
    # the study's data (what prepare_store makes), with projection and FBP on the device
    t0 = time.perf_counter()
    path = work / f"{config.data_preset}.zarr"
    preset = replace(get_preset(config.data_preset), difficulty=config.difficulty)
    synthesize(path, config.n_studies, preset, config.seed, prevalence=config.prevalence,
               fractions=config.split_fractions, device=args.device, workers=0, progress=False)
    n_views = int(open_store(path).geometry.n_views)
    views = {arm_views(a, n_views) for a in config.arms}
    preprocess(path, sorted(views, reverse=True), device=args.device, workers=0, progress=False)
    data_s = time.perf_counter() - t0
    store = open_store(path)
    train_slices = sum(int(store.array(s, "hu").shape[0]) for s in store.study_ids("train"))
    all_slices = sum(int(store.array(s, "hu").shape[0]) for s in store.study_ids())
    record: dict[str, Any] = {"preset": args.preset, "device": args.device,
                              "n_studies": int(args.studies), "data_s": round(data_s, 1),
                              "train_slices": train_slices, "arms": {}}
    for arm in config.arms:
        job = ArmJob(config=config, arm=arm, model=config.model_for(arm),
                     views=arm_views(arm, n_views), store_path=path,
                     workdir=work / "arms" / arm.name, device=args.device)
        start = time.perf_counter()
        try:
            result = train(train_config(job))
            row = result.history[0]
            epoch_s = float(row["seconds"])
            used = min(train_slices, budget.max_train_slices or train_slices)
            record["arms"][arm.name] = {
                "model": job.model, "views": job.views, "epoch_s": round(epoch_s, 2),
                "wall_s": round(time.perf_counter() - start, 2), "train_slices": used,
                "slices_per_s": round(used / epoch_s, 1)}
        except Exception as exc:  # report the arm, keep measuring the others
            record["arms"][arm.name] = {"model": job.model, "error": f"{type(exc).__name__}: {exc}"[:300]}
        _atomic_json(Path(args.child_out), record)
        print(arm.name, record["arms"][arm.name], flush=True)
    record["projection"] = project_study_time(record, full, all_slices)
    _atomic_json(Path(args.child_out), record)
    return 0


def project_study_time(record: dict[str, Any], full: Any, measured_slices: int) -> dict[str, Any]:
    """Hours of the full study preset on one GPU from the measured slices/s: train slices of the
    full store (slices per study as measured, train fraction of the preset) x epochs / rate, per
    arm, plus validation scoring at the same rate (an upper bound: scoring skips backward)."""
    per_study = measured_slices / max(record["n_studies"], 1)
    train_frac, val_frac = full.split_fractions[0], full.split_fractions[1]
    slices = per_study * full.n_studies
    cap = full.training.max_train_slices
    train = min(slices * train_frac, cap) if cap else slices * train_frac
    hours = {}
    for name, arm in record["arms"].items():
        if "slices_per_s" in arm:
            per_epoch = (train + slices * val_frac) / arm["slices_per_s"]
            hours[name] = round(full.training.epochs * per_epoch / 3600, 3)
    return {"n_studies": full.n_studies, "epochs": full.training.epochs,
            "hours_per_arm": hours, "hours_total": round(sum(hours.values()), 2),
            "complete": len(hours) == len(full.arms)}


# ------------------------------------------------------------------------------- reporting
def machine(cuda: bool) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(),
                            "cpu_count": os.cpu_count(),
                            "install_s": INSTALL_S[0],
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if cuda:
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, capability=f"{p.major}.{p.minor}")
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    try:
        import astra

        info["astra"] = {"version": astra.__version__, "use_cuda": bool(astra.use_cuda())}
    except Exception as exc:  # ImportError, or a missing CUDA 12 library under it
        info["astra"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    return info


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# GPU check ({report['mode']})", "",
             f"Machine: {m.get('gpu', 'no GPU (smoke run on CPU: toy sizes, not a measurement)')}; "
             f"torch {m['torch']}, CUDA {m.get('cuda', '-')}, triton {m['triton']}, Python "
             f"{m['python']}, {m['cpu_count']} CPUs; ASTRA: {m['astra']}. Wheel install: "
             f"{m['install_s']:.1f} s. Total wall time: {report['wall_s']:.0f} s.", "",
             "| step | status | wall (s) | result |", "| --- | --- | ---: | --- |"]
    for name, rec in report["steps"].items():
        lines.append(f"| {name} | {rec['status']} | {rec.get('wall_s', '-')} | {_result(name, rec)} |")
    thr = report["steps"].get("throughput", {})
    if thr.get("arms"):
        lines += ["", f"One training epoch per arm of the `{thr['preset']}` study preset "
                  f"({thr['n_studies']} studies, {thr['train_slices']} train slices; data "
                  f"synthesis and preprocessing {thr['data_s']} s). Epoch time includes "
                  "scoring the validation split, so slices/s is a lower bound of training "
                  "speed:", "",
                  "| arm | model | views | epoch (s) | train slices/s |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for name, a in thr["arms"].items():
            if "error" in a:
                lines.append(f"| {name} | {a['model']} | - | - | {a['error']} |")
            else:
                lines.append(f"| {name} | {a['model']} | {a['views']} | {a['epoch_s']} "
                             f"| {a['slices_per_s']} |")
        proj = thr.get("projection")
        if proj:
            lines += ["", f"Projected full `{thr['preset']}` study on this machine ({proj['n_studies']} "
                      f"studies, {proj['epochs']} epochs, validation scored every epoch): "
                      f"{proj['hours_total']} h for the arms measured"
                      f"{'' if proj['complete'] else ' (not all arms finished)'}."]
    return "\n".join(lines) + "\n"


def _result(name: str, rec: dict[str, Any]) -> str:
    if name == "operators" and "fan_fbp_best" in rec:
        b = rec["fan_fbp_best"]
        return (f"SinoCT fan FBP batch {b['batch']}: {b['ginterp_per_s']:.0f} Ginterp/s "
                f"({b['backend']}); target 500: {'met' if b['meets_5e11'] else 'MISSED'}")
    if name == "unet_memory" and "ckpt_bf16_peak_bytes" in rec:
        return (f"checkpointing + bf16: {rec['ckpt_bf16_peak_bytes'] / 2**30:.2f} GiB; "
                f"target 8 GiB: {'met' if rec['ckpt_bf16_under_8GiB'] else 'MISSED'}")
    if name == "pytest_gpu" and "junit" in rec:
        j = rec["junit"]
        return (f"{j['passed']} passed, {j['failures'] + j['errors']} failed, {j['skipped']} "
                f"skipped; " + "; ".join(j["failed"])[:400])
    if name == "compare_tiny" and rec.get("status") == "ok":
        return f"end to end in {rec['wall_s']} s, arms {', '.join(rec.get('arms', []))}"
    return rec.get("reason", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=None,
                    help="where the result files go (default benchmarks/results; --smoke: the "
                         "scratch folder)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temp)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds from the start after which no step starts (default 420; "
                         "--smoke: 3600)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--studies", type=int, default=12, help="studies of the throughput store")
    ap.add_argument("--fresh-estimate", action="store_true",
                    help="recompute the memory estimate instead of reading the committed one")
    ap.add_argument("--smoke", action="store_true",
                    help="without a GPU: run every step on the CPU at toy sizes (not a measurement)")
    ap.add_argument("--throughput-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="standard", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.throughput_child:
        return throughput_child(args)

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print(NO_GPU, flush=True)
        return 0
    tag = "cuda" if cuda else "smoke"
    if cuda:
        took = install_wheels(ROOT / ".whl", Path(os.environ.get("GPU_CHECK_SITE",
                                                                  "/tmp/gpu_check_site")))
        if took is not None:
            INSTALL_S[0] = round(took, 1)
            print(f"gpu_check: installed the carried wheels in {took:.1f} s", flush=True)
    if args.deadline is None:
        args.deadline = 420.0 if cuda else 3600.0
    run = Run(args)
    if args.results is None:
        args.results = ROOT / "benchmarks" / "results" if cuda else run.work / "results"
    args.results.mkdir(parents=True, exist_ok=True)
    run.say(f"mode {tag}; results in {args.results}; scratch {run.work}")
    report: dict[str, Any] = {"mode": tag, "machine": machine(cuda), "steps": {}}
    funcs = {"operators": step_operators, "unet_memory": step_unet_memory,
             "pytest_gpu": step_pytest_gpu, "compare_tiny": step_compare_tiny,
             "throughput": step_throughput}
    for name in args.steps:
        try:
            report["steps"][name] = funcs[name](run, tag, cuda)
        except Exception as exc:  # a broken step must not lose the others' figures
            run.say(f"{name}: error in gpu_check itself: {type(exc).__name__}: {exc}")
            report["steps"][name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        report["wall_s"] = time.monotonic() - run.t0
        _atomic_json(args.results / f"gpu_check_{tag}.json", report)
        _atomic_text(args.results / f"gpu_check_{tag}.md", markdown(report))
    run.say(f"done in {report['wall_s']:.0f} s; wrote gpu_check_{tag}.json/.md")
    out = os.environ.get("OUT")
    if out:
        for f in sorted(args.results.glob(f"*_{tag}.*")) + [run.log]:
            shutil.copy2(f, Path(out) / f.name)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
