"""The predictions CSV shared by training, evaluation, the comparison study and triage.

Schema
------
Columns ``study_id,split,slice`` then, for each label name ``L`` in use (a subset of
:data:`sinotriage.metrics.LABEL_NAMES`, in that order), the pair ``label_L,score_L``.
One row per slice (``slice >= 0``, the index along z) and/or one scan-level row per study
(``slice = -1``). Labels are 0/1, or empty when unknown (read back as -1); scores are floats
(probabilities or logits, larger = more likely positive).

Example::

    study_id,split,slice,label_any,score_any
    synth-00003,test,-1,1,0.93
    synth-00003,test,0,0,0.12
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.aggregation import AGGREGATIONS, aggregate_slices
from sinotriage.io.files import atomic_write_text
from sinotriage.vocabulary import LABEL_NAMES

KEY_COLUMNS: tuple[str, ...] = ("study_id", "split", "slice")
#: the ``slice`` value of a scan-level row
SCAN_ROW = -1


@dataclass
class Predictions:
    """Rows of a predictions table.

    Attributes
    ----------
    study_id : list of str, length n
    split : list of str, length n
    slice : int64 array, shape (n,)
        Slice index along z, or -1 for a scan-level row.
    labels : int8 array, shape (n, L)
        0/1, or -1 where unknown.
    scores : float64 array, shape (n, L)
    label_names : tuple of L str
        Subset of :data:`~sinotriage.metrics.LABEL_NAMES`, in that order.
    """

    study_id: list[str]
    split: list[str]
    slice: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    label_names: tuple[str, ...] = ("any",)

    def __post_init__(self) -> None:
        self.study_id = [str(v) for v in self.study_id]
        self.split = [str(v) for v in self.split]
        self.slice = np.asarray(self.slice, dtype=np.int64).reshape(-1)
        self.label_names = tuple(self.label_names)
        n, n_labels = len(self.study_id), len(self.label_names)
        labels = np.asarray(self.labels)
        scores = np.asarray(self.scores, dtype=np.float64)
        if labels.ndim == 1:
            labels = labels[:, None]
        if scores.ndim == 1:
            scores = scores[:, None]
        self.labels, self.scores = labels.astype(np.int8), scores
        _check_label_names(self.label_names)
        for name, shape in (("split", (len(self.split),)), ("slice", self.slice.shape)):
            if shape != (n,):
                raise InputError(f"{name} must have {n} entries (one per study_id), got {shape[0]}")
        for name, arr in (("labels", labels), ("scores", scores)):
            if arr.shape != (n, n_labels):
                raise InputError(
                    f"{name} must have shape ({n}, {n_labels}) for labels {self.label_names}, "
                    f"got {arr.shape}"
                )
        if not np.all(np.isin(labels, (-1, 0, 1))):
            raise InputError("labels must be 0, 1 or -1 (unknown)")
        if np.any(self.slice < SCAN_ROW):
            raise InputError(f"slice must be >= 0 or {SCAN_ROW} for a scan row")

    def __len__(self) -> int:
        return len(self.study_id)

    def select(self, mask: np.ndarray) -> Predictions:
        """The rows where the boolean ``mask`` (shape (n,)) is true."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        return Predictions(
            [self.study_id[i] for i in idx], [self.split[i] for i in idx], self.slice[idx],
            self.labels[idx], self.scores[idx], self.label_names,
        )

    def scans(self, split: str | None = None) -> Predictions:
        """Scan-level rows (``slice == -1``), optionally of one split."""
        mask = self.slice == SCAN_ROW
        if split is not None:
            mask &= np.asarray(self.split) == split
        return self.select(mask)

    def slices(self, split: str | None = None) -> Predictions:
        """Slice-level rows (``slice >= 0``), optionally of one split."""
        mask = self.slice >= 0
        if split is not None:
            mask &= np.asarray(self.split) == split
        return self.select(mask)

    def column(self, name: str = "any") -> tuple[np.ndarray, np.ndarray]:
        """``(labels, scores)`` of one label, shapes (n,)."""
        if name not in self.label_names:
            raise InputError(f"label {name!r} is not in these predictions; they hold {self.label_names}")
        j = self.label_names.index(name)
        return self.labels[:, j], self.scores[:, j]

    def with_scan_rows(self, method: str = "max", k: int = 3) -> Predictions:
        """These rows plus one scan-level row per study aggregated from its slice rows.

        Scan scores by :func:`sinotriage.metrics.aggregate_slices` (``method`` in
        :data:`~sinotriage.metrics.AGGREGATIONS`); a scan label is the maximum of its slice labels
        (-1 if any slice label is unknown). Existing scan rows are replaced.
        """
        if method not in AGGREGATIONS:
            raise InputError(f"method must be one of {AGGREGATIONS}, got {method!r}")
        sl = self.slices()
        if len(sl) == 0:
            raise InputError("with_scan_rows needs slice-level rows (slice >= 0), found none")
        studies, agg = aggregate_slices(sl.scores, sl.study_id, sl.slice, method=method, k=k)
        ids = np.asarray(sl.study_id)
        labels = np.empty((len(studies), len(self.label_names)), dtype=np.int8)
        splits = []
        for r, sid in enumerate(studies):
            rows = ids == sid
            lab = sl.labels[rows]
            labels[r] = np.where((lab < 0).any(axis=0), -1, lab.max(axis=0))
            splits.append(sl.split[int(np.flatnonzero(rows)[0])])
        return Predictions(
            studies + sl.study_id, splits + sl.split,
            np.r_[np.full(len(studies), SCAN_ROW), sl.slice],
            np.concatenate([labels, sl.labels]), np.concatenate([agg, sl.scores]), self.label_names,
        )


