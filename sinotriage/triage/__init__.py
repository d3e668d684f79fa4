"""Triage: from scores to a prioritized worklist, and what it does to the reading queue.

- :mod:`sinotriage.triage.worklist`: rank studies by score, flag those above an operating
  threshold chosen on the validation split, list the slices to look at first and the
  predicted subtypes; :mod:`~sinotriage.triage.worklist_output` writes it as CSV and HTML,
  :mod:`~sinotriage.triage.scoring` scores a store with a trained checkpoint.
- :mod:`sinotriage.triage.queue`: a seeded discrete-event simulation of the reading list under
  FIFO, flagged-first and score-ordered policies; :mod:`~sinotriage.triage.policies` compares
  them against an oracle and no triage on the same shifts.
"""

from __future__ import annotations

from sinotriage.triage.policies import (
    PolicyComparison,
    compare_operating_points,
    simulate_policies,
)
from sinotriage.triage.queue import (
    CLASSES,
    POLICIES,
    WITHIN_MINUTES,
    QueueResult,
    Shift,
    make_shift,
    run_queue,
    simulate_queue,
    wait_summary,
)
from sinotriage.triage.scoring import predictions_from_checkpoint
from sinotriage.triage.worklist import (
    OperatingPoint,
    Worklist,
    WorklistEntry,
    build_worklist,
    choose_operating_point,
)
from sinotriage.triage.worklist_output import write_worklist_csv, write_worklist_html

__all__ = [
    "CLASSES",
    "OperatingPoint",
    "Worklist",
    "WorklistEntry",
    "build_worklist",
    "choose_operating_point",
    "predictions_from_checkpoint",
    "write_worklist_csv",
    "write_worklist_html",
    "POLICIES",
    "PolicyComparison",
    "QueueResult",
    "Shift",
    "compare_operating_points",
    "make_shift",
    "run_queue",
    "simulate_policies",
    "simulate_queue",
    "wait_summary",
    "WITHIN_MINUTES",
]
