"""A learnable CT window: K channels, each a level and a width in Hounsfield units.

:class:`LearnableWindow` maps HU images ``(B, C, H, W)`` to ``(B, C * K, H, W)`` in ``(0, 1)``
through ``K`` sigmoid windows, the bounded smooth response of the window-setting-optimization
layer of Lee et al. 2018 ("Practical window setting optimization for medical image deep
learning"). Window ``k`` is::

    y = sigmoid(2 s (hu - L_k) / W_k),      s = ln(99)

so it runs from 0.01 at ``L - W/2`` to 0.99 at ``L + W/2`` and is 0.5 at the level. It is the
smooth equivalent of the clinical window ``t = window(hu, level=L, width=W)``
(:func:`sinotriage.windowing.window`, a clipped linear ramp): inside the window,
``t = 1/2 + logit(y) / (2 s)`` exactly. Unlike the clipped ramp, its gradient is nonzero
outside the window too, so a window that starts in the wrong place can still move. The
gradient is computed as ``sigmoid(z) sigmoid(-z)`` rather than autograd's ``y (1 - y)``, which
is exactly 0 in float32 once ``y`` rounds to 1 (``z > 17``); it decays as
``exp(-2 s |hu - L| / W)``, so a narrow window feels HU values a few widths away and a wide
start (e.g. level 0, width 2000 HU) feels the whole CT range. The sigmoid's argument is limited
to +-60 (output within 1e-26 of its bounds), which keeps float32 subnormals, slow on CPUs, out
of the image model.

The parameters are the levels ``L`` (HU) and the log-widths ``log W`` (W in HU), each with a
learning rate of its own (:meth:`LearnableWindow.param_groups`, used by the training engine):
a level moves a few HU per optimizer step and a width a few percent, whatever the network's
learning rate. Learned windows are read back in HU with :meth:`LearnableWindow.windows`.

:class:`WindowedModel` puts the layer in front of any image model;
``sinotriage.models.create(name, window=...)`` builds one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sinotriage.windowing import WINDOWS

__all__ = ["LearnableWindow", "WindowedModel", "SLOPE", "window_layer"]

#: ``s = ln(99)``: the sigmoid runs from 0.01 to 0.99 across the window's width
SLOPE = math.log(99.0)

#: default learning rates: HU per step for a level, log-units per step for a width
LEVEL_LR, LOG_WIDTH_LR = 3.0, 0.03

WindowSpec = str | tuple[float, float] | Sequence[float]


def _resolve(spec: WindowSpec) -> tuple[float, float]:
    if isinstance(spec, str):
        if spec not in WINDOWS:
            raise ValueError(f"window must be one of {tuple(WINDOWS)} or a (level, width) pair in "
                             f"HU, got {spec!r}")
        return WINDOWS[spec]
    try:
        level, width = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise ValueError(f"window must be a name or a (level, width) pair in HU, got {spec!r}"
                         ) from None
    if not (math.isfinite(level) and math.isfinite(width)) or width <= 0:
        raise ValueError(f"window width must be > 0 and level finite, got level={level}, "
                         f"width={width}")
    return level, width


#: the sigmoid's argument is limited to +-Z_MAX: its output stays 1e-26 or more from 0 and 1,
#: out of float32's subnormal range, where CPU arithmetic in the next layers is many times slower
Z_MAX = 60.0


class _Sigmoid(torch.autograd.Function):
    """``sigmoid(z)`` whose backward is ``sigmoid(z) sigmoid(-z)`` (no float32 cancellation);
    ``z`` limited to ``+-Z_MAX``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        z = z.clamp(-Z_MAX, Z_MAX)
        ctx.save_for_backward(z)
        return torch.sigmoid(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return grad * torch.sigmoid(z) * torch.sigmoid(-z)


class LearnableWindow(nn.Module):
    """K learnable sigmoid windows on HU images (see the module docstring).

    Parameters
    ----------
    init : sequence of (str or (level, width))
        One entry per output window: a name of :data:`sinotriage.windowing.WINDOWS`
        (``"brain"`` 40/80, ``"subdural"`` 75/215, ``"bone"`` 600/2800, ...) or a level and
        width in HU.
    input_scale : float
        HU per input unit: 1 for HU input, 1000 for the engine's ``HU / 1000`` reconstructions.
    level_lr, log_width_lr : float
        Peak learning rates of the levels (HU per Adam step) and log-widths.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C * K, *spatial)``; output channel ``c * K + k`` is window ``k`` of
    input channel ``c``.
    """

    def __init__(self, init: Sequence[WindowSpec] = ("brain", "subdural", "bone"), *,
                 input_scale: float = 1.0, level_lr: float = LEVEL_LR,
                 log_width_lr: float = LOG_WIDTH_LR) -> None:
        super().__init__()
        if isinstance(init, str):
            init = (init,)
        pairs = [_resolve(s) for s in init]
        if not pairs:
            raise ValueError("init must list at least one window")
        if not input_scale > 0 or not level_lr > 0 or not log_width_lr > 0:
            raise ValueError(f"input_scale, level_lr and log_width_lr must be > 0, got "
                             f"{input_scale}, {level_lr}, {log_width_lr}")
        self.level = nn.Parameter(torch.tensor([p[0] for p in pairs], dtype=torch.float32))
        self.log_width = nn.Parameter(torch.tensor([math.log(p[1]) for p in pairs],
                                                   dtype=torch.float32))
        self.input_scale = float(input_scale)
        self.level_lr, self.log_width_lr = float(level_lr), float(log_width_lr)
        self.initial = tuple(pairs)

    @property
    def k(self) -> int:
        """Number of windows K."""
        return int(self.level.numel())

    def windows(self) -> list[tuple[float, float]]:
        """The current ``(level, width)`` of each window, in HU."""
        lv = self.level.detach().cpu().tolist()
        wd = self.log_width.detach().exp().cpu().tolist()
        return [(float(a), float(b)) for a, b in zip(lv, wd, strict=True)]

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups with the window's own learning rates (no weight decay)."""
        return [{"params": [self.level], "lr": self.level_lr, "weight_decay": 0.0},
                {"params": [self.log_width], "lr": self.log_width_lr, "weight_decay": 0.0}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3:
            raise ValueError(f"LearnableWindow expects (B, C, *spatial), got shape {tuple(x.shape)}")
        hu = x.float() * self.input_scale
        shape = (1, 1, self.k) + (1,) * (x.ndim - 2)
        level = self.level.view(shape)
        width = self.log_width.exp().view(shape)
        y = _Sigmoid.apply((2.0 * SLOPE) * (hu.unsqueeze(2) - level) / width)  # (B, C, K, ...)
        return y.flatten(1, 2).contiguous()

    def extra_repr(self) -> str:
        text = ", ".join(f"{lv:.0f}/{wd:.0f}" for lv, wd in self.windows())
        return f"windows(level/width HU)=[{text}], input_scale={self.input_scale:g}"


class WindowedModel(nn.Module):
    """A :class:`LearnableWindow` in front of an image model: ``model(window(x))``.

    The output is the image model's (logits, or its named tuple).
    """

    def __init__(self, window: LearnableWindow, model: nn.Module) -> None:
        super().__init__()
        self.window, self.model = window, model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(self.window(x))


def window_layer(spec: Any) -> LearnableWindow:
    """A :class:`LearnableWindow` from the ``window=`` option of ``models.create``.

    ``spec`` is a window name, a list of names or ``(level, width)`` pairs, a mapping of
    :class:`LearnableWindow` arguments (``{"init": [...], "input_scale": 1000}``) or a layer.
    """
    if isinstance(spec, LearnableWindow):
        return spec
    if isinstance(spec, Mapping):
        options = dict(spec)
        return LearnableWindow(options.pop("init", ("brain", "subdural", "bone")), **options)
    if isinstance(spec, str):
        return LearnableWindow((spec,))
    if isinstance(spec, Sequence) and len(spec) == 2 and all(
            isinstance(v, int | float) for v in spec):
        return LearnableWindow((tuple(spec),))
    return LearnableWindow(spec)
