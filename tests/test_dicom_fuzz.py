"""Fuzz the DICOM reader with hypothesis: mutated real and synthetic files.

Seeds: a synthetic 3-slice CT series (``dicom_factory``) and pydicom's own test files that ship
with pydicom (no download), some re-labelled as CT so they reach the pixel path. Mutations: byte
flips, truncations, header edits (NaN, inf, empty, wrong VR, huge values, deletions), deflate
bombs, and non-CT relabelling.

Every case reads the mutant alone (``read_dicom_slice``) and as the third file of the clean series
(``read_dicom_series``, lenient or strict) and asserts, per call:

- it returns a finite result that matches an independent reference (HU from pydicom's own decode
  of the file and ``stored * slope + intercept``; the clean slices in their known order), with
  every input file accounted for as read or skipped; or it raises :class:`DicomError` naming the
  file (or carrying the skipped files);
- it finishes within 10 s;
- its tracemalloc peak stays under ``PEAK_LIMIT``: one file's read may hold the file bytes, the
  decoded array and the float32 HU image (each at most the cap ``CAP``), plus the header
  allowance of a deflated dataset, plus a fixed margin.

The default run is bounded (``DEFAULT_EXAMPLES`` cases); the slow run takes
``SINOTRIAGE_FUZZ_EXAMPLES`` (default 3000) and, with ``SINOTRIAGE_FUZZ_REPORT=path.json``, writes
its figures (cases, clean errors, reads, crashes, silent wrong, slowest call, peak memory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    head_like_volume,
    relabel,
    replace_transfer_syntax,
    set_raw,
    write_deflate_bomb,
    write_series,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import CTImageStorage, MRImageStorage, RTDoseStorage, SecondaryCaptureImageStorage

from sinotriage.io.dicom import REASONS, DicomError, read_dicom_series, read_dicom_slice
from sinotriage.io.dicom_header import HEADER_ALLOWANCE

CAP = 2**20  # max_pixel_bytes of the fuzz: 512 x 512 float32
PEAK_LIMIT = 3 * CAP + HEADER_ALLOWANCE + 4 * 2**20
SECONDS = 10.0
DEFAULT_EXAMPLES = 300

#: pydicom test files that ship with the package (checked to exist offline)
REAL = ("CT_small.dcm", "MR_small.dcm", "badVR.dcm", "rtdose_1frame.dcm", "image_dfl.dcm",
        "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
        "MR_truncated.dcm", "ExplVR_BigEndNoMeta.dcm", "no_meta.dcm", "rtstruct.dcm",
        "JPEG2000.dcm", "SC_rgb_small_odd.dcm", "liver_1frame.dcm", "MR_small_jpeg_ls_lossless.dcm")
#: real files re-labelled as CT so that they pass the modality check
AS_CT = ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
         "image_dfl.dcm", "JPEG2000.dcm")

KEYWORDS = ("RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient",
            "PixelSpacing", "SliceThickness", "SpacingBetweenSlices", "Rows", "Columns",
            "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
            "NumberOfFrames", "PhotometricInterpretation", "Modality", "SOPClassUID",
            "SeriesInstanceUID", "InstanceNumber", "PixelData")
RAW = (b"nan", b"inf", b"-inf", b"", b"abc", b"1e400", b"1e308", b"-1", b"0", b"1\\2",
       b"99999999", b"1A", b"\x00\xff\x00\xff", b"65535", b"-0", b"1e-30", b"2.5", b"  ",
       b"nan\\0\\0", b"0\\0\\0\\0\\0\\0", None)
VRS = (None, None, None, "UN", "OB", "DS", "US", "LO", "SQ")
MODALITIES = ("MR", "RTDOSE", "OT", "PT", "", "CT", "ct ")
SOP_CLASSES = (MRImageStorage, RTDoseStorage, SecondaryCaptureImageStorage, CTImageStorage,
               "1.2.3.4", "")

STATS: Counter = Counter()
EXTREMES = {"slowest_s": 0.0, "peak_bytes": 0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seed files: ``clean`` (3 paths of one synthetic series), their HU, and named seeds."""
    from pydicom.data import get_testdata_file

    root = tmp_path_factory.mktemp("fuzz_seeds")
    hu = head_like_volume(d=3, n=24, seed=3)
    clean = write_series(root / "series", hu, names="ordered")
    seeds = {"synthetic": clean[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in REAL:
            try:
                path = get_testdata_file(name)
            except Exception:  # noqa: BLE001 - a file this pydicom does not ship
                path = None
            if path and os.path.isfile(path):
                seeds[name] = Path(path)
        for name in AS_CT:
            if name in seeds:
                try:
                    seeds[f"ct:{name}"] = relabel(seeds[name], root / f"ct_{name}",
                                                  modality="CT", sop_class=CTImageStorage)
                except Exception:  # noqa: BLE001 - a file pydicom cannot re-write
                    pass
    assert "CT_small.dcm" in seeds and len(seeds) >= 10
    return {"clean": clean, "hu": hu, "seeds": seeds}


def _mutations(names):
    seed = st.sampled_from(sorted(names))
    return st.one_of(
        st.tuples(st.just("flip"), seed, st.lists(st.integers(0, 2**16), min_size=1, max_size=8),
                  st.integers(1, 255)),
        st.tuples(st.just("truncate"), seed, st.floats(0.0, 1.0)),
        st.tuples(st.just("edit"), seed,
                  st.dictionaries(st.sampled_from(KEYWORDS), st.sampled_from(RAW), min_size=1,
                                  max_size=3),
                  st.sampled_from(VRS)),
        st.tuples(st.just("bomb"), st.integers(1, 2048), st.integers(1, 2048),
                  st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.integers(0, 65535)))),
        st.tuples(st.just("relabel"), seed, st.sampled_from(MODALITIES),
                  st.sampled_from(SOP_CLASSES)),
        st.tuples(st.just("transfer-syntax"), st.just("synthetic")),
    )


