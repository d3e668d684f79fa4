"""Configuration of the comparison study (``sinotriage compare``): arms, models, budget, presets.

A study is a list of *arms*; an arm is one input domain at one number of projections, with one
model, trained and tested on the same splits, seed and budget as every other arm.

==========  ===========================================================================
domain      what the model sees
==========  ===========================================================================
sinogram    the sinogram (line integrals, V x C) at ``full_views / view_factor`` views
recon       the FBP reconstruction in HU (one channel) from that many views
windowed    the reconstruction through named CT windows (one channel per window)
learned_window  the reconstruction in HU through learnable windows (K = 3), then the image model
learned     the sinogram through a learnable-filter FBP, learnable windows and the image model
==========  ===========================================================================

The learned arms are described in :mod:`sinotriage.experiments.learned`.

Configs are pydantic models: unknown keys are rejected and the error names the key. They load
from YAML with :func:`load_study_config` and every preset is a config
(:func:`study_preset`); ``sinotriage compare --config study.yaml`` reads the same fields.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sinotriage.experiments.learned import WIDE_START
from sinotriage.metrics import AGGREGATIONS

DOMAINS: tuple[str, ...] = ("sinogram", "recon", "windowed", "learned_window", "learned")
STUDY_PRESETS: tuple[str, ...] = ("tiny", "quick", "standard", "sinoct")
DEFAULT_WINDOWS: tuple[str, ...] = ("brain", "subdural", "bone")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArmConfig(_Strict):
    """One arm of the study."""

    name: str = Field(description="Unique arm name, used for file names (letters, digits, _ -).")
    domain: Literal["sinogram", "recon", "windowed", "learned_window", "learned"] = Field(
        description="Input domain.")
    view_factor: int = Field(1, ge=1, description="Views = full views // view_factor.")
    model: str | None = Field(
        None, description="Model name in the zoo; default the study's sinogram or image model."
    )
    windows: tuple[str, ...] = Field(
        DEFAULT_WINDOWS,
        description="Window names (channels) of a windowed arm; the start of a learned arm's.",
    )
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra model options.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        ok = v and all(c.isalnum() or c in "_-" for c in v)
        if not ok:
            raise ValueError(f"arm name must be letters, digits, '_' or '-', got {v!r}")
        return v


def learned_arms(factors: tuple[int, ...], window_factor: int = 1) -> list[ArmConfig]:
    """The learned arms: the learnable window on FBP (from the clinical windows and from a wide
    start, at ``window_factor``) and the learned FBP at each view factor."""
    return [
        ArmConfig(name=f"recon_learned_window_x{window_factor}", domain="learned_window",
                  view_factor=window_factor),
        ArmConfig(name=f"recon_learned_window_wide_x{window_factor}", domain="learned_window",
                  view_factor=window_factor,
                  model_kwargs={"window": [list(w) for w in WIDE_START]}),
        *(ArmConfig(name=f"learned_x{f}", domain="learned", view_factor=f) for f in factors),
    ]


def default_arms(
    factors: tuple[int, ...] = (1, 2, 4, 8, 16), windowed_factors: tuple[int, ...] = (1, 16)
) -> list[ArmConfig]:
    """The SinoCT grid: sinogram and reconstruction at each view factor, windowed at a few,
    and the learned arms (:func:`learned_arms`)."""
    arms = [ArmConfig(name=f"sinogram_x{f}", domain="sinogram", view_factor=f) for f in factors]
    arms += [ArmConfig(name=f"recon_x{f}", domain="recon", view_factor=f) for f in factors]
    arms += [
        ArmConfig(name=f"windowed_x{f}", domain="windowed", view_factor=f) for f in windowed_factors
    ]
    return arms + learned_arms(factors)


class TrainingBudget(_Strict):
    """The training budget, identical for every arm."""

    epochs: int = Field(4, ge=1, description="Training epochs.")
    batch_size: int = Field(32, ge=1, description="Slices per batch.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (Adam).")
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay.")
    max_train_slices: int | None = Field(
        None, ge=1, description="Cap on training slices per epoch (None: all)."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further TrainConfig fields passed through verbatim (see docs/training.md).",
    )


class QueueConfig(_Strict):
    """Reading-queue simulation of the report (:func:`sinotriage.triage.compare_operating_points`).

    Each simulated shift holds the test split's studies (Poisson arrivals, priority classes drawn
    with the triage module's default shares); every arm flags the studies its operating threshold
    calls positive and the flagged studies are read first.
    """

    enabled: bool = Field(True, description="Include the queue-simulation section.")
    n_readers: int = Field(1, ge=1, description="Radiologists reading in parallel.")
    rate_per_hour: float = Field(6.5, gt=0, description="Poisson arrival rate (studies per hour).")
    read_mean: float = Field(8.0, gt=0, description="Mean read time per study (minutes).")
    read_sd: float = Field(4.0, gt=0, description="SD of the log-normal read time (minutes).")
    n_repeats: int = Field(50, ge=1, description="Shifts simulated; waits are pooled.")
    seed: int = Field(0, description="Seed of the simulated shifts.")


class StudyConfig(_Strict):
    """The whole comparison study."""

    name: str = Field("study", description="Name shown in the report.")
    data_preset: Literal["tiny", "quick", "standard", "sinoct"] = Field(
        "quick", description="Synthetic data preset (sinotriage.presets) when no store is given."
    )
    difficulty: Literal["easy", "standard", "hard"] = Field(
        "standard", description="Lesion difficulty of the synthetic data (sinotriage.phantoms)."
    )
    n_studies: int = Field(120, ge=12, description="Synthetic studies to generate.")
    prevalence: float = Field(0.5, gt=0, lt=1, description="Share of abnormal synthetic studies.")
    seed: int = Field(0, description="Seed of data, splits, weights and data order.")
    split_fractions: tuple[float, float, float] = Field(
        (0.6, 0.2, 0.2), description="Train / validation / test fractions."
    )
    arms: tuple[ArmConfig, ...] = Field(default_factory=lambda: tuple(default_arms()))
    reference_arm: str | None = Field(
        None, description="Arm the paired DeLong tests compare against (default: the first)."
    )
    sinogram_model: str = Field("mini_unet", description="Default model of sinogram arms.")
    image_model: str = Field("densenet121", description="Default model of recon/windowed arms.")
    training: TrainingBudget = Field(default_factory=TrainingBudget)
    aggregation: str = Field("max", description=f"Slice -> scan aggregation, one of {AGGREGATIONS}.")
    aggregation_k: int = Field(3, ge=1, description="k of topk_mean / consecutive.")
    operating_sensitivity: float = Field(
        0.9, gt=0, le=1, description="Target sensitivity of the operating threshold (on validation)."
    )
    fixed_specificity: float = Field(0.9, gt=0, lt=1, description="Specificity of 'sens@spec'.")
    alpha: float = Field(0.05, gt=0, lt=1, description="1 - confidence level of the intervals.")
    queue: QueueConfig = Field(default_factory=QueueConfig)
    notes: tuple[str, ...] = Field((), description="Remarks printed in the report.")

    @field_validator("aggregation")
    @classmethod
    def _aggregation_ok(cls, v: str) -> str:
        if v not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {v!r}")
        return v

    @field_validator("split_fractions")
    @classmethod
    def _fractions_ok(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be 3 positive numbers summing to 1, got {v}")
        return v

    @model_validator(mode="after")
    def _arms_ok(self) -> StudyConfig:
        if not self.arms:
            raise ValueError("arms must list at least one arm")
        names = [a.name for a in self.arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"arm names must be unique, repeated: {dup}")
        if self.reference_arm is not None and self.reference_arm not in names:
            raise ValueError(f"reference_arm {self.reference_arm!r} is not an arm; arms are {names}")
        return self

    @property
    def reference(self) -> str:
        """Name of the reference arm."""
        return self.reference_arm or self.arms[0].name

    def model_for(self, arm: ArmConfig) -> str:
        """The model name an arm trains."""
        if arm.model is not None:
            return arm.model
        return self.sinogram_model if arm.domain == "sinogram" else self.image_model

    def arm(self, name: str) -> ArmConfig:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"no arm {name!r}; arms are {[a.name for a in self.arms]}")

    def arm_fingerprint(self, arm: ArmConfig) -> str:
        """Hash of everything that determines an arm's result (resume reuses matching arms)."""
        payload = {
            "arm": arm.model_dump(mode="json"),
            "model": self.model_for(arm),
            "training": self.training.model_dump(mode="json"),
            "data": [self.data_preset, self.n_studies, self.prevalence, self.seed,
                     list(self.split_fractions), self.difficulty],
            "aggregation": [self.aggregation, self.aggregation_k],
        }
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_validation_error(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{source}: invalid study config: " + "; ".join(parts)


def study_config_from_dict(data: dict[str, Any], source: str = "config") -> StudyConfig:
    """Validate a mapping as a :class:`StudyConfig`; errors name the offending key."""
    if not isinstance(data, dict):
        raise TypeError(f"{source}: a study config must be a mapping, got {type(data).__name__}")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_format_validation_error(exc, source)) from None


