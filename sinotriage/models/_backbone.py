"""Shared steps of the classifier builders: local weights, freezing, and head removal.

Every classifier of the zoo carries ``head_name`` (the dotted name of its final linear layer)
so that the sequence models (``cnn_lstm``, ``slice_fusion``, ``radnet``'s peers) can reuse any
2D classifier as a per-slice feature extractor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sinotriage.models._weights import freeze_backbone as _freeze
from sinotriage.models._weights import load_weights


def finish(
    model: nn.Module,
    *,
    head_name: str,
    input_conv: str | None,
    pretrained_path: str | Path | Mapping[str, torch.Tensor] | None,
    freeze_backbone: bool,
    extra_head_prefixes: tuple[str, ...] = (),
) -> nn.Module:
    """Tag the head, load local weights if given, freeze the backbone if asked.

    ``model.head_name`` is set to ``head_name``; ``model.head_prefixes`` to the parameter-name
    prefixes of the head (used by :func:`~sinotriage.models.load_weights` and freezing).
    """
    prefixes = (f"{head_name}.", *extra_head_prefixes)
    model.head_name = head_name
    model.head_prefixes = prefixes
    if pretrained_path is not None:
        load_weights(model, pretrained_path, head_prefixes=prefixes, input_conv=input_conv)
    if freeze_backbone:
        _freeze(model, prefixes)
    return model


def _get(model: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        model = getattr(model, part) if not part.isdigit() else model[int(part)]
    return model


def _set(model: nn.Module, dotted: str, value: nn.Module) -> None:
    parent, _, last = dotted.rpartition(".")
    owner = _get(model, parent) if parent else model
    if last.isdigit():
        owner[int(last)] = value
    else:
        setattr(owner, last, value)


def strip_head(model: nn.Module) -> int:
    """Replace a zoo classifier's final linear layer by identity, in place.

    Returns the feature dimension the model now outputs, ``(N, features)``.

    Raises
    ------
    ValueError
        If the model has no ``head_name`` (it was not built by the zoo) or its head is not
        a linear layer.
    """
    head_name = getattr(model, "head_name", None)
    if head_name is None:
        raise ValueError("backbone has no head_name: build it with sinotriage.models.create")
    if hasattr(model, "reset_classifier") and hasattr(model, "num_features"):  # timm
        model.reset_classifier(0)
        return int(model.num_features)
    head = _get(model, head_name)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"backbone head {head_name!r} is {type(head).__name__}, not nn.Linear")
    _set(model, head_name, nn.Identity())
    return head.in_features
