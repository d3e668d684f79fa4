"""Seeds, training sizes, failures and resume of the study, with a scripted trainer (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import ScriptedTrainer, check_report_matches_results, make_store

from sinotriage.experiments import ArmConfig, StudyConfig, run_study
from sinotriage.experiments.config import QueueConfig
from sinotriage.experiments.summary import is_robust
from sinotriage.io.predictions import read_predictions
from sinotriage.metrics import delong_test

SEEDS, SIZES = (0, 1), (6, 16)
STRENGTH = {"sinogram": 0.0, "recon": 3.0, "windowed": 3.0}


@pytest.fixture(scope="module")
def store60(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store60") / "s.zarr", n=60)


def _config(**kw) -> StudyConfig:
    arms = (
        ArmConfig(name="sino_x4", domain="sinogram", view_factor=4),
        ArmConfig(name="recon_x4", domain="recon", view_factor=4),
        ArmConfig(name="win_x1", domain="windowed", view_factor=1),
    )
    base = dict(name="seeds", data_preset="tiny", n_studies=60, arms=arms, reference_arm="win_x1",
                seeds=SEEDS, train_sizes=SIZES, training={"epochs": 1},
                queue=QueueConfig(n_repeats=2))
    base.update(kw)
    return StudyConfig(**base)


def test_is_robust() -> None:
    assert is_robust([0.1, 0.2], [0.01, 0.04], 0.05)
    assert not is_robust([0.1, -0.2], [0.01, 0.01], 0.05)  # signs differ
    assert not is_robust([0.1, 0.2], [0.01, 0.06], 0.05)  # one seed not significant
    assert not is_robust([0.1, None], [0.01, None], 0.05)
    assert not is_robust([0.0, 0.0], [0.01, 0.01], 0.05)


def test_seeds_and_sizes_end_to_end(tmp_path, store60) -> None:
    out = tmp_path / "res"
    trainer = ScriptedTrainer(STRENGTH, fail=("recon_x4/s1/n16",))
    results = run_study(_config(), out, store=store60, trainer=trainer, workers=0)
    n_train = results["n_train_studies"]
    assert n_train >= SIZES[-1]
    expected = [f"{a}/s{s}/n{n}" for a in ("sino_x4", "recon_x4", "win_x1") for s in SEEDS
                for n in SIZES]
    assert trainer.runs == expected  # arm, then seed, then size
    # the failed run is recorded, the others finished
    assert list(results["failed"]) == ["recon_x4/s1/n16"]
    assert "scripted failure" in results["failed"]["recon_x4/s1/n16"]
    assert (out / "arms/recon_x4/s1/n16/failed.txt").is_file()
    assert list(results["runs"]) == [r for r in expected if r != "recon_x4/s1/n16"]
    # every run's paired test is against the reference run of the same seed and size
    for name, run in results["runs"].items():
        assert run["n_train"] == run["size"]
        ref = results["runs"][f"win_x1/s{run['seed']}/n{run['size']}"]
        if run["arm"] == "win_x1":
            assert run["p_vs_reference"] is None
            continue
        a = read_predictions(out / run["predictions"]).scans("test")
        r = read_predictions(out / ref["predictions"]).scans("test")
        assert a.study_id == r.study_id
        t = delong_test(a.column("any")[0], a.column("any")[1], r.column("any")[1])
        assert run["p_vs_reference"] == pytest.approx(t.p_value, abs=1e-12), name
        assert run["delta_auc_vs_reference"] == pytest.approx(t.difference, abs=1e-12)
    # arm summaries at the main (largest) size: mean, SD, range of the per-seed AUCs
    main = SIZES[-1]
    assert results["study"]["main_size"] == main
    for arm_name, arm in results["arms"].items():
        runs = [results["runs"][k] for s in SEEDS
                if (k := f"{arm_name}/s{s}/n{main}") in results["runs"]]
        aucs = [r["auc"] for r in runs]
        assert arm["n_seeds"] == len(runs)
        assert arm["auc"] == pytest.approx(np.mean(aucs), abs=1e-12)
        assert arm["auc_min"] == min(aucs) and arm["auc_max"] == max(aucs)
        if len(aucs) > 1:
            assert arm["auc_sd"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-12)
        else:
            assert arm["auc_sd"] is None
        assert list(arm["seeds"]) == [str(r["seed"]) for r in runs]
        if arm_name != "win_x1":
            d = [r["delta_auc_vs_reference"] for r in runs]
            p = [r["p_vs_reference"] for r in runs]
            assert arm["robust"] == (all(x < 0.05 for x in p) and len({np.sign(x) for x in d}) == 1)
            assert arm["p_vs_reference"] == max(p)
    # scripted: the sinogram arm scores noise, the windowed arm separates -> robust in both seeds
    assert results["arms"]["sino_x4"]["robust"] is True
    # the curve: one point per size, first_clear the first size whose every seed clears 0.5
    curve = results["curve"]
    assert curve["sizes"] == list(SIZES)
    for c in curve["arms"].values():
        assert [p["n_train"] for p in c["points"]] == list(SIZES)
        for p in c["points"]:
            lows = [s["auc_ci"][0] for s in p["seeds"].values()]
            assert p["clears"] == all(lo > 0.5 for lo in lows)
        clears = [p["n_train"] for p in c["points"] if p["clears"]]
        assert c["first_clear"] == (clears[0] if clears else None)
    assert curve["arms"]["win_x1"]["first_clear"] == SIZES[0]
    check_report_matches_results(out)
    md = (out / "report.md").read_text()
    assert "## Failed runs" in md and "recon_x4/s1/n16" in md
    assert "win_x1: the 95% CI lower bound first clears 0.5 at 6 training studies." in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # roc, views, curve, example, queue
    assert "Data-scaling curve" in html and "Robust" in html
    # a rerun retries only the failed run; the others are reused
    again = ScriptedTrainer(STRENGTH)
    after = run_study(_config(), out, store=store60, trainer=again, workers=0)
    assert again.runs == ["recon_x4/s1/n16"]
    assert after["failed"] == {} and list(after["runs"]) == expected
    assert not (out / "arms/recon_x4/s1/n16/failed.txt").exists()
    for name, run in results["runs"].items():
        assert after["runs"][name]["auc"] == run["auc"]
    # a changed per-arm training option reruns that arm's runs only
    arms = list(_config().arms)
    arms[1] = arms[1].model_copy(update={"training": {"lr": 0.01}})
    third = ScriptedTrainer(STRENGTH)
    run_study(_config(arms=tuple(arms)), out, store=store60, trainer=third, workers=0)
    assert third.runs == [r for r in expected if r.startswith("recon_x4/")]


def test_piped_compare_prints_full_numbers(tmp_path, store60) -> None:
    """``sinotriage compare ... | tee log``: not a terminal, so the tables are plain text with
    every digit of results.json."""
    from typer.testing import CliRunner

    from sinotriage.cli import app

    out = tmp_path / "res"
    run_study(_config(seeds=(0,), train_sizes=()), out, store=store60,
              trainer=ScriptedTrainer(STRENGTH), workers=0)
    res = CliRunner().invoke(app, ["compare", "--out", str(out), "--report-only"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    lines = res.output.splitlines()
    for name, arm in results["arms"].items():
        row = next(ln for ln in lines if ln.startswith(name + " "))
        assert repr(arm["auc"]) in row.split() and "…" not in row
        assert f"{arm['auc_ci'][0]!r}..{arm['auc_ci'][1]!r}" in row.split()
    for name, run in results["runs"].items():
        assert any(ln.startswith(name + " ") and repr(run["auc"]) in ln.split() for ln in lines)


def test_compare_cli_runs_and_resumes(tmp_path, store60, monkeypatch) -> None:
    """The CLI with a study YAML over a preset: runs, piped plain tables, resume, bad options."""
    import yaml
    from typer.testing import CliRunner

    import sinotriage.experiments.runner as runner
    from sinotriage.cli import app

    trainer = ScriptedTrainer(STRENGTH)
    monkeypatch.setattr(runner, "_default_trainer", lambda: trainer)
    cfg = _config(seeds=(0, 1), train_sizes=()).model_dump(mode="json")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "res"
    args = ["compare", "--out", str(out), "--store", str(store60), "--config", str(path),
            "--data-workers", "0", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert len(trainer.runs) == 6 and "3 arms" in res.output and "2 seeds" in res.output
    results = json.loads((out / "results.json").read_text())
    assert repr(results["arms"]["sino_x4"]["auc"]) in res.output
    logged = CliRunner().invoke(app, [a for a in args if a != "--no-progress"]
                                + ["--out", str(tmp_path / "logged")])
    assert logged.exit_code == 0, logged.output  # off a terminal: one plain line per run
    assert [ln.split("]")[0] for ln in logged.output.splitlines() if ln.startswith("[")][-6:] == [
        f"[{k}/6" for k in range(1, 7)]
    res = CliRunner().invoke(app, args)  # a rerun reuses every run
    assert res.exit_code == 0 and len(trainer.runs) == 12
    res = CliRunner().invoke(app, [*args, "--workers", "2", "--scheduler", "tcp://x:1"])
    assert res.exit_code == 2 and "not both" in res.output
    res = CliRunner().invoke(app, ["compare", "--out", str(out), "--preset", "huge"])
    assert res.exit_code == 2 and "study preset must be one of" in res.output
    path.write_text("training:\n  seed: 4\n")
    res = CliRunner().invoke(app, ["compare", "--out", str(out), "--config", str(path)])
    assert res.exit_code == 2 and "set by the study" in " ".join(res.output.split())
