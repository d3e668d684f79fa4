"""Ingest miniature copies of the RSNA, CQ500, SinoCT and plain-DICOM layouts into stores."""

from __future__ import annotations

import csv
import shutil
import warnings

import numpy as np
import pytest
import torch
from dicom_factory import head_like_volume, write_ct_slice, write_series
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from sinotriage.io.dicom import DicomWarning
from sinotriage.io.layouts import LAYOUTS, ingest, resample_to_grid
from sinotriage.io.layouts.cq500 import read_cq500_reads
from sinotriage.io.layouts.sinoct import SinoCTMapping, load_mapping
from sinotriage.io.store import LABEL_NAMES, open_store
from sinotriage.parallel import TaskError

N_SRC = 32                      # DICOM images 32 x 32 ...
SRC_SPACING = 250.0 / N_SRC     # ... covering the 250 mm field, resampled to the tiny 64 x 64 grid
TINY = 64
SPACING = (5.0, SRC_SPACING, SRC_SPACING)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        return fn(*args, **kwargs)


# -- resampling ----------------------------------------------------------------------------------
def test_resample_disc_area_and_identity():
    n, d = 500, 0.5                               # 250 mm field at 0.5 mm
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * d
    disc = np.where(np.hypot(yy, xx) < 60.0, 40.0, -1000.0)[None]
    out = resample_to_grid(disc, (d, d), TINY, 250.0 / TINY)
    assert out.shape == (1, TINY, TINY) and out.dtype == np.float32
    area = float((out > -480).sum()) * (250.0 / TINY) ** 2
    assert area == pytest.approx(np.pi * 60.0**2, rel=0.03)  # pixel-count error of the edge
    assert out[0, TINY // 2, TINY // 2] == pytest.approx(40.0, abs=1e-3)
    assert out[0, 0, 0] == pytest.approx(-1000.0)
    same = np.random.default_rng(0).normal(size=(2, TINY, TINY)).astype(np.float32)
    np.testing.assert_array_equal(resample_to_grid(same, (250 / TINY,) * 2, TINY, 250 / TINY), same)
    with pytest.raises(ValueError, match="pixel_spacing"):
        resample_to_grid(same, (0.0, 1.0), TINY, 1.0)


# -- RSNA ----------------------------------------------------------------------------------------
def _rsna_copy(root):
    """3 series: one normal, one with subdural blood on slices 2-3, one stored with the RSNA
    quirk; plus a corrupt file and a README. Returns {study_uid: (true HU, slice labels)}."""
    img = root / "stage_2_train"
    truth, rows = {}, []
    for k, (d, quirk, bleed) in enumerate([(4, False, None), (5, False, (2, 3)), (3, True, None)]):
        study = f"ID_{k:02d}a7e{k}"
        sops = [f"ID_{k}{j:02d}f0c" for j in range(d)]
        hu = head_like_volume(d=d, n=N_SRC, seed=k)
        write_series(img / f"series{k}", hu, spacing=SPACING, study_uid=study,
                     series_uid=f"ID_se{k}", sop_uids=sops, names="sop", rsna_quirk=quirk, seed=k)
        lab = np.zeros((d, 6), np.uint8)
        if bleed:
            lab[list(bleed), 0] = lab[list(bleed), LABEL_NAMES.index("subdural")] = 1
        for j, sop in enumerate(sops):
            rows += [(f"{sop}_{name}", int(lab[j, i])) for i, name in enumerate(LABEL_NAMES)]
        truth[study] = (hu, lab)
    rows.append(rows[3])  # a duplicated row that agrees
    rng = np.random.default_rng(0)
    with (root / "stage_2_train.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Label"])
        w.writerows(rows[i] for i in rng.permutation(len(rows)))
    (img / "broken.dcm").write_bytes(b"\x00" * 500)
    (img / "README.txt").write_text("not a DICOM file")
    return truth


