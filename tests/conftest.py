"""Shared pytest configuration: GPU tests skip cleanly where CUDA is absent."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# -- the shared synthetic store (owner: store engineer) ------------------------------------------
#: how the session's ``tiny_store`` is built; tests may rebuild parts of it and compare
TINY_STORE_SPEC = {"n_studies": 12, "preset": "tiny", "seed": 0, "views": (246, 123, 61)}


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic store, built once per session (read-only: copy it before writing).

    12 studies of the ``tiny`` preset (64 x 64 images, 8-12 slices, 246 x 111 sinograms),
    seed 0, 55 % prevalence, stratified train/val/test split, and derived sinograms and FBP
    reconstructions at 246 (full: recon only), 123 and 61 views. Returns a read-only
    :class:`sinotriage.io.store.Store`; ``tiny_store.path`` is its directory.
    """
    from sinotriage.io.store import open_store
    from sinotriage.preprocess import preprocess
    from sinotriage.synth import synthesize

    path = tmp_path_factory.mktemp("tiny_store") / "tiny.zarr"
    spec = TINY_STORE_SPEC
    synthesize(path, spec["n_studies"], spec["preset"], spec["seed"], workers=0, progress=False)
    preprocess(path, list(spec["views"]), workers=0, progress=False)
    return open_store(path)
