"""Write small, realistic CT DICOM files and series with pydicom (test helpers).

Files carry the tags a CT scanner writes: SOP class CT Image Storage, Study/Series/SOP instance
UIDs, ImagePositionPatient / ImageOrientationPatient / PixelSpacing / SliceThickness,
RescaleSlope / RescaleIntercept, BitsAllocated 16 / BitsStored 12 or 16 /
PixelRepresentation, and optionally the RSNA 2019 quirk (signed 12-bit values stored as unsigned
with intercept 0).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def write_ct_slice(
    path: str | os.PathLike[str],
    hu: np.ndarray,
    *,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.5, 0.5),
    slice_thickness: float = 1.0,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    rsna_quirk: bool = False,
    signed: bool = False,
    series_description: str = "HEAD",
    kernel: str = "STANDARD",
    patient_id: str = "ANON",
) -> Path:
    """Write one CT slice whose modality LUT gives ``hu`` (rounded to the stored grid).

    ``rsna_quirk=True`` writes the RSNA 2019 defect: ``stored = hu mod 4096`` (signed 12-bit
    values as unsigned), BitsStored 12, PixelRepresentation 0, RescaleIntercept 0, slope 1.
    Otherwise ``stored = round((hu - intercept) / slope)``, unsigned 12-bit unless ``signed``
    (int16, BitsStored 16, PixelRepresentation 1).
    """
    with warnings.catch_warnings():
        # RSNA-style UIDs ("ID_1a2b3c") are not valid UI values; the real files carry them
        warnings.filterwarnings("ignore", message="Invalid value for VR UI")
        return _write_ct_slice(path, hu, position, orientation, pixel_spacing, slice_thickness,
                               study_uid, series_uid, sop_uid, instance, slope, intercept,
                               rsna_quirk, signed, series_description, kernel, patient_id)


def _write_ct_slice(path, hu, position, orientation, pixel_spacing, slice_thickness, study_uid,
                    series_uid, sop_uid, instance, slope, intercept, rsna_quirk, signed,
                    series_description, kernel, patient_id) -> Path:  # noqa: ANN001
    hu = np.asarray(hu, dtype=np.float64)
    if rsna_quirk:
        stored = np.mod(np.rint(hu).astype(np.int64), 4096).astype(np.uint16)
        slope, intercept, bits, rep = 1.0, 0.0, 12, 0
    elif signed:
        stored = np.clip(np.rint((hu - intercept) / slope), -32768, 32767).astype(np.int16)
        bits, rep = 16, 1
    else:
        stored = np.clip(np.rint((hu - intercept) / slope), 0, 4095).astype(np.uint16)
        bits, rep = 12, 0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.Manufacturer = "SINOTRIAGE TEST"
    ds.KVP = "120"
    ds.SeriesDescription = series_description
    ds.ConvolutionKernel = kernel
    ds.InstanceNumber = int(instance)
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SliceThickness = f"{slice_thickness:.4f}"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleType = "HU"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = rep
    ds.PixelData = stored.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    o = np.asarray(orientation, dtype=float)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def write_series(
    folder: str | os.PathLike[str],
    hu: np.ndarray,
    *,
    spacing: Sequence[float] = (2.5, 0.5, 0.5),
    origin: Sequence[float] = (-16.0, -16.0, -40.0),
    orientation: Sequence[float] = AXIAL,
    study_uid: str | None = None,
    series_uid: str | None = None,
    rsna_quirk: bool | Sequence[bool] = False,
    names: str = "shuffled",
    prefix: str = "IM",
    seed: int = 0,
    sop_uids: Sequence[str] | None = None,
    **kwargs: object,
) -> list[Path]:
    """Write a volume ``hu`` (D, H, W) as D single-slice files in ``folder``.

    Slice ``k`` sits at ``origin + k * dz * normal``. ``names="shuffled"`` gives the files names
    in a random order (so the reader must sort by position), ``"sop"`` names them
    ``<sop>.dcm`` (the RSNA convention, with ``sop_uids`` such as ``ID_1a2b3c``), ``"ordered"``
    ``IM0000.dcm``... Returns the paths in
    slice order (index k = slice k).
    """
    hu = np.asarray(hu)
    d = hu.shape[0]
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    normal = slice_normal(orientation)
    quirk = [rsna_quirk] * d if isinstance(rsna_quirk, bool) else list(rsna_quirk)
    perm = np.random.default_rng(seed).permutation(d) if names == "shuffled" else np.arange(d)
    paths = []
    for k in range(d):
        sop = generate_uid() if sop_uids is None else sop_uids[k]
        if names == "sop":
            name = f"{sop}.dcm"
        else:
            name = f"{prefix}{perm[k]:04d}.dcm"
        pos = np.asarray(origin, dtype=float) + k * float(spacing[0]) * normal
        paths.append(write_ct_slice(
            Path(folder) / name, hu[k], position=pos, orientation=orientation,
            pixel_spacing=spacing[1:], slice_thickness=float(spacing[0]), study_uid=study_uid,
            series_uid=series_uid, sop_uid=sop, instance=int(perm[k]) + 1,
            rsna_quirk=bool(quirk[k]), **kwargs,  # type: ignore[arg-type]
        ))
    return paths


def head_like_volume(d: int = 6, n: int = 32, seed: int = 0) -> np.ndarray:
    """A small integer HU volume (D, N, N): air, a skull ring (~1200 HU), brain (~35 HU), noise,
    a different value per slice so slice order is checkable."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) / (n / 2)
    base = np.where(r < 0.8, 35.0, -1000.0)
    base = np.where((r >= 0.8) & (r < 0.92), 1200.0, base)
    vol = np.stack([base + 3.0 * k for k in range(d)])
    vol += np.where(vol > -900, rng.normal(0, 5, vol.shape), 0.0)
    return np.rint(vol).astype(np.int32)


