"""The training loop: per-slice 2D classification on a store, selected on validation scan AUC.

``train(config)`` builds the slice datasets of the ``train`` and ``val`` splits
(:class:`sinotriage.data.SliceDataset`), the model (:func:`sinotriage.models.create`) and the
optimizer, and runs ``config.epochs`` epochs. After each epoch the validation slices are scored,
aggregated to one score per scan (``config.aggregation``, max by default) and the scan-level AUC
of the "any" label (:func:`sinotriage.metrics.roc_auc`) selects the best checkpoint and drives
early stopping. Randomness is derived from ``(seed, epoch)``, and the LR schedule is a function
of the optimizer step, so ``resume=True`` after an interruption ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sinotriage.training import distributed
from sinotriage.training.augment import ImageAugment, SinogramAugment, cutmix
from sinotriage.training.checkpoints import load_checkpoint, optimizer_state, save_checkpoint
from sinotriage.training.config import TrainConfig
from sinotriage.training.losses import bce_loss, radnet_aux_loss, rsna_weighted_loss
from sinotriage.training.schedules import lr_at
from sinotriage.vocabulary import LABEL_NAMES

__all__ = ["TrainResult", "train", "build_model", "make_dataset", "prepare_batch",
           "score_dataset", "label_names"]



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


#: Divisor of Hounsfield units at the model input (:func:`prepare_batch`).
HU_SCALE = 1000.0


def label_names(config: TrainConfig) -> tuple[str, ...]:
    """Label columns of the model outputs: ``("any",)`` or the six RSNA labels."""
    return ("any",) if config.target == "binary" else LABEL_NAMES


def make_dataset(config: TrainConfig, split: str, store: Any = None):
    """The :class:`~sinotriage.data.SliceDataset` (or ``ScanDataset`` at level "scan")."""
    from sinotriage.data import ScanDataset, SliceDataset

    store = store if store is not None else config.store
    ids = None
    if split == "train" and config.train_studies is not None:
        ids = train_study_subset(store, config.train_studies)
    if config.level == "scan":
        return ScanDataset(store, split, domain=config.domain, views=config.views,
                           photons=config.photons, windows=config.windows, target="binary",
                           depth=config.depth, cache=config.cache, study_ids=ids)
    return SliceDataset(store, split, domain=config.domain, views=config.views,
                        photons=config.photons, windows=config.windows, target=config.target,
                        context=config.context, cache=config.cache, study_ids=ids)


def train_study_subset(store: Any, n: int) -> list[str]:
    """The ``n`` training studies of ``config.train_studies``: a nested, label-stratified subset
    (:func:`sinotriage.training.subsets.nested_subset`, fixed order seed 0)."""
    from sinotriage.io.store import open_store
    from sinotriage.training.subsets import nested_subset

    st = open_store(store) if isinstance(store, str | os.PathLike) else store
    recs = [r for r in st.manifest if r["split"] == "train"]
    return nested_subset([r["study_id"] for r in recs], [int(r.get("label", -1)) for r in recs], n)


def build_model(config: TrainConfig) -> torch.nn.Module:
    """``sinotriage.models.create`` with the config's channels, classes and options."""
    from sinotriage import models

    options = dict(config.model_options)
    if config.checkpointing:
        params = inspect.signature(models.spec(config.model).builder).parameters
        if "checkpointing" not in params:
            raise ValueError(f"checkpointing: model {config.model!r} does not support gradient "
                             "checkpointing")
        options["checkpointing"] = True
    dims = 3 if config.level == "scan" and not config.sequence_model else 2
    if config.sequence_model and config.level != "scan":
        raise ValueError(f"model {config.model!r} reads slice sequences; set level: scan")
    return models.create(config.model, in_channels=config.in_channels,
                         num_classes=config.num_classes, spatial_dims=dims, **options)


def prepare_batch(x: torch.Tensor, config: TrainConfig, size: int | None) -> torch.Tensor:
    """The model input of a ``(B, K, H, W)`` batch: HU scaling, detector binning, resizing.

    Reconstructions (domains ``hu`` and ``recon``) are divided by :data:`HU_SCALE` (1000 HU), so
    water is 0 and air -1, a range the networks' first layers train well on; windowed images are
    already in [0, 1] and sinograms (line integrals) are of order 1. Sinograms are binned along
    the channels by ``detector_factor`` (:func:`sinotriage.operators.subsampling.bin_channels`).
    """
    from sinotriage.operators.subsampling import bin_channels

    if config.domain in ("hu", "recon"):
        x = x / HU_SCALE
    if config.detector_factor > 1:
        x = bin_channels(x, config.detector_factor)
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:]) if x.ndim != 4 else x
    flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < min(x.shape[-2:]))
    return flat.reshape(*lead, size, size)


