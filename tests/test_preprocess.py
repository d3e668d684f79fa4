"""``sinotriage preprocess``: view selection, FBP outputs, resume, idempotence, dask, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sinotriage.preprocess as pre_mod
from sinotriage.geometry import sinoct
from sinotriage.io.store import open_store
from sinotriage.operators import fbp, mu_to_hu, subsample_views
from sinotriage.parallel import TaskError, default_backend
from sinotriage.preprocess import preprocess, select_views
from sinotriage.synth import study_id, synthesize


def _copy(tiny_store, tmp_path, name="copy.zarr", keep=None):
    """A writable copy of the session store without its derived groups (only ``keep`` studies)."""
    dst = tmp_path / name
    studies = tiny_store.path / "studies"

    def ignore(folder, names):
        folder = Path(folder)
        if folder == studies and keep is not None:
            return [n for n in names if n not in keep and n != "zarr.json"]
        if folder.name == "derived":
            return [n for n in names if n != "zarr.json"]
        return []

    shutil.copytree(tiny_store.path, dst, ignore=ignore)
    return open_store(dst, mode="r+")


def test_select_views_divisor_is_subsample_views():
    g = sinoct(image_size=16, n_views=984, n_det=8)
    sino = torch.rand(2, 984, 8)
    for v in (984, 492, 246, 123):
        sub, g2, err = select_views(sino, g, v)
        ref, gref = subsample_views(sino, g, 984 // v)
        assert torch.equal(sub, ref) and g2 == gref and err == 0.0
        assert g2.n_views == v and np.isclose(g2.arc, 2 * np.pi)


def test_select_views_nearest_for_non_divisors():
    g = sinoct(image_size=16, n_views=984, n_det=8)
    sino = torch.arange(984, dtype=torch.float32)[:, None].expand(984, 8).contiguous()
    sub, g2, err = select_views(sino, g, 61)
    idx = np.array([int(np.floor(j * 984 / 61 + 0.5)) for j in range(61)])
    np.testing.assert_array_equal(sub[:, 0].numpy(), idx)
    assert g2 == g.with_views(61) and np.isclose(g2.arc, 2 * np.pi)
    true_angles = idx * 2 * np.pi / 984
    assert np.isclose(err, np.max(np.abs(true_angles - g2.angles)))
    assert err <= 0.5 * 2 * np.pi / 984 + 1e-12
    with pytest.raises(ValueError, match=r"views must be an integer in \[1, 984\]"):
        select_views(sino, g, 1000)


def test_derived_arrays_match_independent_fbp(tiny_store):
    """The session store was preprocessed at 246 (full), 123 and 61 views."""
    g = tiny_store.geometry
    sid = tiny_store.study_ids()[0]
    sino = torch.from_numpy(tiny_store.read(sid, "sinogram"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for v in (246, 123, 61):
            if v == 61:
                idx = np.floor(np.arange(61) * 246 / 61 + 0.5).astype(int)
                sub, g2 = sino[:, idx], g.with_views(61)
            else:
                sub, g2 = subsample_views(sino, g, 246 // v)
            ref = np.rint(mu_to_hu(fbp(sub.contiguous(), g2, backend=default_backend())).numpy())
            recon = tiny_store.read(sid, "recon", views=v)
            assert recon.dtype == np.int16
            assert np.max(np.abs(recon - ref)) <= 1  # float ties in rounding at most
            assert tiny_store.derived_geometry(v) == g2
            if v != 246:
                np.testing.assert_array_equal(tiny_store.read(sid, "sinogram", views=v),
                                              sub.numpy())
    finally:
        torch.set_num_threads(old)
    assert tiny_store.views_available() == [61, 123, 246]
    assert tiny_store.views_available(name="sinogram") == [61, 123, 246]
    # the full-view reconstruction is close to the phantom inside the head (noise + blur only)
    hu = tiny_store.read(sid, "hu").astype(np.float64)
    rec = tiny_store.read(sid, "recon", views=246).astype(np.float64)
    brain = (hu > 0) & (hu < 100)
    assert np.median(np.abs(rec - hu)[brain]) < 40


def test_rerun_is_idempotent_and_interrupted_run_resumes(tiny_store, tmp_path, monkeypatch):
    store = _copy(tiny_store, tmp_path, keep=tiny_store.study_ids()[:5])
    ids = store.study_ids()
    assert len(ids) == 5
    original = pre_mod.preprocess_study

    def crash_on_third(study_id, **kw):
        if study_id == ids[2]:
            raise RuntimeError("simulated crash")
        return original(study_id, **kw)

    monkeypatch.setattr(pre_mod, "preprocess_study", crash_on_third)
    with pytest.raises(TaskError, match=f"1 of {len(ids)} tasks failed \\({ids[2]}\\)"):
        preprocess(store.path, [123, 61], workers=0, progress=False)
    assert store.derived_keys(ids[2]) == [] and store.derived_keys(ids[3]) == ["v0061", "v0123"]
    monkeypatch.setattr(pre_mod, "preprocess_study", original)
    resumed = preprocess(store.path, [123, 61], workers=0, progress=False)
    assert (resumed.written, resumed.studies_done_before) == (2, len(ids) - 1)
    for sid in ids:
        np.testing.assert_array_equal(store.read(sid, "recon", views=61),
                                      tiny_store.read(sid, "recon", views=61))
    again = preprocess(store.path, [123, 61], workers=0, progress=False)
    assert (again.written, again.studies_done_before) == (0, len(ids))
    assert {"v0123", "v0061"} <= set(store.attrs["derived"])


def test_local_cluster_equals_single_process(tiny_store, tmp_path):
    """synth and preprocess on a 2-worker LocalCluster write the same bytes as one process."""
    from distributed import LocalCluster

    n = 4
    ids = [study_id(i) for i in range(n)]
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        built = synthesize(tmp_path / "dask.zarr", n, "tiny", seed=0,
                           scheduler=cluster.scheduler_address, progress=False)
        result = preprocess(built.store.path, [123, 61], photons=1e5,
                            scheduler=cluster.scheduler_address, progress=False)
    assert built.written == n and result.written == 2 * n
    store = open_store(built.store.path)
    assert store.study_ids() == ids
    for sid in ids:  # synth: the session store was built in one process with the same seed
        for name in ("hu", "sinogram", "tissues", "mask", "labels"):
            np.testing.assert_array_equal(store.read(sid, name), tiny_store.read(sid, name),
                                          err_msg=f"{sid} {name}", strict=True)
    single = _copy(tiny_store, tmp_path, "single.zarr", keep=ids)
    for sid in ids:
        pre_mod.preprocess_study(sid, path=str(single.path), views=[123, 61], photons=1e5)
        for v in (123, 61):
            for name in ("sinogram", "recon"):
                a = store.read(sid, name, views=v, photons=1e5)
                b = single.read(sid, name, views=v, photons=1e5)
                np.testing.assert_array_equal(a, b, err_msg=f"{sid} {v} {name}", strict=True)


def test_extra_noise_is_seeded_poisson(tiny_store, tmp_path):
    sid = tiny_store.study_ids()[0]
    store = _copy(tiny_store, tmp_path, keep=[sid])
    pre_mod.preprocess_study(sid, path=str(store.path), views=[123], photons=2e4, seed=1)
    noisy = store.read(sid, "sinogram", views=123, photons=2e4).astype(np.float64)
    base = store.read(sid, "sinogram")[:, ::2].astype(np.float64)
    # added variance ~= exp(p) / photons (delta method)
    ratio = np.mean((noisy - base) ** 2) / np.mean(np.exp(base) / 2e4)
    assert 0.85 < ratio < 1.15
    other = _copy(tiny_store, tmp_path, "other.zarr", keep=[sid])
    pre_mod.preprocess_study(sid, path=str(other.path), views=[123], photons=2e4, seed=2)
    assert not np.array_equal(other.read(sid, "sinogram", views=123, photons=2e4), noisy)


def test_argument_errors(tiny_store, tmp_path):
    store = _copy(tiny_store, tmp_path, keep=tiny_store.study_ids()[:1])
    with pytest.raises(ValueError, match=r"views must lie in \[1, 246\]"):
        preprocess(store.path, [300], workers=0, progress=False)
    with pytest.raises(ValueError, match="filter must be one of"):
        preprocess(store.path, [123], filter="box", workers=0, progress=False)
    with pytest.raises(ValueError, match="backend must be one of"):
        preprocess(store.path, [123], backend="cuda", workers=0, progress=False)
    with pytest.raises(ValueError, match="photons"):
        preprocess(store.path, [123], photons=-1.0, workers=0, progress=False)


def test_cli(tiny_store, tmp_path):
    from sinotriage.cli import app

    store = _copy(tiny_store, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["preprocess", str(store.path), "--views", "82", "--workers", "0",
                                 "--split", "test", "--no-progress"])
    assert result.exit_code == 0, result.output
    test_ids = store.study_ids(split="test")
    assert all(store.derived_keys(s) == ["v0082"] for s in test_ids)
    assert all(store.derived_keys(s) == [] for s in store.study_ids(split="train"))
    bad = runner.invoke(app, ["preprocess", str(store.path), "--views", "984", "--workers", "0"])
    assert bad.exit_code == 2 and "views must lie in [1, 246]" in bad.output
    missing = runner.invoke(app, ["preprocess", str(tmp_path / "none.zarr"), "--workers", "0"])
    assert missing.exit_code == 2 and "no dataset store" in missing.output


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x


def test_run_tasks_in_process_order_and_failures():
    from sinotriage.parallel import check_workers, run_tasks

    assert run_tasks(_square_or_fail, [5, 1, 4], workers=0, progress=False) == [25, 1, 16]
    with pytest.raises(TaskError, match="1 of 4 tasks failed \\(c\\)") as info:
        run_tasks(_square_or_fail, [1, 2, 3, 4], workers=0, labels=list("abcd"), progress=True)
    assert "three is refused" in str(info.value) and list(info.value.failures) == ["c"]
    assert run_tasks(_square_or_fail, [], workers=0) == []
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        check_workers(-1, None)
    with pytest.raises(ValueError, match="scheduler must be an address"):
        check_workers(2, " ")
    with pytest.raises(ValueError, match="labels has 1 entries for 2 items"):
        run_tasks(_square_or_fail, [1, 2], workers=0, labels=["a"])
