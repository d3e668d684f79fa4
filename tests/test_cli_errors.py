"""The CLI's error policy: user errors are one line with exit code 2, bugs are not hidden.

Each command path of the hardening issue that used to end in a traceback (or in exit code 0)
gets a test asserting exactly one line on stderr and the exit code.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import sinotriage.io.store as store_mod
from sinotriage.cli import app
from sinotriage.errors import StoreError
from sinotriage.io.predictions import Predictions, write_predictions
from sinotriage.io.store import create_store, open_store
from sinotriage.presets import get_preset


def _invoke(*args: str, **kwargs) -> object:
    return CliRunner().invoke(app, list(args), **kwargs)


def _one_line(result, code: int) -> str:
    """The single non-empty line on stderr, after checking the exit code."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _small_store(path, n_studies: int = 1):
    """A store of the tiny preset with ``n_studies`` studies of random arrays (fast to build)."""
    g = get_preset("tiny").geometry()
    store = create_store(path, {"source": "test"}, geometry=g)
    rng = np.random.default_rng(0)
    d = 2
    for i in range(n_studies):
        store.write_study(f"s{i}", {"hu": rng.integers(-1000, 80, (d, *g.image_shape)),
                                    "sinogram": rng.random((d, *g.sinogram_shape))})
    store.assign_splits((1.0, 0.0, 0.0))
    return store


# -- the policy itself ---------------------------------------------------------------------------
def test_user_error_is_one_line_with_exit_code_2(tmp_path):
    line = _one_line(_invoke("show", str(tmp_path / "none.zarr"), "--study", "x"), 2)
    assert line.startswith("error: ") and "no dataset store" in line


def test_a_bug_is_an_internal_error_with_exit_code_1(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")  # a programming error inside the library

    monkeypatch.setattr(store_mod, "open_store", broken)
    monkeypatch.delenv("SINOTRIAGE_DEBUG", raising=False)
    line = _one_line(_invoke("show", str(tmp_path), "--study", "x"), 1)
    assert "internal error" in line and "KeyError" in line and "boom" in line
    assert "--debug" in line and "SINOTRIAGE_DEBUG=1" in line
    # with --debug (or the environment variable) the exception keeps its traceback
    res = _invoke("--debug", "show", str(tmp_path), "--study", "x")
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)
    monkeypatch.setenv("SINOTRIAGE_DEBUG", "1")
    res = _invoke("show", str(tmp_path), "--study", "x")
    assert isinstance(res.exception, KeyError)


def test_python_dash_m_sinotriage_runs_the_cli():
    res = subprocess.run([sys.executable, "-m", "sinotriage", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("sinotriage ")


# -- the command paths -------------------------------------------------------------------------
@pytest.mark.parametrize("cutoff", ["-1", "nan", "1.5"])
def test_preprocess_bad_cutoff_is_refused_before_any_task(tmp_path, monkeypatch, cutoff):
    import sinotriage.preprocess as pre

    _small_store(tmp_path / "s.zarr")
    calls = []
    monkeypatch.setattr(pre, "run_tasks", lambda *a, **k: calls.append(a) or [])
    res = _invoke("preprocess", str(tmp_path / "s.zarr"), "--views", "123", "--workers", "0",
                  "--cutoff", cutoff, "--no-progress")
    line = _one_line(res, 2)
    assert "cutoff must be a number in (0, 1]" in line and cutoff in line
    assert calls == []


def test_demo_refuses_an_unknown_figure_type_up_front(tmp_path):
    line = _one_line(_invoke("demo", "--out", str(tmp_path / "x.bogusext")), 2)
    assert "--out" in line and "'.bogusext'" in line and ".png" in line
    assert not (tmp_path / "x.bogusext").exists()


def test_demo_out_folder_prints_the_file_it_wrote(tmp_path):
    res = _invoke("demo", "--image-size", "32", "--views", "16", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    written = tmp_path / "demo.png"
    assert written.stat().st_size > 1000
    assert f"wrote {written}" in " ".join(res.stdout.split())
    res = _invoke("demo", "--image-size", "32", "--views", "16", "--out", str(tmp_path / "fig"))
    assert res.exit_code == 0 and (tmp_path / "fig.png").is_file()
    assert f"wrote {tmp_path / 'fig.png'}" in " ".join(res.stdout.split())


def test_synth_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    import sinotriage.parallel as parallel

    assert parallel.SCHEDULER_TIMEOUT_S <= 10
    monkeypatch.setattr(parallel, "SCHEDULER_TIMEOUT_S", 1.0)  # keep the test short
    res = _invoke("synth", "--out", str(tmp_path / "x.zarr"), "--studies", "1", "--preset",
                  "tiny", "--scheduler", "tcp://127.0.0.1:9", "--no-progress")
    line = _one_line(res, 2)
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in line


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_train_on_a_missing_cuda_device_is_one_line(tmp_path):
    _small_store(tmp_path / "s.zarr")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"store": str(tmp_path / "s.zarr"),
                                   "out_dir": str(tmp_path / "run"), "epochs": 1}))
    line = _one_line(_invoke("train", "--config", str(cfg), "--resume", "--device", "cuda:7"), 2)
    assert "--device cuda:7" in line
    assert "not available" in line or "CUDA device(s)" in line
    line = _one_line(_invoke("train", "--config", str(cfg), "--device", "tpu"), 2)
    assert "must be cpu, cuda or cuda:N" in line


