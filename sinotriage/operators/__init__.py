"""CT operators on torch tensors: projection, backprojection, FBP, subsampling, noise.

Conventions (pixel grid, view and fan angles, units) are those of :mod:`sinotriage.geometry`.
Images are attenuation ``mu`` in mm^-1, ``(..., N, N)``; sinograms are dimensionless line
integrals ``(..., V, C)``. Backends: ``"torch"`` (always, CPU/CUDA), ``"numba"`` (CPU JIT
kernels), ``"triton"`` (CUDA kernels), ``"astra"`` (astra-toolbox, where it supports the
geometry). The default (``"auto"`` or None) picks one from the fixed table :data:`RULES`, so
results do not depend on timing; ``backend="fastest"`` and :func:`tune` measure on request.
:class:`Operator` is the object form that caches its ray tables and rebinning plans.
"""

from __future__ import annotations

from sinotriage.operators._api import backproject, fbp, project
from sinotriage.operators._backends import BACKENDS, RULES, fastest_choices
from sinotriage.operators._operator import Operator, tune
from sinotriage.operators.filters import FILTERS
from sinotriage.operators.noise import PHOTON_RANGE, add_poisson_noise
from sinotriage.operators.subsampling import select_views, subsample_detectors, subsample_views
from sinotriage.operators.units import MU_WATER, hu_to_mu, mu_to_hu

__all__ = [
    "BACKENDS",
    "FILTERS",
    "MU_WATER",
    "PHOTON_RANGE",
    "Operator",
    "RULES",
    "add_poisson_noise",
    "backproject",
    "fastest_choices",
    "fbp",
    "hu_to_mu",
    "mu_to_hu",
    "project",
    "select_views",
    "subsample_detectors",
    "subsample_views",
    "tune",
]
