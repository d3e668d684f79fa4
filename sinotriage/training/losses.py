"""Training losses: BCE, the RSNA weighted multi-label log loss, radnet's auxiliary loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RSNA_WEIGHTS", "bce_loss", "rsna_weighted_loss", "radnet_aux_loss", "LOSSES"]

#: RSNA 2019 label weights, order any, epidural, intraparenchymal, intraventricular,
#: subarachnoid, subdural
RSNA_WEIGHTS: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
LOSSES: tuple[str, ...] = ("bce", "rsna")


def _shapes(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != target.shape:
        if logits.ndim == 2 and logits.shape[1] == 1 and target.ndim == 1:
            logits = logits[:, 0]
        else:
            raise ValueError(f"logits shape {tuple(logits.shape)} does not match target shape "
                             f"{tuple(target.shape)}")
    return logits.float(), target.float()


def bce_loss(logits: torch.Tensor, target: torch.Tensor,
             pos_weight: float | None = None) -> torch.Tensor:
    """Mean binary cross-entropy on logits.

    Parameters
    ----------
    logits : torch.Tensor, shape (B,), (B, 1) or (B, L)
    target : torch.Tensor, same shape (or (B,) for (B, 1) logits), values in [0, 1]
        Soft targets (CutMix) are allowed.
    pos_weight : float, optional
        Weight of the positive term.
    """
    logits, target = _shapes(logits, target)
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)


def rsna_weighted_loss(logits: torch.Tensor, target: torch.Tensor,
                       weights: tuple[float, ...] = RSNA_WEIGHTS) -> torch.Tensor:
    """RSNA 2019 weighted multi-label log loss (the competition metric), on logits.

    ``loss = mean_i sum_l w_l * bce(y_il, p_il) / sum_l w_l`` with ``w = (2, 1, 1, 1, 1, 1)``.

    Parameters
    ----------
    logits, target : torch.Tensor, shape (B, 6)
    """
    logits, target = _shapes(logits, target)
    if logits.ndim != 2 or logits.shape[1] != len(weights):
        raise ValueError(f"rsna loss needs logits of shape (B, {len(weights)}), "
                         f"got {tuple(logits.shape)}")
    w = torch.tensor(weights, dtype=logits.dtype, device=logits.device)
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((per * w).sum(dim=1) / w.sum()).mean()


def radnet_aux_loss(aux: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """radnet's auxiliary loss: BCE of its per-slice (or per-pixel) auxiliary logits.

    ``aux`` and ``target`` of the same shape, target in [0, 1] (slice labels or a
    hemorrhage mask resized to ``aux``'s spatial size by nearest-neighbour).
    """
    aux = aux.float()
    target = target.float()
    if aux.shape != target.shape:
        if aux.ndim >= 3 and target.ndim == aux.ndim:
            target = F.interpolate(target, size=aux.shape[2:], mode="nearest")
        else:
            raise ValueError(f"aux shape {tuple(aux.shape)} does not match target "
                             f"{tuple(target.shape)}")
    return F.binary_cross_entropy_with_logits(aux, target)