def _make(mutation, seeds, out: Path) -> Path:
    kind = mutation[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "bomb":
            _, rows, cols, declared = mutation
            return write_deflate_bomb(out, rows, cols, declared=declared)
        src = seeds[mutation[1]]
        if kind == "flip":
            data = bytearray(src.read_bytes())
            for pos in mutation[2]:
                data[pos % len(data)] ^= mutation[3]
            out.write_bytes(bytes(data))
        elif kind == "truncate":
            data = src.read_bytes()
            out.write_bytes(data[: int(mutation[2] * len(data))])
        elif kind == "edit":
            try:
                set_raw(src, out, mutation[2], vr=mutation[3])
            except Exception:  # noqa: BLE001 - pydicom cannot write this edit: use the seed
                shutil.copy(src, out)
        elif kind == "relabel":
            try:
                relabel(src, out, modality=mutation[2] or None, sop_class=mutation[3] or None)
            except Exception:  # noqa: BLE001
                shutil.copy(src, out)
        else:
            replace_transfer_syntax(src, out)
    return out


class _Hang(Exception):
    pass


def _call(fn):
    """(result or exception, seconds, tracemalloc peak bytes) of ``fn()`` with a 2 x SECONDS
    alarm (a hang is reported, not waited for)."""

    def alarm(signum, frame):
        raise _Hang(f"no answer within {2 * SECONDS} s")

    timed = hasattr(signal, "SIGALRM")  # POSIX; elsewhere the measured time still counts
    if timed:
        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, 2 * SECONDS)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        out = exc
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    EXTREMES["slowest_s"] = max(EXTREMES["slowest_s"], seconds)
    EXTREMES["peak_bytes"] = max(EXTREMES["peak_bytes"], peak)
    return out, seconds, peak


