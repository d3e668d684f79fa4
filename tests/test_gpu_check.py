"""benchmarks/gpu_check.sh: a clean skip without a GPU, and the pieces that turn its step
outputs into the result files (checked on hand-made step outputs; the figures come from GPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402


def _listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_without_a_gpu_it_says_so_exits_0_and_writes_nothing(tmp_path):
    before = _listing(BENCHMARKS / "results")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path / "out"),
           "GPU_CHECK_SITE": str(tmp_path / "site")}
    (tmp_path / "out").mkdir()
    res = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_check.sh"), "--results", str(tmp_path / "results"),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("no GPU: torch.cuda.is_available() is False"), res.stdout
    assert "wrote nothing" in res.stdout
    for made in ("results", "work", "site"):
        assert not (tmp_path / made).exists(), made
    assert list((tmp_path / "out").iterdir()) == []
    assert _listing(BENCHMARKS / "results") == before


def _row(ckpt, bf16, offload, peak=None, oom=False):
    row = {"checkpointing": ckpt, "bf16": bf16, "offload": offload, "step_s": 1.25,
           "saved_activation_bytes": 2**30}
    return {**row, "oom": True} if oom else {**row, "peak_bytes": peak}


def test_memory_estimate_sits_beside_each_measured_row():
    g = 2**30
    measured = {"rows": [_row(False, False, False, 40 * g), _row(True, True, False, 7.5 * g),
                         _row(False, True, True, oom=True)]}
    est = {"method": "m", "input_shape": [1, 1, 40, 984, 888], "rows": [
        {"checkpointing": False, "bf16": False, "offload": False, "estimated_peak_bytes": 36 * g},
        {"checkpointing": True, "bf16": True, "offload": False, "estimated_peak_bytes": 7 * g},
        {"checkpointing": False, "bf16": True, "offload": True, "estimated_peak_bytes": 5 * g}]}
    info = gpu_check.merge_estimate(measured, est)
    assert [r["estimated_peak_bytes"] for r in info["rows"]] == [36 * g, 7 * g, 5 * g]
    assert info["rows"][0]["estimate_minus_measured"] == pytest.approx(36 / 40 - 1)
    assert "estimate_minus_measured" not in info["rows"][2]  # OOM: nothing to compare
    table = gpu_check.estimate_table(info)
    assert "| off | off | off | 40.00 | 36.00 | -10.0% | no |" in table
    assert "| on | on | off | 7.50 | 7.00 | -6.7% | yes |" in table
    assert "| off | on | on | OOM | 5.00 | - | - |" in table


def test_junit_summary_counts_and_names_failures(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="4" failures="1" '
        'errors="0" skipped="1" time="3.5">'
        '<testcase classname="tests.test_a" name="test_ok" time="1"/>'
        '<testcase classname="tests.test_a" name="test_also_ok" time="1"/>'
        '<testcase classname="tests.test_b" name="test_bad" time="1">'
        '<failure message="assert 1 == 2&#10;more">trace</failure></testcase>'
        '<testcase classname="tests.test_c" name="test_skip" time="0"><skipped message="x"/>'
        "</testcase></testsuite></testsuites>"
    )
    s = gpu_check.junit_summary(xml)
    assert (s["tests"], s["passed"], s["failures"], s["skipped"]) == (4, 2, 1, 1)
    assert s["failed"] == ["tests.test_b::test_bad: assert 1 == 2"]


def test_study_time_projection_from_measured_throughput():
    """600 studies of 30 slices, 60 % train and 20 % validation: 14,400 slices scored per epoch;
    at 100 slices/s and 12 epochs that is 1,728 s = 0.48 h per arm."""
    full = SimpleNamespace(split_fractions=(0.6, 0.2, 0.2), n_studies=600, arms=[1, 2],
                           training=SimpleNamespace(epochs=12, max_train_slices=None))
    record = {"n_studies": 12, "arms": {"a": {"slices_per_s": 100.0}, "b": {"error": "x"}}}
    proj = gpu_check.project_study_time(record, full, measured_slices=12 * 30)
    assert proj["hours_per_arm"] == {"a": 0.48}
    assert proj["hours_total"] == 0.48 and proj["complete"] is False


def test_report_markdown_names_targets_and_missing_steps():
    report = {"mode": "cuda", "wall_s": 400.0, "machine": {
        "gpu": "NVIDIA H200", "torch": "2.11", "cuda": "13.0", "triton": "3.6", "python": "3.12",
        "cpu_count": 16, "astra": {"error": "ImportError"}, "install_s": 12.0},
        "steps": {
            "operators": {"status": "ok", "wall_s": 60, "fan_fbp_best": {
                "backend": "triton", "batch": 32, "ginterp_per_s": 650.0, "meets_5e11": True}},
            "unet_memory": {"status": "ok", "wall_s": 90, "ckpt_bf16_peak_bytes": 9 * 2**30,
                            "ckpt_bf16_under_8GiB": False},
            "throughput": {"status": "skipped", "reason": "deadline"}}}
    text = gpu_check.markdown(report)
    assert "SinoCT fan FBP batch 32: 650 Ginterp/s (triton); target 500: met" in text
    assert "checkpointing + bf16: 9.00 GiB; target 8 GiB: MISSED" in text
    assert "| throughput | skipped | - | deadline |" in text


def test_wheel_pins_cover_the_dependencies_the_gpu_machine_lacks():
    """Every project dependency that the GPU image does not ship (its package list is in
    wheels.sh's header) is pinned in benchmarks/wheels.sh, once."""
    text = (BENCHMARKS / "wheels.sh").read_text()
    pins = [w.split("==")[0].lower().replace("_", "-") for w in text.split() if "==" in w]
    assert len(pins) == len(set(pins))
    for needed in ("monai", "zarr", "numcodecs", "dask", "distributed", "pydicom", "pydantic",
                   "pydantic-core"):
        assert needed in pins, needed
    json.dumps(pins)  # plain strings


def test_operator_step_picks_the_fastest_fan_fbp_at_batch_32(tmp_path):
    def row(case, backend, batch, g):
        return {"case": case, "op": "fbp", "backend": backend, "batch": batch,
                "ms_per_slice": 1.0, "ginterp_per_s": g}

    rows = [row("sinoct fan 984x888", "torch", 32, 400.0),
            row("sinoct fan 984x888", "triton", 32, 600.0),
            row("sinoct fan 984x888", "triton", 8, 900.0),  # not the target's batch
            row("parallel 720x736", "triton", 32, 1000.0),  # not the target's geometry
            {**row("sinoct fan 984x888", "astra", 32, None), "ms_per_slice": None}]

    class FakeRun:
        args = SimpleNamespace(results=tmp_path)

        def command(self, step, cmd, cap):
            out = Path(cmd[cmd.index("--out") + 1])
            out.write_text(json.dumps({"rows": rows}))
            assert "--device" in cmd and cmd[cmd.index("--device") + 1] == "cuda"
            return {"status": "ok"}

    rec = gpu_check.step_operators(FakeRun(), "cuda", True)
    assert rec["fan_fbp_best"] == {"backend": "triton", "batch": 32, "ginterp_per_s": 600.0,
                                   "meets_5e11": True}
    assert rec["backends"] == ["torch", "triton"]
