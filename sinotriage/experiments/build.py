"""Assemble a finished study: paired tests, queue simulation, figures, results.json and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sinotriage import __version__
from sinotriage.experiments import learned, plots
from sinotriage.experiments.config import StudyConfig
from sinotriage.experiments.report import render_html, render_markdown
from sinotriage.experiments.results import (
    SCHEMA,
    paired_tests,
    read_results,
    scan_columns,
    utc_now,
    write_json,
    write_text,
)
from sinotriage.io.predictions import Predictions, read_predictions
from sinotriage.metrics import roc_curve

#: per-arm keys copied from arms/<arm>/result.json into results.json
ARM_KEYS: tuple[str, ...] = (
    "domain", "views", "view_factor", "model", "windows", "auc", "auc_ci", "auc_se", "threshold",
    "accuracy", "sensitivity", "specificity", "precision", "f1", "sens_at_spec", "val_auc",
    "best_val_auc", "train_seconds", "epochs", "predictions", "learned",
)


def queue_section(config: StudyConfig, preds: dict[str, Predictions],
                  records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Simulate the reading queue with each arm's operating point on the common test scans."""
    q = config.queue
    if not q.enabled:
        return None
    from sinotriage.triage import compare_operating_points

    columns = {name: scan_columns(p, "test") for name, p in preds.items()}
    common = sorted(set.intersection(*(set(c[0]) for c in columns.values())))
    if len(common) < 2:
        return None
    first = next(iter(columns.values()))
    index = {sid: i for i, sid in enumerate(first[0])}
    y = np.array([first[1][index[sid]] for sid in common])
    arms = {}
    for name, (ids, _, s) in columns.items():
        pos = {sid: i for i, sid in enumerate(ids)}
        arms[name] = (np.array([s[pos[sid]] for sid in common]), float(records[name]["threshold"]))
    comparison = compare_operating_points(
        y, arms, n_readers=q.n_readers, n_repeats=q.n_repeats, seed=q.seed,
        rate_per_hour=q.rate_per_hour, read_mean=q.read_mean, read_sd=q.read_sd,
    )
    description = (
        f"What each arm's operating point (threshold chosen on validation for sensitivity "
        f"{config.operating_sensitivity:g}) would do to a reading list: each simulated shift holds "
        f"the {len(common)} test studies ({int(y.sum())} positive); flagged studies are read first "
        f"(FIFO within priority class otherwise), against no triage (FIFO) and an oracle that "
        f"flags exactly the positives. Waits in minutes until a radiologist opens the study."
    )
    return {
        "description": description,
        "table": comparison.to_markdown(),
        "rows": comparison.rows,
        "settings": comparison.settings,
    }


def example_images(store_path: Path, config: StudyConfig, full_views: int) -> dict[str, Any] | None:
    """Sinograms per view count, reconstructions per view count and windows of one test slice.

    The slice is the one with the most hemorrhage voxels among the positive test studies (the
    middle slice of the first test study when there is no mask).
    """
    from sinotriage.experiments.runner import arm_views
    from sinotriage.io.store import open_store
    from sinotriage.windowing import window

    st = open_store(store_path)
    ids = st.study_ids("test")
    if not ids:
        return None
    best = (ids[0], None, -1)
    for sid in ids[:40]:
        if "mask" not in st.arrays(sid):
            continue
        counts = (st.read(sid, "mask") > 0).sum(axis=(1, 2))
        if counts.max() > best[2]:
            best = (sid, int(counts.argmax()), int(counts.max()))
    sid, z, _ = best
    if z is None:
        z = int(st.record(sid).get("n_slices", 1)) // 2
    sino_views = sorted({arm_views(a, full_views) for a in config.arms if a.domain == "sinogram"},
                        reverse=True)
    rec_views = sorted({arm_views(a, full_views) for a in config.arms if a.domain != "sinogram"},
                       reverse=True)
    sinos = {v: st.read(sid, "sinogram", views=v, slices=z) for v in sino_views}
    recons = {v: st.read(sid, "recon", views=v, slices=z).astype(np.float32) for v in rec_views}
    windows: dict[str, np.ndarray] = {}
    win_arm = next((a for a in config.arms if a.domain == "windowed"), None)
    if win_arm is not None:
        v = arm_views(win_arm, full_views)
        hu = st.read(sid, "recon", views=v, slices=z).astype(np.float32)
        windows = {f"{name} ({v} views)": np.asarray(window(hu, name)) for name in win_arm.windows}
    return {"study_id": sid, "slice": z, "sinograms": sinos, "recons": recons, "windows": windows}


