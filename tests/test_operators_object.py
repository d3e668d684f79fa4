"""The Operator object: shapes, the adjoint, cached plans, and gradients (adjointness and
float64 gradcheck) of project, backproject and fbp on every backend and geometry."""

from __future__ import annotations

import math

import pytest
import torch

import sinotriage
from sinotriage.geometry import ParallelBeamGeometry, sinoct
from sinotriage.operators import Operator, backproject, fbp, project
from sinotriage.operators._backends import candidates

# tiny geometries (8 x 8 images) that cover the image: gradcheck stays fast
TINY = {
    "parallel": ParallelBeamGeometry(n_views=6, n_det=13, det_spacing=1.0, image_size=8,
                                     pixel_size=1.0, det_offset=0.25),
    "parallel-2pi": ParallelBeamGeometry(n_views=7, n_det=12, det_spacing=1.1, image_size=8,
                                         pixel_size=1.0, arc=2 * math.pi, start_angle=0.3),
    "fan-curved": sinoct(8, 8, 12),
    "fan-flat": sinoct(8, 9, 12).replace(detector="flat", start_angle=0.7),
}
CASES = [(g, b) for g in TINY for b in ("torch", "numba", "astra", "triton")]


def _usable(gname: str, backend: str) -> Operator:
    g = TINY[gname]
    if backend not in candidates("fbp", g, torch.device("cpu")):
        pytest.skip(f"{backend} cannot run {gname} on the CPU here")
    return Operator(g, backend)


def test_operator_is_exported_with_shapes_and_adjoint():
    assert sinotriage.Operator is Operator
    g = TINY["fan-curved"]
    op = Operator(g)
    assert op.domain_shape == (8, 8) and op.range_shape == (8, 12)
    assert op.T.domain_shape == op.range_shape and op.T.range_shape == op.domain_shape
    assert op.T.T is op
    x = torch.rand(3, 8, 8)
    y = op(x)
    assert y.shape == (3, 8, 12)
    assert torch.equal(y, project(x, g))  # the function form is the same computation
    assert torch.equal(op.T(y), backproject(y, g))
    assert torch.equal(op.fbp(y, filter="hann", cutoff=0.8), fbp(y, g, "hann", 0.8))


def test_plans_are_cached_per_device_and_dtype():
    g = sinoct(32, 40, 30)
    op = Operator(g, "numba")
    x = torch.rand(2, 32, 32)
    op(x)
    n1 = len(op._plan)
    op(x)
    op.T(op(x))
    assert len(op._plan) == n1  # reused, not rebuilt
    op(x.double())
    assert len(op._plan) == n1 + 1  # float64 tables
    op.fbp(op(x))
    n2 = len(op._plan)
    op.fbp(op(x))
    assert len(op._plan) == n2


@pytest.mark.parametrize(("gname", "backend"), CASES)
def test_adjointness_through_the_operator(gname, backend):
    """<A x, y> = <x, A^T y>, and for fbp <F y, w> = <y, grad_y <F y, w>> (the backward
    pass is the adjoint), relative to ||.|| ||.||: < 1e-5 (float32)."""
    op = _usable(gname, backend)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, *op.domain_shape, generator=gen)
    y = torch.rand(2, *op.range_shape, generator=gen)
    w = torch.rand(2, *op.domain_shape, generator=gen)

    def rel(a, b, scale):
        return abs(float(a) - float(b)) / scale

    ax, aty = op(x), op.T(y)
    assert rel((ax * y).sum(), (x * aty).sum(), float(ax.norm() * y.norm())) < 1e-5
    yy = y.clone().requires_grad_()
    fy = op.fbp(yy)
    (fy * w).sum().backward()
    fy = fy.detach()
    assert rel((fy * w).sum(), (y * yy.grad).sum(), float(fy.norm() * w.norm())) < 1e-5


@pytest.mark.parametrize("fast_mode", [True, pytest.param(False, marks=pytest.mark.slow)])
@pytest.mark.parametrize(("gname", "backend"), CASES)
def test_gradcheck_float64(gname, backend, fast_mode):
    """torch.autograd.gradcheck of the three maps (fast mode: a random projection of the
    Jacobian; the full Jacobian is slow-marked). ASTRA computes in float32: the maps are
    linear, so a large finite-difference step is exact and only rounding remains."""
    op = _usable(gname, backend)
    kw = dict(eps=0.5, atol=2e-3, rtol=2e-3) if backend == "astra" else {}
    kw["fast_mode"] = fast_mode
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, *op.domain_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, *op.range_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,), **kw)
    assert torch.autograd.gradcheck(op.T, (y,), **kw)
    assert torch.autograd.gradcheck(lambda t: op.fbp(t, filter="shepp-logan"), (y,), **kw)


