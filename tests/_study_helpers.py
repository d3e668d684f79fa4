"""Helpers of the study tests: a small hand-made store, a scripted trainer, the report check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sinotriage.experiments import ArmJob, ArmOutput
from sinotriage.experiments.report import COLUMNS
from sinotriage.io.predictions import Predictions

IMAGE, VIEWS, DET = 32, 64, 48


def make_store(path: Path, n: int = 30) -> Path:
    """A small hand-made store: random slices, labels alternating, parallel... fan geometry."""
    import torch

    from sinotriage.geometry import sinoct
    from sinotriage.io.store import create_store
    from sinotriage.operators import hu_to_mu, project

    g = sinoct(image_size=IMAGE, n_views=VIEWS, n_det=DET)
    store = create_store(path, {"source": "test"}, geometry=g)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:IMAGE, :IMAGE]
    head = ((yy - IMAGE / 2) ** 2 + (xx - IMAGE / 2) ** 2) < (IMAGE / 2.5) ** 2
    for i in range(n):
        d = 4
        hu = np.where(head, 30.0, -1000.0)[None].repeat(d, 0) + rng.normal(0, 5, (d, IMAGE, IMAGE))
        labels = np.zeros((d, 6), np.uint8)
        mask = np.zeros((d, IMAGE, IMAGE), np.uint8)
        if i % 2:
            labels[1:3, 0] = 1
            labels[1:3, 5] = 1
            mask[1:3, 10:14, 10:14] = 5
            hu[1:3, 10:14, 10:14] = 70
        sino = project(hu_to_mu(torch.from_numpy(hu.astype(np.float32))), g).numpy()
        store.write_study(f"t{i:03d}", {"hu": hu, "sinogram": sino, "labels": labels, "mask": mask})
    store.assign_splits((0.4, 0.3, 0.3), seed=0)
    store.write_manifest()
    return path


class ScriptedTrainer:
    """Scores = label * strength + noise, per slice, seeded by the arm, seed and size (a stand-in
    for training).  ``fail``: run names (``arm/s<seed>/n<size>``) that raise."""

    def __init__(self, strength: dict[str, float], fail: tuple[str, ...] = (),
                 seed_strength: dict[int, float] | None = None):
        self.strength = strength
        self.fail = fail
        self.seed_strength = seed_strength or {}
        self.calls: list[str] = []
        self.runs: list[str] = []

    def __call__(self, job: ArmJob) -> ArmOutput:
        from sinotriage.io.store import open_store

        self.calls.append(job.arm.name)
        self.runs.append(job.name)
        if job.name in self.fail:
            raise RuntimeError(f"scripted failure of {job.name}")
        st = open_store(job.store_path)
        rng = np.random.default_rng([len(job.arm.name), job.seed, job.size or 0])
        ids, splits, z, labels, scores = [], [], [], [], []
        for split in ("val", "test"):
            for sid in st.study_ids(split):
                lab = st.read(sid, "labels")[:, 0]
                for k, v in enumerate(lab):
                    ids.append(sid)
                    splits.append(split)
                    z.append(k)
                    labels.append(int(v))
                    gain = self.strength[job.arm.domain] * self.seed_strength.get(job.seed, 1.0)
                    scores.append(float(gain * v + rng.normal()))
        epochs = job.train_config().epochs
        for e in range(epochs):
            if job.on_epoch:
                job.on_epoch(e + 1, epochs, {"loss": 1.0 / (e + 1)})
        pred = Predictions(ids, splits, z, labels, scores, ("any",))
        return ArmOutput(pred.with_scan_rows("max"), epochs=epochs, best_val_auc=0.9)


def _md_table(md: str, heading: str, columns) -> list[dict[str, str]]:
    lines = md.split(f"## {heading}", 1)[1].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [c[0] for c in columns]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    return rows


def _check_cell(cell: str, value, kind: str, where) -> None:
    """A printed cell equals the results.json value, rounded as its format says."""
    if value is None:
        assert cell == "–", where
    elif kind == "text":
        assert cell == str(value), where
    elif kind == "int":
        assert int(cell) == value, where
    elif kind == "bool":
        assert cell == ("yes" if value else "no"), where
    elif kind == "ci":
        lo, hi = (float(v) for v in cell.split("–"))
        assert lo == pytest.approx(value[0], abs=5e-4) and hi == pytest.approx(value[1], abs=5e-4)
    elif kind == "p" and cell == "<0.001":
        assert value < 0.001, where
    else:
        tol = 0.05 if kind == "f1" else 5e-4
        assert float(cell) == pytest.approx(value, abs=tol + 1e-12), where


def check_report_matches_results(out: Path) -> dict:
    """Every number of report.md's tables equals the results.json value rounded as printed."""
    from sinotriage.experiments.report import CURVE_COLUMNS, RUN_COLUMNS, table_records

    results = json.loads((out / "results.json").read_text())
    md = (out / "report.md").read_text()
    tables = [("AUC table", COLUMNS, "arms"), ("Runs (per seed and training size)", RUN_COLUMNS,
                                                "runs")]
    if results.get("curve"):
        tables.append(("Data-scaling curve", CURVE_COLUMNS, "curve"))
    for heading, columns, which in tables:
        rows = _md_table(md, heading, columns)
        records = table_records(results, which)
        assert len(rows) == len(records) > 0
        for row, rec in zip(rows, records, strict=True):
            for title, key, kind in columns:
                _check_cell(row[title], rec.get(key), kind, (heading, title, rec.get(key)))
    assert [r["Arm"] for r in _md_table(md, "AUC table", COLUMNS)] == list(results["arms"])
    return results


