"""The training loop: per-slice 2D classification on a store, selected on validation scan AUC.

``train(config)`` builds the slice datasets of the ``train`` and ``val`` splits
(:class:`sinotriage.data.SliceDataset`), the model (:func:`sinotriage.models.create`) and the
optimizer, and runs ``config.epochs`` epochs. After each epoch the validation slices are scored,
aggregated to one score per scan (``config.aggregation``, max by default) and the scan-level AUC
of the "any" label (:func:`sinotriage.metrics.roc_auc`) selects the best checkpoint and drives
early stopping. Randomness is derived from ``(seed, epoch)``, and the LR schedule is a function
of the optimizer step, so ``resume=True`` after an interruption ends with the same weights as an
uninterrupted run.

The loop is three pieces: a :class:`TrainState` (model, optimizer, counters, history),
:func:`train_step` (one batch: forward, loss, backward, and the optimizer update at the end of an
accumulation group) and :func:`train_epoch` (one pass over the training loader). The DataLoaders
are built once per run (workers persist, so a per-worker dataset cache survives the epochs);
a :class:`EpochSampler` gives each epoch its own order.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinotriage.io.files import atomic_write_text
from sinotriage.progress import ProgressCallback, progress_bar
from sinotriage.training import distributed
from sinotriage.training.augment import ImageAugment, SinogramAugment, cutmix
from sinotriage.training.batch import (
    HU_SCALE,
    autocast,
    build_model,
    compute_loss,
    forward_batch,
    label_names,
    make_dataset,
    prepare_batch,
    scan_auc,
    score_dataset,
    sinogram_geometry,
    train_study_subset,
)
from sinotriage.training.checkpoints import load_checkpoint, optimizer_state, save_checkpoint
from sinotriage.training.config import TrainConfig
from sinotriage.training.schedules import lr_at

__all__ = ["EpochSampler", "HU_SCALE", "LossInputs", "LossTerm", "TrainResult", "TrainState",
           "build_model", "label_names", "make_dataset", "prepare_batch", "scan_auc",
           "score_dataset", "train", "train_epoch", "train_step", "train_study_subset"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    best_checkpoint : Path
        ``out_dir/best.safetensors`` (with ``best.json``): the epoch of the best validation AUC.
    last_checkpoint : Path
        ``out_dir/last.safetensors`` (with ``last.json``, resumable).
    history : list of dict
        One row per epoch: epoch, lr, train_loss, val_loss, val_auc, seconds.
    best_epoch : int
        1-based epoch of the best checkpoint.
    val_metrics : dict
        Validation metrics of the best epoch (``val_auc``, ``val_loss``).
    metrics_csv : Path
        ``out_dir/metrics.csv``.
    stopped_early : bool
        Whether early stopping ended the run.
    model : torch.nn.Module or None
        The model in memory after the last epoch (not the best one; load that from
        ``best_checkpoint``).
    """

    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, float]]
    best_epoch: int
    val_metrics: dict[str, float]
    metrics_csv: Path
    stopped_early: bool = False
    model: torch.nn.Module | None = field(default=None, repr=False)


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the model's own groups first, then everything else.

    A submodule with a ``param_groups()`` method (e.g.
    :class:`sinotriage.models.learned_window.LearnableWindow`, whose levels are in HU) returns
    dicts ``{"params": [...], "lr": peak_lr, ...}`` with learning rates of their own; the rest
    of the parameters train at ``lr``. Each group records ``peak_lr``; the schedule scales every
    group by the same factor (``lr_at(step) / config.lr``).
    """
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module in model.modules():
        own = getattr(module, "param_groups", None)
        if callable(own):
            for g in own():
                params = [p for p in g["params"] if id(p) not in seen]
                seen.update(id(p) for p in params)
                if params:
                    groups.append({"weight_decay": 0.0, **g, "params": params,
                                   "peak_lr": float(g["lr"])})
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [{"params": rest, "lr": lr, "weight_decay": weight_decay, "peak_lr": lr}, *groups]


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, config.lr, config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def _head_prefix(model: torch.nn.Module) -> str:
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            last = name
    if last is None:
        raise ValueError("freeze_backbone_epochs: the model has no linear head to keep trainable")
    return last


def _epoch_order(config: TrainConfig, dataset: Any, epoch: int,
                 info: distributed.DistInfo) -> list[int]:
    g = torch.Generator().manual_seed(config.seed * 100003 + epoch)
    n = len(dataset)
    m = min(config.max_train_slices or n, n)
    if config.balanced_sampling and config.level == "scan":
        lab = np.clip(dataset.labels(), 0, 1)
    if config.balanced_sampling:
        lab = lab if config.level == "scan" else np.array([dataset.slice_labels(dataset.records[k]["study_id"])[s, 0]
                        for k, s in dataset.index], dtype=np.int64)
        counts = np.bincount(lab, minlength=2).astype(float)
        w = torch.from_numpy(np.where(counts[lab] > 0, 1.0 / np.maximum(counts[lab], 1), 0.0))
        order = torch.multinomial(w, m, replacement=True, generator=g).tolist()
    else:
        order = torch.randperm(n, generator=g)[:m].tolist()
    return distributed.shard(order, info)


class EpochSampler(torch.utils.data.Sampler):
    """The training order of the current epoch; the DataLoader holding it is built once per run.

    :meth:`set_epoch` draws the order of an epoch (:func:`_epoch_order`: seeded by
    ``(config.seed, epoch)``, balanced or shuffled, capped at ``max_train_slices``, sharded for
    DDP). Samplers run in the main process, so a loader with persistent workers picks up the new
    order while its workers (and their dataset caches) live on.
    """

    def __init__(self, config: TrainConfig, dataset: Any, info: distributed.DistInfo) -> None:
        self.config, self.dataset, self.info = config, dataset, info
        self.order = _epoch_order(config, dataset, 0, info)

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of 0-based ``epoch``."""
        self.order = _epoch_order(self.config, self.dataset, epoch, self.info)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def _loader(config: TrainConfig, dataset: Any, sampler: Any = None) -> Any:
    from torch.utils.data import DataLoader

    workers = config.num_workers
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, shuffle=False,
                      num_workers=workers, persistent_workers=workers > 0)


