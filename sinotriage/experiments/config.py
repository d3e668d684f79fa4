"""Configuration of the comparison study (``sinotriage compare``): arms, seeds, sizes, training.

A study is a list of *arms*; an arm is one input domain at one number of projections, with one
model and, optionally, its own training options.  Every arm is trained once per training seed
(``seeds``) and per training-set size (``train_sizes``) on the same data and splits: one *run*
per (arm, seed, size).

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

Training options are a partial :class:`~sinotriage.training.TrainConfig`: the study's
``training:`` mapping holds the fields every arm shares, an arm's ``training:`` mapping overrides
them, and unset fields keep TrainConfig's defaults.  The fields the study itself sets per run
(:data:`STUDY_OWNED`: store, domain, views, model, seed, ...) cannot be given there.  Each arm's
full TrainConfig is built and validated when the study config loads, so a bad option fails at
once, not when its arm starts hours later.

Configs are strict pydantic models (:mod:`sinotriage._config`): unknown keys are rejected and the
one-line :class:`~sinotriage.errors.ConfigError` names the key.  They load from YAML with
:func:`load_study_config`; the presets are in :mod:`sinotriage.experiments.presets`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sinotriage._config import StrictModel as _Strict
from sinotriage._config import validate
from sinotriage.errors import ConfigError
from sinotriage.experiments.learned import LEARNED_DOMAINS, WIDE_START, train_fields
from sinotriage.metrics import AGGREGATIONS
from sinotriage.training.config import TrainConfig

DOMAINS: tuple[str, ...] = ("sinogram", "recon", "windowed", "learned_window", "learned")
DEFAULT_WINDOWS: tuple[str, ...] = ("brain", "subdural", "bone")
#: TrainConfig fields the study sets for each run; a ``training:`` mapping may not give them
STUDY_OWNED: frozenset[str] = frozenset({
    "store", "out_dir", "domain", "views", "windows", "model", "model_options", "seed", "device",
    "progress", "aggregation", "aggregation_k", "target", "train_studies",
})


def check_training_overrides(v: dict[str, Any]) -> dict[str, Any]:
    """A ``training:`` mapping names only TrainConfig fields that the study does not own."""
    unknown = sorted(k for k in v if k not in TrainConfig.model_fields)
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown} (see docs/training.md)")
    owned = sorted(k for k in v if k in STUDY_OWNED)
    if owned:
        raise ValueError(f"{owned} are set by the study for each run; set them through the arm "
                         "or the study (domain, view_factor, model, seeds, train_sizes, ...)")
    return dict(v)


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
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainConfig fields of this arm, over the study's training mapping.",
    )

    _training_ok = field_validator("training")(check_training_overrides)

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
    seed: int = Field(0, description="Seed of the synthetic data and the splits.")
    seeds: tuple[int, ...] = Field(
        (0,), min_length=1,
        description="Training seeds (weights, data order, augmentation): every arm is trained "
                    "once per seed on the same data and splits.",
    )
    train_sizes: tuple[int, ...] = Field(
        (),
        description="Training-set sizes (studies) of the data-scaling curve: nested, label-"
                    "stratified subsets of the train split; empty: the whole train split only.",
    )
    split_fractions: tuple[float, float, float] = Field(
        (0.6, 0.2, 0.2), description="Train / validation / test fractions."
    )
    arms: tuple[ArmConfig, ...] = Field(default_factory=lambda: tuple(default_arms()))
    run_workers: int = Field(
        1, ge=1,
        description="Single-threaded local worker processes that train the runs on the CPU when "
                    "neither --workers nor --scheduler is given (at most the CPU count). Small "
                    "models gain nothing from a second thread, so two 1-thread workers train "
                    "about twice the runs per minute of one 2-thread process.",
    )
    reference_arm: str | None = Field(
        None, description="Arm the paired DeLong tests compare against (default: the first)."
    )
    sinogram_model: str = Field("mini_unet", description="Default model of sinogram arms.")
    image_model: str = Field("densenet121", description="Default model of recon/windowed arms.")
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainConfig fields shared by every arm (epochs, batch_size, lr, ...); an "
                    "arm's training mapping overrides them; unset fields keep TrainConfig's "
                    "defaults.",
    )
    aggregation: str = Field("max", description=f"Slice -> scan aggregation, one of {AGGREGATIONS}.")
    aggregation_k: int = Field(3, ge=1, description="k of topk_mean / consecutive.")
    operating_sensitivity: float = Field(
        0.9, gt=0, le=1, description="Target sensitivity of the operating threshold (on validation)."
    )
    fixed_specificity: float = Field(0.9, gt=0, lt=1, description="Specificity of 'sens@spec'.")
    alpha: float = Field(0.05, gt=0, lt=1, description="1 - confidence level of the intervals.")
    queue: QueueConfig = Field(default_factory=QueueConfig)
    notes: tuple[str, ...] = Field((), description="Remarks printed in the report.")

    _training_ok = field_validator("training")(check_training_overrides)

    @field_validator("seeds")
    @classmethod
    def _seeds_ok(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {list(v)}")
        return v

    @field_validator("train_sizes")
    @classmethod
    def _sizes_ok(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(n < 2 for n in v) or list(v) != sorted(set(v)):
            raise ValueError(f"train_sizes must be increasing integers >= 2, got {list(v)}")
        return v

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
        for arm in self.arms:  # every arm's TrainConfig, now rather than when the arm starts
            self.train_config(arm, seed=self.seeds[0], size=None, store="<store>", out_dir=".")
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

    def training_for(self, arm: ArmConfig) -> dict[str, Any]:
        """The TrainConfig overrides of an arm: the study's training mapping, then the arm's."""
        return {**self.training, **arm.training}

    def train_config(self, arm: ArmConfig, *, seed: int, size: int | None, store: str,
                     out_dir: str, views: int | None = None, device: str = "cpu") -> TrainConfig:
        """The full :class:`~sinotriage.training.TrainConfig` of one run.

        Parameters
        ----------
        arm
            The arm (domain, windows, model, its training overrides).
        seed
            Training seed of the run.
        size
            Number of training studies (``train_studies``); None: the whole train split.
        store, out_dir
            Store path and the run's output directory.
        views
            View count of the arm's input (None: the store's full count).
        device
            Torch device.

        Raises
        ------
        ConfigError
            The merged options do not validate; the message names the arm.
        """
        fields: dict[str, Any] = {
            **self.training_for(arm),
            "store": str(store), "out_dir": str(out_dir), "domain": arm.domain,
            # explicit view count: the windowed domain would otherwise window the ground-truth HU
            "views": views, "windows": tuple(arm.windows), "target": "binary",
            "model": self.model_for(arm), "model_options": dict(arm.model_kwargs),
            "aggregation": self.aggregation, "aggregation_k": self.aggregation_k,
            "seed": seed, "train_studies": size, "device": device,
            "progress": False,  # the study reports through its own callbacks
        }
        if arm.domain in LEARNED_DOMAINS:
            fields.update(train_fields(arm.domain, arm.windows, fields["model"],
                                       arm.model_kwargs))
        return validate(TrainConfig, fields, f"training options of arm {arm.name!r}")

    def run_fingerprint(self, arm: ArmConfig, seed: int, size: int | None) -> str:
        """Hash of everything that determines one run's result (resume reuses matching runs)."""
        payload = {
            "arm": arm.model_dump(mode="json"),
            "model": self.model_for(arm),
            "training": self.training_for(arm),
            "seed": seed,
            "size": size,
            "data": [self.data_preset, self.n_studies, self.prevalence, self.seed,
                     list(self.split_fractions), self.difficulty],
            "aggregation": [self.aggregation, self.aggregation_k],
        }
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def study_config_from_dict(data: dict[str, Any], source: str = "config") -> StudyConfig:
    """Validate a mapping as a :class:`StudyConfig`; errors name the offending key."""
    return validate(StudyConfig, data, f"{source}: invalid study config")


def load_study_config(path: str | os.PathLike[str], base: StudyConfig | None = None) -> StudyConfig:
    """Read a study config from YAML; keys given override ``base`` (e.g. a preset)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study config must be a YAML mapping, got "
                          f"{type(data).__name__}")
    if base is not None:
        merged = base.model_dump(mode="json")
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        data = merged
    return study_config_from_dict(data, str(path))


__all__ = [
    "ArmConfig",
    "DEFAULT_WINDOWS",
    "DOMAINS",
    "QueueConfig",
    "STUDY_OWNED",
    "StudyConfig",
    "check_training_overrides",
    "default_arms",
    "learned_arms",
    "load_study_config",
    "study_config_from_dict",
]
