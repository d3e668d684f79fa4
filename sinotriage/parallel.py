"""Run one task per study: in-process, on a local dask cluster, or on a running dask scheduler.

``synth``, ``preprocess`` and ``ingest`` all map a function over studies with
:func:`run_tasks`. Where the work runs is chosen by two arguments:

- ``workers=0``: in this process, one study after the other (debugging, tiny stores);
- ``workers=K`` (K >= 1, the default 2): a ``dask.distributed.LocalCluster`` of K worker processes
  with one thread each, started for the call and closed after it;
- ``scheduler="tcp://host:8786"``: a running dask scheduler (``dask scheduler`` and
  ``dask worker`` started by you, e.g. on a cluster); every worker must see the store path.

Each task writes its own study, so results never depend on scheduling; the task function must be
picklable (a module-level function, optionally wrapped in :func:`functools.partial`). A rich
progress bar counts studies done. A failing task does not stop the others: all tasks run, then
:class:`TaskError` reports every failure (the studies that succeeded stay written, so a rerun only
redoes the failed ones).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["TaskError", "run_tasks", "check_workers", "default_backend"]

T = TypeVar("T")
R = TypeVar("R")


class TaskError(RuntimeError):
    """One or more tasks failed; ``failures`` maps the task label to its formatted error."""

    def __init__(self, failures: dict[str, str], total: int) -> None:
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(
            f"{len(failures)} of {total} tasks failed ({', '.join(list(failures)[:5])}"
            f"{', ...' if len(failures) > 5 else ''}); first failure, {first[0]}:\n{first[1]}"
        )


def check_workers(workers: int, scheduler: str | None) -> None:
    """Validate the ``workers`` / ``scheduler`` pair (errors name the argument)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0 = in-process), got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(f"scheduler must be an address such as 'tcp://host:8786', got {scheduler!r}")


def default_backend() -> str:
    """Operator backend used by the per-study writers: ``"numba"`` where installed, else ``"torch"``.

    Both give the same bits in every process and for any thread count, and it is what the
    operators' default rule (:data:`sinotriage.operators.RULES`) picks on the CPU; naming it
    keeps the stores independent of that table. The writers record the backend they used in
    the store attributes.
    """
    import importlib.util

    return "numba" if importlib.util.find_spec("numba") is not None else "torch"


def resolve_backend(device: str, backend: str | None) -> str:
    """Check ``device`` ("cpu" or "cuda", usable) and return the writers' operator backend.

    ``backend=None`` gives ``"torch"`` on CUDA and :func:`default_backend` on the CPU; a given
    backend is returned as is (callers check it against the backends they accept).
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of ('cpu', 'cuda'), got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but torch.cuda.is_available() is False")
    if backend is None:
        return "torch" if device == "cuda" else default_backend()
    return backend


#: Environment of the local cluster's worker processes. dask sets ``MALLOC_TRIM_THRESHOLD_`` to
#: 64 KiB, which also switches off glibc's adaptive mmap threshold: every array above 128 KiB is
#: then a fresh mmap, and the page faults doubled the CPU time of ``synth`` (system time 48 % of
#: the total on the quick preset). A fixed 256 MiB threshold keeps such arrays on the heap.
#: Variables set in the calling environment take precedence (dask's rule).
_WORKER_ENVIRON = {
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 256 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 256 * 2**20,
}


class _WithThreads:
    """Picklable wrapper that caps torch's intra-op threads in the worker before each task."""

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        self.fn = fn
        self.threads = threads

    def __call__(self, item: Any) -> Any:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        numba = sys.modules.get("numba")
        if numba is not None and numba.get_num_threads() != self.threads:
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        return self.fn(item)


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 2,
    scheduler: str | None = None,
    labels: Sequence[str] | None = None,
    description: str = "studies",
    progress: bool = True,
    threads_per_worker: int = 1,
) -> list[R]:
    """Apply ``fn`` to every item, one task per item, and return the results in item order.

    Parameters
    ----------
    fn : callable
        ``fn(item) -> result``; picklable when run on dask.
    items : sequence
        One item per task (e.g. a study index or id).
    workers : int
        0 runs in this process; K >= 1 starts a local dask cluster of K single-threaded worker
        processes. Ignored when ``scheduler`` is given.
    scheduler : str, optional
        Address of a running dask scheduler.
    labels : sequence of str, optional
        A name per item for error messages (default ``str(item)``).
    description : str
        Text of the progress bar.
    progress : bool
        Show a progress bar of tasks done.
    threads_per_worker : int
        Torch threads per dask worker (caps oversubscription; not applied in-process).

    Returns
    -------
    list
        ``[fn(item) for item in items]``.

    Raises
    ------
    TaskError
        After all tasks ran, when any failed.
    """
    check_workers(workers, scheduler)
    items = list(items)
    names = [str(i) for i in items] if labels is None else [str(n) for n in labels]
    if len(names) != len(items):
        raise ValueError(f"labels has {len(names)} entries for {len(items)} items")
    if not items:
        return []
    with _progress_bar(description, len(items), progress) as advance:
        if scheduler is None and workers == 0:
            return _run_local(fn, items, names, advance)
        return _run_dask(_WithThreads(fn, threads_per_worker), items, names, workers, scheduler,
                         advance)


def _run_local(fn: Callable[[Any], Any], items: list[Any], names: list[str],
               advance: Callable[[], None]) -> list[Any]:
    results: list[Any] = [None] * len(items)
    failures: dict[str, str] = {}
    for i, item in enumerate(items):
        try:
            results[i] = fn(item)
        except Exception:  # noqa: BLE001 - reported together below
            failures[names[i]] = traceback.format_exc()
        advance()
    if failures:
        raise TaskError(failures, len(items))
    return results


def _run_dask(fn: Callable[[Any], Any], items: list[Any], names: list[str], workers: int,
              scheduler: str | None, advance: Callable[[], None]) -> list[Any]:
    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        with dask.config.set(_WORKER_ENVIRON):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        failures: dict[str, str] = {}
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "finished":
                results[i] = fut.result()
            else:
                exc = fut.exception()
                failures[names[i]] = "".join(
                    traceback.format_exception(type(exc), exc, fut.traceback())
                )
            advance()
        if failures:
            raise TaskError({n: failures[n] for n in names if n in failures}, len(items))
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _progress_bar:
    """Context manager yielding ``advance()``; a rich bar of tasks done, or nothing."""

    def __init__(self, description: str, total: int, enabled: bool) -> None:
        self.description, self.total, self.enabled = description, total, enabled
        self._progress: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self._progress.start()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