def write_jpegls_slice(path: str | os.PathLike[str], *, position: Sequence[float],
                       series_uid: str, study_uid: str, pixel_spacing: Sequence[float] = (0.5, 0.5),
                       instance: int = 1) -> Path:
    """A 64 x 64 slice with JPEG-LS compressed pixel data (pydicom's bundled
    ``MR_small_jpeg_ls_lossless.dcm`` re-labelled as a CT slice of the given series); decoding
    it needs pylibjpeg-libjpeg, pyjpegls or gdcm."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    ds.Modality = "CT"
    ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in AXIAL]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.InstanceNumber = instance
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


# -- hostile files (tests of the reading policy and the fuzz test) -------------------------------
def set_raw(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: dict[str, object],
            vr: str | None = None) -> Path:
    """Copy a DICOM file with header values replaced by raw bytes, bypassing pydicom's value
    checks (``b"nan"``, ``b""``, ``b"abc"``, ``b"1\\\\2"``, ...); a value of None deletes the tag.
    ``vr`` overrides the element's VR (e.g. ``"UN"``); the default is the dictionary VR."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src, force=True)
        for keyword, raw in edits.items():
            tag = Tag(keyword)
            if raw is None:
                if tag in ds:
                    del ds[tag]
                continue
            raw = raw if isinstance(raw, bytes) else str(raw).encode("latin-1")
            if len(raw) % 2:
                raw += b"\x00" if (vr or dictionary_VR(tag)) == "UI" else b" "
            ds._dict[tag] = RawDataElement(tag, vr or dictionary_VR(tag), len(raw), raw, 0,
                                           False, True)
        ds.save_as(dst)
    return Path(dst)


def replace_transfer_syntax(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                            uid: bytes = b"1.2.840.10008.5.1.4") -> Path:
    """Copy an explicit-VR little-endian file with its TransferSyntaxUID replaced, byte for byte,
    by a UID of the same length that is not a transfer syntax (pydicom refuses to write one)."""
    data = Path(src).read_bytes()
    old = b"1.2.840.10008.1.2.1\x00"
    if data.count(old) != 1 or len(uid.ljust(len(old), b"\x00")) != len(old):
        raise ValueError("expected one explicit VR little endian transfer syntax UID")
    Path(dst).write_bytes(data.replace(old, uid.ljust(len(old), b"\x00")))
    return Path(dst)


def write_deflate_bomb(path: str | os.PathLike[str], rows: int = 8192, columns: int = 8192,
                       declared: tuple[int, int] | None = None) -> Path:
    """A CT slice of ``rows x columns`` zero pixels (16 bit) in the Deflated Explicit VR Little
    Endian transfer syntax: 8192 x 8192 is 128 MiB of pixel data in about 130 KB. ``declared``
    writes other Rows / Columns into the header than the pixel data holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_ct_slice(path, np.zeros((2, 2)))
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns = declared or (rows, columns)
        ds.PixelData = bytes(rows * columns * 2)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    return Path(path)


def relabel(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, modality: str | None,
            sop_class: str | None) -> Path:
    """Copy a file with another Modality / SOPClassUID (None: delete the tag)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src)
        for keyword, value in (("Modality", modality), ("SOPClassUID", sop_class)):
            if value is None:
                if keyword in ds:
                    del ds[keyword]
            else:
                setattr(ds, keyword, value)
        if sop_class is not None:
            ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.save_as(dst)
    return Path(dst)
