"""The ``learned`` domain: a classifier with a differentiable FBP inside.

``learned_fbp`` takes the raw sinogram ``(B, 1, V, C)`` (line integrals) and runs

1. the fixed fan-to-parallel rebinning of :func:`sinotriage.operators.fbp` (no parameters),
2. a ramp filter with a learnable gain per frequency (:class:`LearnableFBP`), initialized at the
   ramp x Hann filter,
3. the fixed backprojection, as a sparse matrix built once for the geometry (the same bilinear
   pixel-driven backprojection as the operator's torch backend), and the conversion to HU,
4. a :class:`~sinotriage.models.learned_window.LearnableWindow` (K windows), then
5. any image model of the zoo,

The filter's gain trains in an optimizer group of its own (:meth:`LearnableFBP.param_groups`):
its own learning rate and no weight decay. The gain sets the reconstruction's scale, and 1 %
of gain at low frequencies moves soft tissue by about 10 HU, an eighth of the brain window:
weight decay pulling the gain toward zero, or the image model's learning rate, would shift the
HU scale under the windows while the image model learns.

Trained end to end: learning with a known operator (Maier et al. 2019, "Learning with known
operators reduces maximum error bounds") rather than asking a network to learn the
backprojection from a few thousand slices. Only the filter and the windows are learned in
front of the image model; the exact operator keeps the reconstruction physical at every view
count.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from sinotriage.geometry import FanBeamGeometry, Geometry, geometry_from_dict
from sinotriage.models._registry import create, register
from sinotriage.models.learned_window import LearnableWindow, window_layer
from sinotriage.operators._backends import get as _backend
from sinotriage.operators._fbp import _Rebin, _torch_rebin, check_fbp_geometry, fbp_layout
from sinotriage.operators._plan import Plan
from sinotriage.operators.filters import filter_response, padded_length
from sinotriage.operators.units import mu_to_hu
from sinotriage.vocabulary import MU_WATER

__all__ = ["FILTER_LR", "LearnableFBP", "LearnedDomainModel", "backprojection_matrix",
           "learned_parameters"]

#: default peak learning rate of the filter gain (gain units per Adam step; the gain is 1 at
#: zero frequency, so 1e-4 is at most about 0.1 HU of soft-tissue shift per step)
FILTER_LR = 1e-4


def backprojection_matrix(angles: np.ndarray, u0: float, du: float, m: int, n: int, d: float,
                          weight: float) -> torch.Tensor:
    """The pixel-driven parallel backprojection as a sparse ``(n*n, V*m)`` CSR matrix.

    Row ``r * n + c`` is pixel ``(r, c)`` of an ``n x n`` grid of pitch ``d`` mm (x along the
    columns, y up the rows); column ``k * m + i`` is channel ``i`` (at ``u0 + i du`` mm) of
    view ``k`` (angle ``angles[k]`` rad). Each pixel takes its ray's two nearest channels with
    linear weights (zero outside the detector), times ``weight``: the same sum as
    ``sinotriage.operators._torch.parallel_fbp_backproject``.
    """
    coord = (np.arange(n, dtype=np.float64) - (n - 1) / 2) * d
    xs, ys = np.meshgrid(coord, -coord)  # (n, n): x along columns, y down the rows
    pix = np.arange(n * n)
    rows, cols, vals = [], [], []
    for k, theta in enumerate(np.asarray(angles, dtype=np.float64)):
        t = ((xs * math.cos(theta) + ys * math.sin(theta)).ravel() - u0) / du
        i0 = np.floor(t).astype(np.int64)
        w1 = t - i0
        for idx, w in ((i0, 1.0 - w1), (i0 + 1, w1)):
            ok = (idx >= 0) & (idx < m) & (w > 0)
            rows.append(pix[ok])
            cols.append(k * m + idx[ok])
            vals.append(w[ok] * weight)
    r, c, v = (np.concatenate(a) for a in (rows, cols, vals))
    coo = torch.sparse_coo_tensor(torch.as_tensor(np.stack([r, c])),
                                  torch.as_tensor(v, dtype=torch.float32),
                                  (n * n, len(angles) * m), check_invariants=True)
    return _csr(coo)


def _csr(coo: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only A @ dense
        warnings.simplefilter("ignore", UserWarning)
        return coo.coalesce().to_sparse_csr()


class _SparseApply(torch.autograd.Function):
    """``y = A x`` with a constant sparse ``A`` (and its transpose for the backward pass)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, a: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        ctx.at = at
        return a @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.at @ grad.contiguous(), None, None


