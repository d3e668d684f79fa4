"""One run of the study (an arm, a seed, a training-set size) through the training engine."""

from __future__ import annotations

from typing import Any

from sinotriage.experiments.jobs import ArmJob, ArmOutput
from sinotriage.experiments.learned import LEARNED_DOMAINS


def train_config(job: ArmJob) -> Any:
    """The :class:`sinotriage.training.TrainConfig` of a run (:meth:`ArmJob.train_config`)."""
    return job.train_config()


def train_arm(job: ArmJob) -> ArmOutput:
    """Train a run, then score its validation and test splits with the best checkpoint."""
    from sinotriage.io.predictions import Predictions
    from sinotriage.training import predict, train

    config = job.train_config()
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
