"""Memory of training: the tensors autograd keeps for backward.

:func:`saved_activation_bytes`: bytes of the tensors saved for the backward pass in one forward
(exact, the same on every device). The device-free estimate of a whole step's peak CUDA memory
lives with the benchmarks (``benchmarks/memory_estimate.py``): it changes process-wide torch
state while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["saved_activation_bytes"]


def saved_activation_bytes(
    model: torch.nn.Module, *inputs: Any, loss_fn: Callable[[Any], torch.Tensor] | None = None
) -> int:
    """Bytes of the tensors autograd saves for backward during ``model(*inputs)``.

    Counted with :func:`torch.autograd.graph.saved_tensors_hooks` around one forward pass: every
    tensor packed for the backward pass is counted once per underlying storage (views of one
    buffer are not counted twice), and the model's parameters and buffers are left out, so the
    figure is the activation memory alone, the same on CPU and CUDA. Tensors saved inside a
    non-reentrant :func:`torch.utils.checkpoint.checkpoint` region are not kept (they are
    recomputed), so gradient checkpointing shows up directly in this figure.

    Parameters
    ----------
    model : torch.nn.Module
    *inputs
        Arguments of the forward pass.
    loss_fn : callable, optional
        Applied to the output inside the counted region (e.g. a loss), default none.

    Returns
    -------
    int
        Bytes.
    """
    own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in own and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*inputs)
        if loss_fn is not None:
            loss_fn(out)
    return int(sum(seen.values()))