def _as_geometry(geometry: Geometry | dict[str, Any]) -> Geometry:
    return geometry_from_dict(dict(geometry)) if isinstance(geometry, dict) else geometry


class LearnableFBP(nn.Module):
    """Filtered backprojection to HU with a learnable per-frequency filter gain.

    Parameters
    ----------
    geometry : FanBeamGeometry or ParallelBeamGeometry or dict
        The sinograms' geometry (``geometry.to_dict()`` form accepted), at the view count the
        model will see.
    mu_water : float
        Attenuation of water (mm^-1) of the HU conversion.
    filter_lr : float
        Peak learning rate of the gain (its own optimizer group, no weight decay).

    Attributes
    ----------
    gain : nn.Parameter
        ``(P // 2 + 1,)``: the filter is ``ramp(f) * gain(f)`` at the rFFT frequencies of the
        padded rows; initialized at the Hann window, so the start is the operator's
        ``fbp(..., filter="hann")``.

    Shapes
    ------
    ``(B, 1, V, C)`` or ``(B, V, C)`` line integrals -> ``(B, 1, N, N)`` HU.
    """

    def __init__(self, geometry: Geometry | dict[str, Any], mu_water: float = MU_WATER,
                 filter_lr: float = FILTER_LR) -> None:
        super().__init__()
        if not filter_lr > 0:
            raise ValueError(f"filter_lr must be > 0, got {filter_lr}")
        self.filter_lr = float(filter_lr)
        g = _as_geometry(geometry)
        check_fbp_geometry(g)
        self.geometry, self.mu_water = g, float(mu_water)
        lay = fbp_layout(g)  # the operator's rebinning taps, angles and channel layout
        self._layout, self._plan = lay, Plan()
        self.m, self.du, self.p = lay.m, lay.du, padded_length(lay.m)
        ramp = filter_response(lay.m, "ram-lak").float()  # (P // 2 + 1,), unit spacing
        x = torch.fft.rfftfreq(self.p, dtype=torch.float64) / 0.5  # 1 at Nyquist
        hann = (0.5 * (1.0 + torch.cos(math.pi * x))).float()  # the "hann" window of filters.py
        self.register_buffer("ramp", ramp, persistent=False)
        self.gain = nn.Parameter(hann.clone())
        self._a: torch.Tensor | None = None  # built on first use (not state: no storage)
        self._at: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:  # lock and sparse matrices: rebuilt on copies
        state = dict(self.__dict__)
        state["_plan"], state["_a"], state["_at"] = None, None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._plan = Plan()

    def _rows(self, sino: torch.Tensor) -> torch.Tensor:
        """``(B, V, C)`` line integrals -> ``(B, V', M)`` parallel rows (fan beam: the
        operator's rebinning, differentiable with respect to the sinogram)."""
        if not isinstance(self.geometry, FanBeamGeometry):
            return sino.float()
        if sino.device.type == "cpu":
            nb = _backend("numba")
            if nb.available():
                return _Rebin.apply(sino.float().contiguous(), self._layout, nb, self._plan)
        return _torch_rebin(sino.float(), self._layout, self._plan)

    def param_groups(self) -> list[dict[str, Any]]:
        """The gain's optimizer group: its own learning rate, no weight decay."""
        return [{"params": [self.gain], "lr": self.filter_lr, "weight_decay": 0.0}]

    def response(self) -> torch.Tensor:
        """The filter ``ramp * gain`` ``(P // 2 + 1,)`` at unit channel spacing."""
        return self.ramp * self.gain

    def frequencies(self) -> np.ndarray:
        """The filter's frequencies in cycles per channel (0 to 0.5), ``(P // 2 + 1,)``."""
        return np.fft.rfftfreq(self.p)

    def reference(self) -> np.ndarray:
        """The ramp x Hann filter the gain started from, ``(P // 2 + 1,)``."""
        return filter_response(self.m, "hann").numpy()

    def forward(self, sino: torch.Tensor) -> torch.Tensor:
        x = sino[:, 0] if sino.ndim == 4 else sino
        if tuple(x.shape[-2:]) != tuple(self.geometry.sinogram_shape):
            raise ValueError(f"LearnableFBP: sinogram shape {tuple(x.shape[-2:])} does not match "
                             f"the geometry's {self.geometry.sinogram_shape}")
        rows = self._rows(x)
        spec = torch.fft.rfft(rows, n=self.p, dim=-1)
        q = torch.fft.irfft(spec * (self.response() / self.du), n=self.p, dim=-1)[..., :self.m]
        b = q.shape[0]
        n = self.geometry.image_size
        if self._a is None or self._at is None:
            g, lay = self.geometry, self._layout
            a = backprojection_matrix(lay.angles, lay.u0, lay.du, lay.m, g.image_size,
                                      g.pixel_size, lay.weight)
            self._a, self._at = a, _csr(a.to_sparse_coo().t())
        if self._a.device != q.device:  # the matrices are not buffers: keep checkpoints small
            self._a, self._at = self._a.to(q.device), self._at.to(q.device)
        mu = _SparseApply.apply(q.reshape(b, -1).t().contiguous(), self._a, self._at)
        # (N*N, B) -> a contiguous (B, 1, N, N): convolutions on the transposed strides are slow
        return mu_to_hu(mu.t().contiguous().view(b, 1, n, n), self.mu_water)