@pytest.mark.parametrize("gname", ["fan-curved", "parallel"])
def test_fbp_gradients_agree_across_backends(gname):
    """The numba backward pass (adjoint kernels) equals torch's autograd to rounding."""
    g = TINY[gname]
    y = torch.rand(2, *g.sinogram_shape, dtype=torch.float64)
    w = torch.rand(2, *g.image_shape, dtype=torch.float64)
    grads = {}
    for be in ("torch", "numba"):
        yy = y.clone().requires_grad_()
        (Operator(g, be).fbp(yy) * w).sum().backward()
        grads[be] = yy.grad
    torch.testing.assert_close(grads["numba"], grads["torch"], rtol=1e-9, atol=1e-12)


def test_empty_batches_give_empty_outputs():
    g = TINY["fan-curved"]
    op = Operator(g)
    assert op(torch.zeros(0, 8, 8)).shape == (0, 8, 12)
    assert op.T(torch.zeros(0, 8, 12)).shape == (0, 8, 8)
    assert op.fbp(torch.zeros(2, 0, 8, 12)).shape == (2, 0, 8, 8)
    assert fbp(torch.zeros(0, 8, 12, dtype=torch.float64), g).dtype == torch.float64


def test_backend_errors_name_the_reason():
    with pytest.raises(ValueError, match="'fastest'"):
        Operator(TINY["parallel"], backend="cuda")
    with pytest.raises(ValueError, match="curved"):
        Operator(TINY["fan-curved"], backend="astra")(torch.rand(8, 8))


_SCRIPT = """
import hashlib, sys, torch
torch.set_num_threads(2)
from sinotriage.geometry import sinoct
from sinotriage.operators import Operator, fbp, project
g = sinoct(32, 48, 40)
x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
y = project(x, g)
h = hashlib.sha256()
for t in (y, Operator(g).T(y), fbp(y, g, filter="hann")):
    h.update(t.numpy().tobytes())
print(Operator(g).backend_for("fbp", y), h.hexdigest())
"""


@pytest.mark.slow  # three fresh interpreters import torch and compile numba: ~40 s quiet
def test_default_dispatch_gives_the_same_bits_in_fresh_processes(tmp_path):
    """Two processes side by side compile the numba kernels into an empty cache (the state of
    a fresh clone), a third loads them from it: all three give the same bits. (With
    ``fastmath=True`` a freshly compiled kernel and one loaded from numba's disk cache
    differed in the last bit, so dask workers of a fresh install wrote other recons.)"""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2",
               NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))

    def start():
        return subprocess.Popen([sys.executable, "-c", _SCRIPT], stdout=subprocess.PIPE,
                                text=True, env=env)

    cold = [start() for _ in range(2)]  # side by side
    outs = [p.communicate(timeout=300)[0].split() for p in cold]
    warm = start()
    outs.append(warm.communicate(timeout=300)[0].split())
    assert [p.returncode for p in (*cold, warm)] == [0, 0, 0]
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the kernels were not cached"
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][0] == "numba"  # the CPU row of RULES


def test_fastest_is_opt_in_and_reports_its_choice(caplog):
    import logging

    from sinotriage.operators import RULES, fastest_choices, tune
    from sinotriage.operators._backends import forget_fastest

    g = TINY["fan-flat"]
    assert RULES[0][0] == "cpu"
    forget_fastest()
    x = torch.rand(1, 8, 8)
    op = Operator(g, backend="fastest")
    with caplog.at_level(logging.INFO, logger="sinotriage.operators"):
        y = op(x)
    chosen = [v for k, v in fastest_choices().items() if k[0] == "project"]
    assert chosen and chosen[0] in candidates("project", g, x.device)
    assert "fastest" in caplog.text and chosen[0] in caplog.text
    assert torch.equal(y, Operator(g, chosen[0])(x))
    report = tune(g, ops=("fbp",), batch=2)
    assert set(report["fbp"]["seconds"]) == set(candidates("fbp", g, x.device))
    assert report["fbp"]["backend"] in report["fbp"]["seconds"]
    forget_fastest()


def test_numba_kernels_leave_torch_thread_count_alone():
    """The first numba kernel of a process starts numba's OpenMP pool, which resets the
    thread's OpenMP count that torch reads: a process held at one torch thread (a dask
    worker) then ran torch on every core, oversubscribing the CPU. Fresh process: the pool
    must not have started yet."""
    import os
    import subprocess
    import sys

    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from sinotriage.geometry import sinoct\n"
        "from sinotriage.operators import fbp\n"
        "fbp(torch.rand(2, 24, 40), sinoct(16, 24, 40), backend='numba')\n"
        "print(torch.get_num_threads())\n")
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]
