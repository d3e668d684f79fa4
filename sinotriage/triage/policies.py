"""Queue policies compared on the same shifts: no triage, a model's flags, its score order and an
oracle.

:func:`simulate_policies` compares no triage, the model's flags, the model's score order and an
oracle's flags on the same shifts (common random numbers: every arm sees the same arrivals and
read times), and :func:`compare_operating_points` does it for several models' operating points
(the queue section of the comparison report). The shifts and the discrete-event simulation are
those of :mod:`sinotriage.triage.queue`.

References
----------
O'Neill TJ et al. Active reprioritization of the reading worklist using artificial intelligence has
a beneficial effect on the turnaround time for interpretation of head CT with intracranial
hemorrhage. Radiology: Artificial Intelligence 2021;3(2):e200024.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.triage.queue import (
    CLASSES,
    DEFAULT_CLASS_SHARES,
    WITHIN_MINUTES,
    _vector,
    make_shift,
    run_queue,
    wait_summary,
)

__all__ = ["PolicyComparison", "compare_operating_points", "simulate_policies"]


@dataclass
class PolicyComparison:
    """Queue outcomes of several arms on the same shifts.

    Attributes
    ----------
    rows : list of dict
        One per arm: ``arm``, ``policy``, ``threshold`` (NaN where none), ``flag_rate`` (share of
        studies flagged) and the keys of :func:`wait_summary`, pooled over ``n_repeats`` shifts.
        Also ``pos_mean_<class>``: the mean wait of the positives of each class of
        :data:`CLASSES` (NaN where none).
    waits : dict
        ``arm -> (wait (n_repeats*n,), labels (n_repeats*n,))`` for plots.
    settings : dict
        The simulation settings (readers, rate, read times, shares, repeats, seed, utilization).
    classes : int64 (n_repeats*n,)
        Priority class (index into :data:`CLASSES`) of each pooled entry of ``waits``.
    """

    rows: list[dict[str, Any]]
    waits: dict[str, tuple[np.ndarray, np.ndarray]]
    settings: dict[str, Any]
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def to_markdown(self) -> str:
        """The comparison as a markdown table (minutes)."""
        head = ("| arm | policy | flagged | positives: mean / median / p90 wait (min) | "
                "negatives: mean / median / p90 wait (min) | positives read within 15 / 30 / 60 min |")
        lines = [head, "|---|---|---|---|---|---|"]
        for r in self.rows:
            n_pos = int(r["n_pos"])
            within = " / ".join(f"{int(r[f'pos_within_{m}'])}" for m in WITHIN_MINUTES)
            lines.append(
                f"| {r['arm']} | {r['policy']} | {100 * r['flag_rate']:.0f}% | "
                f"{r['pos_mean']:.1f} / {r['pos_median']:.1f} / {r['pos_p90']:.1f} | "
                f"{r['neg_mean']:.1f} / {r['neg_median']:.1f} / {r['neg_p90']:.1f} | "
                f"{within} of {n_pos} |"
            )
        s = self.settings
        arrivals = ("given arrival times" if np.isnan(s["rate_per_hour"])
                    else f"Poisson arrivals at {s['rate_per_hour']:g}/h")
        lines.append("")
        lines.append(
            f"{s['n_repeats']} simulated shift(s) of {s['n_studies']} studies"
            f"{' (resampled with replacement from ' + str(s['n_distinct_studies']) + ')' if s['resampled'] else ''}, "
            f"{s['n_readers']} reader(s), "
            f"{arrivals}, "
            f"{s['read_time']} read times "
            f"(mean {s['read_mean']:g} min), classes {s['class_shares']}, seed {s['seed']}; "
            f"offered load {s['utilization']:.2f}."
        )
        return "\n".join(lines)


def _run_arms(
    y: np.ndarray,
    arms: Sequence[tuple[str, str, np.ndarray | None, np.ndarray | None, float]],
    *,
    n_readers: int,
    n_repeats: int,
    seed: int,
    studies_per_shift: int | None,
    shift_options: Mapping[str, Any],
) -> PolicyComparison:
    if not isinstance(n_repeats, int | np.integer) or n_repeats < 1:
        raise InputError(f"n_repeats must be an int >= 1, got {n_repeats!r}")
    if studies_per_shift is not None and (not isinstance(studies_per_shift, int | np.integer)
                                          or studies_per_shift < 1):
        raise InputError(f"studies_per_shift must be an int >= 1 or None, got {studies_per_shift!r}")
    fixed = {k for k in ("arrival_times", "read_times", "priority") if shift_options.get(k) is not None}
    if studies_per_shift is not None and fixed:
        raise InputError(f"studies_per_shift resamples the studies; it cannot be combined with {sorted(fixed)}")
    n = y.shape[0]
    size = n if studies_per_shift is None else int(studies_per_shift)
    collected: dict[str, list[np.ndarray]] = {a[0]: [] for a in arms}
    labels_all, classes_all, loads = [], [], []
    for rep in range(int(n_repeats)):
        rng = np.random.default_rng([int(seed), rep])
        # which studies arrive: all of them once, or a resample with replacement
        idx = np.arange(n) if studies_per_shift is None else rng.integers(0, n, size=size)
        shift = make_shift(size, seed=rng, **shift_options)
        loads.append(shift.utilization(n_readers))
        labels_all.append(y[idx])
        classes_all.append(shift.priority)
        for name, policy, flags, scores, _ in arms:
            res = run_queue(shift, y[idx], policy=policy, flags=None if flags is None else flags[idx],
                            scores=None if scores is None else scores[idx], n_readers=n_readers)
            collected[name].append(res.wait)
    labels = np.concatenate(labels_all)
    classes = np.concatenate(classes_all)
    rows, waits = [], {}
    for name, policy, flags, _, threshold in arms:
        wait = np.concatenate(collected[name])
        waits[name] = (wait, labels)
        rows.append({"arm": name, "policy": policy, "threshold": float(threshold),
                     "flag_rate": float(np.mean(flags)) if flags is not None and policy == "flagged_first" else 0.0,
                     **wait_summary(wait, labels)})
        for c, cname in enumerate(CLASSES):
            sel = (labels == 1) & (classes == c)
            rows[-1][f"pos_mean_{cname}"] = float(wait[sel].mean()) if sel.any() else float("nan")
    settings = {
        "n_studies": int(size), "n_distinct_studies": int(n), "resampled": studies_per_shift is not None,
        "n_readers": int(n_readers), "n_repeats": int(n_repeats), "seed": int(seed),
        "rate_per_hour": (float("nan") if shift_options.get("arrival_times") is not None
                          else float(shift_options.get("rate_per_hour", 6.0) or float("nan"))),
        "read_time": shift_options.get("read_time", "lognormal"),
        "read_mean": float(shift_options.get("read_mean", 8.0)),
        "class_shares": dict(shift_options.get("class_shares") or DEFAULT_CLASS_SHARES),
        "utilization": float(np.mean(loads)),
    }
    return PolicyComparison(rows=rows, waits=waits, settings=settings, classes=classes)


def simulate_policies(
    y_true: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    threshold: float,
    *,
    n_readers: int = 1,
    n_repeats: int = 20,
    seed: int = 0,
    studies_per_shift: int | None = None,
    **shift_options: Any,
) -> PolicyComparison:
    """Compare no triage, the model's flags, its score order and an oracle on the same shifts.

    Arms (rows, in this order): ``no triage`` (fifo), ``model flags`` (flagged_first with
    ``scores >= threshold``), ``model score order`` (score_ordered), ``oracle flags``
    (flagged_first with the true labels as flags).

    Parameters
    ----------
    y_true
        0/1 scan labels (n,).
    scores
        Scan scores (n,), larger = more likely positive.
    threshold
        Operating threshold: a study is flagged when ``score >= threshold``.
    n_readers
        Radiologists.
    n_repeats
        Shifts simulated (each a fresh draw; the studies arrive in a new order); waits are pooled.
    seed
        Base seed; shift ``r`` uses ``default_rng([seed, r])``.
    studies_per_shift
        ``None``: each shift holds every study once, in a random order. An int: each shift holds
        that many studies drawn with replacement from the ``n`` (a test set smaller than a shift
        still fills a realistic shift; the label mix is kept in expectation).
    shift_options
        Keyword arguments of :func:`make_shift` (``rate_per_hour``, ``read_time``, ``read_mean``,
        ``read_sd``, ``class_shares``; ``arrival_times``/``read_times``/``priority`` fix them).

    Returns
    -------
    PolicyComparison
    """
    y = _vector(y_true, None, "y_true", dtype=np.int64)
    s = _vector(scores, y.shape[0], "scores")
    if not np.all(np.isin(y, (0, 1))):
        raise InputError("y_true must be 0 or 1")
    flags = s >= float(threshold)
    arms = [
        ("no triage", "fifo", None, None, float("nan")),
        ("model flags", "flagged_first", flags, None, float(threshold)),
        ("model score order", "score_ordered", None, s, float("nan")),
        ("oracle flags", "flagged_first", y.astype(bool), None, float("nan")),
    ]
    return _run_arms(y, arms, n_readers=n_readers, n_repeats=n_repeats, seed=seed,
                     studies_per_shift=studies_per_shift, shift_options=shift_options)


def compare_operating_points(
    y_true: Sequence[int] | np.ndarray,
    arms: Mapping[str, tuple[Sequence[float] | np.ndarray, float]],
    *,
    n_readers: int = 1,
    n_repeats: int = 20,
    seed: int = 0,
    studies_per_shift: int | None = None,
    **shift_options: Any,
) -> PolicyComparison:
    """What each model's operating point does to the reading queue (one shared set of shifts).

    Rows: ``no triage`` (fifo), then one ``flagged_first`` row per arm of ``arms`` (``name ->
    (scores, threshold)``, flags ``scores >= threshold``), then ``oracle flags``. All arms must
    score the same studies in the same order as ``y_true``. ``to_markdown()`` gives the report
    section's table. The other arguments are those of :func:`simulate_policies`.
    """
    y = _vector(y_true, None, "y_true", dtype=np.int64)
    if not np.all(np.isin(y, (0, 1))):
        raise InputError("y_true must be 0 or 1")
    if not arms:
        raise InputError("arms must hold at least one name -> (scores, threshold)")
    reserved = {"no triage", "oracle flags"}
    rows: list[tuple[str, str, np.ndarray | None, np.ndarray | None, float]] = [
        ("no triage", "fifo", None, None, float("nan"))]
    for name, value in arms.items():
        if name in reserved:
            raise InputError(f"arm name {name!r} is reserved; rename it")
        try:
            sc, thr = value
        except (TypeError, ValueError):
            raise TypeError(f"arms[{name!r}] must be a pair (scores, threshold)") from None
        s = _vector(sc, y.shape[0], f"arms[{name!r}] scores")
        rows.append((str(name), "flagged_first", s >= float(thr), None, float(thr)))
    rows.append(("oracle flags", "flagged_first", y.astype(bool), None, float("nan")))
    return _run_arms(y, rows, n_readers=n_readers, n_repeats=n_repeats, seed=seed,
                     studies_per_shift=studies_per_shift, shift_options=shift_options)
