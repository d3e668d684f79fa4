"""Training engine: config validation, checkpoints, resume, learning on a small synthetic store."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sinotriage.training import TrainConfig, evaluate, load_config, predict, train
from sinotriage.training.checkpoints import load_checkpoint, save_checkpoint


def _write_store(path: Path, n_studies: int, seed: int = 0) -> Path:
    """HU-only store of easy 64 x 64 phantoms; every third study is validation."""
    from sinotriage.io.store import create_store
    from sinotriage.phantoms import head_ct

    store = create_store(path)
    for i in range(n_studies):
        ct = head_ct(seed + i, n_slices=8, image_size=64, pixel_size=250 / 64,
                     difficulty="easy", prevalence=0.5)
        split = "val" if i % 3 == 0 else "train"
        store.write_study(f"s{i:03d}", {"hu": ct.hu, "labels": ct.labels, "mask": ct.mask},
                          {"split": split})
    store.write_manifest()
    return path


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_store(tmp_path_factory.mktemp("train_store") / "s.zarr", 9)


def _tiny_config(store: Path, out: Path, **kw) -> TrainConfig:
    base = dict(store=str(store), out_dir=str(out), domain="hu", image_size=32,
                model="densenet_slim", epochs=3, batch_size=8, lr=1e-3, progress=False,
                max_train_slices=24, seed=3)
    base.update(kw)
    return TrainConfig(**base)


# -- config ---------------------------------------------------------------------------------------
def test_unknown_key_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: x.zarr\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError) as info:
        load_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg and "learning_rate" in msg and "c.yaml" in msg


def test_wrong_type_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('store = "x.zarr"\nepochs = "many"\n')
    with pytest.raises(ValueError) as info:
        load_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg and "'epochs'" in msg


def test_nested_key_and_choice_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: x.zarr\naugment:\n  flipp: 0.5\n")
    with pytest.raises(ValueError, match=r"augment\.flipp"):
        load_config(cfg)
    cfg.write_text("store: x.zarr\noptimizer: rmsprop\n")
    with pytest.raises(ValueError, match="optimizer"):
        load_config(cfg)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_shipped_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        cfg = load_config(f)
        assert cfg.store


def test_shipped_study_configs_validate() -> None:
    """configs/studies/*.yaml are study configs (``sinotriage compare --config``) over the quick
    preset: every arm's full training config validates when they load."""
    from sinotriage.experiments import load_study_config, study_preset

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "studies").glob("*.yaml"))
    assert files
    for f in files:
        cfg = load_study_config(f, base=study_preset("quick"))
        assert cfg.arms and cfg.reference_arm in {a.name for a in cfg.arms}


# -- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_roundtrip_and_refuses_pickle(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ck", model, {"config": {"a": 1}}, optimizer=opt)
    ck = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(ck["model"][k], v)
    assert ck["meta"]["config"] == {"a": 1}
    # a pickle under the checkpoint's name is refused, and its payload never runs
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path.write_bytes(pickle.dumps({"model.weight": Evil()}))
    with pytest.raises(ValueError, match="not a safetensors"):
        load_checkpoint(path)
    assert not marker.exists()


# -- training -------------------------------------------------------------------------------------
def test_resume_gives_identical_weights(small_store: Path, tmp_path: Path) -> None:
    straight = train(_tiny_config(small_store, tmp_path / "a"))
    _tiny_config(small_store, tmp_path / "b")
    part = train(_tiny_config(small_store, tmp_path / "b"), stop_after_epoch=1)
    assert len(part.history) == 1
    resumed = train(_tiny_config(small_store, tmp_path / "b"), resume=True)
    assert len(resumed.history) == 3
    a = load_file(str(straight.last_checkpoint))
    b = load_file(str(resumed.last_checkpoint))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the per-run metrics CSV has one row per epoch
    assert len((tmp_path / "b" / "metrics.csv").read_text().strip().splitlines()) == 4


def test_resume_refuses_changed_config(small_store: Path, tmp_path: Path) -> None:
    train(_tiny_config(small_store, tmp_path / "c", epochs=1))
    with pytest.raises(ValueError, match="lr"):
        train(_tiny_config(small_store, tmp_path / "c", epochs=2, lr=0.5), resume=True)


def _write_blob_store(path: Path, n_studies: int, seed: int = 0) -> Path:
    """An easy store: normal 64 x 64 phantoms; in every second study ~60 % of the slices get a
    hyperdense (75 HU) disc of radius 4 px inside the brain, labelled intraparenchymal."""
    from sinotriage.io.store import create_store
    from sinotriage.phantoms import head_ct

    store = create_store(path)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    for i in range(n_studies):
        ct = head_ct(seed + i, n_slices=8, image_size=64, pixel_size=250 / 64,
                     difficulty="easy", subtypes=())
        hu, labels = ct.hu.copy(), np.zeros((8, 6), np.uint8)
        if i % 2:
            for d in range(8):
                brain = (ct.tissues[d] > 0) & (hu[d] > 0) & (hu[d] < 60)
                cand = np.argwhere(brain)
                if rng.random() < 0.6 and len(cand):
                    cy, cx = cand[rng.integers(len(cand))]
                    hu[d][((yy - cy) ** 2 + (xx - cx) ** 2 <= 16) & brain] = 75.0
                    labels[d, [0, 2]] = 1
        store.write_study(f"b{i:03d}", {"hu": hu, "labels": labels},
                          {"split": "val" if i % 3 == 0 else "train"})
    store.write_manifest()
    return path


def test_tiny_run_learns_and_evaluates(tmp_path: Path) -> None:
    from sinotriage.metrics import roc_auc

    store = _write_blob_store(tmp_path / "blob.zarr", 48)
    cfg = TrainConfig(store=str(store), out_dir=str(tmp_path / "run"), domain="windowed",
                      windows=("brain",), model="densenet_slim", epochs=6, batch_size=16,
                      lr=1e-3, schedule="cosine", progress=False, seed=0)
    result = train(cfg)
    assert result.best_checkpoint.is_file()
    assert result.val_metrics["val_auc"] > 0.7  # chance is 0.5 (16 validation scans)
    pred = predict(result.best_checkpoint, store, "val")
    y, s = pred.scans().column("any")
    assert roc_auc(y, s) == pytest.approx(result.val_metrics["val_auc"], abs=1e-9)
    ys, ss = pred.slices().column("any")
    assert roc_auc(ys, ss) > 0.65  # 128 validation slices
    metrics = evaluate(result.best_checkpoint, store, "val", out_dir=tmp_path / "eval")
    for name in ("predictions_val.csv", "metrics_val.json", "roc_val.png"):
        assert (tmp_path / "eval" / name).is_file()
    assert metrics["auc"] == pytest.approx(result.val_metrics["val_auc"], abs=1e-9)
    lo, hi = metrics["auc_ci"]
    assert lo <= metrics["auc"] <= hi


def test_docs_example_lists_every_field() -> None:
    import yaml

    from sinotriage.training import AugmentConfig

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    start = text.index("```yaml\nstore: data/quick.zarr\nout_dir: runs/example") + len("```yaml\n")
    data = yaml.safe_load(text[start:text.index("```", start)])
    TrainConfig.model_validate(data)
    assert set(data) == set(TrainConfig.model_fields)
    assert set(data["augment"]) == set(AugmentConfig.model_fields)
