"""Run one task per study: in-process, on a local dask cluster, or on a running dask scheduler.

``synth``, ``preprocess`` and ``ingest`` all map a function over studies with
:func:`run_tasks`. Where the work runs is chosen by two arguments:

- ``workers=0``: in this process, one study after the other (debugging, tiny stores);
- ``workers=K`` (K >= 1, the default 2): a ``dask.distributed.LocalCluster`` of K worker processes
  with one thread each, started for the call and closed after it;
- ``scheduler="tcp://host:8786"``: a running dask scheduler (``dask scheduler`` and
  ``dask worker`` started by you, e.g. on a cluster); every worker must see the store path.

Each task writes its own study, so results never depend on scheduling; the task function must be
picklable (a module-level function, optionally wrapped in :func:`functools.partial`). Progress
is reported through a :class:`sinotriage.progress.ProgressCallback` (the CLI draws it as a bar). A failing task does not stop the others: all tasks run, then
:class:`TaskError` reports every failure (the studies that succeeded stay written, so a rerun only
redoes the failed ones).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sinotriage.errors import InputError
from sinotriage.progress import ProgressCallback, counting

__all__ = ["SCHEDULER_TIMEOUT_S", "TaskError", "TaskInputError", "run_tasks", "check_workers",
           "default_backend", "new_local_cluster"]

#: seconds to wait for a running dask scheduler (``scheduler=``) to answer before giving up
SCHEDULER_TIMEOUT_S = 5.0

T = TypeVar("T")
R = TypeVar("R")


class TaskError(RuntimeError):
    """One or more tasks failed; ``failures`` maps the task label to its formatted error."""

    def __init__(self, failures: dict[str, str], total: int) -> None:
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(
            f"{_failed(failures, total)}; first failure, {first[0]}:\n{first[1]}"
        )


class TaskInputError(TaskError, InputError):
    """Every failed task failed on bad input (an :class:`~sinotriage.errors.InputError`, e.g. a
    file refused under ``strict``); the message is the first failure's, in one line."""

    def __init__(self, failures: dict[str, str], total: int, first_message: str) -> None:
        self.failures = failures
        first = next(iter(failures))
        Exception.__init__(self, f"{_failed(failures, total)}; first failure, {first}: "
                                 f"{first_message}")


def _failed(failures: dict[str, str], total: int) -> str:
    return (f"{len(failures)} of {total} tasks failed ({', '.join(list(failures)[:5])}"
            f"{', ...' if len(failures) > 5 else ''})")


def _task_error(failures: dict[str, str], errors: dict[str, BaseException | None],
                total: int) -> TaskError:
    """:class:`TaskInputError` when every failure is an InputError, else :class:`TaskError`."""
    if failures and all(isinstance(errors.get(n), InputError) for n in failures):
        first = next(iter(failures))
        return TaskInputError(failures, total, str(errors[first]))
    return TaskError(failures, total)


