"""Checkpoints as safetensors (tensors) plus JSON (config, metrics, optimizer settings).

``<stem>.safetensors`` holds ``model.<name>`` tensors and, for resumable checkpoints,
``optim.<param index>.<state key>`` tensors; ``<stem>.json`` holds ``config``, ``metrics``,
``state`` (epoch, step, early-stopping counters) and ``optimizer`` (param groups and non-tensor
state). Both files are written to temporary names and renamed, the JSON last, so a checkpoint is
complete when its JSON exists. Loading uses :func:`safetensors.torch.load_file` and
:func:`json.loads` only: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from sinotriage.errors import InputError
from sinotriage.io.files import atomic_write_bytes, atomic_write_text

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_paths"]


class Checkpoint(dict):
    """A loaded checkpoint: keys ``model`` (state dict), ``optim`` (tensor state), ``meta``."""


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(stem.safetensors, stem.json)`` for a path with either suffix or none."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _jsonable(value: Any) -> Any:
    """Tensors to numbers and lists. Unlike :func:`sinotriage.io.files.json_safe` it keeps
    infinities and NaN (written as ``Infinity``/``NaN``, which :func:`json.loads` reads back), so
    resumed training state such as a best score of ``-inf`` survives a checkpoint."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module,
                    meta: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``model`` (and optionally ``optimizer``) weights and ``meta`` (JSON-able).

    Returns the path of the ``.safetensors`` file.
    """
    st_path, js_path = checkpoint_paths(path)
    module = model.module if hasattr(model, "module") else model
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    meta = dict(meta)
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, state in sd["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(idx), {})[key] = value
        meta["optimizer"] = {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}
    atomic_write_bytes(st_path, save(tensors))
    atomic_write_text(js_path, json.dumps(_jsonable(meta), indent=2, sort_keys=True))
    return st_path


def load_checkpoint(path: str | os.PathLike[str], device: str = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles).

    Raises
    ------
    FileNotFoundError
        The ``.safetensors`` or ``.json`` file is missing.
    ValueError
        The file is not a safetensors file (e.g. a pickle) or the JSON is malformed.
    """
    st_path, js_path = checkpoint_paths(path)
    for p in (st_path, js_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {str(p)!r} does not exist")
    try:
        tensors = load_file(str(st_path), device=device)
    except Exception as exc:  # safetensors raises its own error types on foreign formats
        raise InputError(f"checkpoint {st_path} is not a safetensors file "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                         "pickled checkpoints are refused") from None
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"checkpoint metadata {js_path} is not valid JSON: {exc}") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(model=model, optim=optim, meta=meta)


def optimizer_state(ckpt: Checkpoint) -> dict[str, Any]:
    """Rebuild ``optimizer.state_dict()`` from a loaded checkpoint."""
    opt_meta = ckpt["meta"].get("optimizer")
    if opt_meta is None:
        raise InputError("checkpoint holds no optimizer state (not a resumable checkpoint)")
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt["optim"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, scalars in opt_meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    return {"state": state, "param_groups": opt_meta["param_groups"]}
