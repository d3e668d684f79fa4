"""The operator object: a geometry, a backend rule and a cache of the tables built from them."""

from __future__ import annotations

import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators import _backends
from sinotriage.operators._checks import check_float_tensor, check_geometry, check_trailing_shape
from sinotriage.operators._fbp import check_fbp_geometry, fbp_batch, fbp_layout
from sinotriage.operators._plan import Plan
from sinotriage.operators.filters import check_filter

Geometry = FanBeamGeometry | ParallelBeamGeometry


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g, be, plan):  # type: ignore[override]
        ctx.args = (g, be, plan)
        return be.project(x, g, plan)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _Backproject.apply(grad.contiguous(), *ctx.args), None, None, None


class _Backproject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, g, be, plan):  # type: ignore[override]
        ctx.args = (g, be, plan)
        return be.backproject(y, g, plan)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _Project.apply(grad.contiguous(), *ctx.args), None, None, None


class Operator:
    """The projector of a geometry, as an object: ``op(x)`` projects, ``op.T(y)``
    backprojects, ``op.fbp(y)`` reconstructs.

    Parameters
    ----------
    g : FanBeamGeometry or ParallelBeamGeometry
        The scanner; images are ``domain_shape = (N, N)``, sinograms
        ``range_shape = (V, C)``.
    backend : {None, "auto", "fastest", "torch", "numba", "astra", "triton"}
        None or ``"auto"``: the fixed rule of :data:`sinotriage.operators.RULES` (device,
        operation, geometry, dtype), so the same call gives the same bits in every process.
        ``"fastest"``: time the usable backends on the first call of a kind and keep the
        winner (logged on the ``sinotriage.operators`` logger, listed by
        :func:`~sinotriage.operators.fastest_choices`). A name: that backend, or a
        ValueError saying why it cannot run the call.

    Notes
    -----
    Ray tables, rebinning taps and filter responses are built on the first call for each
    device and dtype and cached in the operator (the function forms
    :func:`~sinotriage.operators.project`, :func:`~sinotriage.operators.backproject` and
    :func:`~sinotriage.operators.fbp` build a fresh operator per call). All three maps are
    differentiable on every backend; the gradient of each is the adjoint, run by the same
    backend. Inputs are ``(..., N, N)`` or ``(..., V, C)`` floating tensors on CPU or CUDA;
    an empty batch gives an empty output.

    Examples
    --------
    >>> import torch
    >>> from sinotriage import Operator, sinoct
    >>> op = Operator(sinoct(64, 246, 111))
    >>> y = op(torch.zeros(2, 64, 64))          # (2, 246, 111)
    >>> x = op.T(y)                             # (2, 64, 64), the adjoint
    >>> rec = op.fbp(y, filter="hann", cutoff=0.8)
    """

    def __init__(self, g: Geometry, backend: str | None = None) -> None:
        self.geometry = check_geometry(g, "g")
        self.backend = _backends.check_backend(backend)
        self._plan = Plan()

    # -- shapes ---------------------------------------------------------------------------
    @property
    def domain_shape(self) -> tuple[int, int]:
        """``(N, N)``: the image grid (trailing dims of the input of ``op(x)``)."""
        return self.geometry.image_shape

    @property
    def range_shape(self) -> tuple[int, int]:
        """``(V, C)``: views x channels (trailing dims of ``op(x)``)."""
        return self.geometry.sinogram_shape

    @property
    def T(self) -> _Adjoint:  # noqa: N802 - the usual name of the adjoint
        """The adjoint operator (backprojection); ``op.T.T`` is ``op``."""
        return _Adjoint(self)

    def __repr__(self) -> str:
        return f"Operator({self.geometry!r}, backend={self.backend!r})"

    # -- maps -----------------------------------------------------------------------------
    def __call__(self, mu: torch.Tensor) -> torch.Tensor:
        return self.project(mu)

    def project(self, mu: torch.Tensor) -> torch.Tensor:
        """Line integrals of ``mu`` ``(..., N, N)`` (mm^-1) along every ray: ``(..., V, C)``
        (dimensionless), same dtype and device."""
        return self._linear("project", mu, "mu", self.domain_shape, "image_shape",
                            self.range_shape, _Project)

    def backproject(self, sino: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`project`: ``(..., V, C) -> (..., N, N)`` (sinogram units
        times mm); ``<op(x), y> = <x, op.T(y)>`` to float rounding for one backend."""
        return self._linear("backproject", sino, "sino", self.range_shape, "sinogram_shape",
                            self.domain_shape, _Backproject)

    def fbp(self, sino: torch.Tensor, filter: str = "ram-lak",
            cutoff: float = 1.0) -> torch.Tensor:
        """Filtered backprojection ``(..., V, C) -> (..., N, N)`` (mm^-1).

        ``filter`` is one of :data:`~sinotriage.operators.FILTERS`, ``cutoff`` in (0, 1] of
        the Nyquist frequency. Parallel beam needs ``arc >= pi``, fan beam a full turn.
        Differentiable on every backend (see :func:`sinotriage.operators.fbp`).
        """
        filter, cutoff = check_filter(filter, cutoff)
        g = self.geometry
        check_fbp_geometry(g)
        x, lead = self._prepare(sino, "sino", self.range_shape, "sinogram_shape")
        if x.shape[0] == 0:
            return sino.reshape(*lead, *self.domain_shape)
        be = _backends.get(self.backend_for("fbp", x))
        lay = self._plan.get("fbp-layout", lambda: fbp_layout(g))
        img = fbp_batch(x.contiguous(), g, lay, filter, cutoff, be, self._plan)
        return img.reshape(*lead, *self.domain_shape).to(sino.dtype)

    # -- helpers --------------------------------------------------------------------------
    def backend_for(self, op: str, x: torch.Tensor) -> str:
        """The backend that runs ``op`` ("project", "backproject" or "fbp") on the
        flattened batch ``x`` under this operator's ``backend`` setting."""
        return _backends.resolve(self.backend, op, self.geometry, x,
                                 measure=lambda names: _measure(self.geometry, op, names, x))

    def _prepare(self, t: torch.Tensor, name: str, shape: tuple[int, int], what: str
                 ) -> tuple[torch.Tensor, tuple[int, ...]]:
        check_float_tensor(t, name, finite=True)
        check_trailing_shape(t, name, shape, what)
        x = t if t.dtype in (torch.float32, torch.float64) else t.float()
        return x.reshape(-1, *shape), tuple(t.shape[:-2])

    def _linear(self, op: str, t: torch.Tensor, name: str, shape: tuple[int, int], what: str,
                out_shape: tuple[int, int], fn: type[torch.autograd.Function]) -> torch.Tensor:
        x, lead = self._prepare(t, name, shape, what)
        if x.shape[0] == 0:
            return t.reshape(*lead, *out_shape)
        be = _backends.get(self.backend_for(op, x))
        out = fn.apply(x.contiguous(), self.geometry, be, self._plan)
        return out.reshape(*lead, *out_shape).to(t.dtype)


class _Adjoint:
    """``op.T``: backprojection as an operator (``op.T(y)``, ``op.T.T is op``)."""

    def __init__(self, parent: Operator) -> None:
        self._parent = parent

    @property
    def T(self) -> Operator:  # noqa: N802
        return self._parent

    @property
    def geometry(self) -> Geometry:
        return self._parent.geometry

    @property
    def domain_shape(self) -> tuple[int, int]:
        return self._parent.range_shape

    @property
    def range_shape(self) -> tuple[int, int]:
        return self._parent.domain_shape

    def __call__(self, sino: torch.Tensor) -> torch.Tensor:
        return self._parent.backproject(sino)

    def __repr__(self) -> str:
        return f"{self._parent!r}.T"


def _measure(g: Geometry, op: str, names: list[str], x: torch.Tensor) -> dict[str, float]:
    """Seconds per call of each backend on ``x``'s kind of problem: the same image grid and
    detector, up to 96 views and 2 slices (best of two after a warm-up)."""
    views = min(g.n_views, 96)
    views -= views % 2 if g.n_views % 2 == 0 else 0
    gs = g.with_views(max(views, 2))
    shape = gs.image_shape if op == "project" else gs.sinogram_shape
    probe = torch.rand(min(x.shape[0], 2), *shape, device=x.device, dtype=x.dtype)
    times = {}
    with torch.no_grad():
        for name in names:
            fn = getattr(Operator(gs, backend=name), op)
            try:
                times[name] = _backends.time_call(lambda fn=fn: fn(probe), x.device)
            except (RuntimeError, ValueError):  # a backend that fails here is skipped
                continue
    return times


def tune(g: Geometry, ops: tuple[str, ...] = ("project", "backproject", "fbp"),
         batch: int = 1, device: str | torch.device = "cpu",
         dtype: torch.dtype = torch.float32) -> dict[str, dict]:
    """Time the usable backends for ``g`` and make ``backend="fastest"`` use the winners.

    Parameters
    ----------
    g : geometry
    ops : tuple of {"project", "backproject", "fbp"}
    batch : int
        Slices per call the choice is for (buckets 1, 2-8, 9+).
    device, dtype
        Where the calls will run.

    Returns
    -------
    dict
        ``{op: {"backend": name, "seconds": {name: seconds per call}}}`` (also logged on
        the ``sinotriage.operators`` logger). The default dispatch is not changed.
    """
    g = check_geometry(g, "g")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    dev = torch.device(device)
    out = {}
    for op in ops:
        if op not in ("project", "backproject", "fbp"):
            raise ValueError(f"ops must be among ('project', 'backproject', 'fbp'), got {op!r}")
        shape = g.image_shape if op == "project" else g.sinogram_shape
        x = torch.empty(batch, *shape, device=dev, dtype=dtype)
        names = _backends.candidates(op, g, dev)
        times = _measure(g, op, names, x)
        best = min(times, key=times.get)
        with _backends._LOCK:
            _backends._FASTEST[_backends.fastest_key(op, g, x)] = best
        _backends.LOG.info("tune %s: %s (seconds per call %s)", op, best, times)
        out[op] = {"backend": best, "seconds": times}
    return out
