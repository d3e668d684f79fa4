"""sinotriage: head-CT triage from the raw sinogram up.

The public API is small and re-exported here. Names are resolved lazily, so
``import sinotriage`` (and the CLI's start-up) stays fast and does not import
torch-heavy submodules until they are used.

Examples
--------
>>> import torch
>>> from sinotriage import ParallelBeamGeometry, project, fbp
>>> g = ParallelBeamGeometry(n_views=90, n_det=96, det_spacing=1.0, image_size=64, pixel_size=1.0)
>>> rec = fbp(project(torch.ones(64, 64) * 0.02, g), g)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # geometry
    "FanBeamGeometry": "sinotriage.geometry",
    "ParallelBeamGeometry": "sinotriage.geometry",
    "sinoct": "sinotriage.geometry",
    # operators
    "Operator": "sinotriage.operators",
    "project": "sinotriage.operators",
    "backproject": "sinotriage.operators",
    "fbp": "sinotriage.operators",
    "subsample_views": "sinotriage.operators",
    "subsample_detectors": "sinotriage.operators",
    "add_poisson_noise": "sinotriage.operators",
    "hu_to_mu": "sinotriage.operators",
    "mu_to_hu": "sinotriage.operators",
    # phantoms
    "head_ct": "sinotriage.phantoms",
    # windowing
    "window": "sinotriage.windowing",
    "multi_window": "sinotriage.windowing",
}

# public submodules reachable as attributes (``sinotriage.models``)
_SUBMODULES = {
    "geometry",
    "operators",
    "phantoms",
    "io",
    "data",
    "windowing",
    "transforms",
    "models",
    "training",
    "metrics",
    "experiments",
    "triage",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"sinotriage.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sinotriage' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from sinotriage import metrics, models, triage  # noqa: F401
    from sinotriage.geometry import FanBeamGeometry, ParallelBeamGeometry, sinoct  # noqa: F401
    from sinotriage.operators import (  # noqa: F401
        Operator,
        add_poisson_noise,
        backproject,
        fbp,
        hu_to_mu,
        mu_to_hu,
        project,
        subsample_detectors,
        subsample_views,
    )
    from sinotriage.phantoms import head_ct  # noqa: F401
    from sinotriage.windowing import multi_window, window  # noqa: F401
