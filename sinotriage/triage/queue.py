"""Reading-queue simulation: what a triage model does to the time until a study is read.

A *shift* (:class:`Shift`) is the sequence of studies arriving at a reading list: arrival times
(minutes from the start of the shift), read times (minutes a radiologist spends on the study)
and a priority class (``emergency``, ``inpatient``, ``outpatient``). :func:`make_shift` draws one
(Poisson arrivals at a rate, or given timestamps; log-normal, exponential or constant read times;
classes with given shares), seeded by a ``numpy.random.Generator``.

:func:`run_queue` is a discrete-event simulation of ``n_readers`` radiologists reading one study
at a time, non-preemptively. Events (arrivals, end of a read) sit in a heap ordered by time; at each
event time all arrivals and completions are applied first, then every free reader takes the waiting
study with the smallest priority key. The keys of the policies (:data:`POLICIES`) are

``fifo``
    ``(class rank, arrival time)``: the baseline, first-in first-out within a priority class,
    classes in the order of :data:`CLASSES` (emergency before inpatient before outpatient).
``flagged_first``
    ``(not flagged, class rank, arrival time)``: flagged studies go before every unflagged one,
    FIFO within a class among each group (the reprioritization of O'Neill et al. 2021).
``score_ordered``
    ``(class rank, -score, arrival time)``: within a class, the list is sorted by the model's score.

Ties go to the lower study index. The simulation itself is deterministic; all randomness is in the
shift, so arms compared on one shift see the same arrivals and read times (common random numbers).

:func:`simulate_queue` runs one policy (drawing the shift when not given). Comparisons of several
arms on the same shifts (:func:`~sinotriage.triage.policies.simulate_policies`,
:func:`~sinotriage.triage.policies.compare_operating_points`) live in
:mod:`sinotriage.triage.policies`.

References
----------
O'Neill TJ et al. Active reprioritization of the reading worklist using artificial intelligence has
a beneficial effect on the turnaround time for interpretation of head CT with intracranial
hemorrhage. Radiology: Artificial Intelligence 2021;3(2):e200024.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sinotriage.errors import InputError

__all__ = [
    "CLASSES",
    "DEFAULT_CLASS_SHARES",
    "POLICIES",
    "READ_TIME_DISTRIBUTIONS",
    "WITHIN_MINUTES",
    "Shift",
    "QueueResult",
    "make_shift",
    "run_queue",
    "simulate_queue",
    "wait_summary",
]

#: priority classes, in their baseline reading order
CLASSES: tuple[str, ...] = ("emergency", "inpatient", "outpatient")
#: default share of each class among arriving head CTs (an assumption; set your department's)
DEFAULT_CLASS_SHARES: dict[str, float] = {"emergency": 0.4, "inpatient": 0.3, "outpatient": 0.3}
#: queue policies of :func:`run_queue`
POLICIES: tuple[str, ...] = ("fifo", "flagged_first", "score_ordered")
#: read-time distributions of :func:`make_shift`
READ_TIME_DISTRIBUTIONS: tuple[str, ...] = ("lognormal", "exponential", "constant")
#: the "positives read within" thresholds of the summaries, minutes
WITHIN_MINUTES: tuple[int, ...] = (15, 30, 60)


def _choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def _vector(x: Any, n: int | None, name: str, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} must have {n} entries (one per study), got {arr.shape[0]}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite")
    return arr


# ----------------------------------------------------------------------------- the shift
@dataclass(frozen=True)
class Shift:
    """The studies of one simulated shift.

    Attributes
    ----------
    arrival : float64 (n,)
        Arrival times, minutes from the start of the shift.
    read_time : float64 (n,)
        Minutes a radiologist needs to read each study (> 0).
    priority : int64 (n,)
        Index into :data:`CLASSES` of each study's class.
    """

    arrival: np.ndarray
    read_time: np.ndarray
    priority: np.ndarray

    def __post_init__(self) -> None:
        arrival = _vector(self.arrival, None, "arrival")
        n = arrival.shape[0]
        read_time = _vector(self.read_time, n, "read_time")
        priority = _vector(self.priority, n, "priority", dtype=np.int64)
        if np.any(arrival < 0):
            raise InputError("arrival times must be >= 0 minutes")
        if np.any(read_time <= 0):
            raise InputError("read times must be > 0 minutes")
        if np.any((priority < 0) | (priority >= len(CLASSES))):
            raise InputError(f"priority must index {CLASSES} (0..{len(CLASSES) - 1})")
        object.__setattr__(self, "arrival", arrival)
        object.__setattr__(self, "read_time", read_time)
        object.__setattr__(self, "priority", priority)

    def __len__(self) -> int:
        return int(self.arrival.shape[0])

    def utilization(self, n_readers: int) -> float:
        """Offered load: total read time / (readers x span of arrivals); >= 1 means the list grows."""
        span = float(self.arrival.max() - self.arrival.min()) if len(self) > 1 else 0.0
        if span <= 0:
            return float("inf")
        return float(self.read_time.sum() / (n_readers * span))


def make_shift(
    n: int,
    *,
    rate_per_hour: float | None = 6.0,
    arrival_times: Sequence[float] | np.ndarray | None = None,
    read_time: str = "lognormal",
    read_mean: float = 8.0,
    read_sd: float = 4.0,
    read_times: Sequence[float] | np.ndarray | None = None,
    class_shares: Mapping[str, float] | None = None,
    priority: Sequence[str] | Sequence[int] | np.ndarray | None = None,
    seed: int | np.random.Generator = 0,
) -> Shift:
    """Draw a shift of ``n`` studies (study ``i`` of the output is study ``i`` of the labels).

    Parameters
    ----------
    n
        Number of studies.
    rate_per_hour
        Poisson arrival rate (studies per hour): exponential inter-arrival times with mean
        ``60 / rate_per_hour`` minutes; the arrival slots are given to the studies in a random order.
        Ignored when ``arrival_times`` is given.
    arrival_times
        Arrival time of each study in minutes (``n`` values >= 0), used as given.
    read_time
        Read-time distribution: ``lognormal`` (mean ``read_mean``, sd ``read_sd`` minutes),
        ``exponential`` (mean ``read_mean``) or ``constant`` (``read_mean``).
    read_mean, read_sd
        Minutes.
    read_times
        Per-study read times in minutes, used as given (overrides ``read_time``).
    class_shares
        Share of each class of :data:`CLASSES` (normalized to sum 1); default
        :data:`DEFAULT_CLASS_SHARES`. Classes are drawn independently of the label.
    priority
        Per-study class (names of :data:`CLASSES` or their indices), used as given.
    seed
        Seed of a ``numpy.random.default_rng`` (or a Generator).

    Returns
    -------
    Shift
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n must be a positive int (studies in the shift), got {n!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if arrival_times is not None:
        arrival = _vector(arrival_times, n, "arrival_times")
    else:
        if rate_per_hour is None or not float(rate_per_hour) > 0:
            raise InputError(f"rate_per_hour must be > 0 studies/hour (or give arrival_times), got {rate_per_hour}")
        slots = np.cumsum(rng.exponential(60.0 / float(rate_per_hour), size=n))
        arrival = slots[rng.permutation(n)]
    if read_times is not None:
        reads = _vector(read_times, n, "read_times")
    else:
        _choice(read_time, READ_TIME_DISTRIBUTIONS, "read_time distribution")
        if not float(read_mean) > 0:
            raise InputError(f"read_mean must be > 0 minutes, got {read_mean}")
        if read_time == "constant":
            reads = np.full(n, float(read_mean))
        elif read_time == "exponential":
            reads = rng.exponential(float(read_mean), size=n)
        else:
            if not float(read_sd) > 0:
                raise InputError(f"read_sd must be > 0 minutes for a lognormal read time, got {read_sd}")
            sigma2 = np.log1p((float(read_sd) / float(read_mean)) ** 2)
            mu = np.log(float(read_mean)) - sigma2 / 2.0
            reads = rng.lognormal(mu, np.sqrt(sigma2), size=n)
        reads = np.maximum(reads, 1e-3)
    if priority is not None:
        prio = np.asarray(priority)
        if prio.dtype.kind in "US":
            bad = sorted(set(prio.tolist()) - set(CLASSES))
            if bad:
                raise InputError(f"unknown priority class(es) {bad}; choose from {', '.join(CLASSES)}")
            prio = np.array([CLASSES.index(p) for p in prio.tolist()], dtype=np.int64)
        prio = _vector(prio, n, "priority", dtype=np.int64)
    else:
        shares = dict(DEFAULT_CLASS_SHARES if class_shares is None else class_shares)
        bad = sorted(set(shares) - set(CLASSES))
        if bad:
            raise InputError(f"unknown class(es) {bad} in class_shares; choose from {', '.join(CLASSES)}")
        p = np.array([float(shares.get(c, 0.0)) for c in CLASSES])
        if np.any(p < 0) or p.sum() <= 0:
            raise InputError(f"class_shares must be >= 0 with a positive sum, got {shares}")
        prio = rng.choice(len(CLASSES), size=n, p=p / p.sum())
    return Shift(arrival=arrival, read_time=reads, priority=prio)


# ----------------------------------------------------------------------------- the simulation
@dataclass
class QueueResult:
    """Outcome of one simulated shift under one policy.

    Attributes
    ----------
    policy : str
    start, finish : float64 (n,)
        Minutes from the start of the shift when each study's read begins and ends.
    wait : float64 (n,)
        ``start - arrival``: minutes each study waited until a radiologist opened it.
    reader : int64 (n,)
        Which radiologist read it.
    labels : int64 (n,)
        Ground truth, 1 positive.
    flags : bool (n,)
        The flags the policy saw (all false for ``fifo``/``score_ordered``).
    shift : Shift
    """

    policy: str
    start: np.ndarray
    finish: np.ndarray
    wait: np.ndarray
    reader: np.ndarray
    labels: np.ndarray
    flags: np.ndarray
    shift: Shift = field(repr=False)

    def summary(self) -> dict[str, float]:
        """Wait statistics of positives and negatives (see :func:`wait_summary`)."""
        return wait_summary(self.wait, self.labels)


def _key(policy: str, i: int, shift: Shift, flags: np.ndarray, scores: np.ndarray) -> tuple:
    arrival, cls = float(shift.arrival[i]), int(shift.priority[i])
    if policy == "fifo":
        return (cls, arrival, i)
    if policy == "flagged_first":
        return (0 if flags[i] else 1, cls, arrival, i)
    return (cls, -float(scores[i]), arrival, i)


def run_queue(
    shift: Shift,
    labels: Sequence[int] | np.ndarray,
    *,
    policy: str = "fifo",
    flags: Sequence[bool] | np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    n_readers: int = 1,
) -> QueueResult:
    """Simulate a reading list over ``shift`` (deterministic; see the module docstring).

    Parameters
    ----------
    shift
        Arrivals, read times and classes of the ``n`` studies.
    labels
        0/1 ground truth (n,), used only for the summaries.
    policy
        One of :data:`POLICIES`.
    flags
        Boolean (n,): the model's flags; required by ``flagged_first``.
    scores
        Float (n,): the model's scores; required by ``score_ordered``.
    n_readers
        Radiologists reading in parallel (>= 1).

    Returns
    -------
    QueueResult
    """
    _choice(policy, POLICIES, "policy")
    n = len(shift)
    y = _vector(labels, n, "labels", dtype=np.int64)
    if not np.all(np.isin(y, (0, 1))):
        raise InputError("labels must be 0 or 1")
    if not isinstance(n_readers, int | np.integer) or n_readers < 1:
        raise InputError(f"n_readers must be an int >= 1, got {n_readers!r}")
    if policy == "flagged_first" and flags is None:
        raise InputError("policy 'flagged_first' needs flags (one bool per study)")
    if policy == "score_ordered" and scores is None:
        raise InputError("policy 'score_ordered' needs scores (one float per study)")
    f = np.zeros(n, bool) if flags is None else _vector(flags, n, "flags", dtype=bool)
    s = np.zeros(n) if scores is None else _vector(scores, n, "scores")

    # event heap: (time, seq, kind, index); kind 0 = arrival of study index, 1 = reader index free
    events: list[tuple[float, int, int, int]] = [(float(shift.arrival[i]), i, 0, i) for i in range(n)]
    heapq.heapify(events)
    seq = n
    free = list(range(int(n_readers)))
    heapq.heapify(free)
    waiting: list[tuple] = []
    start = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    reader = np.full(n, -1, np.int64)
    while events:
        now = events[0][0]
        while events and events[0][0] == now:  # apply every event of this instant first
            _, _, kind, idx = heapq.heappop(events)
            if kind == 0:
                heapq.heappush(waiting, _key(policy, idx, shift, f, s))
            else:
                heapq.heappush(free, idx)
        while free and waiting:
            study = heapq.heappop(waiting)[-1]
            r = heapq.heappop(free)
            start[study], reader[study] = now, r
            finish[study] = now + float(shift.read_time[study])
            heapq.heappush(events, (float(finish[study]), seq, 1, r))
            seq += 1
    wait = start - shift.arrival
    return QueueResult(policy=policy, start=start, finish=finish, wait=wait, reader=reader,
                       labels=y, flags=f if policy == "flagged_first" else np.zeros(n, bool), shift=shift)


def wait_summary(wait: np.ndarray, labels: np.ndarray,
                 within: Sequence[int] = WITHIN_MINUTES) -> dict[str, float]:
    """Mean, median and 90th percentile wait (minutes) of positives and of negatives.

    Returns a dict with keys ``pos_mean, pos_median, pos_p90, neg_mean, neg_median, neg_p90,
    all_mean, n_pos, n_neg`` and ``pos_within_M`` (number of positives whose wait is <= M
    minutes) and ``pos_within_M_frac`` for each M of ``within``. Statistics of an empty group are NaN.
    """
    wait = np.asarray(wait, dtype=np.float64)
    labels = np.asarray(labels)
    out: dict[str, float] = {}
    for tag, group in (("pos", wait[labels == 1]), ("neg", wait[labels == 0])):
        empty = group.size == 0
        out[f"{tag}_mean"] = float("nan") if empty else float(group.mean())
        out[f"{tag}_median"] = float("nan") if empty else float(np.median(group))
        out[f"{tag}_p90"] = float("nan") if empty else float(np.percentile(group, 90))
        out[f"n_{tag}"] = float(group.size)
    out["all_mean"] = float(wait.mean()) if wait.size else float("nan")
    pos = wait[labels == 1]
    for m in within:
        k = float(np.sum(pos <= m))
        out[f"pos_within_{m}"] = k
        out[f"pos_within_{m}_frac"] = k / pos.size if pos.size else float("nan")
    return out


def simulate_queue(
    labels: Sequence[int] | np.ndarray,
    *,
    policy: str = "fifo",
    flags: Sequence[bool] | np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    n_readers: int = 1,
    shift: Shift | None = None,
    seed: int = 0,
    **shift_options: Any,
) -> QueueResult:
    """Simulate one policy over one shift: :func:`make_shift` (unless ``shift`` is given) then
    :func:`run_queue`.

    Parameters
    ----------
    labels
        0/1 ground truth of the ``n`` studies.
    policy, flags, scores, n_readers
        As in :func:`run_queue`.
    shift
        A shift to reuse; otherwise one is drawn with ``seed`` and ``shift_options`` (the keyword
        arguments of :func:`make_shift`: ``rate_per_hour``, ``arrival_times``, ``read_time``,
        ``read_mean``, ``read_sd``, ``read_times``, ``class_shares``, ``priority``).

    Examples
    --------
    >>> r = simulate_queue([1, 0, 0], policy="flagged_first", flags=[True, False, False],
    ...                    arrival_times=[2, 0, 1], read_times=[10, 10, 10],
    ...                    priority=["outpatient"] * 3)
    >>> r.wait.tolist()
    [8.0, 0.0, 19.0]
    """
    y = np.asarray(labels)
    if shift is None:
        shift = make_shift(int(y.shape[0]) if y.ndim == 1 else -1, seed=seed, **shift_options)
    elif shift_options:
        raise InputError(f"give either shift or shift options, not both (got {sorted(shift_options)})")
    return run_queue(shift, y, policy=policy, flags=flags, scores=scores, n_readers=n_readers)
