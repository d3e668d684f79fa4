"""Local weight files: loading, input-channel adaptation, head handling and freezing.

Nothing here downloads: a weight file is a local path, read with safetensors or with
``torch.load(weights_only=True)`` (no arbitrary unpickling). Builders of the zoo construct their
networks with ``pretrained=False`` / ``weights=None`` and then call :func:`load_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

#: suffixes read with safetensors; anything else goes through torch.load(weights_only=True)
SAFETENSORS_SUFFIXES = (".safetensors",)
#: keys under which training checkpoints commonly nest the state dict
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file, on the CPU.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` file, or a ``torch.save`` file (``.pt``, ``.pth``, ``.bin``) holding a
        state dict, possibly nested under ``state_dict`` / ``model``. A ``module.`` prefix (from
        DistributedDataParallel) is removed.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file does not hold a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for _ in range(2):
        if isinstance(state, Mapping):
            nested = [k for k in _NESTED_KEYS if isinstance(state.get(k), Mapping)]
            if nested and not any(isinstance(v, torch.Tensor) for v in state.values()):
                state = state[nested[0]]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"weights file {path} does not hold a state dict (names -> tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-layer conv weight ``(O, I, k...)`` to ``in_channels`` input channels.

    One channel: the sum over the source channels (a grey image feeds every colour channel).
    More channels: the source channels repeated cyclically and scaled by ``I / in_channels``
    (as timm does); the response to a constant image is unchanged when ``in_channels`` is a
    multiple of ``I``.
    """
    source = weight.shape[1]
    if in_channels == source:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_channels / source)
    tiled = weight.repeat(1, reps, *([1] * (weight.dim() - 2)))[:, :in_channels]
    return tiled * (source / in_channels)


def load_weights(
    model: nn.Module,
    path: str | Path | Mapping[str, torch.Tensor],
    *,
    head_prefixes: Iterable[str] = (),
    input_conv: str | None = None,
) -> list[str]:
    """Load a local weight file into ``model``.

    Names must match (missing or unexpected keys raise). Shapes must match too, except for
    the input convolution ``input_conv`` (adapted to the model's input channels with
    :func:`adapt_input_conv`) and keys under ``head_prefixes`` (the classifier, left at its
    initialization when the number of classes differs, e.g. ImageNet weights for a 1-logit model).

    Parameters
    ----------
    model : nn.Module
        The network, already built with its final input channels and classes.
    path : str, Path or mapping
        Local weight file (see :func:`load_state_dict_file`), or a state dict already loaded.
    head_prefixes : iterable of str
        Name prefixes of the classifier head, e.g. ``("fc.",)``.
    input_conv : str, optional
        Name of the first convolution's weight, e.g. ``"conv1.weight"``.

    Returns
    -------
    list of str
        The keys left at their initialization because their shapes differ (head keys).

    Raises
    ------
    ValueError
        Missing or unexpected keys, or a shape mismatch outside the head and input conv.
    """
    state = dict(path) if isinstance(path, Mapping) else load_state_dict_file(path)
    if isinstance(path, Mapping):
        path = "<state dict>"
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"weights file {path} does not match the model: missing keys {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{'...' if len(unexpected) > 8 else ''}"
        )
    heads = tuple(head_prefixes)
    kept: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, value in state.items():
        target = own[key]
        if value.shape == target.shape:
            kept[key] = value
        elif (
            key == input_conv and value.dim() == target.dim() and value.shape[0] == target.shape[0]
        ):
            kept[key] = adapt_input_conv(value, target.shape[1])
        elif heads and key.startswith(heads):
            skipped.append(key)
        else:
            raise ValueError(
                f"weights file {path}: {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(target.shape)}"
            )
    model.load_state_dict(kept, strict=False)
    return skipped


def freeze_backbone(model: nn.Module, head_prefixes: Iterable[str]) -> None:
    """Leave only the parameters under ``head_prefixes`` trainable (``requires_grad``).

    This is the first phase of the one-cycle transfer-learning recipe; call :func:`unfreeze`
    for the second. Raises ValueError if no parameter matches the head prefixes.
    """
    heads = tuple(head_prefixes)
    n_head = 0
    for name, p in model.named_parameters():
        is_head = name.startswith(heads)
        p.requires_grad_(is_head)
        n_head += is_head
    if n_head == 0:
        raise ValueError(f"no parameter of the model starts with the head prefixes {heads}")


def unfreeze(model: nn.Module) -> None:
    """Make every parameter of ``model`` trainable again."""
    for p in model.parameters():
        p.requires_grad_(True)
