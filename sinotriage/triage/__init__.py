"""Triage: from scores to a prioritized worklist, and what it does to the reading queue.

- :mod:`sinotriage.triage.worklist`: rank studies by score, flag those above an operating
  threshold chosen on the validation split, list the slices to look at first and the
  predicted subtypes; write CSV and HTML.
- :mod:`sinotriage.triage.queue`: a seeded discrete-event simulation of the reading list under
  FIFO, flagged-first and score-ordered policies, against an oracle and no triage.
"""

from __future__ import annotations

from sinotriage.triage.queue import (
    CLASSES,
    POLICIES,
    PolicyComparison,
    QueueResult,
    Shift,
    compare_operating_points,
    make_shift,
    run_queue,
    simulate_policies,
    simulate_queue,
    wait_summary,
)
from sinotriage.triage.worklist import (
    OperatingPoint,
    Worklist,
    WorklistEntry,
    build_worklist,
    choose_operating_point,
    write_worklist_csv,
    write_worklist_html,
)

__all__ = [
    "CLASSES",
    "OperatingPoint",
    "Worklist",
    "WorklistEntry",
    "build_worklist",
    "choose_operating_point",
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
]
