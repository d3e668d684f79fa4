"""CQ500 (qure.ai): ``reads.csv`` with three radiologists' reads and one folder per study.

Layout::

    SRC/
      reads.csv                name,Category,R1:ICH,R1:IPH,R1:IVH,R1:SDH,R1:EDH,R1:SAH,...,
                               R2:..., R3:...   (name = CQ500-CT-<k>, values 0/1)
      CQ500CT<k> CQ500CT<k>/   one folder per study (any depth under SRC), holding several
        Unknown Study/         series (thin and thick, plain and bone kernel, ...)
          CT PLAIN THIN/*.dcm

A study folder is matched to its ``name`` by the first word of the folder name with the
non-alphanumeric characters removed (``CQ500-CT-0`` = ``CQ500CT0``).

Series selection (one series per study)
---------------------------------------
Files are grouped by SeriesInstanceUID. Dropped: series with fewer than 2 slices, bone
reconstructions (``BONE`` in SeriesDescription or ConvolutionKernel) and post-contrast series
(``POST`` or ``CONTRAST`` in SeriesDescription, unless it also says ``PRE``, ``NON``, ``PLAIN``
or ``WITHOUT``). Of the rest, the first by: ``PLAIN`` in the description, then the thinnest
SliceThickness, then the most slices, then the smallest SeriesInstanceUID. A study without a
candidate is skipped with a warning (``strict``: an error).

Labels
------
Scan labels only (CQ500 has no slice labels): each finding is positive when at least 2 of the 3
reads say so (majority). ICH -> ``label`` (any), EDH -> epidural, IPH -> intraparenchymal,
IVH -> intraventricular, SAH -> subarachnoid, SDH -> subdural. The majority of Fracture,
MassEffect, MidlineShift and CalvarialFracture (where present) is kept in the record
(lower case names).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sinotriage.errors import InputError
from sinotriage.io.dicom import DicomError
from sinotriage.io.layouts._common import StudySpec, safe_id, scan_headers, tree_files, warn
from sinotriage.progress import ProgressCallback

__all__ = ["read_cq500_reads", "select_series", "discover_cq500", "FINDINGS", "READS_CSV"]

READS_CSV = "reads.csv"

#: CQ500 finding -> manifest field (RSNA names; "label" is the scan label "any")
FINDINGS: dict[str, str] = {
    "ICH": "label",
    "EDH": "epidural",
    "IPH": "intraparenchymal",
    "IVH": "intraventricular",
    "SAH": "subarachnoid",
    "SDH": "subdural",
}
EXTRA_FINDINGS: tuple[str, ...] = ("Fracture", "CalvarialFracture", "MassEffect", "MidlineShift")
READERS: tuple[str, ...] = ("R1", "R2", "R3")

_STUDY_DIR = re.compile(r"^cq500-?ct-?\d+$", re.IGNORECASE)


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name.split()[0] if name.split() else name).upper()


def read_cq500_reads(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Majority-vote scan labels per study from ``reads.csv``.

    Returns
    -------
    dict
        ``{name: {"label": 0/1, "epidural": ..., ..., "subdural": ..., extra findings}}``.

    Raises
    ------
    InputError
        Missing ``name`` or ``R1:ICH`` ... ``R3:SDH`` columns, or a value that is not 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CQ500 reads file {path} does not exist")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        need = {"name"} | {f"{r}:{f}" for r in READERS for f in FINDINGS}
        if not need <= cols:
            raise InputError(f"{path}: missing columns {sorted(need - cols)}")
        extras = [f for f in EXTRA_FINDINGS if all(f"{r}:{f}" in cols for r in READERS)]
        out: dict[str, dict[str, int]] = {}
        for line, row in enumerate(reader, start=2):
            rec: dict[str, int] = {}
            for finding in (*FINDINGS, *extras):
                votes = []
                for r in READERS:
                    v = row[f"{r}:{finding}"].strip()
                    if v not in ("0", "1"):
                        raise InputError(f"{path}:{line}: {r}:{finding} must be 0 or 1, got {v!r}")
                    votes.append(int(v))
                rec[FINDINGS.get(finding, finding.lower())] = int(sum(votes) >= 2)
            out[row["name"].strip()] = rec
    return out


def _is_bone(ds: Any) -> bool:
    text = f"{ds.get('SeriesDescription', '')} {ds.get('ConvolutionKernel', '')}".upper()
    return "BONE" in text


def _is_contrast(ds: Any) -> bool:
    desc = str(ds.get("SeriesDescription", "")).upper()
    if not ("POST" in desc or "CONTRAST" in desc):
        return False
    return not any(w in desc for w in ("PRE", "NON", "PLAIN", "WITHOUT"))


def _thickness(ds: Any) -> float:
    try:
        return float(ds.get("SliceThickness"))
    except (TypeError, ValueError):
        return float("inf")


def select_series(headers: Sequence[tuple[str, Any]]) -> tuple[str, list[str]] | None:
    """Pick the series of a CQ500 study by the documented rule.

    Parameters
    ----------
    headers : sequence of (path, header)
        Headers with ``SeriesInstanceUID``, ``SeriesDescription``, ``ConvolutionKernel`` and
        ``SliceThickness`` (a pydicom Dataset or a scanned :class:`Header`).

    Returns
    -------
    (SeriesInstanceUID, files) or None when no series qualifies.
    """
    series: dict[str, list[tuple[str, Any]]] = {}
    for p, ds in headers:
        series.setdefault(str(ds.SeriesInstanceUID), []).append((p, ds))
    ranked = []
    for uid, items in series.items():
        ds = items[0][1]
        if len(items) < 2 or _is_bone(ds) or _is_contrast(ds):
            continue
        plain = "PLAIN" in str(ds.get("SeriesDescription", "")).upper()
        ranked.append(((not plain, _thickness(ds), -len(items), uid), uid, items))
    if not ranked:
        return None
    _, uid, items = min(ranked, key=lambda t: t[0])
    return uid, sorted(p for p, _ in items)


def discover_cq500(src: str | os.PathLike[str], *, strict: bool = False,
                   reads_csv: str | os.PathLike[str] | None = None,
                   progress: ProgressCallback | bool = True, workers: int = 0,
                   scheduler: str | None = None) -> tuple[list[StudySpec], int]:
    """Find the CQ500 studies under ``src``; returns (study specs, files skipped)."""
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"CQ500 folder {src} does not exist")
    reads = read_cq500_reads(Path(reads_csv) if reads_csv is not None else src / READS_CSV)
    by_key = {_key(name): name for name in reads}
    folders: dict[str, Path] = {}
    for root, dirs, _ in os.walk(src):
        for d in list(dirs):
            if _STUDY_DIR.match(d.split()[0] if d.split() else d):
                folders.setdefault(_key(d), Path(root) / d)
                dirs.remove(d)  # do not descend: the study's files are scanned below
    known = {key: folder for key, folder in sorted(folders.items()) if key in by_key}
    for key in sorted(set(folders) - set(known)):
        warn(f"{folders[key]}: no row in reads.csv for {key}; study skipped")
    owner = {f: key for key, folder in known.items() for f in tree_files(folder)}
    scan = scan_headers(list(owner), strict, progress=progress, workers=workers,
                        scheduler=scheduler)
    per_study: dict[str, list[tuple[str, Any]]] = {key: [] for key in known}
    for p, h in scan.headers:
        per_study[owner[p]].append((p, h))
    specs: list[StudySpec] = []
    for key, folder in known.items():
        name = by_key[key]
        headers = per_study[key]
        chosen = select_series(headers)
        if chosen is None:
            msg = (f"{folder}: no plain, non-bone series with at least 2 slices among "
                   f"{len({str(h.SeriesInstanceUID) for _, h in headers})} series")
            if strict:
                raise DicomError(msg, str(folder), "other-series")
            warn(msg + "; study skipped")
            continue
        uid, files = chosen
        desc = next(str(h.get("SeriesDescription", "")) for p, h in headers if p == files[0])
        record: dict[str, Any] = {"source": "cq500", "name": name, "path": str(folder),
                                  "series_description": desc}
        record.update(reads[name])
        specs.append(StudySpec(study_id=safe_id(name), files=files, series_uid=uid, record=record))
    missing = sorted(set(by_key) - set(folders))
    if missing:
        warn(f"{len(missing)} studies of reads.csv have no folder under {src} (e.g. "
             f"{by_key[missing[0]]})")
    return specs, len(scan.skipped)