def _check_label_names(names: Sequence[str]) -> None:
    if not names:
        raise InputError("label_names must name at least one label")
    unknown = [n for n in names if n not in LABEL_NAMES]
    if unknown:
        raise InputError(f"unknown label name(s) {unknown}; choices are {LABEL_NAMES}")
    order = [LABEL_NAMES.index(n) for n in names]
    if order != sorted(set(order)):
        raise InputError(f"label_names must be distinct and in the order {LABEL_NAMES}, got {tuple(names)}")


def header(label_names: Sequence[str]) -> list[str]:
    """CSV header for ``label_names``."""
    cols = list(KEY_COLUMNS)
    for name in label_names:
        cols += [f"label_{name}", f"score_{name}"]
    return cols


def write_predictions(path: str | os.PathLike[str], predictions: Predictions) -> Path:
    """Write ``predictions`` as CSV, atomically (a temporary file renamed into place).

    Parameters
    ----------
    path : path of the CSV file; parent directories are created.
    predictions : Predictions

    Returns
    -------
    Path of the file written.
    """
    if not isinstance(predictions, Predictions):
        raise TypeError(f"predictions must be a Predictions, got {type(predictions).__name__}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header(predictions.label_names))
    for i in range(len(predictions)):
        row: list[str | int] = [
            predictions.study_id[i], predictions.split[i], int(predictions.slice[i])
        ]
        for j in range(len(predictions.label_names)):
            lab = int(predictions.labels[i, j])
            row += ["" if lab < 0 else lab, repr(float(predictions.scores[i, j]))]
        writer.writerow(row)
    return atomic_write_text(path, buf.getvalue())


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read a predictions CSV written by :func:`write_predictions` (or by hand, same schema).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On a bad header or cell; the message names the file, the column and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            cols = next(reader)
        except StopIteration:
            raise InputError(f"{path}: empty file, expected a header {','.join(KEY_COLUMNS)},...") from None
        cols = [c.strip() for c in cols]
        if tuple(cols[:3]) != KEY_COLUMNS:
            raise InputError(f"{path}: the header must start with {','.join(KEY_COLUMNS)}, got {','.join(cols[:3])}")
        rest = cols[3:]
        if len(rest) == 0 or len(rest) % 2:
            raise InputError(f"{path}: expected pairs of label_L,score_L columns after slice, got {rest}")
        names = []
        for a, b in zip(rest[::2], rest[1::2], strict=True):
            if not a.startswith("label_") or b != "score_" + a[6:]:
                raise InputError(f"{path}: bad column pair {a!r},{b!r}; expected label_L,score_L")
            if a[6:] not in LABEL_NAMES:
                raise InputError(f"{path}: column {a!r} names unknown label {a[6:]!r}; choices are {LABEL_NAMES}")
            names.append(a[6:])
        try:
            _check_label_names(names)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
        ids, splits, slices, labels, scores = [], [], [], [], []
        first_line: dict[tuple[str, int], int] = {}  # (study, slice) -> line of its first row
        study_split: dict[str, tuple[str, int]] = {}  # study -> (split, line)
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(cols):
                raise InputError(f"{path}, line {line_no}: expected {len(cols)} columns, got {len(row)}")
            ids.append(row[0])
            splits.append(row[1])
            slices.append(_parse_int(row[2], path, "slice", line_no))
            if slices[-1] < SCAN_ROW:
                raise InputError(f"{path}, line {line_no}, column slice: expected >= -1, got {row[2]!r}")
            _check_unique(path, line_no, row[0], row[1], slices[-1], first_line, study_split)
            lab, sc = [], []
            for j, name in enumerate(names):
                cell = row[3 + 2 * j].strip()
                value = -1 if cell == "" else _parse_int(cell, path, f"label_{name}", line_no)
                if value not in (-1, 0, 1):
                    raise InputError(f"{path}, line {line_no}, column label_{name}: expected 0, 1 or empty, got {cell!r}")
                lab.append(value)
                sc.append(_parse_float(row[4 + 2 * j], path, f"score_{name}", line_no))
            labels.append(lab)
            scores.append(sc)
    n = len(ids)
    return Predictions(
        ids, splits, np.asarray(slices, dtype=np.int64),
        np.asarray(labels, dtype=np.int8).reshape(n, len(names)),
        np.asarray(scores, dtype=np.float64).reshape(n, len(names)), tuple(names),
    )


def _check_unique(path: Path, line_no: int, study: str, split: str, index: int,
                  first_line: dict[tuple[str, int], int],
                  study_split: dict[str, tuple[str, int]]) -> None:
    """Refuse a second row for the same (study, slice) and a study listed in two splits."""
    what = "scan row" if index == SCAN_ROW else f"slice {index}"
    key = (study, index)
    if key in first_line:
        raise InputError(f"{path}, line {line_no}: duplicate row for study {study!r}, {what} "
                         f"(first on line {first_line[key]}); each (study_id, slice) may appear once")
    first_line[key] = line_no
    seen = study_split.setdefault(study, (split, line_no))
    if seen[0] != split:
        raise InputError(f"{path}, line {line_no}: study {study!r} is in split {split!r} here but "
                         f"in {seen[0]!r} on line {seen[1]}; a study belongs to one split")


def _parse_int(cell: str, path: Path, column: str, line_no: int) -> int:
    try:
        return int(cell)
    except ValueError:
        raise InputError(f"{path}, line {line_no}, column {column}: expected an integer, got {cell!r}") from None


def _parse_float(cell: str, path: Path, column: str, line_no: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{path}, line {line_no}, column {column}: expected a number, got {cell!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{path}, line {line_no}, column {column}: expected a finite number, got {cell!r}")
    return value


__all__ = ["KEY_COLUMNS", "SCAN_ROW", "Predictions", "header", "read_predictions", "write_predictions"]
