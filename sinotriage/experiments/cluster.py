"""The study's runs as dask tasks: on a local cluster, on a scheduler, across GPUs and nodes.

Every run (arm, seed, training size) is independent: it reads the store, trains, writes its own
predictions and ``result.json`` atomically (:func:`sinotriage.experiments.runner.run_arm`), so
the runs can go to any dask worker that sees the results directory and the store (a shared file
system across nodes).  The client collects the records; results.json and the report are built
from them exactly as after a sequential run.

GPUs: start one worker per GPU, each holding one GPU resource, e.g. on a 4-GPU node::

    dask scheduler                                    # prints tcp://host:8786
    for i in 0 1 2 3; do
      CUDA_VISIBLE_DEVICES=$i dask worker tcp://host:8786 --nworkers 1 --nthreads 1 \\
          --resources GPU=1 &
    done
    sinotriage compare --preset standard --device cuda --scheduler tcp://host:8786 --out res

When the workers declare a ``GPU`` resource, each run asks for ``{"GPU": 1}``, so a worker
trains one run at a time on its own GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sinotriage.errors import InputError
from sinotriage.experiments.jobs import ArmJob, Trainer
from sinotriage.experiments.runs import execute_run

__all__ = ["gpu_resources", "local_cluster", "run_on_dask"]

Finished = Callable[[str, "dict[str, Any] | None", "str | None"], None]


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator[Any]:
    """A dask ``Client`` on a new local cluster of ``n_workers`` processes, 1 thread each;
    both are closed on exit."""
    from distributed import Client

    from sinotriage.parallel import new_local_cluster

    if n_workers < 1:
        raise InputError(f"n_workers must be at least 1, got {n_workers}")
    with new_local_cluster(n_workers, dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def gpu_resources(client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when any worker of the client declares a GPU resource, else None."""
    workers = client.scheduler_info().get("workers", {})
    if any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers.values()):
        return {"GPU": 1}
    return None


def run_on_dask(jobs: Sequence[ArmJob], trainer: Trainer, out: Path, cluster: Any,
                finished: Finished, threads: int = 1) -> None:
    """Submit every job as a dask task and report each as it completes.

    Parameters
    ----------
    jobs
        The runs to train (their ``on_epoch`` is dropped: it would not cross processes).
    trainer
        A picklable trainer.
    out
        The results directory (seen by every worker).
    cluster
        A ``distributed.Client``, or a scheduler address ``tcp://host:port``.
    finished
        ``finished(run name, record or None, error or None)``, called in the client process.
    threads
        Torch threads per run.
    """
    from distributed import Client, as_completed

    own = isinstance(cluster, str)
    client = Client(cluster) if own else cluster
    try:
        resources = gpu_resources(client)
        futures = []
        for job in jobs:
            job.on_epoch = None
            futures.append(client.submit(execute_run, job, trainer, out, threads, pure=False,
                                         key=f"sinotriage-run-{job.name}-{id(job)}",
                                         resources=resources))
        for future in as_completed(futures):
            try:
                name, rec, error = future.result()
            except Exception as exc:  # a worker lost or a task that could not run at all
                name = next(j.name for j, f in zip(jobs, futures, strict=True) if f is future)
                rec, error = None, f"{type(exc).__name__}: {exc}"
            finished(name, rec, error)
    finally:
        if own:
            client.close()
