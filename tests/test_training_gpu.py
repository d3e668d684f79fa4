"""CUDA paths of the engine: fp16 with a grad scaler, bf16, and predictions on the GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sinotriage.training import TrainConfig, predict, train


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_cuda_training_precisions(tiny_store, tmp_path: Path, precision: str) -> None:
    cfg = TrainConfig(store=str(tiny_store.path), out_dir=str(tmp_path), domain="windowed",
                      model="densenet_slim", epochs=2, batch_size=8, progress=False,
                      precision=precision, device="cuda", accumulation=2)
    result = train(cfg)
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    pred = predict(result.best_checkpoint, tiny_store.path, "test", device="cuda")
    assert np.all((pred.scores >= 0) & (pred.scores <= 1))
