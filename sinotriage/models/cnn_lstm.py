"""CNN-LSTM (Nguyen et al. 2020): a 2D backbone per slice, two bidirectional LSTM layers, logits.

Input ``(B, D, C, H, W)``: D slices of C windowed channels (brain / subdural / bone in the
paper); optional ``mask (B, D)`` bool, True for real slices, padding at the end of each
sequence (variable slice counts). Output ``(B, D, num_classes)`` per-slice logits; logits at
padded positions are 0 and must be ignored by the loss (use the same mask).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sinotriage.models._backbone import strip_head
from sinotriage.models._registry import register

PAPER = "Nguyen et al. 2020: A CNN-LSTM architecture for detection of ICH on CT scans"


def sequence_lengths(mask: torch.Tensor | None, batch: int, depth: int) -> torch.Tensor:
    """Lengths ``(B,)`` of the valid prefix of each sequence; checks the mask's layout.

    Raises
    ------
    ValueError
        If ``mask`` is not ``(B, D)``, a sequence is empty, or a True follows a False (padding
        must be at the end).
    """
    if mask is None:
        return torch.full((batch,), depth, dtype=torch.long)
    if mask.shape != (batch, depth):
        raise ValueError(f"mask must have shape (B, D) = {(batch, depth)}, got {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    lengths = mask.sum(dim=1)
    prefix = torch.arange(depth, device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise ValueError("mask must be True for a prefix of each sequence (padding at the end)")
    if bool((lengths == 0).any()):
        raise ValueError("mask leaves a sequence without any slice")
    return lengths.cpu()


def per_slice_features(
    backbone: nn.Module, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Run ``backbone`` on the valid slices of ``x (B, D, C, H, W)``; zeros at padded ones.

    Returns ``(B, D, F)``.
    """
    b, d = x.shape[:2]
    flat = x.reshape(b * d, *x.shape[2:])
    if mask is None:
        return backbone(flat).reshape(b, d, -1)
    keep = mask.reshape(-1).to(torch.bool)
    feats = backbone(flat[keep])
    out = feats.new_zeros(b * d, feats.shape[-1])
    out[keep] = feats
    return out.reshape(b, d, -1)


def build_backbone(
    name: str,
    in_channels: int,
    pretrained_path: str | Path | None = None,
    backbone_kwargs: dict | None = None,
    num_classes: int = 1,
) -> nn.Module:
    """Create the zoo's 2D per-slice classifier ``name`` to serve as a backbone.

    Raises
    ------
    ValueError
        If ``name`` is not a 2D per-slice classifier (e.g. a sequence model).
    """
    from sinotriage.models._registry import create, spec

    s = spec(name)
    if s.domain in ("slice sequence", "descriptors") or 2 not in s.spatial_dims:
        raise ValueError(f"backbone must be a 2D per-slice classifier of the zoo, got {name!r}")
    kwargs = dict(backbone_kwargs or {})
    if pretrained_path is not None:
        kwargs["pretrained_path"] = pretrained_path
    return create(name, in_channels=in_channels, num_classes=num_classes, spatial_dims=2, **kwargs)


class BiLSTMHead(nn.Module):
    """Bidirectional LSTM layers over a padded slice sequence, then a linear layer per slice."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            in_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        d = feats.shape[1]
        packed = pack_padded_sequence(
            feats.float(), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=d)
        return self.fc(out)


class CNNLSTM(nn.Module):
    """Per-slice CNN features linked across slices by two bidirectional LSTM layers.

    Parameters
    ----------
    backbone : nn.Module
        A zoo classifier (``create(name)``); its head is removed in place.
    num_classes : int
        Logits per slice (6: any + 5 subtypes).
    hidden : int
        LSTM hidden units per direction (512 in the paper).
    layers : int
        LSTM layers (2 in the paper).
    dropout : float
        Dropout between LSTM layers.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 6,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = strip_head(backbone)
        self.backbone = backbone
        self.head = BiLSTMHead(features, num_classes, hidden, layers, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-slice logits ``(B, D, num_classes)`` of ``x (B, D, C, H, W)``."""
        if x.dim() != 5:
            raise ValueError(f"x must be (B, D, C, H, W), got shape {tuple(x.shape)}")
        b, d = x.shape[:2]
        lengths = sequence_lengths(mask, b, d)
        feats = per_slice_features(self.backbone, x, mask)
        logits = self.head(feats, lengths)
        if mask is not None:
            logits = logits * mask[..., None].to(logits.dtype)
        return logits


@register(
    "cnn_lstm",
    spatial_dims=(2,),
    domain="slice sequence",
    input_shape="(B, D, C, H, W) [+ mask (B, D)]",
    output_shape="(B, D, num_classes)",
    paper=PAPER,
    description="2D zoo backbone per slice + 2 BiLSTM layers (512) + linear, per-slice logits",
)
def cnn_lstm(
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    backbone: str = "resnet50",
    hidden: int = 512,
    layers: int = 2,
    dropout: float = 0.0,
    pretrained_path: str | Path | None = None,
    freeze_backbone: bool = False,
    backbone_kwargs: dict | None = None,
) -> CNNLSTM:
    """Build a :class:`CNNLSTM` on the zoo's 2D model ``backbone``.

    ``pretrained_path`` and ``freeze_backbone`` go to the backbone (local ImageNet weights; the
    backbone's own head is removed after loading). ``backbone_kwargs`` are further options for
    the backbone, e.g. ``{"img_size": 224}`` for a DeiT.
    """
    net = build_backbone(backbone, in_channels, pretrained_path, backbone_kwargs)
    model = CNNLSTM(net, num_classes=num_classes, hidden=hidden, layers=layers, dropout=dropout)
    if freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    model.head_prefixes = ("head.",)
    return model
