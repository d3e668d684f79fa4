"""SinoCT: per-study folders of reconstructed slices and measured sinograms, plus a label CSV.

SinoCT (Coronado & Sheen, "Exploring Deep Learning Methods for Head CT Triage", Stanford University)
holds 9,776 head CT scans labelled normal/abnormal, each with 512 x 512 reconstructed slices and a
sinogram of 984 x 888 per slice, stored as about 40 ``.dcm`` files per scan.

The public description of the SinoCT files is thin, so the adapter is driven by a small YAML
mapping (every key optional; defaults shown)::

    labels_csv: labels.csv        # relative to SRC
    id_column: study_id           # study folder name
    label_column: label           # normal/abnormal (or 0/1, true/false, yes/no)
    split_column: null            # optional column with train/val/test
    studies: "*"                  # glob of the study folders under SRC
    recon: recon                  # sub-folder of reconstructed DICOM slices (null: none)
    sinograms: sinogram           # sub-folder of sinogram slices
    sinogram_format: dicom        # dicom (one image per file, as SinoCT ships them) or npy
                                  #   (one (V, C) float array per file)
    sinogram_shape: [984, 888]    # views x channels per slice
    sinogram_scale: 1.0           # stored value x scale = line integral of mu
    sinogram_order: name          # name: natural order of the file names; instance: DICOM
                                  #   InstanceNumber
    sinogram_reverse: false       # true when that order runs superior to inferior

Sinogram slice ``k`` (after ordering) must belong to reconstructed slice ``k`` (ordered along the
slice normal, inferior to superior); the counts must agree. Scan labels come from the CSV
(slice labels do not exist); subtype flags are unknown (-1). A study folder without a CSV row is
skipped with a warning.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sinotriage.errors import InputError
from sinotriage.io.dicom import list_files
from sinotriage.io.layouts._common import StudySpec, safe_id, warn
from sinotriage.vocabulary import SPLITS

__all__ = ["SinoCTMapping", "load_mapping", "discover_sinoct"]

POSITIVE = ("abnormal", "1", "true", "yes", "positive")
NEGATIVE = ("normal", "0", "false", "no", "negative")


class SinoCTMapping(BaseModel):
    """How a SinoCT copy is laid out (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    labels_csv: str = "labels.csv"
    id_column: str = "study_id"
    label_column: str = "label"
    split_column: str | None = None
    studies: str = "*"
    recon: str | None = "recon"
    sinograms: str = "sinogram"
    sinogram_format: Literal["npy", "dicom"] = "dicom"
    sinogram_shape: tuple[int, int] = (984, 888)
    sinogram_scale: float = Field(1.0, gt=0)
    sinogram_order: Literal["name", "instance"] = "name"
    sinogram_reverse: bool = False

    @field_validator("sinogram_shape")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1:
            raise InputError(f"sinogram_shape must be two positive integers, got {v}")
        return v


def load_mapping(path: str | os.PathLike[str] | None) -> SinoCTMapping:
    """Read a YAML mapping (None: the defaults); unknown keys and bad values raise ValueError."""
    if path is None:
        return SinoCTMapping()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SinoCT mapping {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: the mapping must be a YAML mapping of keys, got {type(data)}")
    try:
        return SinoCTMapping(**data)
    except ValidationError as exc:  # -> one line naming the file, the keys and the problems
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{path}: invalid SinoCT mapping ({problems}); keys are "
                         f"{sorted(SinoCTMapping.model_fields)}") from None


def _read_labels(path: Path, m: SinoCTMapping) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"SinoCT label file {path} does not exist (labels_csv)")
    out: dict[str, dict[str, Any]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        need = {m.id_column, m.label_column} | ({m.split_column} if m.split_column else set())
        if not need <= cols:
            raise InputError(f"{path}: missing columns {sorted(need - cols)} (have {sorted(cols)})")
        for line, row in enumerate(reader, start=2):
            value = row[m.label_column].strip().lower()
            if value in POSITIVE:
                label = 1
            elif value in NEGATIVE:
                label = 0
            else:
                raise InputError(f"{path}:{line}: {m.label_column} must be one of "
                                 f"{POSITIVE + NEGATIVE}, got {value!r}")
            rec: dict[str, Any] = {"label": label}
            if m.split_column:
                split = row[m.split_column].strip().lower()
                if split not in SPLITS:
                    raise InputError(f"{path}:{line}: {m.split_column} must be one of "
                                     f"{', '.join(SPLITS)}, got {split!r}")
                rec["split"] = split
            out[row[m.id_column].strip()] = rec
    return out


def _sinogram_files(folder: Path, m: SinoCTMapping) -> list[str]:
    files = list_files(folder)  # natural order of names
    suffix = ".npy" if m.sinogram_format == "npy" else None
    if suffix:
        files = [f for f in files if f.lower().endswith(suffix)]
    if m.sinogram_format == "dicom" and m.sinogram_order == "instance":
        import pydicom

        def instance(f: str) -> int:
            try:
                return int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber)
            except Exception as exc:  # noqa: BLE001
                raise InputError(
                    f"{f}: no InstanceNumber to order sinogram slices ({exc})") from None

        files = sorted(files, key=instance)
    return files[::-1] if m.sinogram_reverse else files


def discover_sinoct(src: str | os.PathLike[str], mapping: SinoCTMapping, *,
                    strict: bool = False) -> tuple[list[StudySpec], int]:
    """Find the SinoCT studies under ``src``; returns (study specs, 0)."""
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"SinoCT folder {src} does not exist")
    labels = _read_labels(src / mapping.labels_csv, mapping)
    specs = []
    for folder in sorted(p for p in src.glob(mapping.studies) if p.is_dir()):
        name = folder.name
        if name not in labels:
            warn(f"{folder}: no row in {mapping.labels_csv} for {name!r}; study skipped")
            continue
        sino_dir = folder / mapping.sinograms
        if not sino_dir.is_dir():
            raise FileNotFoundError(f"{folder}: no sinogram folder {mapping.sinograms!r}")
        sino_files = _sinogram_files(sino_dir, mapping)
        if not sino_files:
            raise InputError(f"{sino_dir}: no sinogram slices ({mapping.sinogram_format})")
        files: list[str] = []
        if mapping.recon is not None:
            recon_dir = folder / mapping.recon
            if not recon_dir.is_dir():
                raise FileNotFoundError(f"{folder}: no reconstruction folder {mapping.recon!r}")
            files = list_files(recon_dir)
        record = {"source": "sinoct", "path": str(folder), **labels[name]}
        specs.append(StudySpec(study_id=safe_id(name), files=files, record=record,
                               sinogram_files=sino_files, sinogram_format=mapping.sinogram_format,
                               sinogram_scale=mapping.sinogram_scale))
    return specs, 0
