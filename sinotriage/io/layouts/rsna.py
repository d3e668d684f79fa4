"""RSNA Intracranial Hemorrhage Detection 2019: ``stage_2_train.csv`` and single-slice DICOMs.

Layout::

    SRC/
      stage_2_train.csv        ID,Label   with ID = ID_<sop>_<subtype>, subtype in
                               any, epidural, intraparenchymal, intraventricular,
                               subarachnoid, subdural; Label 0/1
      stage_2_train/           ID_<sop>.dcm, one slice per file (any sub-folder layout)

Files are grouped by ``(StudyInstanceUID, SeriesInstanceUID)``; each series becomes one store
study named after its StudyInstanceUID (``<study>_<series>`` when a study has several series).
Slices are ordered by the DICOM reader (along the slice normal); slice labels come from the CSV
rows of each slice's SOPInstanceUID, in RSNA order; the scan label is "any slice positive".
Duplicated CSV rows are accepted when they agree; contradicting rows raise. A series none of whose
slices is in the CSV (the test set) is written unlabeled (scan label -1); a series labelled in
part is written without slice labels, with a warning (``strict``: an error).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from sinotriage.errors import InputError
from sinotriage.io.layouts._common import StudySpec, safe_id, scan_headers, tree_files
from sinotriage.progress import ProgressCallback
from sinotriage.vocabulary import LABEL_NAMES

__all__ = ["read_rsna_labels", "discover_rsna", "LABELS_CSV"]

LABELS_CSV = "stage_2_train.csv"


def read_rsna_labels(path: str | os.PathLike[str]) -> dict[str, list[int]]:
    """Read an RSNA label CSV into ``{"ID_<sop>": [any, epidural, ..., subdural]}``.

    Raises
    ------
    InputError
        A row whose ID is not ``ID_<sop>_<subtype>`` with a known subtype, a label not 0/1, a
        slice missing some subtypes, or contradicting duplicate rows (the message names the row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RSNA label file {path} does not exist")
    index = {name: i for i, name in enumerate(LABEL_NAMES)}
    labels: dict[str, list[int | None]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"ID", "Label"} <= set(reader.fieldnames):
            raise InputError(f"{path}: expected the columns ID,Label, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            sop, _, subtype = row["ID"].strip().rpartition("_")
            if not sop or subtype not in index:
                raise InputError(f"{path}:{line}: ID {row['ID']!r} is not ID_<sop>_<subtype> with "
                                 f"subtype one of {LABEL_NAMES}")
            value = row["Label"].strip()
            if value not in ("0", "1"):
                raise InputError(f"{path}:{line}: Label must be 0 or 1, got {value!r}")
            flags = labels.setdefault(sop, [None] * len(LABEL_NAMES))
            old = flags[index[subtype]]
            if old is not None and old != int(value):
                raise InputError(f"{path}:{line}: {row['ID']} labelled both {old} and {value}")
            flags[index[subtype]] = int(value)
    out: dict[str, list[int]] = {}
    for sop, flags in labels.items():
        if any(f is None for f in flags):
            missing = [n for n, f in zip(LABEL_NAMES, flags, strict=True) if f is None]
            raise InputError(f"{path}: slice {sop} has no rows for {missing}")
        out[sop] = [int(f) for f in flags]  # type: ignore[arg-type]
    return out


def discover_rsna(src: str | os.PathLike[str], *, strict: bool = False,
                  labels_csv: str | os.PathLike[str] | None = None,
                  progress: ProgressCallback | bool = True, workers: int = 0,
                  scheduler: str | None = None) -> tuple[list[StudySpec], int]:
    """Find the RSNA series under ``src``; returns (study specs, files skipped while scanning)."""
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"RSNA folder {src} does not exist")
    csv_path = Path(labels_csv) if labels_csv is not None else src / LABELS_CSV
    labels = read_rsna_labels(csv_path)
    scan = scan_headers(tree_files(src), strict, progress=progress, workers=workers,
                            scheduler=scheduler)
    groups: dict[tuple[str, str], list[str]] = {}
    sop_of: dict[str, str] = {}
    for p, ds in scan.headers:
        groups.setdefault((str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)), []).append(p)
        sop_of[p] = str(ds.get("SOPInstanceUID", ""))
    per_study: dict[str, int] = {}
    for study, _ in groups:
        per_study[study] = per_study.get(study, 0) + 1
    specs = []
    for (study, series), files in sorted(groups.items()):
        sid = safe_id(study if per_study[study] == 1 else f"{study}_{series}")
        # the CSV keys are "ID_<sop>"; the DICOM SOPInstanceUID is "ID_<sop>" too
        slice_labels = {sop_of[p]: labels[sop_of[p]] for p in files if sop_of[p] in labels}
        # a series none of whose slices is in the CSV (e.g. stage_2_test) is unlabeled (-1)
        specs.append(StudySpec(
            study_id=sid, files=sorted(files), series_uid=series,
            slice_labels=slice_labels or None,
            record={"source": "rsna", "path": os.path.commonpath(files)},
        ))
    return specs, len(scan.skipped)