def load_study_config(path: str | os.PathLike[str], base: StudyConfig | None = None) -> StudyConfig:
    """Read a study config from YAML; keys given override ``base`` (e.g. a preset)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a study config must be a YAML mapping, got {type(data).__name__}")
    if base is not None:
        merged = base.model_dump(mode="json")
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        data = merged
    return study_config_from_dict(data, str(path))


def study_preset(name: str) -> StudyConfig:
    """The study config of a preset.

    ``tiny``
        Smoke test: the tiny data preset, 24 studies, four fixed arms (sinogram x4, recon x1 and
        x4, windowed x1) and the learned arms (learnable windows from the clinical and the wide
        start at x1, learned FBP at x1 and x4), slim models, one epoch of 64 slices. A few
        minutes on CPU.
    ``quick``
        The README's first command, budgeted for a 2-core CPU in at most 15 minutes including data
        synthesis: 200 studies of the tiny data preset (64 x 64 images, 246 x 111 sinograms) with
        easy lesions, slim models (``mini_unet_slim``, ``densenet_slim``), 15 epochs, and a
        reduced grid (sinograms at factors 4 and 16, reconstructions at 1, 4, 16, windowed at 1
        and 16), plus the learned arms (learnable windows at 1 from both starts, learned FBP at
        1, 4 and 16).
    ``standard``
        The full SinoCT grid (factors 1, 2, 4, 8, 16) on 256 x 256 data with the default models
        (``mini_unet``, ``densenet121``); for a GPU.
    ``sinoct``
        SinoCT size (512 x 512 images, 984 x 888 sinograms), the full grid; for a GPU.
    """
    if name not in STUDY_PRESETS:
        raise ValueError(f"preset must be one of {STUDY_PRESETS}, got {name!r}")
    if name == "tiny":
        arms = (
            ArmConfig(name="sinogram_x4", domain="sinogram", view_factor=4),
            ArmConfig(name="recon_x1", domain="recon", view_factor=1),
            ArmConfig(name="recon_x4", domain="recon", view_factor=4),
            ArmConfig(name="windowed_x1", domain="windowed", view_factor=1),
            *learned_arms((1, 4)),
        )
        return StudyConfig(
            name="tiny smoke study", data_preset="tiny", n_studies=24, seed=0, arms=arms,
            reference_arm="windowed_x1", sinogram_model="mini_unet_slim",
            image_model="densenet_slim",
            training=TrainingBudget(epochs=1, batch_size=16, lr=2e-3, max_train_slices=64),
            queue=QueueConfig(n_repeats=10),
            notes=("tiny preset: a smoke test; its AUCs are not meaningful.",),
        )
    if name == "quick":
        arms = (
            ArmConfig(name="sinogram_x4", domain="sinogram", view_factor=4),
            ArmConfig(name="sinogram_x16", domain="sinogram", view_factor=16),
            *(ArmConfig(name=f"recon_x{f}", domain="recon", view_factor=f) for f in (1, 4, 16)),
            *(ArmConfig(name=f"windowed_x{f}", domain="windowed", view_factor=f) for f in (1, 16)),
            *learned_arms((1, 4, 16)),
        )
        return StudyConfig(
            name="quick study (CPU)", data_preset="tiny", difficulty="easy", n_studies=200,
            seed=0, arms=arms, reference_arm="windowed_x1", sinogram_model="mini_unet_slim",
            image_model="densenet_slim",
            training=TrainingBudget(epochs=15, batch_size=32, lr=2e-3,
                                    extra={"schedule": "cosine"}),
            notes=(
                "quick preset, sized for 15 minutes on a 2-core CPU: 64 x 64 synthetic data "
                "(246 x 111 sinograms) with easy lesions; slim models (mini_unet_slim for "
                "sinograms, densenet_slim for images) instead of mini_unet / densenet121; view "
                "factors 1, 4, 16 for reconstructions and 4, 16 for sinograms (the full-view "
                "sinogram arm is left out: one epoch of it costs as much as all image arms).",
                "At this budget (about 1,200 training slices) only the windowed arms learn "
                "reliably: the raw sinogram and HU arms stay near chance, as in the Stanford "
                "report's mini U-Net; they need far more data (the standard preset on a GPU). "
                "See docs/results.md.",
            ),
        )
    if name == "standard":
        return StudyConfig(
            name="standard study (GPU)", data_preset="standard", n_studies=600, seed=0,
            arms=tuple(default_arms()), reference_arm="windowed_x1",
            training=TrainingBudget(epochs=12, batch_size=32, lr=1e-3, num_workers=4),
        )
    return StudyConfig(
        name="SinoCT-size study (GPU)", data_preset="sinoct", n_studies=1000, seed=0,
        arms=tuple(default_arms()), reference_arm="windowed_x1",
        training=TrainingBudget(epochs=20, batch_size=16, lr=1e-3, num_workers=8),
    )


__all__ = [
    "ArmConfig",
    "DEFAULT_WINDOWS",
    "DOMAINS",
    "QueueConfig",
    "STUDY_PRESETS",
    "StudyConfig",
    "TrainingBudget",
    "default_arms",
    "learned_arms",
    "load_study_config",
    "study_config_from_dict",
    "study_preset",
]
