"""Assemble a finished study: paired tests per seed and size, the summaries across seeds and
sizes, the queue simulation, the figures, results.json and the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sinotriage import __version__
from sinotriage.experiments import learned, plots
from sinotriage.experiments.config import StudyConfig
from sinotriage.experiments.jobs import arm_views, run_name
from sinotriage.experiments.report import render_html, render_markdown
from sinotriage.experiments.results import SCHEMA, paired_tests, read_results, scan_columns, utc_now
from sinotriage.experiments.summary import curve_section, summarize_arms
from sinotriage.io.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from sinotriage.io.predictions import Predictions, read_predictions
from sinotriage.metrics import roc_curve

#: per-run keys copied from arms/<arm>/s<seed>/n<size>/result.json into results.json
RUN_KEYS: tuple[str, ...] = (
    "arm", "seed", "size", "domain", "views", "view_factor", "model", "windows", "auc", "auc_ci",
    "auc_se", "threshold", "accuracy", "sensitivity", "specificity", "precision", "f1",
    "sens_at_spec", "val_auc", "best_val_auc", "train_seconds", "epochs", "predictions",
    "learned",
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
        seed0 = str(results["study"]["seeds"][0])
        curves[name] = (fpr, tpr, results["arms"][name]["seeds"][seed0]["auc"])
    images["roc"] = plots.roc_figure(curves)
    images["auc_vs_views"] = plots.auc_vs_views_figure(results["arms"], results.get("full_views"))
    for key, make in (("learned_windows", learned.windows_figure),
                      ("learned_filter", learned.filter_figure)):
        png = make(results["arms"])
        if png is not None:
            images[key] = png
    if results.get("curve"):
        images["curve"] = plots.curve_figure(results["curve"])
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
        atomic_write_bytes(fig_dir / f"{key}.png", png)
        results["figures"][key] = f"figures/{key}.png"
    return images


def main_size(config: StudyConfig) -> int | None:
    """The training size of the main table: the largest of ``train_sizes`` (None: all)."""
    return config.train_sizes[-1] if config.train_sizes else None


def finalize(
    config: StudyConfig,
    out: Path,
    records: dict[str, dict[str, Any]],
    failed: dict[str, str],
    store_path: Path | None,
    full_views: int | None,
    device: str,
    timing: dict[str, float],
) -> dict[str, Any]:
    """Write results.json, the figures, report.md and report.html; return the results.

    ``records`` maps run names (:func:`~sinotriage.experiments.jobs.run_name`) to run records;
    each run is tested (paired DeLong) against the reference arm's run of the same seed and size.
    """
    reference = config.reference
    runs: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[int, int | None], dict[str, Predictions]] = {}
    for rec in records.values():
        groups.setdefault((rec["seed"], rec["size"]), {})[rec["arm"]] = read_predictions(
            out / rec["predictions"])
    tests: dict[str, dict[str, float]] = {}
    for (seed, size), preds in groups.items():
        if reference in preds and len(preds) > 1:
            for arm, t in paired_tests(preds, reference).items():
                tests[run_name(arm, seed, size)] = t
    order = [run_name(a.name, seed, size) for a in config.arms for seed in config.seeds
             for size in (config.train_sizes or (None,))]
    for name in order:
        if name not in records:
            continue
        entry = {k: records[name].get(k) for k in RUN_KEYS}
        t = tests.get(name)
        entry["delta_auc_vs_reference"] = t["delta_auc_vs_reference"] if t else None
        entry["p_vs_reference"] = t["p_vs_reference"] if t else None
        runs[name] = entry
    n_train_total = None
    if store_path is not None:
        from sinotriage.io.store import open_store

        n_train_total = len(open_store(store_path).study_ids("train"))
    for entry in runs.values():
        entry["n_train"] = entry["size"] if entry["size"] is not None else n_train_total
    size = main_size(config)
    arms = summarize_arms(config, runs, size)
    first_seed = config.seeds[0]
    main_preds = {a: read_predictions(out / records[k]["predictions"]) for a in arms
                  if (k := run_name(a, first_seed, size)) in records}
    ref_rec = next(iter(records.values()), None)
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
            "seeds": list(config.seeds),
            "train_sizes": list(config.train_sizes),
            "main_size": size,
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
        "n_train_studies": n_train_total,
        "test": ({"n": ref_rec["n_test"], "positives": ref_rec["n_test_positive"],
                  "negatives": ref_rec["n_test"] - ref_rec["n_test_positive"]}
                 if ref_rec else {"n": 0, "positives": 0, "negatives": 0}),
        "runs": runs,
        "arms": arms,
        "curve": curve_section(config, runs, n_train_total or 0),
        "failed": dict(sorted(failed.items())),
        "queue": (queue_section(config, main_preds, {a: arms[a] for a in main_preds})
                  if len(main_preds) > 0 else None),
        "timing": timing,
    }
    images = figures(out, config, results, main_preds, store_path) if main_preds else {}
    atomic_write_json(out / "results.json", results)
    results = read_results(out)  # the JSON form (NaN -> null), what the reports show
    config_yaml = config.to_yaml()
    atomic_write_text(out / "report.md", render_markdown(results, config_yaml))
    atomic_write_text(out / "report.html", render_html(results, images, config_yaml))
    return results


def rerender(out: str | Path) -> dict[str, Any]:
    """Re-render report.md / report.html from an existing results directory (no training)."""
    out = Path(out)
    results = read_results(out)
    config_yaml = (out / "config.yaml").read_text() if (out / "config.yaml").is_file() else ""
    images = {k: (out / v).read_bytes() for k, v in results.get("figures", {}).items()
              if (out / v).is_file()}
    atomic_write_text(out / "report.md", render_markdown(results, config_yaml))
    atomic_write_text(out / "report.html", render_html(results, images, config_yaml))
    return results


__all__ = ["RUN_KEYS", "example_images", "figures", "finalize", "main_size", "queue_section",
           "rerender"]
