"""Hostile DICOM: impossible headers, per-file failures, resource limits, non-CT files.

Each defect class of the hardening issue has a test here; the fuzz test
(``test_dicom_fuzz.py``) covers the classes at random.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
import warnings

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    head_like_volume,
    relabel,
    replace_transfer_syntax,
    set_raw,
    write_ct_slice,
    write_deflate_bomb,
    write_series,
)
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import MRImageStorage, SecondaryCaptureImageStorage, generate_uid

from sinotriage.errors import InputError
from sinotriage.io import dicom_header
from sinotriage.io.dicom import (
    REASONS,
    DicomError,
    DicomWarning,
    read_dicom_series,
    read_dicom_slice,
)


def _series(tmp_path, d=4, n=16):
    """A clean series IM0000..IM{d-1} (2.5 mm apart) and its HU volume."""
    hu = head_like_volume(d=d, n=n)
    paths = write_series(tmp_path, hu, study_uid=generate_uid(), series_uid=generate_uid(),
                         names="ordered")
    return paths, hu


def _both_modes(folder, bad, reason):
    """strict: DicomError naming ``bad`` with ``reason``; lenient: ``bad`` skipped, rest read."""
    with pytest.raises(DicomError) as info:
        read_dicom_series(folder, strict=True)
    assert info.value.reason == reason and bad.name in str(info.value)
    assert info.value.path == str(bad)
    with pytest.warns(DicomWarning, match=bad.name):
        vol = read_dicom_series(folder)
    assert [(s.path, s.reason) for s in vol.skipped] == [(str(bad), reason)]
    assert np.isfinite(vol.hu).all() and np.isfinite(vol.spacing).all()
    return vol, info.value


# -- 1 and 2: header values that do not parse, are not finite or out of range ------------------
BAD_VALUES = [
    ("RescaleSlope", b"nan"), ("RescaleSlope", b"inf"), ("RescaleSlope", b"1e400"),
    ("RescaleSlope", b""), ("RescaleSlope", b"abc"), ("RescaleSlope", b"1\\2"),
    ("RescaleSlope", b"0"), ("RescaleIntercept", b"nan"), ("RescaleIntercept", b"-inf"),
    ("RescaleIntercept", b"1e300"), ("ImagePositionPatient", b"nan\\0\\0"),
    ("ImagePositionPatient", b"1e308\\0\\-1e308"), ("ImagePositionPatient", b"0\\0"),
    ("ImageOrientationPatient", b"1\\0\\0\\1\\0\\0"), ("ImageOrientationPatient", b"nan\\0\\0\\0\\1\\0"),
    ("PixelSpacing", b"0\\0.5"), ("PixelSpacing", b"-1\\0.5"), ("PixelSpacing", b"nan\\nan"),
    ("SliceThickness", b"abc"), ("SliceThickness", b"inf"), ("SpacingBetweenSlices", b"x"),
    ("NumberOfFrames", b"1A"), ("Rows", b"\x00\x00"), ("BitsAllocated", b"\x0c\x00"),
    ("BitsStored", b"\x14\x00"), ("PixelRepresentation", b"\x02\x00"),
]


@pytest.mark.parametrize(("keyword", "raw"), BAD_VALUES,
                         ids=[f"{k}={v!r}" for k, v in BAD_VALUES])
def test_impossible_header_value_is_named_and_skipped(tmp_path, keyword, raw):
    paths, hu = _series(tmp_path)
    bad = set_raw(paths[0], tmp_path / "zz_bad.dcm", {keyword: raw})
    # the edited copy sits at the same position as IM0000; move it to a new slot first
    bad = set_raw(bad, bad, {"ImagePositionPatient": b"-16\\-16\\-30"}) if (
        keyword != "ImagePositionPatient") else bad
    _, err = _both_modes(tmp_path, bad, "bad-header")
    assert keyword in str(err) and isinstance(err, InputError)


def test_nan_position_does_not_misorder_the_series(tmp_path):
    paths, hu = _series(tmp_path, d=5)
    set_raw(paths[2], paths[2], {"ImagePositionPatient": b"-16\\-16\\nan"})
    vol, _ = _both_modes(tmp_path, paths[2], "bad-header")
    np.testing.assert_array_equal(vol.hu, hu[[0, 1, 3, 4]])
    assert vol.files == [str(paths[i]) for i in (0, 1, 3, 4)]
    assert vol.spacing[0] == pytest.approx(2.5) and vol.gaps == [(1, pytest.approx(5.0))]


def test_transfer_syntax_that_is_not_one(tmp_path):
    paths, _ = _series(tmp_path, d=3)
    replace_transfer_syntax(paths[1], paths[1])
    _, err = _both_modes(tmp_path, paths[1], "bad-header")
    assert "TransferSyntaxUID" in str(err)


def test_pydicom_badvr_file(tmp_path):
    """pydicom's badVR.dcm: an RTDOSE with NumberOfFrames '1A'."""
    path = get_testdata_file("badVR.dcm")
    with pytest.raises(DicomError, match="badVR.dcm.*not a CT image") as info:
        read_dicom_slice(path)
    assert info.value.reason == "not-ct"
    with pytest.raises(DicomError, match="badVR.dcm.*NumberOfFrames") as info:
        read_dicom_slice(path, allow_non_ct=True)
    assert info.value.reason == "bad-header"


