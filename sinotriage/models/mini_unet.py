"""The mini U-Net: the sinogram-domain classifier of the Stanford sinogram project.

Ronneberger's U-Net with its channel counts divided by 4, instance normalization after every
convolution, and a classification head (an extra conv block and global average pooling to class
logits) instead of the per-pixel 1x1 convolution; 2D for one sinogram slice ``(B, C, V, Cdet)``
and 3D for a stack of slices ``(B, C, D, V, Cdet)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sinotriage.models._registry import register

#: the Stanford report (stanford-sinogram-unet-deit), section 3.1 / 3.3
PAPER = (
    "Stanford CS231n report: mini U-Net on raw SinoCT sinograms (Ronneberger et al. 2015, "
    "channels / 4, instance norm)"
)

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_UPCONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _conv_norm_relu(c_in: int, c_out: int, dims: int) -> list[nn.Module]:
    return [
        _CONV[dims](c_in, c_out, kernel_size=3, padding=1),
        _NORM[dims](c_out, affine=True),
        nn.ReLU(inplace=True),
    ]


def _norm_relu(norm: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """``relu(norm(y))`` for an affine instance norm without running statistics: the same
    ``batch_norm`` call as ``torch.instance_norm`` (bit-identical), with the in-place ReLU applied
    to the norm's own output rather than to a view of it, which spares autograd the two
    feature-map-sized copies (``CopySlices``) that an in-place op on a view costs in backward."""
    b, c = y.shape[:2]
    out = F.batch_norm(
        y.reshape(1, b * c, *y.shape[2:]),
        None,
        None,
        norm.weight.repeat(b),
        norm.bias.repeat(b),
        True,
        0.0,
        norm.eps,
    )
    return out.relu_().view(y.shape)


def _unit(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One (3x3 conv, instance norm, ReLU) unit."""
    return _norm_relu(norm, conv(x))


