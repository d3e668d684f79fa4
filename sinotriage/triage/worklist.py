"""The prioritized worklist: studies ranked by score, flagged above an operating threshold.

The operating threshold is chosen on the *validation* split for a target sensitivity (the highest
threshold whose validation sensitivity reaches the target, :func:`sinotriage.metrics.threshold_for_sensitivity`)
and then applied to the worklist's split, so the sensitivity measured there is an honest estimate.
For each flagged study the worklist lists the slices with the highest scores (where to look first)
and the predicted subtypes (a subtype is predicted when its scan score reaches its own validation
threshold, the point of maximal Youden index ``sensitivity + specificity - 1``).

Input is a :class:`sinotriage.io.predictions.Predictions` table (see that module for the CSV
schema): scan rows (``slice = -1``) and/or slice rows; scan scores missing from the table are
aggregated from the slice rows (max by default).

Writing a worklist (CSV, HTML with slice thumbnails) is :mod:`sinotriage.triage.worklist_output`;
scoring a store with a trained checkpoint is :mod:`sinotriage.triage.scoring`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sinotriage import metrics as M
from sinotriage.errors import InputError
from sinotriage.io.predictions import Predictions
from sinotriage.vocabulary import SUBTYPE_NAMES

__all__ = [
    "OperatingPoint",
    "WorklistEntry",
    "Worklist",
    "choose_operating_point",
    "build_worklist",
    "worklist_to_dict",
]

SUBTYPES: tuple[str, ...] = SUBTYPE_NAMES


@dataclass(frozen=True)
class OperatingPoint:
    """An operating threshold chosen on the validation split.

    Attributes
    ----------
    threshold : float
        A study is flagged when its scan score ``>= threshold``.
    target_sensitivity : float
        The sensitivity asked for (NaN when the threshold was given by hand).
    split : str
        Where it was chosen (``"val"``), or ``"given"``.
    val_sensitivity, val_specificity : float
        Achieved on that split (NaN when given by hand).
    n_pos, n_neg : int
        Validation studies used.
    """

    threshold: float
    target_sensitivity: float
    split: str
    val_sensitivity: float
    val_specificity: float
    n_pos: int
    n_neg: int

    def describe(self) -> str:
        """One line for the terminal and the HTML page."""
        if self.split == "given":
            return f"threshold {self.threshold:.4g} (given)"
        return (f"threshold {self.threshold:.4g} chosen on the {self.split} split for sensitivity "
                f">= {self.target_sensitivity:.2f}: {self.split} sensitivity {self.val_sensitivity:.3f}, "
                f"specificity {self.val_specificity:.3f} ({self.n_pos} positive, {self.n_neg} negative studies)")


@dataclass
class WorklistEntry:
    """One study of the worklist.

    Attributes
    ----------
    rank : int
        1 = read first.
    study_id, split : str
    score : float
        Scan score of the triage label.
    flagged : bool
    label : int
        Ground truth when known (1/0), else -1.
    top_slices : list of (int, float)
        ``(slice index, slice score)`` of the highest-scoring slices, best first (empty when the
        predictions have no slice rows).
    subtypes : list of (str, float)
        Predicted subtypes with their scan scores, highest first (flagged studies only).
    """

    rank: int
    study_id: str
    split: str
    score: float
    flagged: bool
    label: int
    top_slices: list[tuple[int, float]] = field(default_factory=list)
    subtypes: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Worklist:
    """A ranked worklist with its operating point.

    Attributes
    ----------
    entries : list of WorklistEntry
        Sorted by descending score (rank 1 first).
    operating_point : OperatingPoint
    label : str
        The triage label (``"any"``).
    subtype_thresholds : dict
        ``subtype -> threshold`` used for the predicted subtypes.
    metrics : dict
        At the operating threshold on the worklist's studies with known labels (sensitivity,
        specificity, ... of :func:`sinotriage.metrics.binary_metrics`), empty if none are labeled.
    """

    entries: list[WorklistEntry]
    operating_point: OperatingPoint
    label: str = "any"
    subtype_thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> list[WorklistEntry]:
        """The flagged entries, in rank order."""
        return [e for e in self.entries if e.flagged]


def _scan_table(predictions: Predictions, aggregation: str, k: int) -> Predictions:
    """Scan rows for every study: given ones, plus aggregated ones for studies without."""
    scans = predictions.scans()
    have = set(scans.study_id)
    slices = predictions.slices()
    missing = np.array([sid not in have for sid in slices.study_id], dtype=bool)
    if missing.any():
        agg = slices.select(missing).with_scan_rows(aggregation, k).scans()
        if len(scans) == 0:
            return agg
        return Predictions(scans.study_id + agg.study_id, scans.split + agg.split,
                           np.r_[scans.slice, agg.slice], np.concatenate([scans.labels, agg.labels]),
                           np.concatenate([scans.scores, agg.scores]), predictions.label_names)
    if len(scans) == 0:
        raise InputError("the predictions hold neither scan rows (slice = -1) nor slice rows")
    return scans


def choose_operating_point(
    predictions: Predictions,
    sensitivity: float = 0.95,
    *,
    split: str = "val",
    label: str = "any",
    aggregation: str = "max",
    k: int = 3,
) -> OperatingPoint:
    """Choose the flagging threshold on ``split`` for a target ``sensitivity``.

    The threshold is the highest one whose sensitivity on the split's scan rows reaches the
    target (:func:`sinotriage.metrics.threshold_for_sensitivity`).

    Raises
    ------
    ValueError
        The split has no labeled positive and negative studies, or ``sensitivity`` is outside [0, 1].
    """
    if not 0.0 < float(sensitivity) <= 1.0:
        raise InputError(f"sensitivity must be in (0, 1], got {sensitivity}")
    scans = _scan_table(predictions, aggregation, k)
    splits = sorted(set(scans.split))
    sel = scans.scans(split)
    y, s = sel.column(label)
    known = y >= 0
    y, s = y[known], s[known]
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"cannot choose the threshold on split {split!r}: it has {n_pos} positive and "
                         f"{n_neg} negative labeled studies (splits present: {splits}); give --threshold "
                         f"or predictions with a labeled {split!r} split")
    thr = M.threshold_for_sensitivity(y, s, float(sensitivity))
    bm = M.binary_metrics(y, s, thr)
    return OperatingPoint(threshold=float(thr), target_sensitivity=float(sensitivity), split=split,
                          val_sensitivity=bm.sensitivity, val_specificity=bm.specificity,
                          n_pos=n_pos, n_neg=n_neg)


def _youden_threshold(y: np.ndarray, s: np.ndarray) -> float | None:
    known = y >= 0
    y, s = y[known], s[known]
    if not (np.any(y == 1) and np.any(y == 0)):
        return None
    fpr, tpr, thr = M.roc_curve(y, s)
    j = tpr - fpr
    best = int(np.argmax(j[1:])) + 1  # skip the +inf point (nothing flagged)
    return float(thr[best])


def build_worklist(
    predictions: Predictions,
    *,
    sensitivity: float = 0.95,
    threshold: float | None = None,
    split: str | None = "test",
    val_split: str = "val",
    label: str = "any",
    top_k: int = 3,
    aggregation: str = "max",
    k: int = 3,
) -> Worklist:
    """Rank the studies of ``split`` by scan score and flag those at or above the threshold.

    Parameters
    ----------
    predictions
        Scan and/or slice rows of one or more splits.
    sensitivity
        Target sensitivity of the threshold chosen on ``val_split`` (unless ``threshold`` is given).
    threshold
        Use this threshold instead of choosing one.
    split
        The split to put on the worklist (``None``: every study).
    val_split
        The split the thresholds (flag and subtypes) are chosen on.
    label
        Triage label (``"any"``).
    top_k
        Number of top slices listed per flagged study.
    aggregation, k
        Slice -> scan aggregation for studies without a scan row
        (:data:`sinotriage.metrics.AGGREGATIONS`).

    Returns
    -------
    Worklist
    """
    if label not in predictions.label_names:
        raise InputError(f"label {label!r} is not in the predictions; they hold {predictions.label_names}")
    if not isinstance(top_k, int) or top_k < 0:
        raise InputError(f"top_k must be an int >= 0, got {top_k!r}")
    if threshold is not None:
        if not math.isfinite(float(threshold)):
            raise InputError(f"threshold must be finite, got {threshold}")
        op = OperatingPoint(float(threshold), float("nan"), "given", float("nan"), float("nan"), 0, 0)
    else:
        op = choose_operating_point(predictions, sensitivity, split=val_split, label=label,
                                    aggregation=aggregation, k=k)
    scans = _scan_table(predictions, aggregation, k)
    val = scans.scans(val_split)
    sub_thr: dict[str, float] = {}
    for name in SUBTYPES:
        if name in scans.label_names and len(val):
            t = _youden_threshold(*val.column(name))
            if t is not None:
                sub_thr[name] = t
    rows = scans if split is None else scans.scans(split)
    if len(rows) == 0:
        raise InputError(f"no study of split {split!r} in the predictions (splits present: "
                         f"{sorted(set(scans.split))})")
    y, s = rows.column(label)
    order = np.lexsort((np.asarray(rows.study_id), -s))  # descending score, ties by study id
    slices = predictions.slices() if split is None else predictions.slices(split)
    slice_ids = np.asarray(slices.study_id)
    j_label = predictions.label_names.index(label)
    entries = []
    for rank, i in enumerate(order, start=1):
        sid = rows.study_id[i]
        flagged = bool(s[i] >= op.threshold)
        top: list[tuple[int, float]] = []
        subs: list[tuple[str, float]] = []
        if flagged:
            mine = np.flatnonzero(slice_ids == sid)
            if mine.size and top_k:
                sc = slices.scores[mine, j_label]
                best = mine[np.lexsort((slices.slice[mine], -sc))][:top_k]
                top = [(int(slices.slice[b]), float(slices.scores[b, j_label])) for b in best]
            for name, t in sub_thr.items():
                v = float(rows.scores[i, rows.label_names.index(name)])
                if v >= t:
                    subs.append((name, v))
            subs.sort(key=lambda p: -p[1])
        entries.append(WorklistEntry(rank=rank, study_id=sid, split=rows.split[i], score=float(s[i]),
                                     flagged=flagged, label=int(y[i]), top_slices=top, subtypes=subs))
    known = y >= 0
    perf: dict[str, float] = {}
    if np.any(known):
        perf = {k_: v for k_, v in M.binary_metrics(y[known], s[known], op.threshold).to_dict().items()}
    return Worklist(entries=entries, operating_point=op, label=label, subtype_thresholds=sub_thr,
                    metrics=perf)


def worklist_to_dict(worklist: Worklist) -> dict[str, Any]:
    """JSON-able form of a worklist."""
    return {"label": worklist.label, "operating_point": asdict(worklist.operating_point),
            "subtype_thresholds": dict(worklist.subtype_thresholds), "metrics": dict(worklist.metrics),
            "entries": [asdict(e) for e in worklist.entries]}
