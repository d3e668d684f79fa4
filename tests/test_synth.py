"""``sinotriage synth``: content, reproducibility, splits, resume, the CLI.

The check that a 2-worker dask ``LocalCluster`` writes the same studies as one process is
``tests/test_preprocess.py::test_local_cluster_equals_single_process`` (one cluster for synth and
preprocess, to keep the suite short).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _kill_at_commit import killing_env
from conftest import TINY_STORE_SPEC
from typer.testing import CliRunner

from sinotriage.io.store import SPLITS, open_store, stratified_splits
from sinotriage.operators import add_poisson_noise, hu_to_mu, project
from sinotriage.presets import PRESETS, get_preset
from sinotriage.synth import study_id, study_seeds, synthesize

TINY = get_preset("tiny")
ARRAYS = ("hu", "sinogram", "tissues", "mask", "labels")


def _assert_same_studies(a, b, ids) -> None:
    for sid in ids:
        for name in ARRAYS:
            x, y = a.read(sid, name), b.read(sid, name)
            assert x.dtype == y.dtype and x.shape == y.shape, (sid, name)
            np.testing.assert_array_equal(x, y, err_msg=f"{sid} {name}", strict=True)
            same_bytes = x.tobytes() == y.tobytes()  # also -0.0 vs 0.0, NaN payloads
            assert same_bytes, f"{sid} {name}: equal values, other bytes"


def _chunk_files(path: Path, sid: str) -> dict[str, bytes]:
    root = path / "studies" / sid
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and "derived" not in p.parts}


def test_presets_table():
    assert set(PRESETS) == {"tiny", "quick", "standard", "sinoct"}
    for p in PRESETS.values():
        g = p.geometry()
        assert g.image_shape == (p.image_size, p.image_size)
        assert g.sinogram_shape == (p.n_views, p.n_det)
        assert np.isclose(p.pixel_size * p.image_size, 250.0)
        # dose matched: photons x views x channels is the same for every preset
        assert np.isclose(p.photons * p.n_views * p.n_det, 2e5 * 984 * 888)
    assert PRESETS["sinoct"].geometry().sinogram_shape == (984, 888)
    with pytest.raises(ValueError, match=r"preset must be one of \('tiny', 'quick'"):
        get_preset("huge")


def test_tiny_store_content(tiny_store):
    ids = tiny_store.study_ids()
    assert ids == [study_id(i) for i in range(TINY_STORE_SPEC["n_studies"])]
    attrs = tiny_store.attrs
    assert attrs["source"] == "synthetic" and attrs["settings"]["preset"] == "tiny"
    assert attrs["settings"]["photons"] == TINY.photons
    g = tiny_store.geometry
    assert g == TINY.geometry()
    manifest = {r["study_id"]: r for r in tiny_store.manifest}
    for sid in ids:
        rec = manifest[sid]
        d = rec["n_slices"]
        assert TINY.min_slices <= d <= TINY.max_slices
        assert d == study_seeds(0, int(sid[1:]), TINY)["n_slices"]
        hu, sino = tiny_store.read(sid, "hu"), tiny_store.read(sid, "sinogram")
        mask, labels = tiny_store.read(sid, "mask"), tiny_store.read(sid, "labels")
        assert hu.dtype == np.int16 and hu.shape == (d, *g.image_shape)
        assert sino.dtype == np.float32 and sino.shape == (d, *g.sinogram_shape)
        assert labels.shape == (d, 6) and mask.shape == hu.shape
        # slice labels agree with the mask, the manifest with the slice labels
        for k in range(1, 6):
            np.testing.assert_array_equal(labels[:, k], (mask == k).any(axis=(1, 2)))
        np.testing.assert_array_equal(labels[:, 0], labels[:, 1:].max(axis=1))
        assert rec["label"] == labels[:, 0].max()
        names = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
        assert [rec[n] for n in names] == list(labels[:, 1:].max(axis=0))
    labels = [manifest[s]["label"] for s in ids]
    assert 0 < sum(labels) < len(labels)


def test_sinogram_is_the_seeded_simulation(tiny_store):
    """Recompute study 3 from its stored HU and seeds: projection + Poisson noise, exactly."""
    sid = study_id(3)
    seeds = study_seeds(0, 3, TINY)
    hu = tiny_store.read(sid, "hu")
    g = tiny_store.geometry
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backend = tiny_store.attrs["settings"]["backend"]
        clean = project(hu_to_mu(torch.from_numpy(hu.astype(np.float32))), g, backend=backend)
        gen = torch.Generator().manual_seed(seeds["noise_seed"])
        noisy = add_poisson_noise(clean, TINY.photons, generator=gen)
    finally:
        torch.set_num_threads(old)
    stored = tiny_store.read(sid, "sinogram")
    np.testing.assert_array_equal(stored, noisy.numpy())
    # transmission Poisson noise: var(p_noisy - p) ~= exp(p) / photons (delta method)
    err = (stored - clean.numpy()).astype(np.float64)
    expected_var = np.exp(clean.numpy().astype(np.float64)) / TINY.photons
    ratio = np.mean(err**2) / np.mean(expected_var)
    assert 0.9 < ratio < 1.1


def test_same_seed_gives_byte_identical_studies(tmp_path, tiny_store):
    result = synthesize(tmp_path / "again.zarr", 3, "tiny", seed=0, workers=0, progress=False)
    assert (result.written, result.skipped) == (3, 0)
    ids = [study_id(i) for i in range(3)]
    _assert_same_studies(result.store, tiny_store, ids)
    for sid in ids:  # the files on disk too (same codecs, same chunks)
        assert _chunk_files(result.store.path, sid) == _chunk_files(tiny_store.path, sid)
    other = synthesize(tmp_path / "other.zarr", 1, "tiny", seed=1, workers=0, progress=False)
    assert other.store.read("s00000", "hu").tobytes() != tiny_store.read("s00000", "hu").tobytes()


def test_splits_are_stratified_and_seeded(tiny_store):
    manifest = tiny_store.manifest
    ids = [r["study_id"] for r in manifest]
    labels = [r["label"] for r in manifest]
    expected = stratified_splits(ids, labels, (0.7, 0.15, 0.15), seed=TINY_STORE_SPEC["seed"])
    assert {r["study_id"]: r["split"] for r in manifest} == expected
    for lab in set(labels):
        n = labels.count(lab)
        got = [sum(1 for r in manifest if r["label"] == lab and r["split"] == s) for s in SPLITS]
        assert sum(got) == n
        assert all(abs(c - f * n) < 1 for c, f in zip(got, (0.7, 0.15, 0.15), strict=True))


def test_resume_writes_only_missing(tmp_path, tiny_store):
    path = tmp_path / "r.zarr"
    first = synthesize(path, 2, "tiny", seed=0, workers=0, progress=False)
    assert first.written == 2
    before = (path / "studies" / "s00000" / "zarr.json").stat().st_mtime_ns
    second = synthesize(path, 3, "tiny", seed=0, workers=0, progress=False)
    assert (second.written, second.skipped) == (1, 2)
    assert (path / "studies" / "s00000" / "zarr.json").stat().st_mtime_ns == before
    _assert_same_studies(second.store, tiny_store, [study_id(i) for i in range(3)])
    assert open_store(path).attrs["settings"]["n_studies"] == 3
    with pytest.raises(ValueError, match="built with seed=0, not 1"):
        synthesize(path, 3, "tiny", seed=1, workers=0, progress=False)
    with pytest.raises(ValueError, match="built with preset='tiny', not 'quick'"):
        synthesize(path, 3, "quick", seed=0, workers=0, progress=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_studies"):
        synthesize("/nonexistent/x.zarr", 0, "tiny")
    with pytest.raises(ValueError, match="prevalence"):
        synthesize("/nonexistent/x.zarr", 1, "tiny", prevalence=1.5)
    with pytest.raises(ValueError, match="workers"):
        synthesize("/nonexistent/x.zarr", 1, "tiny", workers=-1)


def _complete(path: Path) -> int:
    studies = path / "studies"
    if not studies.is_dir():
        return 0
    return sum((studies / n / "zarr.json").is_file() for n in os.listdir(studies)
               if not n.startswith("."))


def test_cli_killed_midway_resumes_to_identical_content(tmp_path, tiny_store):
    """Killed (SIGKILL, whole process group) at the commit of its third study, a rerun writes
    the rest, and the store equals one written in a single run."""
    path = tmp_path / "killed.zarr"
    n, done = 6, 2
    cmd = [sys.executable, "-c", "from sinotriage.cli import main; main()", "synth",
           "--out", str(path), "--studies", str(n), "--preset", "tiny", "--seed", "0",
           "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=killing_env(tmp_path, after=done), start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _complete(path) == done
    assert os.listdir(path / ".partial"), "the kill came before the third study was written"
    assert not (path / "manifest.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n - done} written, {done} already present" in " ".join(rerun.stdout.split())
    store = open_store(path)
    assert store.study_ids() == [study_id(i) for i in range(n)]
    assert os.listdir(path / ".partial") == []
    _assert_same_studies(store, tiny_store, store.study_ids())


def test_cli_reports_bad_preset(tmp_path):
    from sinotriage.cli import app

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "x.zarr"), "--studies",
                                      "2", "--preset", "huge", "--workers", "0"])
    assert result.exit_code == 2
    assert "preset must be one of" in result.output


@pytest.mark.slow
def test_quick_preset_on_dask_killed_midway_resumes_identically(tmp_path):
    """The acceptance scenario at the quick preset: a 2-worker run killed midway, then rerun."""
    path = tmp_path / "quick.zarr"
    n = 8
    cmd = [sys.executable, "-c", "from sinotriage.cli import main; main()", "synth",
           "--out", str(path), "--studies", str(n), "--preset", "quick", "--seed", "3",
           "--workers", "2", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=killing_env(tmp_path, after=3), start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    done = _complete(path)
    assert 3 <= done < n  # the other worker may commit between the count and the kill
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    reference = synthesize(tmp_path / "ref.zarr", n, "quick", seed=3, workers=0, progress=False)
    store = open_store(path)
    assert store.study_ids() == reference.store.study_ids()
    _assert_same_studies(store, reference.store, store.study_ids())
    assert store.manifest == reference.store.manifest
