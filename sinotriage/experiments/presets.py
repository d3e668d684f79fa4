"""The study presets of ``sinotriage compare --preset NAME``: one table, read by the CLI too.

A *study* preset is a whole :class:`~sinotriage.experiments.config.StudyConfig` (arms, seeds,
training budget, split sizes); it names the *data* preset (:mod:`sinotriage.presets`, the image
grid and scanner of the synthetic data) it synthesizes.  The two tables are separate and their
names differ in meaning: the study preset ``quick`` (15 minutes on a 2-core CPU) synthesizes the
data preset ``tiny`` (64 x 64 images), while ``sinotriage synth --preset quick`` means the 128 x
128 data preset.  :data:`STUDY_PRESETS` lists each study preset with its data preset and budget.

=========  ===========  ==================================================================
study      data preset  purpose and budget
=========  ===========  ==================================================================
tiny       tiny         smoke test (seconds per run): 2 seeds, 2 training sizes, 4 arms
quick      tiny         the README's first command: 15 min on a 2-core CPU, 2 seeds
curve      tiny         the data-scaling curve: <= 60 min on a 2-core CPU
standard   standard     the full SinoCT view grid on 256 x 256 data; for a GPU
sinoct     sinoct       SinoCT size (512 x 512, 984 x 888 sinograms); for GPUs
=========  ===========  ==================================================================

The validation and test splits of ``quick`` and ``curve`` hold at least
:func:`~sinotriage.experiments.power.scans_for_half_width` scans each (162 at prevalence 0.5):
enough for a 95 % DeLong half-width of at most 0.06 at AUC 0.85.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sinotriage.errors import InputError
from sinotriage.experiments.config import (
    ArmConfig,
    QueueConfig,
    StudyConfig,
    default_arms,
    learned_arms,
)
from sinotriage.experiments.power import scans_for_half_width

__all__ = ["STUDY_PRESETS", "StudyPreset", "split_plan", "study_preset"]


@dataclass(frozen=True)
class StudyPreset:
    """One row of the preset table.

    Attributes
    ----------
    name
        The study preset's name (``--preset``).
    data_preset
        The data preset (:mod:`sinotriage.presets`) it synthesizes.
    purpose
        One line for ``--help`` and the docs, with its time budget.
    build
        Returns the :class:`StudyConfig`.
    """

    name: str
    data_preset: str
    purpose: str
    build: Callable[[], StudyConfig]


def split_plan(n_train: int, n_val: int, n_test: int) -> tuple[int, tuple[float, float, float]]:
    """``(n_studies, split_fractions)`` that give about these split sizes (studies).

    The store's stratified split rounds per label, so each split may differ by a study or two.
    """
    n = n_train + n_val + n_test
    return n, (n_train / n, n_val / n, n_test / n)


#: validation / test scans of the CPU presets: 95 % DeLong half-width <= 0.06 at AUC 0.85
#: (Hanley-McNeil, prevalence 0.5), plus 8 for the per-label rounding of the split
POWERED_SPLIT: int = scans_for_half_width(0.85, 0.06, 0.5) + 8


#: the raw-sinogram arm's model and options (docs/results.md, "Raw-sinogram arm and paired
#: training"): circular view padding, max pooling, random view shift and exact mirror
SINOGRAM_ARM = {"model": "sino_cnn", "model_kwargs": {"pooling": "max"},
                "training": {"augment": {"view_shift": True, "detector_flip_prob": 0.5}}}


def sinogram_arm(factor: int) -> ArmConfig:
    """The sinogram arm ``sinogram_x{factor}`` with :data:`SINOGRAM_ARM`'s model and options."""
    return ArmConfig(name=f"sinogram_x{factor}", domain="sinogram", view_factor=factor,
                     **SINOGRAM_ARM)


def _tiny() -> StudyConfig:
    arms = (
        sinogram_arm(4),
        ArmConfig(name="recon_x1", domain="recon", view_factor=1),
        ArmConfig(name="recon_x4", domain="recon", view_factor=4),
        ArmConfig(name="windowed_x1", domain="windowed", view_factor=1),
        *learned_arms((1, 4)),
    )
    return StudyConfig(
        name="tiny smoke study", data_preset="tiny", n_studies=24, seed=0, seeds=(0, 1),
        train_sizes=(6, 12), arms=arms, reference_arm="windowed_x1",
        sinogram_model="mini_unet_slim", image_model="densenet_slim",
        training={"epochs": 1, "batch_size": 16, "lr": 2e-3, "weight_decay": 1e-4,
                  "max_train_slices": 64},
        queue=QueueConfig(n_repeats=10),
        notes=("tiny preset: a smoke test; its AUCs are not meaningful.",),
    )


def quick_arms() -> tuple[ArmConfig, ...]:
    """The arms of the quick preset: the raw sinogram at factor 4, the reconstruction in HU at
    full views, the windowed reconstruction at factors 1 (the reference) and 16, the learnable
    windows at full views from both starts and the learned FBP at every view count of the study
    (1, 4, 16). One arm per question, so that two seeds fit the 15-minute budget."""
    return (
        sinogram_arm(4),
        ArmConfig(name="recon_x1", domain="recon", view_factor=1),
        *(ArmConfig(name=f"windowed_x{f}", domain="windowed", view_factor=f) for f in (1, 16)),
        *learned_arms((1, 4, 16)),
    )