class LearnedDomainModel(nn.Module):
    """Sinogram -> :class:`LearnableFBP` (HU) -> :class:`LearnableWindow` -> image model."""

    def __init__(self, fbp: LearnableFBP, window: LearnableWindow, model: nn.Module) -> None:
        super().__init__()
        self.fbp, self.window, self.model = fbp, window, model

    def forward(self, sino: torch.Tensor) -> Any:
        return self.model(self.window(self.fbp(sino)))


@register(
    "learned_fbp", spatial_dims=(2,), domain="sinogram", input_shape="(B, 1, V, C)",
    output_shape="(B, num_classes)",
    paper="Maier et al. 2019 (known operators); Lee et al. 2018 (window setting optimization)",
    description="FBP with a learnable filter, learnable windows, then an image model",
)
def learned_fbp(in_channels: int = 1, num_classes: int = 1, spatial_dims: int = 2, *,
                geometry: Geometry | dict[str, Any] | None = None,
                image_model: str = "densenet_slim",
                window: Any = ("brain", "subdural", "bone"),
                image_options: dict[str, Any] | None = None,
                mu_water: float = MU_WATER, filter_lr: float = FILTER_LR) -> nn.Module:
    """Build the ``learned`` domain's model.

    Parameters
    ----------
    in_channels : int
        Must be 1 (one sinogram).
    num_classes : int
    spatial_dims : int
        2 (one slice).
    geometry : geometry or dict, optional
        The input sinograms' geometry (the training engine fills it in from the store); default
        the ``tiny`` data preset's SinoCT-like fan beam (64 x 64 images, 246 x 111 sinograms).
    image_model : str
        The zoo model after the windows.
    window : window spec
        Initial windows (:func:`~sinotriage.models.learned_window.window_layer`), in HU.
    image_options : dict, optional
        Options of the image model.
    mu_water : float
        Attenuation of water (mm^-1) of the HU conversion.
    filter_lr : float
        Peak learning rate of the filter gain (:class:`LearnableFBP`).
    """
    if in_channels != 1:
        raise ValueError(f"learned_fbp reads one sinogram channel, got in_channels={in_channels}")
    if geometry is None:
        from sinotriage.geometry import sinoct
        from sinotriage.presets import get_preset

        p = get_preset("tiny")
        geometry = sinoct(image_size=p.image_size, n_views=p.n_views, n_det=p.n_det)
    fbp = LearnableFBP(geometry, mu_water, filter_lr)
    layer = window_layer(window)
    net = create(image_model, in_channels=layer.k, num_classes=num_classes, spatial_dims=2,
                 **dict(image_options or {}))
    return LearnedDomainModel(fbp, layer, net)


def learned_parameters(model: nn.Module) -> dict[str, Any] | None:
    """What a model learned upstream of its image network, as JSON-ready lists.

    Returns ``{"windows": [{"level", "width", "init_level", "init_width"}, ...]}`` (HU) for
    each :class:`~sinotriage.models.learned_window.LearnableWindow`, and for a
    :class:`LearnableFBP` also ``"filter": {"frequency", "response", "reference", "ramp"}``
    (cycles per channel; responses at unit channel spacing; ``reference`` is the ramp x Hann
    start, ``ramp`` the plain ramp). None when the model has neither.
    """
    out: dict[str, Any] = {}
    for module in model.modules():
        if isinstance(module, LearnableWindow) and "windows" not in out:
            out["windows"] = [
                {"level": lv, "width": wd, "init_level": il, "init_width": iw}
                for (lv, wd), (il, iw) in zip(module.windows(), module.initial, strict=True)]
        if isinstance(module, LearnableFBP) and "filter" not in out:
            out["filter"] = {
                "frequency": module.frequencies().tolist(),
                "response": module.response().detach().cpu().double().tolist(),
                "reference": module.reference().tolist(),
                "ramp": module.ramp.detach().cpu().double().tolist(),
            }
    return out or None