def check_workers(workers: int, scheduler: str | None) -> None:
    """Validate the ``workers`` / ``scheduler`` pair (errors name the argument)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InputError(f"workers must be an integer >= 0 (0 = in-process), got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise InputError(f"scheduler must be an address such as 'tcp://host:8786', got {scheduler!r}")


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
        raise InputError(f"device must be one of ('cpu', 'cuda'), got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("device='cuda' but torch.cuda.is_available() is False")
    if backend is None:
        return "torch" if device == "cuda" else default_backend()
    return backend


#: Environment of the local cluster's worker processes. dask sets ``MALLOC_TRIM_THRESHOLD_`` to
#: 64 KiB, which also switches off glibc's adaptive mmap threshold: every array above 128 KiB is
#: then a fresh mmap, and the page faults doubled the CPU time of ``synth`` (system time 48 % of
#: the total on the quick preset). A fixed 256 MiB threshold keeps such arrays on the heap.
#: Variables set in the calling environment take precedence (dask's rule).
#: Their statistical profiler is off: it samples the task thread's stack every 10 ms from the
#: worker's main thread, and its source-line lookups (a ``stat`` per frame) took most of a core
#: per worker on the 2-core CPU, half of it in the kernel.
_WORKER_ENVIRON = {
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 256 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 256 * 2**20,
    "distributed.worker.profile.enabled": False,
}


class _WithThreads:
    """Picklable wrapper that caps torch's intra-op threads in the worker before each task.

    The numba kernels follow torch's count: they set numba's before every call and leave
    torch's as it was (``sinotriage.operators._numba``)."""

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        self.fn = fn
        self.threads = threads

    def __call__(self, item: Any) -> Any:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return self.fn(item)


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 2,
    scheduler: str | None = None,
    labels: Sequence[str] | None = None,
    description: str = "studies",
    progress: ProgressCallback | bool | None = True,
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
        What the tasks do (the ``description`` passed to ``progress``).
    progress : ProgressCallback or bool, optional
        Called as ``progress(done, total, description)`` after each task. ``True`` draws a bar
        on stderr when it is a terminal (:func:`sinotriage.progress.progress_bar`); ``False`` or
        None report nothing.
    threads_per_worker : int
        Torch threads per dask worker (caps oversubscription; not applied in-process).

    Returns
    -------
    list
        ``[fn(item) for item in items]``.

    Raises
    ------
    TaskError
        After all tasks ran, when any failed; a :class:`TaskInputError` (also an
        :class:`~sinotriage.errors.InputError`) when every failure was an InputError.
    InputError
        ``workers`` or ``scheduler`` is invalid, or the scheduler does not answer within
        :data:`SCHEDULER_TIMEOUT_S` seconds.
    """
    check_workers(workers, scheduler)
    items = list(items)
    names = [str(i) for i in items] if labels is None else [str(n) for n in labels]
    if len(names) != len(items):
        raise ValueError(f"labels has {len(names)} entries for {len(items)} items")
    if not items:
        return []
    with counting(progress, description, len(items)) as advance:
        return _run(fn, items, names, workers, scheduler, threads_per_worker, advance)


def _run(fn: Callable[[Any], Any], items: list[Any], names: list[str], workers: int,
         scheduler: str | None, threads_per_worker: int, advance: Callable[[], None]) -> list[Any]:
    if scheduler is None and workers == 0:
        return _run_local(fn, items, names, advance)
    return _run_dask(_WithThreads(fn, threads_per_worker), items, names, workers, scheduler,
                     advance)


def _run_local(fn: Callable[[Any], Any], items: list[Any], names: list[str],
               advance: Callable[[], None]) -> list[Any]:
    results: list[Any] = [None] * len(items)
    failures: dict[str, str] = {}
    errors: dict[str, BaseException | None] = {}
    for i, item in enumerate(items):
        try:
            results[i] = fn(item)
        except Exception as exc:  # noqa: BLE001 - reported together below
            failures[names[i]] = traceback.format_exc()
            errors[names[i]] = exc
        advance()
    if failures:
        raise _task_error(failures, errors, len(items))
    return results


def new_local_cluster(workers: int, dashboard_address: str | None = None) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` processes with one thread each.

    Its workers get :data:`_WORKER_ENVIRON` (heap-allocated arrays: without it the study's
    training runs spent 40 % of their CPU time in page faults), and dask's own log lines at
    shutdown (a worker killed after 4 s) are silenced. The caller closes it.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(_WORKER_ENVIRON):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=dashboard_address,
                            silence_logs=logging.ERROR)


def _run_dask(fn: Callable[[Any], Any], items: list[Any], names: list[str], workers: int,
              scheduler: str | None, advance: Callable[[], None]) -> list[Any]:
    from distributed import Client, as_completed

    cluster = None
    if scheduler is None:
        cluster = new_local_cluster(workers)
        client = Client(cluster)
    else:
        client = _connect(Client, scheduler)
    try:
        futures = client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        failures: dict[str, str] = {}
        errors: dict[str, BaseException | None] = {}
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "finished":
                results[i] = fut.result()
            else:
                exc = fut.exception()
                errors[names[i]] = exc
                failures[names[i]] = "".join(
                    traceback.format_exception(type(exc), exc, fut.traceback())
                )
            advance()
        if failures:
            raise _task_error({n: failures[n] for n in names if n in failures}, errors,
                              len(items))
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(client_class: Any, scheduler: str) -> Any:
    """A client of the running scheduler, or an InputError after :data:`SCHEDULER_TIMEOUT_S`."""
    try:
        return client_class(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:  # refused, no answer, bad address
        raise InputError(
            f"cannot reach the dask scheduler at {scheduler} "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); start it with "
            "`dask scheduler` or drop --scheduler"
        ) from None