def _lose_the_race(monkeypatch):
    """Let another 'process' create the store between our existence check and our rename."""
    real_build = store_mod._build_root

    def build_after_the_winner(tmp, attrs):
        final = tmp.parent / tmp.name[1:].split(".tmp-")[0]
        real_build(tmp, attrs)
        monkeypatch.setattr(store_mod, "_build_root", real_build)
        store_mod.create_store(final, {"source": "winner"})  # the other process wins

    monkeypatch.setattr(store_mod, "_build_root", build_after_the_winner)


def test_two_creators_of_one_store_the_loser_gets_a_store_error(tmp_path, monkeypatch):
    _lose_the_race(monkeypatch)
    with pytest.raises(StoreError, match="created by another process"):
        create_store(tmp_path / "s.zarr", {"source": "loser"})
    assert open_store(tmp_path / "s.zarr").attrs["source"] == "winner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no temporary left


def test_synth_losing_the_store_creation_race_is_one_line(tmp_path, monkeypatch):
    _lose_the_race(monkeypatch)
    res = _invoke("synth", "--out", str(tmp_path / "x.zarr"), "--studies", "1", "--preset",
                  "tiny", "--workers", "0", "--no-progress")
    line = _one_line(res, 2)
    assert "created by another process" in line and "x.zarr" in line


def test_ingest_dicom_empty_folder_exits_non_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    line = _one_line(_invoke("ingest", "dicom", str(tmp_path / "empty"), "--out",
                             str(tmp_path / "e.zarr"), "--preset", "tiny", "--workers", "0",
                             "--no-progress"), 2)
    assert "no CT series found among 0 files" in line
    assert not (tmp_path / "e.zarr").exists()


def test_ingest_dicom_garbage_folder_counts_skips_by_reason(tmp_path):
    src = tmp_path / "junk"
    src.mkdir()
    (src / "a.dcm").write_bytes(b"\x00" * 300)
    (src / "b.dcm").write_bytes(b"not dicom at all")
    (src / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning):
        res = _invoke("ingest", "dicom", str(src), "--out", str(tmp_path / "g.zarr"), "--preset",
                      "tiny", "--workers", "0", "--no-progress")
    line = _one_line(res, 2)
    assert "no CT series found among 3 files; 3 skipped (" in line
    counts = line.split("3 skipped (")[1].split(")")[0]  # "reason n, reason n"
    assert sum(int(part.rsplit(" ", 1)[1]) for part in counts.split(", ")) == 3
    assert not (tmp_path / "g.zarr").exists()


def test_triage_refuses_a_scores_csv_with_duplicate_rows(tmp_path):
    n = 8
    y = np.arange(n) % 2
    path = write_predictions(tmp_path / "p.csv", Predictions(
        [f"s{i}" for i in range(n)], ["val"] * 4 + ["test"] * 4, np.full(n, -1), y,
        np.linspace(0, 1, n)))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[3]]) + "\n")  # the study of line 4 again
    line = _one_line(_invoke("triage", "--scores", str(path), "--out",
                             str(tmp_path / "w.csv")), 2)
    assert "line 10: duplicate row for study 's2', scan row (first on line 4)" in line
    assert not (tmp_path / "w.csv").exists()



def test_ingest_dicom_strict_refuses_a_garbage_file_in_one_line(tmp_path):
    src = tmp_path / "junk"
    src.mkdir()
    (src / "a.dcm").write_bytes(b"\x00" * 300)
    line = _one_line(_invoke("ingest", "dicom", str(src), "--out", str(tmp_path / "g.zarr"),
                             "--preset", "tiny", "--workers", "0", "--strict", "--no-progress"), 2)
    assert line.startswith("error: ") and "a.dcm" in line
