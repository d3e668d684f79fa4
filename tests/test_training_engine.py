"""Engine options end to end on the session's tiny store: domains, losses, precision, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sinotriage.training import TrainConfig, predict, train


def _cfg(store, out: Path, **kw) -> TrainConfig:
    base = dict(store=str(store.path), out_dir=str(out), model="densenet_slim", epochs=1,
                batch_size=8, progress=False, max_train_slices=16)
    base.update(kw)
    return TrainConfig(**base)


def test_sinogram_domain_with_physical_augmentation(tiny_store, tmp_path: Path) -> None:
    cfg = _cfg(tiny_store, tmp_path, domain="sinogram", views=123, detector_factor=2,
               model="mini_unet_slim", accumulation=2, checkpointing=True, optimizer="sgd",
               schedule="step",
               augment={"view_shift": True, "detector_flip_prob": 0.5,
                        "sinogram_photons": 1e6})
    result = train(cfg)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    pred = predict(result.best_checkpoint, tiny_store.path, "test")
    n_slices = sum(int(r["n_slices"]) for r in tiny_store.manifest if r["split"] == "test")
    assert len(pred.slices()) == n_slices
    assert len(pred.scans()) == len(tiny_store.study_ids("test"))


def test_multilabel_rsna_bf16_with_image_augmentation(tiny_store, tmp_path: Path) -> None:
    cfg = _cfg(tiny_store, tmp_path, domain="recon", views=61, target="multilabel",
               loss="rsna", precision="bf16", image_size=48, progressive_sizes=(32,), epochs=2,
               schedule="onecycle", optimizer="adamw", balanced_sampling=True,
               freeze_backbone_epochs=1,
               augment={"flip_prob": 0.5, "rotate_deg": 15, "noise_std": 5.0,
                        "blur_sigma": 1.0, "zoom": 0.1, "cutmix_alpha": 1.0})
    result = train(cfg)
    assert len(result.history) == 2
    pred = predict(result.best_checkpoint, tiny_store.path, "val")
    assert pred.label_names[0] == "any" and pred.scores.shape[1] == 6
    assert np.all((pred.scores >= 0) & (pred.scores <= 1))


def test_cli_train_evaluate_lr_find(tiny_store, tmp_path: Path) -> None:
    from sinotriage.cli import app

    cfg = {"store": str(tiny_store.path), "out_dir": str(tmp_path / "run"), "domain": "windowed",
           "model": "densenet_slim", "epochs": 1, "batch_size": 8, "progress": False,
           "max_train_slices": 16, "image_size": 32}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(path)])
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "run" / "best.safetensors"
    res = runner.invoke(app, ["evaluate", str(ckpt), "--store", str(tiny_store.path),
                              "--split", "test", "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics_test.json").read_text())
    assert metrics["split"] == "test" and metrics["n_scans"] == len(tiny_store.study_ids("test"))
    assert (tmp_path / "ev" / "predictions_test.csv").is_file()
    res = runner.invoke(app, ["lr-find", "--config", str(path), "-o", str(tmp_path / "lr.png"),
                              "--steps", "6"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "lr.png").stat().st_size > 1000
    # a malformed config: exit code 2 and a one-line error naming the key
    path.write_text(yaml.safe_dump({**cfg, "epochz": 3}))
    res = runner.invoke(app, ["train", "--config", str(path)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())  # rich wraps long lines at the terminal width
    assert text.startswith("error: config file") and "unknown key 'epochz'" in text
    assert "Traceback" not in res.output


def test_fp16_refused_on_cpu(tiny_store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16"):
        _cfg(tiny_store, tmp_path, precision="fp16")
    with pytest.raises(ValueError, match="sinogram"):
        _cfg(tiny_store, tmp_path, domain="hu", augment={"view_shift": True})


@pytest.mark.slow
@pytest.mark.parametrize(("model", "depth"), [("densenet_slim", 16), ("cnn_lstm", 4),
                                             ("radnet", 4)])
def test_scan_level_stack_and_sequence(tiny_store, tmp_path: Path, model: str,
                                       depth: int) -> None:
    cfg = _cfg(tiny_store, tmp_path, domain="windowed", level="scan", depth=depth, image_size=32,
               model=model, batch_size=2, balanced_sampling=True)
    result = train(cfg)
    assert np.isfinite(result.history[0]["train_loss"])
    pred = predict(result.best_checkpoint, tiny_store.path, "test")
    assert len(pred.scans()) == len(tiny_store.study_ids("test"))
    if model != "densenet_slim":  # sequence models score slices
        assert len(pred.slices()) > len(pred.scans())


def test_loss_terms_see_each_batch_and_add_to_the_loss(tiny_store, tmp_path: Path) -> None:
    """An extra loss term is called once per training batch with the batch's inputs; a constant
    term has no gradient, so training is unchanged and the mean loss rises by exactly it."""
    import math

    import torch

    from sinotriage.training.engine import LossInputs

    cfg = _cfg(tiny_store, tmp_path / "plain", domain="recon", views=61)
    plain = train(cfg)
    seen: list[LossInputs] = []

    def term(inputs: LossInputs) -> torch.Tensor:
        seen.append(inputs)
        return torch.tensor(1.0)

    cfg2 = cfg.model_copy(update={"out_dir": str(tmp_path / "term")})
    extra = train(cfg2, loss_terms=[term])
    assert len(seen) == math.ceil(16 / 8)
    assert seen[0].x.shape[0] == 8 and seen[0].logits.shape == seen[0].target.shape
    assert extra.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"] + 1.0,
                                                           abs=1e-5)
    assert extra.history[0]["val_loss"] == pytest.approx(plain.history[0]["val_loss"], abs=1e-6)


def test_learned_upstream_layers_train_and_predict(tiny_store, tmp_path: Path) -> None:
    """A learnable window on HU reconstructions (its levels move in HU, not in HU / 1000) and
    the learned FBP on raw sinograms train, checkpoint and predict through the engine."""
    from sinotriage.training.predict import load_model

    cfg = _cfg(tiny_store, tmp_path / "win", domain="recon", views=61, lr=2e-3,
               model_options={"window": [[0, 2000], [0, 2000], [0, 2000]]})
    result = train(cfg)
    levels = [lv for lv, _ in result.model.window.windows()]
    assert all(0 < abs(lv) < 2 * 3.0 + 1e-3 for lv in levels)  # two Adam steps of 3 HU at most
    model, _ = load_model(result.best_checkpoint)
    assert model.window.windows() == result.model.window.windows()
    cfg = _cfg(tiny_store, tmp_path / "fbp", domain="sinogram", views=61, model="learned_fbp")
    result = train(cfg)
    assert np.isfinite(result.history[0]["train_loss"])
    assert result.model.fbp.geometry.n_views == 61
    pred = predict(result.best_checkpoint, tiny_store.path, "test")
    assert np.all(np.isfinite(pred.scores))