def _fit(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """The up-convolution's output cropped to the skip's spatial size (a view).

    The max-pools round up (``ceil_mode``), so along an axis of odd size ``n`` the level below
    has ``(n + 1) / 2`` elements and the 2x up-convolution gives ``n + 1``: its last element,
    which stands for the pool window that hung over the edge, is dropped. Along even axes, and
    whenever the sizes already agree, nothing is cropped (``up`` itself is returned)."""
    size = skip.shape[2:]
    if up.shape[2:] == size:
        return up
    return up[(..., *(slice(0, n) for n in size))]


def _unit_skip(
    conv: nn.Module, norm: nn.Module, skip: torch.Tensor, up: torch.Tensor
) -> torch.Tensor:
    """The unit over ``cat([skip, up])`` without the concatenation: the convolution split over
    its input channels into two convolutions whose outputs are summed (same weights)."""
    cs = skip.shape[1]
    y = conv._conv_forward(skip, conv.weight[:, :cs], conv.bias)
    y += conv._conv_forward(up.to(skip.dtype), conv.weight[:, cs:], None)
    return _norm_relu(norm, y)


class DoubleConv(nn.Sequential):
    """Two (3x3 conv, instance norm, ReLU) units: one U-Net block (padded convolutions)."""

    def __init__(self, c_in: int, c_out: int, dims: int) -> None:
        super().__init__(*_conv_norm_relu(c_in, c_out, dims), *_conv_norm_relu(c_out, c_out, dims))


class UpBlock(nn.Module):
    """Up-convolution (2x2 transposed conv, stride 2), cropped to the skip's size where the
    level above had an odd size (:func:`_fit`), skip concatenation, then a DoubleConv."""

    def __init__(self, c_in: int, c_out: int, dims: int) -> None:
        super().__init__()
        self.up = _UPCONV[dims](c_in, c_out, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * c_out, c_out, dims)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = _fit(self.up(x), skip)
        return self.conv(torch.cat([skip, up.to(skip.dtype)], dim=1))


class MiniUNet(nn.Module):
    """Mini U-Net classifier (Ronneberger's U-Net / 4) for sinograms or images.

    Four encoder blocks (two 3x3 conv + instance norm + ReLU, then 2x2 max-pool) with
    ``base, 2 base, 4 base, 8 base`` channels, a bottleneck of ``16 base`` channels, four
    decoder blocks (2x2 up-convolution, skip concatenation, two 3x3 conv + norm + ReLU), an extra
    conv block (3x3 conv + instance norm + ReLU, ``base`` channels), global average pooling and a
    linear layer to ``num_classes`` logits. ``base=16`` gives Ronneberger's 64...1024 channels
    divided by 4 (16, 32, 64, 128, bottleneck 256), as in the Stanford report.

    Sizes are handled per level, so any input size works without padding it up front: each
    2x2 max-pool rounds up (``ceil_mode=True``: along an odd axis the last window holds one
    element, the same as zero-padding that axis by one before pooling, since the pooled maps
    come out of a ReLU), so a level of size ``n`` has ``ceil(n / 2)`` below it and the
    bottleneck ``ceil(n / 16)``; in each decoder block the up-convolution's output (``2 ceil(n /
    2)``, one more than the skip along odd axes) is cropped to the skip's size before the
    concatenation. A SinoCT slice of 984 x 888 thus runs at 984 x 888 (levels 492 x 444,
    246 x 222, 123 x 111, bottleneck 62 x 56) and a stack of 40 of them at 40 x 984 x 888
    (bottleneck 3 x 62 x 56). The one pad left: when every axis is 16 or smaller the bottleneck
    would hold a single element per channel, which instance norm cannot normalize, and the
    largest axis (the last of equals) is zero-padded on its far side to 17, giving a bottleneck
    of two elements along it (``padded_shape`` gives the size the network runs at).
    Convolutions are padded ("same"), unlike the original's valid convolutions, so skips need
    no cropping.

    Parameter counts with ``in_channels=1, num_classes=1`` (a test recomputes them):

    - base_channels=16, spatial_dims=2: 1,946,113 parameters
    - base_channels=16, spatial_dims=3: 5,654,817 parameters
    - base_channels=8, spatial_dims=2: 487,745 parameters (``mini_unet_slim``)
    - base_channels=8, spatial_dims=3: 1,414,993 parameters (``mini_unet_slim``)

    The Stanford report states 5,648,305 for its 3D model (its head and norms differ slightly).

    Parameters
    ----------
    in_channels : int
        Input channels (1 for a sinogram).
    num_classes : int
        Output logits.
    spatial_dims : int
        2: input ``(B, C, V, Cdet)``; 3: input ``(B, C, D, V, Cdet)`` (a stack of slices).
    base_channels : int
        Channels of the first block (16 = U-Net / 4; 8 = the slim variant).
    checkpointing : bool
        Recompute activations in the backward pass (``torch.utils.checkpoint``, non-reentrant)
        instead of storing them: same outputs and gradients (to float rounding), less memory,
        more compute. Two levels: each block keeps only its inputs, and each (conv, norm, ReLU)
        unit inside a block is checkpointed again; the decoder's convolution over the skip
        concatenation runs as two summed convolutions, so no concatenated tensor exists (see
        ``_forward_checkpointed``). Works under ``torch.autocast`` (bf16 on CPU and CUDA, fp16
        on CUDA). Full SinoCT stack, bf16, estimated CUDA peak (docs/models.md, an estimate,
        not a measurement): 7.3 GiB (7.84e9 B; 21.2 GiB without checkpointing), against
        16.2 GiB estimated (17.6 GiB measured on an H100) for the older model with one
        checkpoint per block and the input padded to 48 x 992 x 896; the estimate of that
        model's checkpointed steps ran about one full-resolution map (now 1.04 GiB) low, so
        expect about 8.35 GiB on a GPU (unmeasured). About 1.56 times the floating-point
        operations of a step without checkpointing (1.33 with one checkpoint per block).
    offload : bool
        Keep the tensors saved for the backward pass in (pinned) host memory instead of device
        memory (``torch.autograd.graph.save_on_cpu``): same outputs and gradients, less device
        memory, at the cost of host-device copies. Measured on a full SinoCT stack with bf16
        autocast (H100, docs/models.md, the older model with the input padded to
        48 x 992 x 896): 11.2 GiB with offload, 25.9 GiB without. Tensors kept by checkpoints
        (block and unit inputs) are not offloaded.

    Returns
    -------
    forward(x) : torch.Tensor
        Logits ``(B, num_classes)``, float32 or the autocast dtype.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        spatial_dims: int = 2,
        base_channels: int = 16,
        checkpointing: bool = False,
        offload: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be one of [2, 3], got {spatial_dims!r}")
        if (
            isinstance(base_channels, bool)
            or not isinstance(base_channels, int)
            or base_channels < 1
        ):
            raise ValueError(f"base_channels must be a positive int, got {base_channels!r}")
        self.spatial_dims = spatial_dims
        self.checkpointing = bool(checkpointing)
        self.offload = bool(offload)
        ch = [base_channels * 2**i for i in range(5)]
        self.encoders = nn.ModuleList()
        c_prev = in_channels
        for c in ch[:4]:
            self.encoders.append(DoubleConv(c_prev, c, spatial_dims))
            c_prev = c
        self.pool = _POOL[spatial_dims](kernel_size=2, stride=2, ceil_mode=True)
        self.bottleneck = DoubleConv(ch[3], ch[4], spatial_dims)
        self.decoders = nn.ModuleList(
            UpBlock(ch[i + 1], ch[i], spatial_dims) for i in reversed(range(4))
        )
        self.head_conv = nn.Sequential(*_conv_norm_relu(ch[0], ch[0], spatial_dims))
        self.fc = nn.Linear(ch[0], num_classes)

    #: four 2x2 max-pools rounding up: the bottleneck has ``ceil(n / 16)`` elements along an
    #: axis of ``n`` (the input is not padded to a multiple of it, see ``padded_shape``)
    downsampling = 16

    @classmethod
    def padded_shape(cls, spatial: tuple[int, ...] | list[int] | torch.Size) -> tuple[int, ...]:
        """The spatial size the network runs at for an input of spatial size ``spatial``: the
        input's own, except when every axis is ``downsampling`` (16) or smaller, where the
        bottleneck would hold one element per channel (instance norm cannot normalize a single
        element) and the largest axis (the last of equals) is padded to 17."""
        size = [int(n) for n in spatial]
        if size and all(n <= cls.downsampling for n in size):
            i = max(reversed(range(len(size))), key=lambda j: size[j])
            size[i] = cls.downsampling + 1
        return tuple(size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` zero-padded on the far side to :meth:`padded_shape` (``x`` itself almost
        always)."""
        target = self.padded_shape(x.shape[2:])
        pad: list[int] = []
        for size, want in zip(reversed(x.shape[2:]), reversed(target), strict=True):
            pad += [0, want - size]
        return F.pad(x, pad) if any(pad) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"x must have {self.spatial_dims + 2} dims (B, C, {'D, ' * (self.spatial_dims - 2)}"
                f"H, W) for spatial_dims={self.spatial_dims}, got shape {tuple(x.shape)}"
            )
        if self.offload and torch.is_grad_enabled():
            with torch.autograd.graph.save_on_cpu(pin_memory=x.is_cuda):
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return self._forward_checkpointed(x)
        x = self._pad(x)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for dec, skip in zip(self.decoders, reversed(skips), strict=True):
            x = dec(x, skip)
        x = self.head_conv(x)
        x = x.mean(dim=tuple(range(2, x.dim())))
        return self.fc(x)

    # gradient checkpointing -------------------------------------------------------------------
    #
    # Two levels of non-reentrant checkpoints: every block (encoder block with its max-pool,
    # bottleneck, decoder block with its up-convolution, head) keeps only its inputs for the
    # backward pass, and inside a block every (conv, norm, ReLU) unit is checkpointed again, so
    # recomputing a block keeps only the units' inputs and the backward pass of a unit holds
    # that unit's activations alone. The decoder's convolution over ``cat([skip, up])`` runs as
    # two convolutions summed (no concatenated tensor), the up-convolution is recomputed inside
    # the decoder's first unit (its output is not kept while the second unit runs backward),
    # the max-pool's int64 indices are recomputed rather than kept, and each ReLU runs in place
    # on the norm's own output. Same weights and the same operations as the plain forward up to
    # the order of one sum: outputs and gradients agree to float rounding.

    @staticmethod
    def _ckpt(fn: Callable[..., Any], *args: Any) -> Any:
        return checkpoint(fn, *args, use_reentrant=False)

    def _ckpt_units(self, seq: nn.Module, x: torch.Tensor) -> torch.Tensor:
        for i in range(0, len(seq), 3):  # (conv, norm, ReLU) triples
            x = self._ckpt(_unit, seq[i], seq[i + 1], x)
        return x

    def _ckpt_encoder(self, enc: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self._ckpt_units(enc, x)
        return skip, self.pool(skip)

    def _ckpt_decoder(self, dec: UpBlock, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        conv = dec.conv

        def first(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            return _unit_skip(conv[0], conv[1], skip, _fit(dec.up(x), skip))

        y = self._ckpt(first, x, skip)
        return self._ckpt(_unit, conv[3], conv[4], y)

    def _forward_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pad(x)
        skips = []
        for enc in self.encoders:
            skip, x = self._ckpt(self._ckpt_encoder, enc, x)
            skips.append(skip)
        x = self._ckpt(self._ckpt_units, self.bottleneck, x)
        for dec, skip in zip(self.decoders, reversed(skips), strict=True):
            x = self._ckpt(self._ckpt_decoder, dec, x, skip)
        x = self._ckpt(_unit, self.head_conv[0], self.head_conv[1], x)
        x = x.mean(dim=tuple(range(2, x.dim())))
        return self.fc(x)


_SPEC = dict(
    spatial_dims=(2, 3),
    domain="sinogram",
    paper=PAPER,
    output_shape="(B, num_classes)",
    input_shape="(B, C, V, Cdet) or (B, C, D, V, Cdet)",
)


# the class is the builder: its signature is the one the registry checks options against, and
# the slim variant differs only by the registry's default
register(
    "mini_unet",
    description="U-Net / 4 (16-256 channels), instance norm, GAP head; checkpointing option",
    **_SPEC,
)(MiniUNet)
register(
    "mini_unet_slim",
    description="mini_unet at half width (base 8 channels) for CPU budgets",
    defaults={"base_channels": 8},
    **_SPEC,
)(MiniUNet)
