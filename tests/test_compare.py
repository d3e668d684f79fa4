"""The comparison study: config, resume, results.json and the reports (numbers must agree)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from _study_helpers import VIEWS, ScriptedTrainer, check_report_matches_results, make_store

from sinotriage.errors import ConfigError
from sinotriage.experiments import (
    STUDY_PRESETS,
    ArmConfig,
    StudyConfig,
    load_study_config,
    read_results,
    rerender,
    run_study,
    study_preset,
)
from sinotriage.experiments.config import QueueConfig
from sinotriage.io.predictions import read_predictions
from sinotriage.metrics import delong_ci, delong_test


def _config(**kw) -> StudyConfig:
    arms = (
        ArmConfig(name="sino_x1", domain="sinogram", view_factor=1),
        ArmConfig(name="sino_x4", domain="sinogram", view_factor=4),
        ArmConfig(name="recon_x4", domain="recon", view_factor=4),
        ArmConfig(name="win_x1", domain="windowed", view_factor=1),
    )
    base = dict(name="unit", data_preset="tiny", n_studies=30, arms=arms, reference_arm="win_x1",
                training={"epochs": 2}, queue=QueueConfig(n_repeats=3))
    base.update(kw)
    return StudyConfig(**base)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "s.zarr")


def test_study_with_scripted_trainer(tmp_path, small_store):
    out = tmp_path / "res"
    trainer = ScriptedTrainer({"sinogram": 1.0, "recon": 2.0, "windowed": 3.0})
    results = run_study(_config(), out, store=small_store, trainer=trainer, workers=0)
    assert trainer.calls == ["sino_x1", "sino_x4", "recon_x4", "win_x1"]
    for f in ("results.json", "report.md", "report.html", "config.yaml",
              "figures/roc.png", "figures/auc_vs_views.png", "figures/example.png",
              "figures/queue.png"):
        assert (out / f).is_file(), f
    assert results == read_results(out)
    check_report_matches_results(out)
    assert results["full_views"] == VIEWS
    assert [a["views"] for a in results["arms"].values()] == [64, 16, 16, 64]
    # the numbers are those of the metrics on the predictions CSVs
    ref = read_predictions(out / "predictions/win_x1_s0_nall.csv").scans("test")
    arm = read_predictions(out / "predictions/recon_x4_s0_nall.csv").scans("test")
    ci = delong_ci(*arm.column("any"))
    assert results["arms"]["recon_x4"]["auc"] == pytest.approx(ci.auc, abs=1e-12)
    assert results["arms"]["recon_x4"]["auc_ci"] == pytest.approx([ci.lower, ci.upper], abs=1e-12)
    assert ref.study_id == arm.study_id
    t = delong_test(arm.column("any")[0], arm.column("any")[1], ref.column("any")[1])
    assert results["arms"]["recon_x4"]["p_vs_reference"] == pytest.approx(t.p_value, abs=1e-12)
    assert results["arms"]["win_x1"]["p_vs_reference"] is None
    # the config used, re-loadable
    assert load_study_config(out / "config.yaml") == _config()
    # html: self-contained, images embedded, axis/table present
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # roc, auc_vs_views, example, queue
    assert "src='http" not in html and "<table>" in html
    q = results["queue"]
    assert [r["arm"] for r in q["rows"]] == ["no triage", *results["arms"], "oracle flags"]
    assert "Reading-queue simulation" in (out / "report.md").read_text()


def test_resume_reruns_only_unfinished_arms(tmp_path, small_store):
    out = tmp_path / "res"
    first = ScriptedTrainer({"sinogram": 1.0, "recon": 2.0, "windowed": 3.0})
    run_study(_config(), out, store=small_store, trainer=first, workers=0)
    before = json.loads((out / "results.json").read_text())
    # simulate an interruption: one arm never finished, the final results never written
    shutil.rmtree(out / "arms" / "recon_x4" / "s0")
    (out / "results.json").unlink()
    second = ScriptedTrainer({"sinogram": 1.0, "recon": 2.0, "windowed": 3.0})
    after = run_study(_config(), out, store=small_store, trainer=second, workers=0)
    assert second.calls == ["recon_x4"]
    for name in before["arms"]:
        assert after["arms"][name]["auc"] == pytest.approx(before["arms"][name]["auc"], abs=1e-12)
    # a changed training budget invalidates every arm
    third = ScriptedTrainer({"sinogram": 1.0, "recon": 2.0, "windowed": 3.0})
    run_study(_config(training={"epochs": 3}), out, store=small_store, trainer=third,
              workers=0)
    assert third.calls == ["sino_x1", "sino_x4", "recon_x4", "win_x1"]
    # the report re-renders from results.json alone
    (out / "report.md").unlink()
    rerender(out)
    check_report_matches_results(out)


def test_config_errors_and_presets(tmp_path):
    for name in STUDY_PRESETS:
        cfg = study_preset(name)
        assert cfg.reference in [a.name for a in cfg.arms]
    quick = study_preset("quick")
    assert quick.sinogram_model == "mini_unet_slim" and quick.image_model == "densenet_slim"
    assert study_preset("standard").image_model == "densenet121"
    with pytest.raises(ValueError, match="preset must be one of"):
        study_preset("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntraining:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid study config: key 'training': "
                                          r"unknown TrainConfig field\(s\) \['epocs'\]"):
        load_study_config(bad)
    # study-owned fields, and TrainConfig rules checked per arm when the config loads
    bad.write_text("training:\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"\['seed'\] are set by the study"):
        load_study_config(bad)
    bad.write_text("arms:\n  - {name: s, domain: sinogram, training: {augment: {flip_prob: 0.5}}}\n")
    with pytest.raises(ConfigError, match=r"training options of arm 's'.*sinogram domain"):
        load_study_config(bad)
    bad.write_text("training:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=r"key 'lr'"):
        load_study_config(bad)
    bad.write_text("aggregation: median\n")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        load_study_config(bad)
    bad.write_text("arms:\n  - {name: a, domain: sinogram}\n  - {name: a, domain: recon}\n")
    with pytest.raises(ValueError, match="unique"):
        load_study_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("training:\n  epochs: 7\nseed: 3\n")
    cfg = load_study_config(good, base=study_preset("quick"))
    assert cfg.training["epochs"] == 7 and cfg.seed == 3 and cfg.arms == quick.arms
    assert cfg.training["batch_size"] == quick.training["batch_size"]
    with pytest.raises(FileNotFoundError):
        load_study_config(tmp_path / "none.yaml")


def test_report_table_format():
    from sinotriage.experiments.report import fmt

    assert fmt(0.12345, "f3") == "0.123"
    assert fmt(0.0004, "p") == "<0.001"
    assert fmt([0.5, 0.75], "ci") == "0.500–0.750"
    assert fmt(None, "f3") == "–"
    assert re.fullmatch(r"\d+\.\d", fmt(12.345, "f1"))


@pytest.mark.slow
def test_report_renders_in_headless_browser(tmp_path, small_store):
    """scripts/check_report_render.py screenshots report.html (skipped without Chromium)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "check_report_render.py"
    spec = importlib.util.spec_from_file_location("check_report_render", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.find_browser() is None:
        pytest.skip("no Chromium browser installed")
    out = tmp_path / "res"
    run_study(_config(), out, store=small_store, workers=0,
              trainer=ScriptedTrainer({"sinogram": 1.0, "recon": 2.0, "windowed": 3.0}))
    html = (out / "report.html").read_text()
    assert mod.check_self_contained(html) == []
    assert mod.check_self_contained("<img src='figures/roc.png'>") != []
    png = tmp_path / "shot.png"
    assert mod.main([str(out / "report.html"), "--png", str(png), "--height", "2500"]) == 0
    assert png.stat().st_size > 10_000
    assert mod.non_blank_fraction(png) > 0.05


@pytest.mark.slow
def test_tiny_preset_end_to_end(tmp_path):
    """The tiny preset, data synthesis and real training included: every (arm, seed, size) run,
    the per-seed summaries, the curve, and every number of report.md against results.json."""
    from sinotriage.training.engine import make_dataset

    out = tmp_path / "tiny"
    cfg = study_preset("tiny")
    results = run_study(cfg, out, workers=0)
    assert set(results) >= {"schema", "study", "test", "runs", "arms", "curve", "failed",
                            "queue", "figures", "timing", "n_train_studies"}
    assert results["failed"] == {}
    assert list(results["arms"]) == [a.name for a in cfg.arms]
    assert results["study"]["seeds"] == list(cfg.seeds) and len(cfg.seeds) >= 2
    assert results["study"]["train_sizes"] == list(cfg.train_sizes) and len(cfg.train_sizes) >= 2
    assert len(results["runs"]) == len(cfg.arms) * len(cfg.seeds) * len(cfg.train_sizes)
    for name, run in results["runs"].items():
        assert 0.0 <= run["auc"] <= 1.0 and run["auc_ci"][0] <= run["auc"] <= run["auc_ci"][1]
        assert run["epochs"] == 1 and run["train_seconds"] > 0
        pred = read_predictions(out / run["predictions"])
        assert set(pred.split) == {"val", "test"} and len(pred.scans("test")) == results["test"]["n"]
        assert (out / "arms" / name / "result.json").is_file()
        # the run trained on its nested subset of `size` training studies
        tc = study_preset("tiny").train_config(
            cfg.arm(run["arm"]), seed=run["seed"], size=run["size"], store=results["store"],
            out_dir=str(tmp_path / "x"), views=run["views"])
        assert len(make_dataset(tc, "train").records) == run["size"] == run["n_train"]
    for arm in results["arms"].values():
        assert set(arm["seeds"]) == {str(s) for s in cfg.seeds}
        assert arm["auc_sd"] is not None and arm["auc_min"] <= arm["auc"] <= arm["auc_max"]
    assert set(results["curve"]["arms"]) == set(results["arms"])
    for f in ("report.md", "report.html", "config.yaml", "figures/roc.png",
              "figures/auc_vs_views.png", "figures/example.png", "figures/curve.png"):
        assert (out / f).is_file(), f
    assert (out / "data" / "tiny.zarr").is_dir()
    check_report_matches_results(out)


def test_study_difficulty_reaches_the_synthetic_store(tmp_path) -> None:
    """``difficulty`` of the study config is the lesion difficulty the store is built with (the
    store records it) and names the store directory."""
    from sinotriage.experiments.runner import prepare_store
    from sinotriage.io.store import open_store

    cfg = study_preset("tiny").model_copy(update={
        "difficulty": "easy", "n_studies": 12, "train_sizes": (),
        "arms": (ArmConfig(name="sinogram_x4", domain="sinogram", view_factor=4),),
        "reference_arm": "sinogram_x4"})
    path = prepare_store(cfg, tmp_path, workers=0)
    assert path.name == "tiny_easy.zarr"
    text = json.dumps(open_store(path).attrs)
    assert '"difficulty": "easy"' in text and '"difficulty": "standard"' not in text