def _size_for_epoch(config: TrainConfig, epoch: int) -> int | None:
    if epoch < len(config.progressive_sizes):
        return config.progressive_sizes[epoch]
    return config.image_size


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    cols = ["epoch", "lr", "train_loss", "val_loss", "val_auc", "seconds"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


def _tensorboard(config: TrainConfig, out: Path):
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        import warnings

        warnings.warn("tensorboard: not installed; no TensorBoard logs written", stacklevel=3)
        return None
    return SummaryWriter(str(out / "tb"))


@dataclass
class LossInputs:
    """What an extra loss term sees of one training batch (see :data:`LossTerm`).

    Attributes
    ----------
    model : torch.nn.Module
        The unwrapped model (not its DDP wrapper).
    x : torch.Tensor
        The prepared model input ``(B, C, ...)``.
    batch : dict
        The loader's batch (``label``, ``study_id``, ...).
    logits, target : torch.Tensor
        Model logits and targets of equal shapes (``(B,)`` or ``(B, 6)``).
    aux : torch.Tensor or None
        The model's auxiliary output, when it has one.
    """

    model: torch.nn.Module
    x: torch.Tensor
    batch: dict[str, Any]
    logits: torch.Tensor
    target: torch.Tensor
    aux: Any = None


#: ``term(inputs) -> scalar tensor``, added to the configured loss of every training batch
#: (e.g. an auxiliary reconstruction or consistency loss, already weighted).
LossTerm = Callable[[LossInputs], torch.Tensor]


@dataclass
class TrainState:
    """Everything that changes while training: model, optimizer and counters.

    Attributes
    ----------
    config : TrainConfig
    model : torch.nn.Module
        The model being trained.
    net : torch.nn.Module
        What the forward pass calls: ``model`` or its DistributedDataParallel wrapper.
    optimizer : torch.optim.Optimizer
    device : torch.device
    total_steps, warmup : int
        Optimizer steps of the whole run and of the warm-up (the LR schedule's inputs).
    scaler : torch.amp.GradScaler or None
        fp16 loss scaling.
    step : int
        Optimizer steps taken.
    epoch : int
        Epochs finished.
    best_auc : float
        Best validation scan AUC so far (``-inf`` before the first).
    best_epoch, bad_epochs : int
        1-based epoch of the best AUC; epochs since it (early stopping).
    history : list of dict
        One row per finished epoch.
    loss_terms : sequence of LossTerm
        Extra loss terms added to every training batch.
    """

    config: TrainConfig
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    total_steps: int
    warmup: int
    scaler: Any = None
    step: int = 0
    epoch: int = 0
    best_auc: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    loss_terms: Sequence[LossTerm] = ()
    image_aug: Any = None
    sino_aug: Any = None
    pairing: Any = None  # sinotriage.training.paired.PairedTraining (counterfactual pairs)

    def counters(self) -> dict[str, Any]:
        """The resumable counters (stored in ``last.json``)."""
        return {"epoch": self.epoch, "step": self.step, "best_auc": self.best_auc,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def restore(self, counters: dict[str, Any], history: list[dict[str, float]]) -> None:
        """Set the counters and history of an interrupted run (see :meth:`counters`)."""
        self.epoch, self.step = int(counters["epoch"]), int(counters["step"])
        self.best_auc, self.best_epoch = float(counters["best_auc"]), int(counters["best_epoch"])
        self.bad_epochs = int(counters["bad_epochs"])
        self.history = list(history)


def _optimizer_step(state: TrainState) -> None:
    config, optimizer, scaler = state.config, state.optimizer, state.scaler
    lr = lr_at(config.schedule, state.step, state.total_steps, config.lr, state.warmup)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("peak_lr", config.lr) / config.lr
    if scaler is not None:
        scaler.unscale_(optimizer)
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.step += 1


def train_step(state: TrainState, batch: dict[str, Any], *, size: int | None,
               generator: torch.Generator, update: bool = True) -> tuple[float, int]:
    """One training batch: augment, prepare, forward, loss, backward (and optimizer update).

    Parameters
    ----------
    state : TrainState
    batch : dict
        A loader batch (``image``, ``label``, ...).
    size : int or None
        Input size of this epoch (progressive resizing), or None for the stored size.
    generator : torch.Generator
        The epoch's augmentation randomness.
    update : bool
        Take the optimizer step after the backward pass (the last batch of an accumulation
        group); otherwise the gradients accumulate.

    Returns
    -------
    loss, n : float, int
        The batch's mean loss (extra terms included) and its number of samples.
    """
    config, device, pairing = state.config, state.device, state.pairing
    x = batch["image"].to(device)
    y = batch["label"].to(device)
    band = batch.get("band")
    if state.sino_aug is not None and pairing is not None:  # one shift / mirror per pair
        x, band = pairing.augment(state.sino_aug, {**batch, "image": x.cpu()}, generator)
        x = x.to(device)
    elif state.sino_aug is not None:
        x = state.sino_aug(x.cpu(), generator).to(device)
    x = prepare_batch(x, config, size)
    if state.image_aug is not None:
        x = state.image_aug(x.cpu(), generator).to(device)
    if config.augment.cutmix_alpha > 0 and float(torch.rand(1, generator=generator)) < \
            config.augment.cutmix_prob:
        x, y = cutmix(x, y, config.augment.cutmix_alpha, generator)
        batch = {**batch, "label": y}
    extra = None
    with autocast(config, device):
        if pairing is not None:
            logits, extra = pairing.forward(state.net, x, band)
            logits = logits.float().reshape(-1) if config.target == "binary" else logits.float()
            y, aux = batch["label"].to(device), None
        else:
            logits, y, aux = forward_batch(state.net, x, batch, config)
    loss = compute_loss(config, logits, y, aux)
    if extra is not None:  # the band loss of paired training
        loss = loss + extra
    if state.loss_terms:
        inputs = LossInputs(state.model, x, batch, logits, y, aux)
        for term in state.loss_terms:
            loss = loss + term(inputs)
    scaled = loss / config.accumulation
    (state.scaler.scale(scaled) if state.scaler is not None else scaled).backward()
    if update:
        _optimizer_step(state)
    return float(loss.detach()), len(y)


def train_epoch(state: TrainState, loader: Iterable[dict[str, Any]], *,
                progress: ProgressCallback | None = None) -> float:
    """One pass over ``loader`` at epoch ``state.epoch``; returns the mean training loss.

    Seeds dropout and augmentation from ``(config.seed, epoch)`` (the loader's sampler draws the
    order, see :class:`EpochSampler`), freezes the backbone during the first
    ``freeze_backbone_epochs``, and steps the optimizer every ``accumulation`` batches and after
    the last one. ``progress(done, total, description)`` is called after every batch.
    """
    config, epoch = state.config, state.epoch
    if config.freeze_backbone_epochs:
        from sinotriage.models import freeze_backbone, unfreeze

        if epoch < config.freeze_backbone_epochs:
            freeze_backbone(state.model, [_head_prefix(state.model)])
        else:
            unfreeze(state.model)
    torch.manual_seed(config.seed * 100003 + epoch)  # dropout etc.
    g = torch.Generator().manual_seed(config.seed * 7919 + epoch)
    size = _size_for_epoch(config, epoch)
    n = len(loader)  # type: ignore[arg-type]
    state.net.train()
    state.optimizer.zero_grad(set_to_none=True)
    total, count = 0.0, 0
    for b, batch in enumerate(loader):
        update = (b + 1) % config.accumulation == 0 or b + 1 == n
        loss, k = train_step(state, batch, size=size, generator=g, update=update)
        total += loss * k
        count += k
        if progress is not None:
            progress(b + 1, n, f"epoch {epoch + 1}/{config.epochs} loss {total / max(count, 1):.4f}")
    return total / max(count, 1)


def train(config: TrainConfig, *, resume: bool = False, stop_after_epoch: int | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None,
          progress: ProgressCallback | None = None,
          loss_terms: Sequence[LossTerm] = ()) -> TrainResult:
    """Train a model as described by ``config``.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``out_dir/last.json`` (written after every epoch). The config must equal
        the one of the interrupted run (``epochs`` may be larger).
    stop_after_epoch : int, optional
        End after this (1-based) epoch as if interrupted (time-boxed jobs; the resume test).
    on_epoch : callable, optional
        Called with each epoch's history row (e.g. a progress display).
    progress : ProgressCallback, optional
        Called as ``progress(done, total, description)`` after every training batch. Without
        one, ``config.progress`` draws a bar on a terminal (:func:`sinotriage.progress.progress_bar`).
    loss_terms : sequence of LossTerm
        Extra loss terms added to the configured loss of every training batch.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad options (see :class:`TrainConfig`), a training split without slices, or ``resume``
        with a different config.
    FileNotFoundError
        ``resume`` without a ``last`` checkpoint.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    info = distributed.setup(config.device)
    try:
        return _run(config, info, resume, stop_after_epoch, on_epoch, progress, tuple(loss_terms))
    finally:
        distributed.teardown(info)


def _new_state(config: TrainConfig, info: distributed.DistInfo, train_ds: Any,
               order: Sequence[int], loss_terms: Sequence[LossTerm]) -> TrainState:
    device = torch.device(config.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    model = build_model(config).to(device)
    net: torch.nn.Module = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    pairing = None
    if config.paired or config.aux_weight_band > 0:  # counterfactual pairs / band loss
        from sinotriage.training.paired import PairedTraining

        pairing = PairedTraining(config, train_ds)
    batches = (pairing.n_batches(order) if pairing is not None
               else max(math.ceil(len(order) / config.batch_size), 1))
    steps_per_epoch = math.ceil(batches / config.accumulation)
    return TrainState(
        config=config, model=model, net=net, optimizer=_make_optimizer(config, model),
        device=device, total_steps=steps_per_epoch * config.epochs,
        warmup=int(round(config.warmup_epochs * steps_per_epoch)),
        scaler=torch.amp.GradScaler("cuda") if config.precision == "fp16" else None,
        loss_terms=tuple(loss_terms),
        image_aug=ImageAugment(config.augment) if config.augment.image_ops else None,
        sino_aug=(SinogramAugment(config.augment, sinogram_geometry(config, train_ds))
                  if config.augment.sinogram_ops else None),
        pairing=pairing)


def _resume(state: TrainState, path: Path, config_json: dict[str, Any]) -> None:
    ckpt = load_checkpoint(path)
    saved = dict(ckpt["meta"]["config"])
    mine = dict(config_json)
    saved.pop("epochs", None)
    mine.pop("epochs", None)
    if saved != mine:
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        raise ValueError(f"resume: the config differs from the interrupted run's in {diff}")
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(optimizer_state(ckpt))
    state.restore(ckpt["meta"]["state"], ckpt["meta"]["history"])


def _end_epoch(state: TrainState, row: dict[str, float], out: Path, config_json: dict[str, Any],
               info: distributed.DistInfo, writer: Any) -> None:
    """Record an epoch: best/early-stopping counters, checkpoints, metrics.csv, TensorBoard."""
    config, val_auc = state.config, row["val_auc"]
    state.history.append(row)
    state.epoch += 1
    improved = (not math.isnan(val_auc) and val_auc > state.best_auc) or state.best_epoch == 0
    if improved:
        state.best_auc = val_auc if not math.isnan(val_auc) else -math.inf
        state.best_epoch, state.bad_epochs = state.epoch, 0
    else:
        state.bad_epochs += 1
    if not info.is_main:
        return
    meta = {"config": config_json, "history": state.history,
            "label_names": list(label_names(config)),
            "in_channels": config.in_channels, "num_classes": config.num_classes}
    if improved:
        save_checkpoint(out / "best.safetensors", state.model, {**meta, "metrics": {
            "epoch": state.epoch, "val_auc": val_auc, "val_loss": row["val_loss"]}})
    save_checkpoint(out / "last.safetensors", state.model,
                    {**meta, "state": state.counters(), "metrics": {"epoch": state.epoch, **row}},
                    optimizer=state.optimizer)
    _write_history(out / "metrics.csv", state.history)
    if writer is not None:
        for key in ("train_loss", "val_loss", "val_auc", "lr"):
            writer.add_scalar(key, row[key], state.epoch)


def _run(config: TrainConfig, info: distributed.DistInfo, resume: bool,
         stop_after_epoch: int | None, on_epoch: Callable[[dict[str, float]], None] | None,
         progress: ProgressCallback | None, loss_terms: Sequence[LossTerm]) -> TrainResult:
    torch.manual_seed(config.seed)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.device(config.device).type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_ds = make_dataset(config, "train")
    val_ds = make_dataset(config, "val")
    if len(train_ds) == 0:
        raise ValueError(f"store {config.store}: the train split has no slices")
    sampler = EpochSampler(config, train_ds, info)
    state = _new_state(config, info, train_ds, sampler.order, loss_terms)
    config_json = config.model_dump(mode="json")
    if resume:
        _resume(state, out / "last.safetensors", config_json)
    train_loader = _loader(config, train_ds, sampler)
    val_loader = _loader(config, val_ds) if len(val_ds) else None
    writer = _tensorboard(config, out) if info.is_main else None
    stopped_early = False
    while state.epoch < config.epochs:
        t0 = time.perf_counter()
        sampler.set_epoch(state.epoch)
        if state.pairing is not None:  # pairs packed into the batches of this epoch's order
            train_loader = state.pairing.loader(sampler.order)
        bar = progress is None and config.progress and info.is_main
        with progress_bar(f"epoch {state.epoch + 1}/{config.epochs}", len(train_loader),
                          enabled=None if bar else False) as draw:
            train_loss = train_epoch(state, train_loader,
                                     progress=progress if progress is not None else draw)
        scored = (score_dataset(state.model, val_ds, config, state.device, loader=val_loader)
                  if val_loader is not None else None)
        row = {"epoch": state.epoch + 1, "lr": state.optimizer.param_groups[0]["lr"],
               "train_loss": train_loss,
               "val_loss": scored["loss"] if scored is not None else float("nan"),
               "val_auc": scan_auc(scored, config) if scored is not None else float("nan"),
               "seconds": time.perf_counter() - t0}
        _end_epoch(state, row, out, config_json, info, writer)
        if info.enabled:
            torch.distributed.barrier()
        if on_epoch is not None:
            on_epoch(row)
        if config.early_stopping is not None and state.bad_epochs >= config.early_stopping:
            stopped_early = True
            break
        if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
            break
    if writer is not None:
        writer.close()
    best_row = state.history[state.best_epoch - 1] if state.best_epoch else {}
    return TrainResult(best_checkpoint=out / "best.safetensors",
                       last_checkpoint=out / "last.safetensors", history=state.history,
                       best_epoch=state.best_epoch,
                       val_metrics={"val_auc": float(best_row.get("val_auc", float("nan"))),
                                    "val_loss": float(best_row.get("val_loss", float("nan")))},
                       metrics_csv=out / "metrics.csv", stopped_early=stopped_early,
                       model=state.model)
