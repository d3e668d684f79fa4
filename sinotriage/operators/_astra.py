"""astra-toolbox adapter: the only module of sinotriage that imports ``astra``.

CPU (the PyPI wheel): parallel beam with the ``linear`` (Joseph) projector, flat fan beam
with ``line_fanflat``; forward and back projection are exact transposes. ASTRA's CPU code
is single-threaded but releases the GIL, so slices of a batch run on a thread pool.
CUDA (only when ``astra.use_cuda()`` is true, never otherwise: some CUDA calls kill the
process or return zeros without a GPU) uses the ``cuda`` projector on CUDA tensors and its
results are checked to be finite and not all zero. Curved (equiangular) detectors are not
expressible in ASTRA's 2D geometries; the torch and numba backends handle them.

Geometries are passed as ``parallel_vec`` / ``fanflat_vec`` vectors built from
:mod:`sinotriage.geometry`'s conventions, and the volume is given in millimetres, so
results are line integrals in the same units as the torch backend.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch

from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry
from sinotriage.operators._plan import Plan

try:
    import astra
except (ImportError, OSError):  # pragma: no cover - missing package or its CUDA libraries
    astra = None

_LOCK = threading.Lock()  # ASTRA's object managers are touched under this lock only


def available() -> bool:
    return astra is not None


@lru_cache(maxsize=1)
def cuda_ok() -> bool:
    """True only when ASTRA reports a usable CUDA device (checked once)."""
    if astra is None:
        return False
    try:
        return bool(astra.use_cuda())
    except Exception:  # noqa: BLE001 - any failure means: no CUDA path
        return False


def supports(op: str, g: object, device: torch.device) -> str | None:
    if isinstance(g, FanBeamGeometry) and g.detector != "flat":
        return "ASTRA's 2D fan geometries have a flat detector; this geometry is curved"
    if device.type == "cuda" and not cuda_ok():
        return "astra.use_cuda() is false: ASTRA's CUDA code is unavailable"
    if device.type not in ("cpu", "cuda"):
        return f"device {device} is not supported by ASTRA"
    return None


def _vectors(g: FanBeamGeometry | ParallelBeamGeometry) -> np.ndarray:
    ang = g.angles
    du = g.det_spacing
    if isinstance(g, ParallelBeamGeometry):
        c, s = np.cos(ang), np.sin(ang)
        # ray direction (-sin, cos); detector centre at u = det_offset * du along (cos, sin)
        off = g.det_offset * du
        return np.stack([-s, c, off * c, off * s, du * c, du * s], axis=1)
    c, s = np.cos(ang), np.sin(ang)
    src = g.sid * np.stack([c, s], axis=1)
    central = -np.stack([c, s], axis=1)
    e = np.stack([s, -c], axis=1)  # +gamma (counter-clockwise) side of the detector
    det = src + g.sdd * central + g.det_offset * du * e
    return np.concatenate([src, det, du * e], axis=1)


def _vol_geom(g) -> dict:
    half = g.image_size * g.pixel_size / 2
    return astra.create_vol_geom(g.image_size, g.image_size, -half, half, -half, half)


def _proj_geom(g) -> dict:
    kind = "parallel_vec" if isinstance(g, ParallelBeamGeometry) else "fanflat_vec"
    return astra.create_proj_geom(kind, g.n_det, _vectors(g))


@lru_cache(maxsize=16)
def _projector(g, device_type: str) -> int:
    if device_type == "cuda":
        ptype = "cuda"
    else:
        ptype = "linear" if isinstance(g, ParallelBeamGeometry) else "line_fanflat"
    with _LOCK:
        return astra.create_projector(ptype, _proj_geom(g), _vol_geom(g))


def _run_one(kind: str, arr: np.ndarray, g, pid: int, cuda: bool) -> np.ndarray:
    vol, proj = _vol_geom(g), _proj_geom(g)
    with _LOCK:
        if kind == "FP":
            src = astra.data2d.create("-vol", vol, arr)
            dst = astra.data2d.create("-sino", proj, 0.0)
            cfg = astra.astra_dict("FP_CUDA" if cuda else "FP")
            cfg["VolumeDataId"], cfg["ProjectionDataId"] = src, dst
        else:
            src = astra.data2d.create("-sino", proj, arr)
            dst = astra.data2d.create("-vol", vol, 0.0)
            cfg = astra.astra_dict("BP_CUDA" if cuda else "BP")
            cfg["ProjectionDataId"], cfg["ReconstructionDataId"] = src, dst
        cfg["ProjectorId"] = pid
        alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg)  # releases the GIL
        with _LOCK:
            out = astra.data2d.get(dst)
    finally:
        with _LOCK:
            astra.algorithm.delete(alg)
            astra.data2d.delete([src, dst])
    return out


def _threads() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _map(kind: str, x: torch.Tensor, g) -> torch.Tensor:
    cuda = x.device.type == "cuda"
    pid = _projector(g, "cuda" if cuda else "cpu")
    arrs = [np.ascontiguousarray(a, dtype=np.float32) for a in x.detach().cpu().numpy()]
    if len(arrs) == 1 or cuda:
        outs = [_run_one(kind, a, g, pid, cuda) for a in arrs]
    else:
        with ThreadPoolExecutor(max_workers=_threads()) as pool:
            outs = list(pool.map(lambda a: _run_one(kind, a, g, pid, cuda), arrs))
    out = torch.from_numpy(np.stack(outs)).to(device=x.device, dtype=x.dtype)
    if cuda and (not bool(torch.isfinite(out).all()) or (x.abs().sum() > 0 and
                                                           out.abs().sum() == 0)):
        raise RuntimeError("ASTRA's CUDA path returned zeros or non-finite values")
    return out


def project(x: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    return _map("FP", x, g)


def backproject(y: torch.Tensor, g, plan: Plan) -> torch.Tensor:
    return _map("BP", y, g)


def _rows_geometry(angles: np.ndarray, u0: float, du: float, m: int, n: int, d: float,
                   plan: Plan) -> ParallelBeamGeometry:
    def build():
        det_offset = (u0 + (m - 1) / 2 * du) / du
        arc = float(angles[1] - angles[0]) * len(angles) if len(angles) > 1 else np.pi
        return ParallelBeamGeometry(n_views=len(angles), n_det=m, det_spacing=du, image_size=n,
                                    pixel_size=d, det_offset=det_offset, arc=arc,
                                    start_angle=float(angles[0]), allow_truncation=True)

    return plan.get(("astra-rows", m, n), build)


def fbp_backproject(q: torch.Tensor, angles: np.ndarray, u0: float, du: float, n: int,
                    d: float, weight: float, plan: Plan) -> torch.Tensor:
    """Backprojection of filtered parallel rows with ASTRA's ``linear`` projector.

    ASTRA's ray-driven (Joseph-transpose) BP gives a pixel about ``d^2 / du`` times the
    interpolated row value per view; FBP's pixel-driven backprojection needs 1 times it.
    """
    g = _rows_geometry(angles, u0, du, q.shape[-1], n, d, plan)
    return _map("BP", q, g) * (weight * du / (d * d))


def fbp_backproject_adjoint(img: torch.Tensor, angles: np.ndarray, u0: float, du: float,
                            m: int, d: float, weight: float, plan: Plan) -> torch.Tensor:
    """Adjoint of :func:`fbp_backproject`: ASTRA's forward projection with the same
    projector (its exact transpose), same scale."""
    g = _rows_geometry(angles, u0, du, m, img.shape[-1], d, plan)
    return _map("FP", img, g) * (weight * du / (d * d))


def reference_fbp(sino: np.ndarray, g: ParallelBeamGeometry, filter: str = "ram-lak"
                  ) -> np.ndarray:
    """ASTRA's own CPU FBP of one parallel sinogram ``(V, C)`` (reference for tests and
    benchmarks; geometry ``parallel`` without detector offset)."""
    if not isinstance(g, ParallelBeamGeometry) or g.det_offset != 0:
        raise ValueError("reference_fbp needs a ParallelBeamGeometry with det_offset=0")
    vol = _vol_geom(g)
    proj = astra.create_proj_geom("parallel", g.det_spacing, g.n_det, g.angles)
    with _LOCK:
        pid = astra.create_projector("linear", proj, vol)
        sid = astra.data2d.create("-sino", proj, np.ascontiguousarray(sino, dtype=np.float32))
        rid = astra.data2d.create("-vol", vol, 0.0)
        cfg = astra.astra_dict("FBP")
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
        cfg["FilterType"] = filter
        alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg)
        with _LOCK:
            out = astra.data2d.get(rid)
    finally:
        with _LOCK:
            astra.algorithm.delete(alg)
            astra.data2d.delete([sid, rid])
            astra.projector.delete(pid)
    return out