def _reference_hu(path: Path) -> tuple[np.ndarray, list[float]]:
    """HU and position of a file by pydicom alone: ``stored * slope + intercept`` (the RSNA fix
    when it applies); raises when pydicom cannot decode the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        stored = ds.pixel_array.astype(np.float64)
        slope = float(ds.RescaleSlope) if ds.get("RescaleSlope") is not None else 1.0
        intercept = float(ds.RescaleIntercept) if ds.get("RescaleIntercept") is not None else 0.0
        if int(ds.get("BitsStored", ds.BitsAllocated)) == 12 and int(ds.get("PixelRepresentation", 0)) == 0 \
                and intercept > -100:
            hu = np.mod(stored + 1000, 4096) * slope - 1000.0
        else:
            hu = stored * slope + intercept
        return hu, [float(v) for v in ds.ImagePositionPatient]


def _named(err: DicomError, inputs: list[str]) -> bool:
    if err.reason not in (*REASONS, "gap"):
        return False
    if any(p in str(err) for p in inputs):
        return True
    return bool(err.skipped) and {s.path for s in err.skipped} <= set(inputs)


def _check_slice(out, path: Path) -> str:
    if isinstance(out, DicomError):
        return "error" if _named(out, [str(path)]) else "crash"
    if isinstance(out, Exception):
        return "crash"
    if not (out.hu.dtype == np.float32 and out.hu.ndim == 2 and np.isfinite(out.hu).all()):
        return "silent-wrong"
    try:
        ref, position = _reference_hu(path)
    except Exception:  # noqa: BLE001 - read what pydicom cannot decode
        return "silent-wrong"
    if ref.shape != out.hu.shape or not np.array_equal(ref.astype(np.float32), out.hu):
        return "silent-wrong"
    if not np.array_equal(np.asarray(position), out.position):
        return "silent-wrong"
    return "read"


def _check_series(out, inputs: list[str], clean_hu: dict[str, np.ndarray], strict: bool) -> str:
    if isinstance(out, DicomError):
        return "error" if _named(out, inputs) else "crash"
    if isinstance(out, Exception):
        return "crash"
    files, skipped = list(out.files), [s.path for s in out.skipped]
    if sorted(files + skipped) != sorted(inputs) or (strict and skipped):
        return "silent-wrong"
    if out.hu.shape[0] != len(files) or not np.isfinite(out.hu).all():
        return "silent-wrong"
    if not (np.isfinite(out.spacing).all() and min(out.spacing) >= 0):
        return "silent-wrong"
    proj = out.positions @ np.cross(out.orientation[:3], out.orientation[3:])
    if len(files) > 1 and not (out.spacing[0] > 0 and np.all(np.diff(proj) > 0)):
        return "silent-wrong"
    for k, f in enumerate(files):
        if f in clean_hu and not np.array_equal(out.hu[k], clean_hu[f]):
            return "silent-wrong"
    return "read"


def _run_case(corpus, mutation, allow_non_ct: bool, strict: bool) -> None:
    clean = [str(p) for p in corpus["clean"]]
    with tempfile.TemporaryDirectory() as tmp:
        mutant = _make(mutation, corpus["seeds"], Path(tmp) / "mutant.dcm")
        inputs = [*clean[1:], str(mutant)]
        clean_hu = {clean[k]: corpus["hu"][k].astype(np.float32) for k in (1, 2)}
        calls = [
            ("slice", lambda: read_dicom_slice(mutant, max_pixel_bytes=CAP,
                                               allow_non_ct=allow_non_ct)),
            ("strict" if strict else "series",
             lambda: read_dicom_series(inputs, strict=strict, max_pixel_bytes=CAP)),
        ]
        for name, fn in calls:
            out, seconds, peak = _call(fn)
            if isinstance(out, _Hang) or seconds > SECONDS:
                outcome = "hang"
            elif peak > PEAK_LIMIT:
                outcome = "memory"
            elif name == "slice":
                outcome = _check_slice(out, mutant)
            else:
                outcome = _check_series(out, inputs, clean_hu, name == "strict")
            STATS["calls"] += 1
            STATS[outcome] += 1
            STATS[f"{mutation[0]}:{outcome}"] += 1
            if isinstance(out, DicomError):
                STATS[f"reason:{out.reason}"] += 1
            assert outcome in ("read", "error"), (
                f"{outcome} in {name} of {mutation}: {out!r} ({seconds:.2f} s, {peak} bytes)")
    STATS["cases"] += 1


def _fuzz(corpus, examples: int, derandomize: bool) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutation=_mutations(corpus["seeds"]), allow_non_ct=st.booleans(), strict=st.booleans())
    def case(mutation, allow_non_ct, strict):
        _run_case(corpus, mutation, allow_non_ct, strict)

    case()


def test_fuzz_dicom_reader(corpus):
    """A bounded run (the default suite)."""
    _fuzz(corpus, DEFAULT_EXAMPLES, derandomize=True)
    assert STATS["cases"] >= DEFAULT_EXAMPLES and STATS["read"] > 0 and STATS["error"] > 0


@pytest.mark.slow
def test_fuzz_dicom_reader_long(corpus):
    """Thousands of cases; ``SINOTRIAGE_FUZZ_REPORT`` receives the figures."""
    STATS.clear()
    EXTREMES.update(slowest_s=0.0, peak_bytes=0)
    t0 = time.perf_counter()
    _fuzz(corpus, int(os.environ.get("SINOTRIAGE_FUZZ_EXAMPLES", "3000")), derandomize=False)
    report = {**STATS, **EXTREMES, "wall_s": time.perf_counter() - t0, "cap_bytes": CAP,
              "peak_limit_bytes": PEAK_LIMIT, "seeds": len(corpus["seeds"])}
    if os.environ.get("SINOTRIAGE_FUZZ_REPORT"):
        Path(os.environ["SINOTRIAGE_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1))
    assert STATS["crash"] == STATS["silent-wrong"] == STATS["hang"] == STATS["memory"] == 0