#: training studies and epochs of the quick preset: 2 seeds x 9 arms on two single-threaded
#: run workers, the powered validation/test splits and synthesis within 15 minutes on a quiet
#: 2-core CPU (measurements in docs/results.md, "Time budget of the quick preset")
QUICK_TRAIN: int = 120
QUICK_EPOCHS: int = 5


def _quick() -> StudyConfig:
    n, fractions = split_plan(QUICK_TRAIN, POWERED_SPLIT, POWERED_SPLIT)
    return StudyConfig(
        name="quick study (CPU)", data_preset="tiny", difficulty="easy", n_studies=n,
        split_fractions=fractions, seed=0, seeds=(0, 1), arms=quick_arms(), run_workers=2,
        reference_arm="windowed_x1", sinogram_model="mini_unet_slim", image_model="densenet_slim",
        training={"epochs": QUICK_EPOCHS, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4,
                  "schedule": "cosine"},
        notes=(
            "quick preset, sized for 15 minutes on a 2-core CPU (2 seeds, 5 epochs, two "
            "single-threaded run workers): 64 x 64 synthetic data "
            "(246 x 111 sinograms) with easy lesions; small models (sino_cnn with circular "
            "view padding, max pooling and view-shift / mirror augmentation for sinograms, "
            "densenet_slim for images) instead of mini_unet / densenet121; view "
            "factors 1 and 16 for windowed reconstructions, 4 for sinograms, 1, 4 and 16 for "
            "the learned FBP (the full view ladder is in the standard preset).",
            f"Validation and test splits of about {POWERED_SPLIT} scans each: a 95% DeLong "
            "half-width of at most 0.06 at AUC 0.85 (docs/results.md, Power).",
        ),
    )


#: training-set sizes of the curve preset (studies; nested subsets of the train split)
CURVE_SIZES: tuple[int, ...] = (15, 30, 60, 120, 240, 480)


def curve_arms() -> tuple[ArmConfig, ...]:
    """The arms of the curve preset: the quick preset's raw sinogram arm (x4), the
    reconstruction in HU and the windowed reconstruction at full views, the learnable windows
    from both starts and the learned FBP at the study's view counts (1 and 4). One line per
    question the quick preset leaves open: at which training size each of them clears chance."""
    return (
        sinogram_arm(4),
        ArmConfig(name="recon_x1", domain="recon", view_factor=1),
        ArmConfig(name="windowed_x1", domain="windowed", view_factor=1),
        *learned_arms((1, 4)),
    )


def _curve() -> StudyConfig:
    n, fractions = split_plan(CURVE_SIZES[-1], POWERED_SPLIT, POWERED_SPLIT)
    return StudyConfig(
        name="data-scaling curve (CPU)", data_preset="tiny", difficulty="easy", n_studies=n,
        split_fractions=fractions, seed=0, seeds=(0,), train_sizes=CURVE_SIZES,
        arms=curve_arms(), run_workers=2,
        reference_arm="windowed_x1", sinogram_model="mini_unet_slim", image_model="densenet_slim",
        training={"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4,
                  "schedule": "cosine"},
        notes=(
            "curve preset: AUC against the number of training studies (nested, label-"
            "stratified subsets of the train split: 15 to 480 studies, about 150 to 4,800 "
            "slices), sized for 60 minutes on a 2-core CPU; 10 cosine epochs per run, one "
            "seed, two single-threaded run workers.",
            f"Validation and test splits of about {POWERED_SPLIT} scans each, as in quick.",
        ),
    )


def _standard() -> StudyConfig:
    return StudyConfig(
        name="standard study (GPU)", data_preset="standard", n_studies=600, seed=0,
        arms=tuple(default_arms()), reference_arm="windowed_x1",
        training={"epochs": 12, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4,
                  "num_workers": 4},
    )


def _sinoct() -> StudyConfig:
    return StudyConfig(
        name="SinoCT-size study (GPU)", data_preset="sinoct", n_studies=1000, seed=0,
        arms=tuple(default_arms()), reference_arm="windowed_x1",
        training={"epochs": 20, "batch_size": 16, "lr": 1e-3, "weight_decay": 1e-4,
                  "num_workers": 8},
    )


#: the study presets, by name (the CLI's ``--preset`` choices)
STUDY_PRESETS: dict[str, StudyPreset] = {
    p.name: p for p in (
        StudyPreset("tiny", "tiny", "smoke test, about a minute on a CPU", _tiny),
        StudyPreset("quick", "tiny", "the first study: at most 15 min on a 2-core CPU", _quick),
        StudyPreset("curve", "tiny", "data-scaling curve: at most 60 min on a 2-core CPU", _curve),
        StudyPreset("standard", "standard", "full view grid, 256 x 256 data; for a GPU",
                    _standard),
        StudyPreset("sinoct", "sinoct", "SinoCT size, 512 x 512 data; for GPUs", _sinoct),
    )
}


def study_preset(name: str) -> StudyConfig:
    """The :class:`StudyConfig` of a study preset (see :data:`STUDY_PRESETS`).

    Raises
    ------
    InputError
        ``name`` is not a study preset; the message lists them.
    """
    if name not in STUDY_PRESETS:
        raise InputError(f"study preset must be one of {tuple(STUDY_PRESETS)}, got {name!r}")
    return STUDY_PRESETS[name].build()
