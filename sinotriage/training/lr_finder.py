"""Learning-rate range test (Smith 2017): loss against an exponentially growing learning rate."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sinotriage.errors import InputError
from sinotriage.io.files import atomic_savefig
from sinotriage.training.config import TrainConfig

__all__ = ["LRFinderResult", "lr_find", "plot_lr_find"]


@dataclass
class LRFinderResult:
    """Learning rates tried, smoothed losses and the suggested learning rate.

    ``suggestion`` is the learning rate of the steepest descent of the smoothed loss, a common
    heuristic (Smith 2017; fastai).
    """

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float


def lr_find(config: TrainConfig, start_lr: float = 1e-6, end_lr: float = 1.0,
            num_steps: int = 100, smoothing: float = 0.05,
            diverge: float = 4.0) -> LRFinderResult:
    """Train on training batches with the LR going from ``start_lr`` to ``end_lr`` geometrically.

    The model and optimizer are those of ``config``; the run stops early when the smoothed loss
    exceeds ``diverge`` times its minimum. Nothing is written; the model is thrown away.

    Raises
    ------
    ValueError
        ``start_lr >= end_lr``, non-positive rates or fewer than 2 steps.
    """
    from torch.utils.data import DataLoader

    from sinotriage.training.batch import (
        autocast,
        build_model,
        compute_loss,
        forward_batch,
        make_dataset,
        prepare_batch,
    )
    from sinotriage.training.engine import _make_optimizer

    if not 0 < start_lr < end_lr:
        raise InputError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 2:
        raise InputError(f"num_steps must be >= 2, got {num_steps}")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    ds = make_dataset(config, "train")
    model = build_model(config).to(device).train()
    opt = _make_optimizer(config, model)
    g = torch.Generator().manual_seed(config.seed)
    lrs, losses = [], []
    factor = (end_lr / start_lr) ** (1.0 / (num_steps - 1))
    avg, best, step = 0.0, math.inf, 0
    while step < num_steps:
        loader = DataLoader(ds, batch_size=config.batch_size, shuffle=True, generator=g,
                            num_workers=config.num_workers)
        for batch in loader:
            lr = start_lr * factor ** step
            for group in opt.param_groups:
                group["lr"] = lr * group.get("peak_lr", config.lr) / config.lr
            x = prepare_batch(batch["image"].to(device), config, config.image_size)
            with autocast(config, device):
                logits, y, aux = forward_batch(model, x, batch, config)
            loss = compute_loss(config, logits, y, aux)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            avg = smoothing * float(loss.detach()) + (1 - smoothing) * avg
            smooth = avg / (1 - (1 - smoothing) ** (step + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            step += 1
            if step >= num_steps or smooth > diverge * best or not math.isfinite(smooth):
                step = num_steps
                break
    lr_arr, loss_arr = np.asarray(lrs), np.asarray(losses)
    if len(lr_arr) >= 3:
        slope = np.gradient(loss_arr, np.log(lr_arr))
        suggestion = float(lr_arr[int(np.argmin(slope))])
    else:
        suggestion = float(lr_arr[int(np.argmin(loss_arr))])
    return LRFinderResult(lr_arr, loss_arr, suggestion)


def plot_lr_find(result: LRFinderResult, path: str | os.PathLike[str]) -> Path:
    """Plot loss against learning rate (log axis) to a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = Path(path)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.plot(result.lrs, result.losses, lw=1.5)
    ax.axvline(result.suggestion, ls="--", c="C1", label=f"suggested {result.suggestion:.2e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss",
           title="LR range test")
    ax.legend()
    fig.tight_layout()
    try:
        return atomic_savefig(fig, p)
    finally:
        plt.close(fig)