@pytest.mark.parametrize("keep", [100, 300, 700, -1000, -2])
def test_truncated_file_is_skipped(tmp_path, keep):
    paths, hu = _series(tmp_path, d=3)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:keep])
    vol, _ = _both_modes(tmp_path, paths[1], "unreadable")
    np.testing.assert_array_equal(vol.hu, hu[[0, 2]])


# -- 3: resource limits --------------------------------------------------------------------------
def _measured(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DicomError) as info:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return info.value, time.perf_counter() - t0, peak


def test_deflate_bomb_refused_before_inflating(tmp_path):
    bomb = write_deflate_bomb(tmp_path / "bomb.dcm", 8192, 8192)
    assert bomb.stat().st_size < 200_000  # 128 MiB of pixels in ~130 KB
    err, seconds, peak = _measured(lambda: read_dicom_slice(bomb))
    assert err.reason == "too-large" and "bomb.dcm" in str(err) and "8192" in str(err)
    assert peak < 8 * 2**20 and seconds < 5


def test_deflate_bomb_under_a_small_declared_size(tmp_path):
    """The header says 2 x 2, the deflated data holds 4096 x 4096: inflation stops at the
    declared size plus the header allowance."""
    bomb = write_deflate_bomb(tmp_path / "liar.dcm", 4096, 4096, declared=(2, 2))
    err, _, peak = _measured(lambda: read_dicom_slice(bomb))
    assert err.reason == "too-large" and "liar.dcm" in str(err)
    assert peak < 3 * dicom_header.HEADER_ALLOWANCE


def test_deflated_slice_reads_like_the_uncompressed_one(tmp_path):
    hu = head_like_volume(d=1, n=32)[0]
    plain = write_ct_slice(tmp_path / "plain.dcm", hu)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert (tmp_path / "deflated.dcm").stat().st_size < plain.stat().st_size
    np.testing.assert_array_equal(read_dicom_slice(tmp_path / "deflated.dcm").hu, hu)


def test_zero_filled_file_rejected_quickly(tmp_path):
    zeros = tmp_path / "zeros.dcm"
    zeros.write_bytes(bytes(32 * 2**20))
    err, seconds, _ = _measured(lambda: read_dicom_slice(zeros))
    assert err.reason == "unreadable" and "zeros.dcm" in str(err)
    assert seconds < 1.0  # the forced parse took ~10 s
    # a DICM preamble followed by zeros is not parsed either
    data = bytearray(zeros.read_bytes())
    data[128:132] = b"DICM"
    zeros.write_bytes(bytes(data))
    err, seconds, _ = _measured(lambda: read_dicom_slice(zeros))
    assert err.reason == "unreadable" and seconds < 1.0


def test_max_pixel_bytes_is_checked_from_the_header(tmp_path):
    path = write_ct_slice(tmp_path / "a.dcm", np.zeros((64, 48)))
    need = 64 * 48 * 4  # float32 HU bytes
    assert read_dicom_slice(path, max_pixel_bytes=need).hu.shape == (64, 48)
    with pytest.raises(DicomError, match="a.dcm.*max_pixel_bytes") as info:
        read_dicom_slice(path, max_pixel_bytes=need - 1)
    assert info.value.reason == "too-large"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        with pytest.raises(DicomError, match="too-large 1"):
            read_dicom_series([path], max_pixel_bytes=need - 1)


def test_file_size_limit(tmp_path, monkeypatch):
    path = write_ct_slice(tmp_path / "a.dcm", np.zeros((32, 32)))
    monkeypatch.setattr(dicom_header, "HEADER_ALLOWANCE", 0)
    with pytest.raises(DicomError, match="a.dcm.*over the limit") as info:
        read_dicom_slice(path, max_pixel_bytes=path.stat().st_size - 1)
    assert info.value.reason == "too-large"