def _logits(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(out, "logits"):
        return out.logits, getattr(out, "aux", None)
    return out, None


def forward_batch(net: torch.nn.Module, x: torch.Tensor, batch: dict[str, Any],
                  config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Run the model on a prepared batch; returns ``(logits, target, aux)`` of equal shapes.

    Slice level: ``(B,)`` or ``(B, 6)``. Scan level, 3D stack: ``(B,)`` scan logits against the
    scan label. Scan level, slice sequence: per-slice logits ``(B, D)`` or ``(B, D, 6)`` against
    the slice labels.
    """
    device = x.device
    if config.level == "scan" and config.sequence_model:
        logits, aux = _logits(net(x.permute(0, 2, 1, 3, 4)))
        lab = batch["slice_labels"].to(device)
        target = lab[..., 0] if config.target == "binary" else lab
        logits = logits.float()
        if config.target == "binary":
            logits = logits[..., 0]
        return logits, target, aux
    logits, aux = _logits(net(x))
    logits = logits.float()
    if config.target == "binary":
        logits = logits.reshape(-1)
    return logits, batch["label"].to(device), aux


def _autocast(config: TrainConfig, device: torch.device):
    if config.precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _loss(config: TrainConfig, logits: torch.Tensor, target: torch.Tensor,
          aux: torch.Tensor | None) -> torch.Tensor:
    if config.loss == "rsna":
        loss = rsna_weighted_loss(logits, target)
    else:
        loss = bce_loss(logits, target, config.pos_weight)
    if isinstance(aux, torch.Tensor) and config.aux_weight > 0 and aux.shape[0] == target.shape[0]:
        aux_t = target if target.ndim > 1 else target[:, None]
        if aux.shape == aux_t.shape:
            loss = loss + config.aux_weight * radnet_aux_loss(aux, aux_t)
    return loss


@torch.no_grad()
def score_dataset(model: torch.nn.Module, dataset: Any, config: TrainConfig,
                  device: torch.device, batch_size: int | None = None,
                  ) -> dict[str, Any]:
    """Sigmoid scores of every slice of ``dataset``.

    Returns a dict with ``scores`` (n, L) float64, ``labels`` (n, L) int8, ``study_id`` (list),
    ``slice`` (n,) int64 and ``loss`` (mean loss, float).
    """
    from torch.utils.data import DataLoader

    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size or config.batch_size, shuffle=False,
                        num_workers=config.num_workers)
    scores, labels, ids, slices, losses, counts = [], [], [], [], [], []
    for batch in loader:
        x = prepare_batch(batch["image"].to(device), config, config.image_size)
        with _autocast(config, device):
            logits, y, _ = forward_batch(model, x, batch, config)
        losses.append(float(_loss(config, logits, y, None)) * len(y))
        counts.append(len(y))
        p = torch.sigmoid(logits).cpu().double().numpy()
        n_lab = len(label_names(config))
        if config.level == "scan" and config.sequence_model:
            for b, sid in enumerate(batch["study_id"]):
                n = int(batch["n_slices"][b])
                orig = np.rint(np.linspace(0, n - 1, config.depth)).astype(np.int64)
                _, first = np.unique(orig, return_index=True)
                scores.append(p[b].reshape(config.depth, n_lab)[first])
                labels.append(y[b].cpu().numpy().reshape(config.depth, n_lab)[first]
                              .astype(np.int8))
                ids.extend([sid] * len(first))
                slices.extend(int(v) for v in orig[first])
            continue
        scores.append(p.reshape(len(y), -1))
        labels.append(y.cpu().numpy().reshape(len(y), -1).astype(np.int8))
        ids.extend(batch["study_id"])
        if config.level == "scan":
            slices.extend([-1] * len(y))
        else:
            slices.extend(int(s) for s in batch["slice"])
    n_labels = len(label_names(config))
    return {
        "scores": np.concatenate(scores) if scores else np.zeros((0, n_labels)),
        "labels": np.concatenate(labels) if labels else np.zeros((0, n_labels), np.int8),
        "study_id": ids,
        "slice": np.asarray(slices, dtype=np.int64),
        "loss": sum(losses) / max(sum(counts), 1),
    }


def scan_auc(scored: dict[str, Any], config: TrainConfig) -> float:
    """Scan-level AUC of the "any" label (NaN when the split lacks a class)."""
    from sinotriage.metrics import aggregate_slices, roc_auc

    if not scored["study_id"]:
        return float("nan")
    studies, agg = aggregate_slices(scored["scores"][:, 0], scored["study_id"], scored["slice"],
                                    method=config.aggregation, k=config.aggregation_k)
    _, lab = aggregate_slices(scored["labels"][:, 0].astype(float), scored["study_id"],
                              scored["slice"], method="max")
    if len(np.unique(lab)) < 2:
        return float("nan")
    return float(roc_auc(lab.astype(int), agg))


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


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


def train(config: TrainConfig, *, resume: bool = False, stop_after_epoch: int | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
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
        return _train(config, info, resume, stop_after_epoch, on_epoch)
    finally:
        distributed.teardown(info)


def _train(config: TrainConfig, info: distributed.DistInfo, resume: bool,
           stop_after_epoch: int | None,
           on_epoch: Callable[[dict[str, float]], None] | None) -> TrainResult:
    from torch.utils.data import DataLoader

    device = torch.device(config.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    torch.manual_seed(config.seed)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_ds = make_dataset(config, "train")
    val_ds = make_dataset(config, "val")
    if len(train_ds) == 0:
        raise ValueError(f"store {config.store}: the train split has no slices")
    model = build_model(config).to(device)
    optimizer = _make_optimizer(config, model)
    config_json = config.model_dump(mode="json")
    history: list[dict[str, float]] = []
    best_auc, best_epoch, bad_epochs, start_epoch, step = -math.inf, 0, 0, 0, 0
    best_path, last_path = out / "best.safetensors", out / "last.safetensors"
    if resume:
        ckpt = load_checkpoint(last_path)
        saved = dict(ckpt["meta"]["config"])
        mine = dict(config_json)
        saved.pop("epochs", None)
        mine.pop("epochs", None)
        if saved != mine:
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
            raise ValueError(f"resume: the config differs from the interrupted run's in {diff}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(optimizer_state(ckpt))
        st = ckpt["meta"]["state"]
        history = list(ckpt["meta"]["history"])
        start_epoch, step = int(st["epoch"]), int(st["step"])
        best_auc, best_epoch, bad_epochs = float(st["best_auc"]), int(st["best_epoch"]), int(
            st["bad_epochs"])
    net: torch.nn.Module = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    image_aug = ImageAugment(config.augment) if config.augment.image_ops else None
    sino_aug = SinogramAugment(config.augment, _sinogram_geometry(config, train_ds)) \
        if config.augment.sinogram_ops else None
    pairing = None
    if config.paired or config.aux_weight_band > 0:  # counterfactual pairs / band loss
        from sinotriage.training.paired import PairedTraining

        pairing = PairedTraining(config, train_ds)
    n_per_epoch = len(_epoch_order(config, train_ds, 0, info))
    batches = max(math.ceil(n_per_epoch / config.batch_size), 1)
    if pairing is not None:
        batches = pairing.n_batches(_epoch_order(config, train_ds, 0, info))
    steps_per_epoch = math.ceil(batches / config.accumulation)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    writer = _tensorboard(config, out) if info.is_main else None
    head = _head_prefix(model) if config.freeze_backbone_epochs else ""
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        if config.freeze_backbone_epochs:
            from sinotriage.models import freeze_backbone, unfreeze

            if epoch < config.freeze_backbone_epochs:
                freeze_backbone(model, [head])
            else:
                unfreeze(model)
        torch.manual_seed(config.seed * 100003 + epoch)  # dropout etc.
        g = torch.Generator().manual_seed(config.seed * 7919 + epoch)
        order = _epoch_order(config, train_ds, epoch, info)
        loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=order,
                            num_workers=config.num_workers) if pairing is None \
            else pairing.loader(order)
        size = _size_for_epoch(config, epoch)
        net.train()
        total, count = 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        progress = _progress(config, info, epoch, len(loader))
        for b, batch in enumerate(loader):
            x = batch["image"].to(device)
            y = batch["label"].to(device)
            band = batch.get("band")
            if sino_aug is not None and pairing is not None:
                x, band = pairing.augment(sino_aug, {**batch, "image": x.cpu()}, g)
                x = x.to(device)
            elif sino_aug is not None:
                x = sino_aug(x.cpu(), g).to(device)
            x = prepare_batch(x, config, size)
            if image_aug is not None:
                x = image_aug(x.cpu(), g).to(device)
            if config.augment.cutmix_alpha > 0 and float(torch.rand(1, generator=g)) < \
                    config.augment.cutmix_prob:
                x, y = cutmix(x, y, config.augment.cutmix_alpha, g)
                batch = {**batch, "label": y}
            extra = None
            with _autocast(config, device):
                if pairing is not None:
                    logits, extra = pairing.forward(net, x, band)
                    logits = logits.float().reshape(-1) if config.target == "binary" \
                        else logits.float()
                    y, aux = batch["label"].to(device), None
                else:
                    logits, y, aux = forward_batch(net, x, batch, config)
            loss = _loss(config, logits, y, aux)
            if extra is not None:
                loss = loss + extra
            scaled = loss / config.accumulation
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += float(loss.detach()) * len(y)
            count += len(y)
            if (b + 1) % config.accumulation == 0 or b + 1 == len(loader):
                lr = lr_at(config.schedule, step, total_steps, config.lr, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
            if progress is not None:
                progress.update(progress.task_ids[0], advance=1,
                                description=f"epoch {epoch + 1}/{config.epochs} "
                                            f"loss {total / max(count, 1):.4f}")
        if progress is not None:
            progress.stop()
        scored = score_dataset(model, val_ds, config, device) if len(val_ds) else None
        val_auc = scan_auc(scored, config) if scored is not None else float("nan")
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": total / max(count, 1),
               "val_loss": scored["loss"] if scored is not None else float("nan"),
               "val_auc": val_auc, "seconds": time.perf_counter() - t0}
        history.append(row)
        improved = (not math.isnan(val_auc) and val_auc > best_auc) or best_epoch == 0
        if improved:
            best_auc = val_auc if not math.isnan(val_auc) else -math.inf
            best_epoch, bad_epochs = epoch + 1, 0
        else:
            bad_epochs += 1
        meta_common = {"config": config_json, "history": history,
                       "label_names": list(label_names(config)),
                       "in_channels": config.in_channels, "num_classes": config.num_classes}
        if info.is_main:
            if improved:
                save_checkpoint(best_path, model, {**meta_common, "metrics": {
                    "epoch": epoch + 1, "val_auc": val_auc, "val_loss": row["val_loss"]}})
            state = {"epoch": epoch + 1, "step": step, "best_auc": best_auc,
                     "best_epoch": best_epoch, "bad_epochs": bad_epochs}
            save_checkpoint(last_path, model, {**meta_common, "state": state,
                                               "metrics": {"epoch": epoch + 1, **row}},
                            optimizer=optimizer)
            _write_history(out / "metrics.csv", history)
            if writer is not None:
                for key in ("train_loss", "val_loss", "val_auc", "lr"):
                    writer.add_scalar(key, row[key], epoch + 1)
        if info.enabled:
            torch.distributed.barrier()
        if on_epoch is not None:
            on_epoch(row)
        if config.early_stopping is not None and bad_epochs >= config.early_stopping:
            stopped_early = True
            break
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    if writer is not None:
        writer.close()
    best_row = history[best_epoch - 1] if best_epoch else {}
    return TrainResult(best_checkpoint=best_path, last_checkpoint=last_path, history=history,
                       best_epoch=best_epoch,
                       val_metrics={"val_auc": float(best_row.get("val_auc", float("nan"))),
                                    "val_loss": float(best_row.get("val_loss", float("nan")))},
                       metrics_csv=out / "metrics.csv", stopped_early=stopped_early,
                       model=model)


def _sinogram_geometry(config: TrainConfig, dataset: Any) -> Any:
    """Geometry of the training sinograms (full or derived view count), None if unknown."""
    store = dataset.store
    if config.views is None or store.geometry is None:
        return store.geometry
    return store.derived_geometry(config.views, config.photons)


def _progress(config: TrainConfig, info: distributed.DistInfo, epoch: int, n: int):
    if not config.progress or not info.is_main:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), transient=False)
    p.add_task(f"epoch {epoch + 1}/{config.epochs}", total=n)
    p.start()
    return p
