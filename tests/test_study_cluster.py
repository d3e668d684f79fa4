"""The study's runs as dask tasks on a local 2-worker cluster equal the sequential study."""

from __future__ import annotations

import copy
import json

import pytest

from sinotriage.experiments import run_study, study_preset
from sinotriage.experiments.cluster import local_cluster
from sinotriage.experiments.runner import prepare_store

#: keys that hold wall times, dates or paths of a run, not its results
VOLATILE = {"created", "timing", "train_seconds", "checkpoint"}


def _stable(results: dict) -> dict:
    """results.json without wall times, dates and checkpoint paths."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(copy.deepcopy(results))


@pytest.mark.slow
def test_local_cluster_equals_sequential(tmp_path):
    """The tiny preset's arms (one seed, whole train split) on a 2-worker LocalCluster (processes,
    1 thread each) give the results.json of a sequential run with 1 torch thread, bit for bit
    apart from wall times; a rerun on the cluster reuses every run."""
    cfg = study_preset("tiny").model_copy(update={"seeds": (0,), "train_sizes": ()})
    store = prepare_store(cfg, tmp_path / "data", workers=0, progress=False)
    seq = run_study(cfg, tmp_path / "seq", store=store, workers=0, threads=1)
    with local_cluster(2) as client:
        par = run_study(cfg, tmp_path / "par", store=store, workers=0, cluster=client)
        assert len(client.scheduler_info()["workers"]) == 2
        again = run_study(cfg, tmp_path / "par", store=store, workers=0, cluster=client)
    assert par["failed"] == {} and len(par["runs"]) == len(cfg.arms)
    assert _stable(par) == _stable(seq)
    on_disk = json.loads((tmp_path / "par" / "results.json").read_text())
    assert _stable(on_disk) == _stable(again) == _stable(par)
