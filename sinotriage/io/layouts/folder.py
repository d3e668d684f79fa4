"""Plain DICOM: any folder tree of CT series, unlabeled (for inference and triage).

Every file under SRC is scanned (headers only); files are grouped by
``(StudyInstanceUID, SeriesInstanceUID)`` and each series becomes one study named after its
SeriesInstanceUID, with scan label -1 (unknown) and no slice labels. Series with fewer than
``min_slices`` slices (default 2: scouts, dose reports) are left out with a warning; files that
are not DICOM images are skipped with a warning naming the file (``strict``: an error). A tree
without any usable series is an :class:`~sinotriage.errors.InputError` that counts the files
skipped by reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from sinotriage.io.layouts._common import (
    StudySpec,
    nothing_found,
    safe_id,
    scan_headers,
    tree_files,
    warn,
)
from sinotriage.progress import ProgressCallback

__all__ = ["discover_folder"]


def discover_folder(src: str | os.PathLike[str], *, strict: bool = False, min_slices: int = 2,
                    progress: ProgressCallback | bool = True, workers: int = 0,
                    scheduler: str | None = None) -> tuple[list[StudySpec], int]:
    """Find the CT series under ``src``; returns (study specs, files skipped while scanning)."""
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"DICOM folder {src} does not exist")
    files = tree_files(src, exclude=())
    scan = scan_headers(files, strict, progress=progress, workers=workers, scheduler=scheduler)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p, ds in scan.headers:
        key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        groups.setdefault(key, []).append((p, str(ds.get("Modality", ""))))
    specs = []
    short = 0
    for (study, series), items in sorted(groups.items()):
        series_files = sorted(p for p, _ in items)
        if len(series_files) < min_slices:
            warn(f"series {series} ({series_files[0]}): {len(series_files)} slice(s), fewer than "
                 f"{min_slices}; left out")
            short += 1
            continue
        modality = items[0][1]
        specs.append(StudySpec(
            study_id=safe_id(series), files=series_files, series_uid=series,
            record={"source": "dicom", "study_uid": study, "modality": modality,
                    "path": os.path.commonpath(series_files)},
        ))
    if not specs:
        raise nothing_found(src, "CT series", len(files), scan,
                            f"{short} series with fewer than {min_slices} slices" if short else "")
    return specs, len(scan.skipped)
