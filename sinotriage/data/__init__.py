"""Torch datasets over a dataset store (see :mod:`sinotriage.data.datasets`).

``SliceDataset`` gives one item per slice, ``ScanDataset`` one per study, in the domains
``hu``, ``sinogram``, ``recon`` (FBP at a view count) and ``windowed``.
"""

from __future__ import annotations

from sinotriage.data.datasets import DOMAINS, TARGETS, ScanDataset, SliceDataset

__all__ = ["DOMAINS", "TARGETS", "ScanDataset", "SliceDataset"]