def test_ingest_rsna_labels_shapes_quirk_and_sinogram(tmp_path):
    truth = _rsna_copy(tmp_path / "rsna")
    with pytest.warns(DicomWarning, match="broken.dcm"):
        res = ingest("rsna", tmp_path / "rsna", tmp_path / "rsna.zarr", preset="tiny",
                     workers=0, progress=False)
    store = open_store(tmp_path / "rsna.zarr")
    assert (res.found, res.written, res.present, res.skipped_files) == (3, 3, 0, 2)
    assert store.attrs["source"] == "rsna" and store.geometry.sinogram_shape == (246, 111)
    for study, (hu, lab) in truth.items():
        rec = store.record(study)
        assert rec["n_slices"] == hu.shape[0] and rec["label"] == int(lab[:, 0].max())
        assert rec["subdural"] == int(lab[:, 5].max()) and rec["epidural"] == 0
        np.testing.assert_array_equal(store.read(study, "labels"), lab)
        stored = store.read(study, "hu")
        assert stored.shape == (hu.shape[0], TINY, TINY) and stored.dtype == np.int16
        # independent path: the true volume (quirk-free) resampled the same way
        ref = np.clip(np.rint(resample_to_grid(hu, SPACING[1:], TINY, 250 / TINY)), -32768, 32767)
        np.testing.assert_array_equal(stored, ref)
        assert rec["n_rsna_fixed"] == (hu.shape[0] if study.startswith("ID_02") else 0)
        assert rec["spacing"] == pytest.approx([5.0, 250 / TINY, 250 / TINY])
    # the simulated sinogram is the projection of the stored HU in the store geometry
    from sinotriage.operators import hu_to_mu, project

    study = next(iter(truth))
    expected = project(hu_to_mu(torch.from_numpy(store.read(study, "hu").astype(np.float32))),
                       store.geometry, backend=store.attrs["settings"]["backend"])
    np.testing.assert_allclose(store.read(study, "sinogram"), expected.numpy(), rtol=1e-5,
                               atol=1e-5)
    assert {r["split"] for r in store.manifest} <= {"train", "val", "test"}
    assert (tmp_path / "rsna.zarr" / "manifest.csv").is_file()


def test_ingest_resumes_after_interruption(tmp_path, monkeypatch):
    _rsna_copy(tmp_path / "rsna")
    import sinotriage.io.layouts as layouts

    real = layouts.ingest_study

    def dies_on_second(spec, **kw):
        if spec.study_id == "ID_01a7e1":
            raise RuntimeError("killed")
        return real(spec, **kw)

    monkeypatch.setattr(layouts, "ingest_study", dies_on_second)
    with pytest.raises(TaskError, match="ID_01a7e1"):
        _quiet(ingest, "rsna", tmp_path / "rsna", tmp_path / "s.zarr", preset="tiny", workers=0,
               progress=False)
    store = open_store(tmp_path / "s.zarr")
    assert store.study_ids() == ["ID_00a7e0", "ID_02a7e2"]
    (tmp_path / "s.zarr" / ".partial" / "123-dead").mkdir(parents=True)  # a killed writer's trace
    before = store.read("ID_00a7e0", "sinogram")
    monkeypatch.setattr(layouts, "ingest_study", real)
    res = _quiet(ingest, "rsna", tmp_path / "rsna", tmp_path / "s.zarr", preset="tiny", workers=0,
                 progress=False)
    assert (res.written, res.present) == (1, 2)
    store = open_store(tmp_path / "s.zarr")
    assert len(store) == 3 and not any((tmp_path / "s.zarr" / ".partial").iterdir())
    np.testing.assert_array_equal(store.read("ID_00a7e0", "sinogram"), before)
    again = _quiet(ingest, "rsna", tmp_path / "rsna", tmp_path / "s.zarr", preset="tiny",
                   workers=0, progress=False)
    assert (again.written, again.present) == (0, 3)
    with pytest.raises(ValueError, match="preset"):
        _quiet(ingest, "rsna", tmp_path / "rsna", tmp_path / "s.zarr", preset="quick",
               workers=0, progress=False)


def test_ingest_strict_refuses_odd_files(tmp_path):
    _rsna_copy(tmp_path / "rsna")
    with pytest.raises(ValueError, match=r"broken.dcm|README.txt"):
        ingest("rsna", tmp_path / "rsna", tmp_path / "x.zarr", preset="tiny", strict=True,
               workers=0, progress=False)


def test_rsna_label_file_errors(tmp_path):
    src = tmp_path / "r"
    src.mkdir()
    (src / "stage_2_train.csv").write_text("ID,Label\nID_abc_epiduralx,0\n")
    with pytest.raises(ValueError, match="subtype one of"):
        ingest("rsna", src, tmp_path / "x.zarr", preset="tiny", workers=0, progress=False)
    (src / "stage_2_train.csv").write_text("ID,Label\nID_abc_any,1\nID_abc_any,0\n")
    with pytest.raises(ValueError, match="labelled both"):
        ingest("rsna", src, tmp_path / "x.zarr", preset="tiny", workers=0, progress=False)


