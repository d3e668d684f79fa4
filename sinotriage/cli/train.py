"""``sinotriage train``, ``sinotriage lr-find`` and ``sinotriage evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from sinotriage.cli._common import check_device, console, figure_path, user_errors
from sinotriage.errors import ConfigError, InputError


def _load(config: Path, **overrides: Any) -> Any:
    """The TrainConfig of a file, its device checked; a file that does not validate is a
    :class:`~sinotriage.errors.ConfigError` (the loader's message names the file and key)."""
    from sinotriage.training import load_config

    try:
        cfg = load_config(config, **overrides)
    except InputError:
        raise
    except ValueError as exc:  # the loader's validation errors are about the user's file
        raise ConfigError(str(exc)) from None
    check_device(cfg.device, "--device" if "device" in overrides else f"{config}: device")
    return cfg


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""

    @app.command("train")
    def train_cmd(
        config: Path = typer.Option(..., "--config", "-c", help="YAML or TOML TrainConfig."),
        resume: bool = typer.Option(False, "--resume", help="Continue from out_dir/last.json."),
        device: str = typer.Option(None, help="Override the config's device (cpu, cuda:N)."),
    ) -> None:
        """Train a model on a store (see docs/training.md)."""
        with user_errors():
            from sinotriage.training import train

            cfg = _load(config, **({"device": device} if device else {}))
            result = train(cfg, resume=resume)
        console.print(f"best epoch {result.best_epoch}: validation AUC "
                      f"{result.val_metrics['val_auc']:.4f}; checkpoint {result.best_checkpoint}")

    @app.command("lr-find")
    def lr_find_cmd(
        config: Path = typer.Option(..., "--config", "-c", help="YAML or TOML TrainConfig."),
        out: Path = typer.Option(Path("lr_find.png"), "--out", "-o", help="PNG of loss vs LR."),
        start_lr: float = typer.Option(1e-6, help="First learning rate."),
        end_lr: float = typer.Option(1.0, help="Last learning rate."),
        steps: int = typer.Option(100, help="Mini-batches of the sweep."),
    ) -> None:
        """Learning-rate range test: plot training loss against learning rate."""
        with user_errors():
            from sinotriage.training.lr_finder import lr_find, plot_lr_find

            out = figure_path(out, "lr_find.png")
            result = lr_find(_load(config), start_lr, end_lr, steps)
            written = plot_lr_find(result, out)
        console.print(f"suggested learning rate {result.suggestion:.3g}; plot {written}")

    @app.command("evaluate")
    def evaluate_cmd(
        checkpoint: Path = typer.Argument(..., help="best.safetensors of a training run."),
        store: Path = typer.Option(..., "--store", help="Dataset store (DIR.zarr)."),
        split: str = typer.Option("test", help="Split to evaluate: train, val, test."),
        out: Path = typer.Option(None, "--out", "-o", help="Output directory (default: the "
                                 "checkpoint's)."),
        device: str = typer.Option("cpu", help="Torch device."),
        threshold: float = typer.Option(None, help="Operating threshold (default: 95% "
                                        "sensitivity on val)."),
    ) -> None:
        """Predictions CSV, metrics JSON and ROC PNG of a checkpoint on a split."""
        with user_errors():
            from sinotriage.training import evaluate
            from sinotriage.vocabulary import SPLITS

            if split not in SPLITS:
                raise InputError(f"--split must be one of {SPLITS}, got {split!r}")
            check_device(device)
            result = evaluate(checkpoint, store, split, out_dir=out, device=device,
                              threshold=threshold)
        console.print_json(json.dumps({k: result.get(k) for k in
                                       ("split", "n_scans", "auc", "auc_ci", "threshold")}))
