"""The learned arms in the study: grid membership, and the tiny preset end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sinotriage.experiments.learned import WIDE_START, train_fields
from sinotriage.experiments.presets import STUDY_PRESETS, study_preset


def test_every_preset_has_both_learned_arms_at_its_view_counts() -> None:
    for name in STUDY_PRESETS:
        cfg = study_preset(name)
        domains = {a.domain for a in cfg.arms}
        assert {"learned_window", "learned"} <= domains, name
        study_factors = {a.view_factor for a in cfg.arms if a.domain != "learned_window"}
        learned = {a.view_factor for a in cfg.arms if a.domain == "learned"}
        assert learned == study_factors, name
        starts = [a.model_kwargs.get("window") for a in cfg.arms if a.domain == "learned_window"]
        assert starts == [None, [list(w) for w in WIDE_START]], name


def test_train_fields_of_the_learned_domains() -> None:
    win = train_fields("learned_window", ("brain", "subdural", "bone"), "densenet_slim", {})
    assert win == {"domain": "recon", "model": "densenet_slim",
                   "model_options": {"window": ["brain", "subdural", "bone"]}}
    fbp = train_fields("learned", ("brain",), "densenet_slim", {"window": [[0, 2000]]})
    assert fbp["domain"] == "sinogram" and fbp["model"] == "learned_fbp"
    assert fbp["model_options"] == {"image_model": "densenet_slim", "window": [[0, 2000]]}
    with pytest.raises(ValueError, match="domain must be one of"):
        train_fields("recon", (), "densenet_slim", {})


def test_window_options_reach_the_window_layer() -> None:
    """``model_kwargs["window_options"]`` sets the window layer's own arguments (its learning
    rates here) on both learned domains, with the arm's start as ``init``."""
    from sinotriage import models
    from sinotriage.models.learned_window import LearnableWindow

    kwargs = {"window": [[0, 2000]], "window_options": {"log_width_lr": 0.1, "level_lr": 10.0}}
    win = train_fields("learned_window", ("brain",), "densenet_slim", kwargs)
    spec = {"init": [[0, 2000]], "log_width_lr": 0.1, "level_lr": 10.0}
    assert win["model_options"] == {"window": spec}
    assert train_fields("learned", ("brain",), "densenet_slim", kwargs)["model_options"] == {
        "image_model": "densenet_slim", "window": spec}
    net = models.create("densenet_slim", in_channels=1, num_classes=1, **win["model_options"])
    layer = next(m for m in net.modules() if isinstance(m, LearnableWindow))
    assert layer.windows() == [(0.0, pytest.approx(2000.0))]
    assert (layer.level_lr, layer.log_width_lr) == (10.0, 0.1)


@pytest.mark.slow
def test_tiny_preset_runs_the_learned_arms_end_to_end(tmp_path) -> None:
    """The tiny preset's learned arms (and the reference arm) through synthesis, training,
    results.json and both reports: learned windows in HU and the learned filter are recorded,
    shown in the report, and drawn in their figures and in the AUC-vs-views figure."""
    from sinotriage.experiments.runner import run_study

    full = study_preset("tiny")
    arms = tuple(a for a in full.arms if a.domain in ("learned_window", "learned")
                 or a.name == full.reference)
    cfg = full.model_copy(update={"arms": arms})
    out = tmp_path / "tiny"
    results = run_study(cfg, out, workers=0)
    assert results["failed"] == {}
    saved = json.loads((out / "results.json").read_text())
    names = [a.name for a in arms if a.domain != "windowed"]
    assert names == ["recon_learned_window_x1", "recon_learned_window_wide_x1", "learned_x1",
                     "learned_x4"]
    for name in names:
        arm = saved["arms"][name]
        assert 0.0 <= arm["auc"] <= 1.0
        windows = arm["learned"]["windows"]
        assert len(windows) == 3 and all(w["width"] > 0 for w in windows)
    wide = saved["arms"]["recon_learned_window_wide_x1"]["learned"]["windows"]
    assert [(w["init_level"], w["init_width"]) for w in wide] == [(0.0, 2000.0)] * 3
    # one epoch of at most 64 slices: the levels moved, by at most a few Adam steps of 3 HU
    assert all(0 < abs(w["level"]) <= 4 * 3.0 + 1e-3 for w in wide)
    filt = saved["arms"]["learned_x4"]["learned"]["filter"]
    assert np.all(np.isfinite(filt["response"]))
    assert "filter" not in saved["arms"]["recon_learned_window_x1"]["learned"]
    assert results["arms"]["learned_x4"]["views"] == 61
    report = (out / "report.md").read_text()
    assert "## What the learned arms learned" in report and "recon_learned_window_wide_x1" in report
    for f in ("learned_windows", "learned_filter", "auc_vs_views"):
        assert (out / "figures" / f"{f}.png").stat().st_size > 5000, f
    html = (out / "report.html").read_text()
    assert "What the learned arms learned" in html and html.count("data:image/png") >= 5
