"""Progress on long work: library code reports through a callback, the CLI draws the bars.

Library functions take ``progress: ProgressCallback | None`` and call it as
``progress(done, total, description)`` after each unit of work.  They never draw anything
themselves.  :func:`progress_bar` is the one rich-based implementation; it draws only when
asked to (the CLI asks when stderr is a terminal).

Examples
--------
>>> from sinotriage.progress import progress_bar
>>> with progress_bar("studies", total=3, enabled=False) as report:
...     for i in range(3):
...         report(i + 1, 3, "studies")
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Protocol

__all__ = ["ProgressCallback", "counting", "progress_bar", "report", "wants_bars"]


class ProgressCallback(Protocol):
    """``callback(done, total, description)``: ``done`` of ``total`` units are finished."""

    def __call__(self, done: int, total: int, description: str = "") -> None: ...


def report(progress: ProgressCallback | None, done: int, total: int, description: str = "") -> None:
    """Call ``progress(done, total, description)`` when a callback was given."""
    if progress is not None:
        progress(done, total, description)


def wants_bars() -> bool:
    """Whether progress bars should be drawn: stderr is an interactive terminal."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool | None = None
                 ) -> Iterator[ProgressCallback]:
    """A rich progress bar as a :class:`ProgressCallback`.

    Parameters
    ----------
    description
        Text in front of the bar (updated by the callback's ``description`` when non-empty).
    total
        Number of units of work.
    enabled
        Draw the bar; ``None`` draws it when stderr is a terminal (:func:`wants_bars`).

    Yields
    ------
    ProgressCallback
        Call it with ``(done, total, description)``; with ``enabled`` false it does nothing.
    """
    if enabled is None:
        enabled = wants_bars()
    if not enabled:
        yield lambda done, total, description="": None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                    transient=False)
    task = bars.add_task(description, total=total)

    def update(done: int, total: int, text: str = "") -> None:
        bars.update(task, completed=done, total=total, description=text or description)

    with bars:
        yield update


@contextlib.contextmanager
def counting(progress: ProgressCallback | bool | None, description: str, total: int
             ) -> Iterator[Callable[[], None]]:
    """``advance()``, called once per finished unit, reported to ``progress``.

    Parameters
    ----------
    progress
        A :class:`ProgressCallback` (called as ``progress(done, total, description)``), or
        ``True`` for a :func:`progress_bar` drawn when stderr is a terminal (the older boolean
        ``progress=`` arguments), or ``False`` / ``None`` for nothing.
    description, total
        What the units are, and how many.
    """
    done = 0

    def advance_to(callback: ProgressCallback | None) -> Callable[[], None]:
        def advance() -> None:
            nonlocal done
            done += 1
            report(callback, done, total, description)
        return advance

    if callable(progress):
        yield advance_to(progress)
    elif progress:
        with progress_bar(description, total) as bar:
            yield advance_to(bar)
    else:
        yield advance_to(None)