# -- CQ500 ---------------------------------------------------------------------------------------
_FIND = ("ICH", "IPH", "IVH", "SDH", "EDH", "SAH", "Fracture")


def _cq500_copy(root):
    reads = {  # name: {finding: (R1, R2, R3)}
        "CQ500-CT-0": {"ICH": (1, 1, 0), "IPH": (1, 0, 0), "SDH": (1, 1, 1), "Fracture": (0, 1, 1)},
        "CQ500-CT-1": {},
        "CQ500-CT-7": {"ICH": (1, 1, 1)},   # no folder: warned about
    }
    with (root / "reads.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "Category"] + [f"{r}:{f}" for r in ("R1", "R2", "R3") for f in _FIND])
        for name, finds in reads.items():
            w.writerow([name, "x"] + [finds.get(f, (0, 0, 0))[i] for i in range(3) for f in _FIND])
    series = {  # study folder: [(description, kernel, thickness, n_slices)]; * = expected choice
        "CQ500CT0 CQ500CT0": [("CT PLAIN THIN*", "STANDARD", 0.625, 4),
                              ("CT BONE", "BONE", 0.625, 6),
                              ("CT 5mm", "STANDARD", 5.0, 3),
                              ("CT POST CONTRAST THIN", "STANDARD", 0.625, 7)],
        "CQ500CT1 CQ500CT1": [("CT PRE CONTRAST THIN", "STANDARD", 0.625, 5),
                              ("CT Plain*", "STANDARD", 5.0, 3), ("CT 0.625", "BONE", 0.625, 8)],
    }
    expect = {}
    for folder, items in series.items():
        study = generate_uid()
        for j, (desc, kernel, thick, d) in enumerate(items):
            write_series(root / "batch1" / folder / "Unknown Study" / desc.rstrip("*"),
                         head_like_volume(d=d, n=N_SRC, seed=j), spacing=(thick, *SPACING[1:]),
                         study_uid=study, series_description=desc.rstrip("*"), kernel=kernel)
            if desc.endswith("*"):
                expect[folder.split()[0]] = (desc.rstrip("*"), d)
    return expect


def test_ingest_cq500_series_rule_and_majority_labels(tmp_path):
    expect = _cq500_copy(tmp_path)
    with pytest.warns(DicomWarning, match="CQ500-CT-7"):
        res = ingest("cq500", tmp_path, tmp_path / "cq.zarr", preset="tiny", workers=0,
                     progress=False)
    store = open_store(tmp_path / "cq.zarr")
    assert res.found == 2 and store.study_ids() == ["CQ500-CT-0", "CQ500-CT-1"]
    r0, r1 = store.record("CQ500-CT-0"), store.record("CQ500-CT-1")
    assert (r0["series_description"], r0["n_slices"]) == expect["CQ500CT0"]
    assert (r1["series_description"], r1["n_slices"]) == expect["CQ500CT1"]
    # majority of three reads, computed here from the CSV values written above
    assert (r0["label"], r0["intraparenchymal"], r0["subdural"], r0["fracture"]) == (1, 0, 1, 1)
    assert r1["label"] == 0 and all(r1[n] == 0 for n in LABEL_NAMES[1:])
    assert "labels" not in store.arrays("CQ500-CT-0")
    assert store.read("CQ500-CT-0", "hu").shape == (expect["CQ500CT0"][1], TINY, TINY)
    assert store.read("CQ500-CT-0", "sinogram").shape == (expect["CQ500CT0"][1], 246, 111)
    with pytest.raises(ValueError, match="missing columns"):
        (tmp_path / "bad.csv").write_text("name,R1:ICH\nCQ500-CT-0,1\n")
        read_cq500_reads(tmp_path / "bad.csv")


# -- SinoCT --------------------------------------------------------------------------------------
def _sinoct_copy(root, n_sino=None):
    rng = np.random.default_rng(3)
    sinos = {}
    for k, (name, label) in enumerate([("case_001", "normal"), ("case_002", "abnormal")]):
        write_series(root / name / "recon", head_like_volume(d=3, n=N_SRC, seed=k),
                     spacing=SPACING)
        (root / name / "sino").mkdir()
        stack = rng.uniform(0, 6, size=(n_sino or 3, 246, 111)).astype(np.float32)
        for j, s in enumerate(stack):  # names sort naturally: 2 < 10
            np.save(root / name / "sino" / f"slice_{j * 8 + 2}.npy", s / 1000.0)
        sinos[name] = (stack, label)
    with (root / "labels.csv").open("w", newline="") as fh:
        fh.write("scan,diagnosis\ncase_001,normal\ncase_002,abnormal\n")
    (root / "map.yaml").write_text(
        "labels_csv: labels.csv\nid_column: scan\nlabel_column: diagnosis\nsinograms: sino\n"
        "sinogram_format: npy\n"
        "sinogram_shape: [246, 111]\nsinogram_scale: 1000.0\nsinogram_reverse: true\n")
    return sinos


def test_ingest_sinoct_mapping(tmp_path):
    sinos = _sinoct_copy(tmp_path / "sct")
    res = ingest("sinoct", tmp_path / "sct", tmp_path / "s.zarr", preset="tiny",
                 mapping=tmp_path / "sct" / "map.yaml", workers=0, progress=False)
    store = open_store(tmp_path / "s.zarr")
    assert res.written == 2 and store.geometry.sinogram_shape == (246, 111)
    for name, (stack, label) in sinos.items():
        rec = store.record(name)
        assert rec["label"] == (label == "abnormal") and rec["subdural"] == -1
        assert rec["sinogram_source"] == "measured"
        # file order reversed by the mapping, values scaled back by 1000
        np.testing.assert_allclose(store.read(name, "sinogram"), stack[::-1], rtol=1e-6)
        assert store.read(name, "hu").shape == (3, TINY, TINY)
    assert SinoCTMapping().sinogram_shape == (984, 888)


def test_ingest_sinoct_dicom_sinograms_by_instance(tmp_path):
    import pydicom
    from pydicom.pixels import apply_modality_lut

    root = tmp_path / "sct"
    write_series(root / "c1" / "recon", head_like_volume(d=3, n=N_SRC), spacing=SPACING)
    stack = np.random.default_rng(4).uniform(0, 6, size=(3, 246, 111))
    paths = []
    for k in range(3):  # file names run against the slice order; InstanceNumber gives it
        paths.append(write_ct_slice(root / "c1" / "sinogram" / f"s{9 - k}.dcm", stack[k],
                                    signed=True, slope=0.001, intercept=0.0, instance=k + 1))
    (root / "labels.csv").write_text("study_id,label\nc1,1\n")
    (root / "m.yaml").write_text("sinogram_shape: [246, 111]\nsinogram_order: instance\n")
    ingest("sinoct", root, tmp_path / "s.zarr", preset="tiny", mapping=root / "m.yaml",
           workers=0, progress=False)
    store = open_store(tmp_path / "s.zarr")
    expected = np.stack([apply_modality_lut(pydicom.dcmread(p).pixel_array, pydicom.dcmread(p))
                         for p in paths])
    np.testing.assert_allclose(store.read("c1", "sinogram"), expected, rtol=1e-6)
    np.testing.assert_allclose(store.read("c1", "sinogram"), stack, atol=6e-4)  # 0.001 steps
    assert store.record("c1")["label"] == 1


def test_sinoct_bad_inputs(tmp_path):
    _sinoct_copy(tmp_path / "sct", n_sino=2)
    with pytest.raises(TaskError, match="2 sinogram slices but 3"):
        ingest("sinoct", tmp_path / "sct", tmp_path / "s.zarr", preset="tiny",
               mapping=tmp_path / "sct" / "map.yaml", workers=0, progress=False)
    (tmp_path / "bad.yaml").write_text("sinogram_fromat: npy\n")
    with pytest.raises(ValueError, match="bad.yaml.*sinogram_fromat"):
        load_mapping(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="layout must be one of"):
        ingest("sino-ct", tmp_path / "sct", tmp_path / "t.zarr", workers=0)
    assert LAYOUTS == ("sinoct", "rsna", "cq500", "dicom")


# -- plain DICOM and the CLI ---------------------------------------------------------------------
def _dicom_tree(root):
    study = generate_uid()
    write_series(root / "pat1" / "a", head_like_volume(d=4, n=N_SRC), spacing=SPACING,
                 study_uid=study, series_uid="1.2.3.4")
    write_series(root / "pat1" / "a", head_like_volume(d=3, n=N_SRC, seed=5), spacing=SPACING,
                 study_uid=study, series_uid="1.2.3.5", prefix="B")  # same folder, other series
    write_ct_slice(root / "pat1" / "scout.dcm", np.zeros((N_SRC, N_SRC)))
    (root / "notes.txt").write_text("hello")


def test_ingest_dicom_tree_cli(tmp_path):
    from sinotriage.cli import app

    _dicom_tree(tmp_path / "tree")
    out = tmp_path / "d.zarr"
    result = CliRunner().invoke(app, ["ingest", "dicom", str(tmp_path / "tree"), "--out", str(out),
                                      "--preset", "tiny", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 studies" in result.output and "1 files skipped" in result.output
    store = open_store(out)
    assert store.study_ids() == ["1.2.3.4", "1.2.3.5"]
    assert [r["label"] for r in store.manifest] == [-1, -1]
    assert store.read("1.2.3.4", "hu").shape == (4, TINY, TINY)
    assert store.arrays("1.2.3.5") == ["hu", "sinogram"]
    bad = CliRunner().invoke(app, ["ingest", "nope", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "layout must be one of" in bad.output


@pytest.mark.slow
def test_ingest_on_local_dask_cluster_matches_in_process(tmp_path, monkeypatch):
    import sinotriage.io.layouts._common as common

    monkeypatch.setattr(common, "SCAN_CHUNK", 3)  # the header scan runs as dask tasks too
    _dicom_tree(tmp_path / "tree")
    _quiet(ingest, "dicom", tmp_path / "tree", tmp_path / "a.zarr", preset="tiny", workers=0,
           progress=False)
    _quiet(ingest, "dicom", tmp_path / "tree", tmp_path / "b.zarr", preset="tiny", workers=2,
           progress=False)
    a, b = open_store(tmp_path / "a.zarr"), open_store(tmp_path / "b.zarr")
    assert a.study_ids() == b.study_ids()
    for sid in a.study_ids():
        for name in ("hu", "sinogram"):
            np.testing.assert_array_equal(a.read(sid, name), b.read(sid, name))
    shutil.rmtree(tmp_path / "tree")


@pytest.mark.slow
def test_killed_cli_ingest_resumes_to_the_same_store(tmp_path):
    import signal
    import subprocess
    import sys

    tree = tmp_path / "tree"
    for k in range(6):
        write_series(tree / f"s{k}", head_like_volume(d=4, n=N_SRC, seed=k), spacing=SPACING,
                     series_uid=f"1.2.3.{k}")
    cmd = [sys.executable, "-c", "from sinotriage.cli import main; main()", "ingest", "dicom",
           str(tree), "--preset", "quick", "--workers", "0", "--no-progress", "--out"]
    _quiet(ingest, "dicom", tree, tmp_path / "ref.zarr", preset="quick", workers=0,
           progress=False)
    out = tmp_path / "killed.zarr"
    from _kill_at_commit import killing_env

    proc = subprocess.run([*cmd, str(out)], capture_output=True, text=True, timeout=300,
                          env=killing_env(tmp_path, after=2), start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(open_store(out).study_ids()) == 2  # killed at the commit of the third study
    rerun = subprocess.run([*cmd, str(out)], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    ref, got = open_store(tmp_path / "ref.zarr"), open_store(out)
    assert got.study_ids() == ref.study_ids()
    for sid in ref.study_ids():
        for name in ("hu", "sinogram"):
            np.testing.assert_array_equal(got.read(sid, name), ref.read(sid, name))


@pytest.mark.gpu
def test_ingest_on_cuda_matches_cpu_projection(tmp_path):
    _dicom_tree(tmp_path / "tree")
    _quiet(ingest, "dicom", tmp_path / "tree", tmp_path / "cpu.zarr", preset="tiny",
           backend="torch", workers=0, progress=False)
    _quiet(ingest, "dicom", tmp_path / "tree", tmp_path / "gpu.zarr", preset="tiny",
           device="cuda", workers=0, progress=False)
    a, b = open_store(tmp_path / "cpu.zarr"), open_store(tmp_path / "gpu.zarr")
    for sid in a.study_ids():
        np.testing.assert_array_equal(a.read(sid, "hu"), b.read(sid, "hu"))
        np.testing.assert_allclose(a.read(sid, "sinogram"), b.read(sid, "sinogram"), rtol=1e-4,
                                   atol=1e-4)
