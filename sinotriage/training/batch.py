"""One batch through a model: datasets, model building, input preparation, loss and scoring.

The pieces :func:`sinotriage.training.train`, :func:`~sinotriage.training.predict` and the LR
finder share: :func:`make_dataset` (the store's slices or scans of one split),
:func:`build_model`, :func:`prepare_batch` (HU scaling, detector binning, resizing),
:func:`forward_batch` (logits against targets), :func:`compute_loss` and :func:`score_dataset`.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import torch

from sinotriage.training.config import TrainConfig
from sinotriage.training.losses import bce_loss, radnet_aux_loss, rsna_weighted_loss
from sinotriage.vocabulary import LABEL_NAMES

__all__ = ["HU_SCALE", "autocast", "batch_transforms", "build_model", "item_transform", "compute_loss", "forward_batch", "label_names",
           "make_dataset", "prepare_batch", "scan_auc", "score_dataset", "train_study_subset"]


#: Divisor of Hounsfield units at the model input (:func:`prepare_batch`).
HU_SCALE = 1000.0


def label_names(config: TrainConfig) -> tuple[str, ...]:
    """Label columns of the model outputs: ``("any",)`` or the six RSNA labels."""
    return ("any",) if config.target == "binary" else LABEL_NAMES


def item_transform(config: TrainConfig) -> Any:
    """The per-item transform of the config's domain: the windows of ``windowed``, else None.

    ``windowed`` reads the stored reconstruction (or the HU volume when ``views`` is None) and
    windows it with :class:`sinotriage.transforms.MultiWindowd`.
    """
    if config.domain != "windowed":
        return None
    from sinotriage.transforms import MultiWindowd

    return MultiWindowd("image", config.windows)


def make_dataset(config: TrainConfig, split: str, store: Any = None):
    """The :class:`~sinotriage.data.SliceDataset` (or ``ScanDataset`` at level "scan").

    The dataset returns the stored domain (``hu``, ``recon`` or ``sinogram``); windows are the
    :func:`item_transform`, scaling, binning and resizing :func:`prepare_batch`'s transforms.
    """
    from sinotriage.data import ScanDataset, SliceDataset

    domain = config.domain
    if domain == "windowed":
        domain = "hu" if config.views is None else "recon"
    source = store if store is not None else config.store
    ids = None
    if split == "train" and config.train_studies is not None:
        ids = train_study_subset(source, config.train_studies)
    common = dict(domain=domain, views=config.views, photons=config.photons,
                  cache=config.cache, transform=item_transform(config), study_ids=ids)
    if config.level == "scan":
        return ScanDataset(source, split, target="binary", depth=config.depth, **common)
    return SliceDataset(source, split, target=config.target, context=config.context, **common)


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
    options = _learned_options(config, options)
    dims = 3 if config.level == "scan" and not config.sequence_model else 2
    if config.sequence_model and config.level != "scan":
        raise ValueError(f"model {config.model!r} reads slice sequences; set level: scan")
    return models.create(config.model, in_channels=config.in_channels,
                         num_classes=config.num_classes, spatial_dims=dims, **options)


def _learned_options(config: TrainConfig, options: dict[str, Any]) -> dict[str, Any]:
    """Fill in what learned upstream layers need from the data: HU units and the geometry.

    A ``window`` option on a reconstruction domain gets ``input_scale`` :data:`HU_SCALE`
    (:func:`prepare_batch` divides HU by it, the window works in HU). ``learned_fbp`` without
    ``geometry`` gets the store's geometry at ``config.views`` (its sinograms' geometry).
    """
    window = options.get("window")
    if window is not None and config.model != "learned_fbp" and config.domain in ("hu", "recon"):
        if not isinstance(window, dict):
            window = {"init": window}
        options["window"] = {"input_scale": HU_SCALE, **window}
    if config.model == "learned_fbp" and options.get("geometry") is None:
        if config.domain != "sinogram":
            raise ValueError(f"model 'learned_fbp' reads sinograms; set domain: sinogram, got "
                             f"{config.domain!r}")
        from sinotriage.io.store import open_store

        store = open_store(config.store)
        full = store.geometry
        if full is None:
            raise ValueError(f"store {config.store} has no geometry; learned_fbp needs one")
        views = config.views or full.n_views
        options["geometry"] = store.derived_geometry(views, config.photons).to_dict()
    return options


def batch_transforms(config: TrainConfig, shape: tuple[int, ...], size: int | None) -> list[Any]:
    """The :mod:`sinotriage.transforms` that turn a loader batch into the model input.

    Reconstructions (domains ``hu`` and ``recon``) are divided by :data:`HU_SCALE` (1000 HU,
    :class:`~sinotriage.transforms.ScaleHU`), so water is 0 and air -1, a range the networks'
    first layers train well on; windowed images are already in [0, 1] and sinograms (line
    integrals) are of order 1. Sinograms are binned along the channels by ``detector_factor``
    (:class:`~sinotriage.transforms.BinDetectors`); images are resized to ``size``
    (:class:`~sinotriage.transforms.ResizeSlices`, antialiased when shrinking).
    """
    from sinotriage.transforms import BinDetectors, ResizeSlices, ScaleHU

    steps: list[Any] = []
    if config.domain in ("hu", "recon"):
        steps.append(ScaleHU(HU_SCALE))
    if config.detector_factor > 1:
        steps.append(BinDetectors(config.detector_factor))
        shape = (*shape[:-1], shape[-1] // config.detector_factor)
    if size is not None and tuple(shape[-2:]) != (size, size):
        steps.append(ResizeSlices(size, antialias=size < min(shape[-2:])))
    return steps


def prepare_batch(x: torch.Tensor, config: TrainConfig, size: int | None) -> torch.Tensor:
    """The model input of a ``(B, K, H, W)`` (or ``(B, K, D, H, W)``) batch: the
    :func:`batch_transforms` in order."""
    for step in batch_transforms(config, tuple(x.shape), size):
        x = step(x)
    return x


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


def autocast(config: TrainConfig, device: torch.device):
    """The autocast context of ``config.precision`` (disabled for fp32)."""
    if config.precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def compute_loss(config: TrainConfig, logits: torch.Tensor, target: torch.Tensor,
                 aux: torch.Tensor | None) -> torch.Tensor:
    """The configured loss (BCE or RSNA-weighted), plus RadNet's auxiliary term when present."""
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
                  loader: Any = None) -> dict[str, Any]:
    """Sigmoid scores of every slice of ``dataset``.

    ``loader`` (an iterable of batches of ``dataset`` in order, e.g. a DataLoader built once
    per run) replaces the DataLoader built here.

    Returns a dict with ``scores`` (n, L) float64, ``labels`` (n, L) int8, ``study_id`` (list),
    ``slice`` (n,) int64 and ``loss`` (mean loss, float).
    """
    from torch.utils.data import DataLoader

    model.eval()
    if loader is None:
        loader = DataLoader(dataset, batch_size=batch_size or config.batch_size, shuffle=False,
                            num_workers=config.num_workers)
    scores, labels, ids, slices, losses, counts = [], [], [], [], [], []
    for batch in loader:
        x = prepare_batch(batch["image"].to(device), config, config.image_size)
        with autocast(config, device):
            logits, y, _ = forward_batch(model, x, batch, config)
        losses.append(float(compute_loss(config, logits, y, None)) * len(y))
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


def sinogram_geometry(config: TrainConfig, dataset: Any) -> Any:
    """Geometry of the training sinograms (full or derived view count); None if unknown.

    The sinogram augmentation needs it for the exact mirror (the detector offset) and to check
    that the scan is a full turn.
    """
    store = dataset.store
    if config.views is None or store.geometry is None:
        return store.geometry
    return store.derived_geometry(config.views, config.photons)