# -- 4: not CT -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("modality", "sop"), [
    ("MR", MRImageStorage), ("CT", SecondaryCaptureImageStorage), ("RTDOSE", None),
    (None, None), ("OT", None),
], ids=["MR", "CT-secondary-capture", "RTDOSE", "no-modality", "OT"])
def test_non_ct_is_skipped_unless_allowed(tmp_path, modality, sop):
    paths, hu = _series(tmp_path, d=3)
    relabel(paths[1], paths[1], modality=modality, sop_class=sop)
    if sop is None:  # no SOP class anywhere (the file meta's copy too)
        set_raw(paths[1], paths[1], {"SOPClassUID": None})
        ds = pydicom.dcmread(paths[1])
        del ds.file_meta.MediaStorageSOPClassUID
        ds.save_as(paths[1])
    _, err = _both_modes(tmp_path, paths[1], "not-ct")
    assert "allow_non_ct" in str(err)
    vol = read_dicom_series(tmp_path, strict=True, allow_non_ct=True)
    np.testing.assert_array_equal(vol.hu, hu)


@pytest.mark.parametrize("name", ["MR_small.dcm", "rtdose_1frame.dcm"])
def test_pydicom_non_ct_files(name):
    path = get_testdata_file(name)
    with pytest.raises(DicomError, match=f"{name}.*not a CT image") as info:
        read_dicom_slice(path)
    assert info.value.reason == "not-ct"
    s = read_dicom_slice(path, allow_non_ct=True)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(s.hu, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))


# -- counts for callers (ingest) -----------------------------------------------------------------
def test_skips_counted_by_reason(tmp_path):
    paths, _ = _series(tmp_path, d=3)
    (tmp_path / "notes.txt").write_text("hello")
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm")
    set_raw(paths[0], tmp_path / "nan.dcm", {"RescaleSlope": b"nan"})
    with pytest.warns(DicomWarning):
        vol = read_dicom_series(tmp_path)
    assert vol.skipped_by_reason == {"unreadable": 1, "bad-header": 1, "not-ct": 1}
    assert list(vol.skipped_by_reason) == [r for r in REASONS if r in vol.skipped_by_reason]
    for p in paths:
        p.unlink()
    with pytest.warns(DicomWarning), pytest.raises(DicomError, match="3 files skipped") as info:
        read_dicom_series(tmp_path)
    assert sorted(s.reason for s in info.value.skipped) == ["bad-header", "not-ct", "unreadable"]


def test_huge_length_field_costs_only_the_file(tmp_path):
    """A flipped length field claiming ~2 GB (found by the fuzz test): Python's file read(n)
    would allocate n bytes; the reader parses the file's bytes from memory instead."""
    path = write_ct_slice(tmp_path / "long.dcm", np.zeros((16, 16)))
    data = bytearray(path.read_bytes())
    at = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")  # the PixelData element
    data[at + 8:at + 12] = (0x7FFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    err, _, peak = _measured(lambda: read_dicom_slice(path))
    assert err.reason == "unreadable" and "long.dcm" in str(err) and peak < 4 * 2**20


@pytest.mark.parametrize("head_bytes", [2**18, 300])
def test_header_scan_reads_the_head_of_large_files(tmp_path, monkeypatch, head_bytes):
    """read_header parses only the first bytes of a large file when the header fits in them,
    else the whole file; both give pydicom's header."""
    from sinotriage.io.dicom import read_header

    path = write_ct_slice(tmp_path / "big.dcm", np.zeros((512, 512)), series_description="X1")
    monkeypatch.setattr(dicom_header, "_HEAD_BYTES", head_bytes)
    ds = read_header(path)
    ref = pydicom.dcmread(path, stop_before_pixels=True)
    assert "PixelData" not in ds and ds.Rows == 512 and ds.SeriesDescription == "X1"
    assert ds.SOPInstanceUID == ref.SOPInstanceUID and list(ds.keys()) == list(ref.keys())


def test_reason_counts_accepts_reason_strings():
    from sinotriage.io.dicom import Skipped, reason_counts

    items = ["not-ct", Skipped("a", "unreadable", "a: x"), "unreadable", "zz-custom"]
    assert reason_counts(items) == {"unreadable": 2, "not-ct": 1, "zz-custom": 1}
    assert list(reason_counts(items)) == ["unreadable", "not-ct", "zz-custom"]
