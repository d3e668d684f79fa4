"""Plain DICOM: any folder tree of CT series, unlabeled (for inference and triage).

Every file under SRC is scanned (headers only); files are grouped by
``(StudyInstanceUID, SeriesInstanceUID)`` and each series becomes one study named after its
SeriesInstanceUID, with scan label -1 (unknown) and no slice labels. Series with fewer than
``min_slices`` slices (default 2: scouts, dose reports) are left out with a warning; files that
are not DICOM images are skipped with a warning naming the file (``strict``: an error).
"""

from __future__ import annotations

import os
from pathlib import Path

from sinotriage.io.layouts._common import StudySpec, safe_id, scan_headers, tree_files, warn

__all__ = ["discover_folder"]


def discover_folder(src: str | os.PathLike[str], *, strict: bool = False, min_slices: int = 2,
                    progress: bool = True, workers: int = 0,
                    scheduler: str | None = None) -> tuple[list[StudySpec], int]:
    """Find the CT series under ``src``; returns (study specs, files skipped while scanning)."""
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"DICOM folder {src} does not exist")
    scan = scan_headers(tree_files(src, exclude=()), strict, progress=progress, workers=workers,
                            scheduler=scheduler)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p, ds in scan.headers:
        key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        groups.setdefault(key, []).append((p, str(ds.get("Modality", ""))))
    specs = []
    for (study, series), items in sorted(groups.items()):
        files = sorted(p for p, _ in items)
        if len(files) < min_slices:
            warn(f"series {series} ({files[0]}): {len(files)} slice(s), fewer than "
                 f"{min_slices}; left out")
            continue
        modality = items[0][1]
        specs.append(StudySpec(
            study_id=safe_id(series), files=files, series_uid=series,
            record={"source": "dicom", "study_uid": study, "modality": modality,
                    "path": os.path.commonpath(files)},
        ))
    return specs, len(scan.skipped)
