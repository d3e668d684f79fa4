"""The manifest of a store: one record per study, gathered into ``manifest.json`` and
``manifest.csv``.

A record holds ``study_id``, ``split``, ``label`` (scan level: 1 abnormal, 0 normal, -1
unknown), one 0/1 flag per subtype name (``epidural`` ... ``subdural``; -1 unknown),
``n_slices``, plus writer-specific keys (JSON values). Each study keeps its own record in its
group's attributes, so concurrent writers never share a file; :func:`write_gathered` writes the
gathered files at the end of a run, and :func:`read_gathered` reads them back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.files import atomic_write_text
from sinotriage.io.store_format import check_json
from sinotriage.vocabulary import SUBTYPE_NAMES

__all__ = ["MANIFEST_COLUMNS", "UNASSIGNED", "make_record", "manifest_csv", "read_gathered",
           "write_gathered"]

#: the split of a study that no split was assigned to yet
UNASSIGNED = "unassigned"

#: the first columns of ``manifest.csv``, in order
MANIFEST_COLUMNS: tuple[str, ...] = ("study_id", "split", "label", *SUBTYPE_NAMES, "n_slices")

#: file names of the gathered manifest in the store directory
JSON_NAME, CSV_NAME = "manifest.json", "manifest.csv"


def make_record(study_id: str, data: Mapping[str, np.ndarray],
                record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest record of a study about to be written (see the module docstring).

    ``label`` and the subtype flags come from ``data["labels"]`` when present (a contradicting
    ``record["label"]`` raises), else from ``record`` (default -1, unknown); ``n_slices`` from
    the arrays; ``split`` defaults to :data:`UNASSIGNED`.
    """
    rec: dict[str, Any] = dict(record or {})
    rec["study_id"] = study_id
    rec["n_slices"] = int(next(iter(data.values())).shape[0])
    if "labels" in data:
        flags = data["labels"].max(axis=0).astype(int)
        if "label" in rec and int(rec["label"]) != int(flags[0]):
            raise InputError(
                f"study {study_id!r}: record label {rec['label']} contradicts the slice labels "
                f"(any slice positive = {int(flags[0])})"
            )
        rec["label"] = int(flags[0])
        for name, flag in zip(SUBTYPE_NAMES, flags[1:], strict=True):
            rec[name] = int(flag)
    else:
        rec["label"] = int(rec.get("label", -1))
        for name in SUBTYPE_NAMES:
            rec[name] = int(rec.get(name, -1))
    if rec["label"] not in (-1, 0, 1):
        raise InputError(f"study {study_id!r}: label must be 0, 1 or -1, got {rec['label']}")
    rec.setdefault("split", UNASSIGNED)
    check_json(rec, f"record of study {study_id!r}")
    return rec


def read_gathered(store_path: Path) -> dict[str, dict[str, Any]]:
    """``{study_id: record}`` of the gathered ``manifest.json``; empty when it is missing or
    unreadable (the study groups hold the records anyway)."""
    mfile = Path(store_path) / JSON_NAME
    if not mfile.is_file():
        return {}
    try:
        return dict(json.loads(mfile.read_text())["studies"])
    except (ValueError, OSError, KeyError, TypeError):
        return {}


def write_gathered(store_path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Write ``manifest.json`` and ``manifest.csv`` of ``records`` (each atomically)."""
    text = json.dumps({"studies": {r["study_id"]: r for r in records}}, indent=1, sort_keys=True)
    atomic_write_text(Path(store_path) / JSON_NAME, text)
    atomic_write_text(Path(store_path) / CSV_NAME, manifest_csv(records))


def manifest_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The manifest as CSV: the standard columns, then every other key with scalar values only
    (nested values such as the generator settings stay in ``manifest.json``)."""
    first = list(MANIFEST_COLUMNS)
    nested = {k for r in records for k, v in r.items() if isinstance(v, dict | list)}
    extra = sorted({k for r in records for k in r} - set(first) - nested)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=first + extra, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow(r)
    return buf.getvalue()
