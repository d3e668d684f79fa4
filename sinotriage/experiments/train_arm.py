"""One arm of the study through the training engine (:mod:`sinotriage.training`)."""

from __future__ import annotations

from typing import Any

from sinotriage.experiments.learned import LEARNED_DOMAINS, train_fields
from sinotriage.experiments.runner import ArmJob, ArmOutput


def train_config(job: ArmJob) -> Any:
    """The :class:`sinotriage.training.TrainConfig` of an arm: its domain, views, windows and
    model, with the study's seed, budget and aggregation."""
    from sinotriage.training import TrainConfig

    cfg = job.config
    budget = cfg.training
    fields: dict[str, Any] = {
        "store": str(job.store_path),
        "out_dir": str(job.workdir / "run"),
        "domain": job.arm.domain,
        # explicit view count: the windowed domain would otherwise window the ground-truth HU
        "views": job.views,
        "windows": tuple(job.arm.windows),
        "target": "binary",
        "model": job.model,
        "model_options": dict(job.arm.model_kwargs),
        "lr": budget.lr,
        "weight_decay": budget.weight_decay,
        "epochs": budget.epochs,
        "batch_size": budget.batch_size,
        "max_train_slices": budget.max_train_slices,
        "num_workers": budget.num_workers,
        "aggregation": cfg.aggregation,
        "aggregation_k": cfg.aggregation_k,
        "seed": cfg.seed,
        "device": job.device,
        "progress": False,  # the study shows its own display (one rich live display at a time)
    }
    if job.arm.domain in LEARNED_DOMAINS:
        fields.update(train_fields(job.arm.domain, job.arm.windows, job.model,
                                   job.arm.model_kwargs))
    fields.update(budget.extra)
    try:
        return TrainConfig(**fields)
    except Exception as exc:  # pydantic ValidationError -> one readable line
        raise ValueError(f"arm {job.arm.name}: invalid training settings: {exc}") from None


def train_arm(job: ArmJob) -> ArmOutput:
    """Train an arm, then score its validation and test splits with the best checkpoint."""
    from sinotriage.io.predictions import Predictions
    from sinotriage.training import predict, train

    config = train_config(job)
    total = config.epochs

    def on_epoch(row: dict[str, float]) -> None:
        if job.on_epoch is not None:
            job.on_epoch(int(row.get("epoch", 0)), total, row)

    result = train(config, on_epoch=on_epoch)
    parts = [predict(result.best_checkpoint, job.store_path, split, device=job.device)
             for split in ("val", "test")]
    merged = Predictions(
        parts[0].study_id + parts[1].study_id, parts[0].split + parts[1].split,
        list(parts[0].slice) + list(parts[1].slice),
        [*parts[0].labels, *parts[1].labels], [*parts[0].scores, *parts[1].scores],
        parts[0].label_names,
    )
    extra: dict[str, Any] = {}
    if job.arm.domain in LEARNED_DOMAINS:
        from sinotriage.models.learned_fbp import learned_parameters
        from sinotriage.training import load_model

        extra["learned"] = learned_parameters(load_model(result.best_checkpoint)[0])
    return ArmOutput(merged, epochs=len(result.history),
                     best_val_auc=result.val_metrics.get("val_auc"),
                     checkpoint=str(result.best_checkpoint), extra=extra)


__all__ = ["train_arm", "train_config"]