def figures(out: Path, config: StudyConfig, results: dict[str, Any], preds: dict[str, Predictions],
            store_path: Path | None) -> dict[str, bytes]:
    """Make the report's figures, save them under ``out/figures`` and return their PNG bytes."""
    images: dict[str, bytes] = {}
    curves = {}
    for name, p in preds.items():
        _, y, s = scan_columns(p, "test")
        fpr, tpr, _ = roc_curve(y, s)
        curves[name] = (fpr, tpr, results["arms"][name]["auc"])
    images["roc"] = plots.roc_figure(curves)
    images["auc_vs_views"] = plots.auc_vs_views_figure(results["arms"], results.get("full_views"))
    for key, make in (("learned_windows", learned.windows_figure),
                      ("learned_filter", learned.filter_figure)):
        png = make(results["arms"])
        if png is not None:
            images[key] = png
    if store_path is not None and results.get("full_views"):
        ex = example_images(store_path, config, int(results["full_views"]))
        if ex is not None:
            images["example"] = plots.example_figure(
                ex["sinograms"], ex["recons"], ex["windows"],
                title=f"Example test study {ex['study_id']}, slice {ex['slice']}: "
                      "sinograms, FBP reconstructions and windows as the arms see them",
            )
    queue = results.get("queue")
    if queue:
        images["queue"] = plots.queue_figure([
            {"label": r["arm"], "mean_wait_pos": r["pos_mean"], "p90_wait_pos": r["pos_p90"]}
            for r in queue["rows"]
        ])
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    results["figures"] = {}
    for key, png in images.items():
        tmp = fig_dir / f".{key}.png.tmp"
        tmp.write_bytes(png)
        tmp.replace(fig_dir / f"{key}.png")
        results["figures"][key] = f"figures/{key}.png"
    return images


def finalize(
    config: StudyConfig,
    out: Path,
    records: dict[str, dict[str, Any]],
    store_path: Path | None,
    full_views: int | None,
    device: str,
    timing: dict[str, float],
) -> dict[str, Any]:
    """Write results.json, the figures, report.md and report.html; return the results."""
    preds = {name: read_predictions(out / rec["predictions"]) for name, rec in records.items()}
    reference = config.reference
    tests = paired_tests(preds, reference) if len(preds) > 1 else {}
    arms: dict[str, dict[str, Any]] = {}
    for arm in config.arms:
        rec = records[arm.name]
        entry = {k: rec.get(k) for k in ARM_KEYS}
        t = tests.get(arm.name)
        entry["delta_auc_vs_reference"] = t["delta_auc_vs_reference"] if t else None
        entry["p_vs_reference"] = t["p_vs_reference"] if t else None
        arms[arm.name] = entry
    ref = records[reference]
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "sinotriage_version": __version__,
        "created": utc_now(),
        "study": {
            "name": config.name,
            "data_preset": config.data_preset,
            "difficulty": config.difficulty,
            "n_studies": config.n_studies,
            "seed": config.seed,
            "reference_arm": reference,
            "aggregation": config.aggregation,
            "operating_sensitivity": config.operating_sensitivity,
            "fixed_specificity": config.fixed_specificity,
            "alpha": config.alpha,
            "notes": list(config.notes),
        },
        "store": str(store_path) if store_path is not None else None,
        "full_views": full_views,
        "device": device,
        "test": {"n": ref["n_test"], "positives": ref["n_test_positive"],
                 "negatives": ref["n_test"] - ref["n_test_positive"]},
        "arms": arms,
        "queue": queue_section(config, preds, records),
        "timing": timing,
    }
    images = figures(out, config, results, preds, store_path)
    write_json(out / "results.json", results)
    results = read_results(out)  # the JSON form (NaN -> null), what the reports show
    config_yaml = config.to_yaml()
    write_text(out / "report.md", render_markdown(results, config_yaml))
    write_text(out / "report.html", render_html(results, images, config_yaml))
    return results


def rerender(out: str | Path) -> dict[str, Any]:
    """Re-render report.md / report.html from an existing results directory (no training)."""
    out = Path(out)
    results = read_results(out)
    config_yaml = (out / "config.yaml").read_text() if (out / "config.yaml").is_file() else ""
    images = {k: (out / v).read_bytes() for k, v in results.get("figures", {}).items()
              if (out / v).is_file()}
    write_text(out / "report.md", render_markdown(results, config_yaml))
    write_text(out / "report.html", render_html(results, images, config_yaml))
    return results


__all__ = ["ARM_KEYS", "example_images", "figures", "finalize", "queue_section", "rerender"]
