"""The training configuration: one validated pydantic model, loaded from YAML or TOML.

Every field is documented below (``TrainConfig.model_json_schema()`` lists them with their
descriptions); unknown keys are rejected. ``load_config(path)`` turns any validation problem into
a one-line :class:`~sinotriage.errors.ConfigError` (a ``ValueError``) that names the file and the
offending key; the strict base and the formatter are those of :mod:`sinotriage._config`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from sinotriage._config import StrictModel as _Strict
from sinotriage._config import validate
from sinotriage.errors import ConfigError

__all__ = ["AugmentConfig", "TrainConfig", "load_config"]


class AugmentConfig(_Strict):
    """Training-time augmentation (off by default; validation and test are never augmented).

    Image domains (``hu``, ``recon``, ``windowed``) use MONAI random transforms and CutMix;
    the ``sinogram`` domain accepts only the physically meaningful ones: ``detector_flip``,
    ``view_shift`` and ``sinogram_photons`` (image options are rejected there).
    """

    flip_prob: float = Field(0.0, ge=0, le=1, description="Probability of a left-right flip.")
    rotate_deg: float = Field(0.0, ge=0, le=180, description="Random rotation range +- degrees.")
    rotate_prob: float = Field(0.5, ge=0, le=1, description="Probability of a rotation.")
    noise_std: float = Field(0.0, ge=0, description="Std of additive Gaussian noise (input units).")
    noise_prob: float = Field(0.5, ge=0, le=1, description="Probability of Gaussian noise.")
    blur_sigma: float = Field(0.0, ge=0, description="Max Gaussian blur sigma in pixels (0: off).")
    blur_prob: float = Field(0.5, ge=0, le=1, description="Probability of a Gaussian blur.")
    zoom: float = Field(0.0, ge=0, lt=1, description="Random crop/resize: zoom in [1, 1+zoom].")
    zoom_prob: float = Field(0.5, ge=0, le=1, description="Probability of a random zoom.")
    cutmix_alpha: float = Field(0.0, ge=0, description="CutMix Beta(alpha, alpha); 0 turns it off.")
    cutmix_prob: float = Field(0.5, ge=0, le=1, description="Probability of CutMix per batch.")
    detector_flip_prob: float = Field(
        0.0, ge=0, le=1,
        description="Sinograms: mirror the object (reverse channels and views, see augment.py).",
    )
    view_shift: bool = Field(
        False, description="Sinograms: circular shift of the views (rotation of the object)."
    )
    sinogram_photons: float | None = Field(
        None, gt=0, description="Sinograms: Poisson noise at this incident photon count per ray."
    )

    @property
    def image_ops(self) -> bool:
        """Whether any image-domain augmentation is on."""
        return any(v > 0 for v in (self.flip_prob, self.rotate_deg, self.noise_std,
                                   self.blur_sigma, self.zoom, self.cutmix_alpha))

    @property
    def sinogram_ops(self) -> bool:
        """Whether any sinogram-domain augmentation is on."""
        return (self.detector_flip_prob > 0 or self.view_shift
                or self.sinogram_photons is not None)


class TrainConfig(_Strict):
    """Everything one training run needs.

    Paths: ``store`` is read, ``out_dir`` receives ``best.safetensors`` / ``best.json`` (the
    checkpoint with the best validation AUC), ``last.safetensors`` / ``last.json`` (for
    ``--resume``), ``metrics.csv`` (one row per epoch) and, if TensorBoard is installed and
    ``tensorboard`` is true, ``tb/``.
    """

    # data
    store: str = Field(..., description="Path of the dataset store (a .zarr directory).")
    out_dir: str = Field("runs/run", description="Output directory of this run.")
    domain: Literal["hu", "sinogram", "recon", "windowed"] = Field(
        "windowed", description="Input domain (sinotriage.data): hu, sinogram, recon, windowed."
    )
    views: int | None = Field(
        None, ge=1, description="View count of sinogram/recon/windowed-recon inputs (None: full)."
    )
    photons: float | None = Field(
        None, gt=0, description="Noise level of the derived arrays (sinotriage preprocess)."
    )
    detector_factor: int = Field(
        1, ge=1, description="Sinograms: keep every n-th detector channel (mean of n neighbours)."
    )
    windows: tuple[str, ...] = Field(
        ("brain", "subdural", "bone"), description="Windows stacked as channels (windowed domain)."
    )
    context: int = Field(0, ge=0, description="Neighbouring slices per side stacked as channels.")
    level: Literal["slice", "scan"] = Field(
        "slice",
        description="slice: 2D per-slice items; scan: whole scans, as a 3D stack (models with "
                    "spatial_dims 3) or a slice sequence (cnn_lstm, radnet).",
    )
    depth: int = Field(16, ge=1, description="Scan level: slices per scan (nearest resampling).")
    target: Literal["binary", "multilabel"] = Field(
        "binary", description="binary: the 'any' label; multilabel: the 6 RSNA labels per slice."
    )
    image_size: int | None = Field(
        None, ge=8, description="Resize inputs to image_size x image_size (None: keep)."
    )
    progressive_sizes: tuple[int, ...] = Field(
        (), description="Progressive resizing: sizes for the first epochs, then image_size."
    )
    max_train_slices: int | None = Field(
        None, ge=1, description="Random subset of training slices per epoch (None: all)."
    )
    train_studies: int | None = Field(
        None, ge=2,
        description="Train on the first n studies of the train split in a fixed, label-stratified "
                    "order (sinotriage.training.subsets): smaller n give nested subsets of larger "
                    "n (None: all).",
    )
    balanced_sampling: bool = Field(
        False, description="Draw training slices with class-balanced probabilities ('any')."
    )
    cache: bool = Field(True, description="Keep read studies in memory (small stores).")
    # model
    model: str = Field("densenet_slim", description="Model name (sinotriage.models.available()).")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword options of sinotriage.models.create."
    )
    checkpointing: bool = Field(
        False, description="Gradient checkpointing (passed to models that accept it)."
    )
    freeze_backbone_epochs: int = Field(
        0, ge=0, description="Train only the head for this many epochs, then unfreeze."
    )
    # loss
    loss: Literal["bce", "rsna"] = Field(
        "bce", description="bce, or the RSNA weighted multi-label log loss (any weight 2)."
    )
    pos_weight: float | None = Field(None, gt=0, description="BCE positive-class weight.")
    aux_weight: float = Field(0.5, ge=0, description="Weight of radnet's auxiliary loss.")
    # optimisation
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    schedule: Literal["constant", "cosine", "onecycle", "step"] = Field(
        "constant",
        description="constant; cosine with linear warm-up; one-cycle; step (x0.1 at 1/3, 2/3).",
    )
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up length (cosine).")
    epochs: int = Field(10, ge=1, description="Training epochs.")
    batch_size: int = Field(16, ge=1, description="Samples per forward pass.")
    accumulation: int = Field(1, ge=1, description="Batches per optimizer step (virtual batch).")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32; bf16 autocast (CPU/CUDA); fp16 with a grad scaler (CUDA)."
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Augmentation.")
    # selection
    aggregation: Literal["max", "topk_mean", "consecutive"] = Field(
        "max", description="Slice -> scan aggregation of the validation AUC."
    )
    aggregation_k: int = Field(3, ge=1, description="k of topk_mean / consecutive.")
    early_stopping: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a better validation AUC."
    )
    # run
    seed: int = Field(0, description="Seed of weights, data order and augmentation.")
    deterministic: bool = Field(True, description="torch.use_deterministic_algorithms.")
    device: str = Field("cpu", description="Torch device: cpu, cuda, cuda:N.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    progress: bool = Field(True, description="Show a progress bar per epoch.")
    tensorboard: bool = Field(False, description="Write TensorBoard logs if it is installed.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.domain == "sinogram" and self.augment.image_ops:
            raise ValueError("augment: image augmentations do not apply to the sinogram domain; "
                             "use detector_flip_prob, view_shift, sinogram_photons")
        if self.domain != "sinogram" and self.augment.sinogram_ops:
            raise ValueError(f"augment: sinogram augmentations need domain 'sinogram', "
                             f"got {self.domain!r}")
        if self.domain != "sinogram" and self.detector_factor != 1:
            raise ValueError("detector_factor applies to the sinogram domain only")
        if self.loss == "rsna" and self.target != "multilabel":
            raise ValueError("loss 'rsna' needs target 'multilabel'")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
        if self.level == "scan":
            if self.augment.image_ops:
                raise ValueError("augment: image augmentations apply to level 'slice' only")
            if self.context:
                raise ValueError("context applies to level 'slice' only")
        if self.progressive_sizes and self.image_size is None:
            raise ValueError("progressive_sizes needs image_size (the final size)")
        if not self.device.startswith(("cpu", "cuda")):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        return self

    @property
    def num_classes(self) -> int:
        """Output logits: 1 (binary) or 6 (multilabel)."""
        return 1 if self.target == "binary" else 6

    @property
    def in_channels(self) -> int:
        """Input channels: windows (or 1) times the 2 * context + 1 slices."""
        per = len(self.windows) if self.domain == "windowed" else 1
        return per * (2 * self.context + 1)

    @property
    def sequence_model(self) -> bool:
        """Whether the model reads a slice sequence ``(B, D, C, H, W)`` (cnn_lstm, radnet)."""
        from sinotriage.models import spec

        return spec(self.model).input_shape.startswith("(B, D")


def load_config(path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """Read a :class:`TrainConfig` from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file.

    Parameters
    ----------
    path : path
        The config file.
    **overrides
        Fields replacing those of the file (e.g. ``device="cuda"``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ConfigError
        (a ``ValueError``) Unknown extension, unparsable file, or a field failing validation; the one-line message
        names the file and the key.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    text = p.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {p}: extension must be .yaml, .yml or .toml, got "
                              f"{suffix!r}")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {p}: cannot parse: {first}") from None
    if data is None:
        data = {}
    if isinstance(data, dict):
        data.update(overrides)
    return validate(TrainConfig, data, f"config file {p}")
