"""Figures of the comparison report, returned as PNG bytes (matplotlib, Agg backend).

Every figure has labelled axes with units and a legend where it shows more than one series.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DOMAIN_STYLE: dict[str, dict[str, Any]] = {
    "sinogram": {"color": "tab:blue", "marker": "o", "label": "sinogram"},
    "recon": {"color": "tab:orange", "marker": "s", "label": "reconstruction (HU)"},
    "windowed": {"color": "tab:green", "marker": "D", "label": "windowed reconstruction"},
    "learned_window": {"color": "tab:red", "marker": "^", "label": "learned window"},
    "learned": {"color": "tab:purple", "marker": "v", "label": "learned FBP + window"},
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int = 100) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], title: str = "") -> bytes:
    """ROC curves of all arms in one plot.

    Parameters
    ----------
    curves : mapping arm name -> (fpr, tpr, auc)
        False/true positive rates (fractions) of the test split, and the AUC for the legend.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    cmap = plt.get_cmap("tab20")
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        ax.step(fpr, tpr, where="post", color=cmap(i % 20), lw=1.6, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("False positive rate (1 - specificity), fraction of normal scans")
    ax.set_ylabel("True positive rate (sensitivity), fraction of abnormal scans")
    ax.set_title(title or "ROC curves of all arms (test split, scan level)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="arm")
    return _png(fig)


def auc_vs_views_figure(arms: Mapping[str, Mapping[str, Any]], full_views: int | None = None) -> bytes:
    """Test AUC against the number of projections, one line per domain with its CI band.

    Parameters
    ----------
    arms : mapping arm name -> arm record of results.json (``domain``, ``views``, ``auc``,
        ``auc_ci``).
    full_views : int, optional
        The full view count, marked on the axis.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    views_seen: set[int] = set()
    for domain, style in DOMAIN_STYLE.items():
        rows = sorted(((int(a["views"]), a) for a in arms.values() if a.get("domain") == domain
                       and a.get("auc") is not None), key=lambda r: r[0])
        if not rows:
            continue
        v = np.array([r[0] for r in rows], dtype=float)
        auc = np.array([r[1]["auc"] for r in rows])
        lo = np.array([r[1]["auc_ci"][0] for r in rows])
        hi = np.array([r[1]["auc_ci"][1] for r in rows])
        views_seen.update(int(x) for x in v)
        if domain == "learned_window":  # one series per run (start), points with their CI
            for j, (name, a) in enumerate((n, a) for n, a in arms.items()
                                          if a.get("domain") == domain and a.get("auc") is not None):
                x, y = float(a["views"]) * (1.04 ** j), float(a["auc"])
                ax.errorbar([x], [y], yerr=[[y - a["auc_ci"][0]], [a["auc_ci"][1] - y]],
                            fmt=style["marker"], color=style["color"], capsize=4, ms=7,
                            mfc=style["color"] if j == 0 else "white",
                            label=f"{style['label']}: {name} (95% CI)")
        elif domain == "windowed":
            ax.errorbar(v, auc, yerr=[auc - lo, hi - auc], fmt=style["marker"], color=style["color"],
                        capsize=4, ms=7, label=f"{style['label']} (95% CI)")
        else:
            ax.plot(v, auc, marker=style["marker"], color=style["color"], lw=1.8, label=style["label"])
            ax.fill_between(v, lo, hi, color=style["color"], alpha=0.18,
                            label=f"{style['label']} 95% DeLong CI")
    ax.axhline(0.5, ls="--", color="0.6", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ticks = sorted(views_seen)
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("Number of projections (views per 360° rotation, log scale)"
                  + (f"; full = {full_views}" if full_views else ""))
    ax.set_ylabel("Test AUC (scan level), 95% DeLong CI")
    lows = [float(a["auc_ci"][0]) for a in arms.values() if a.get("auc_ci")]
    ax.set_ylim(min([0.3, *[v - 0.05 for v in lows]]), 1.02)
    ax.set_title("AUC vs number of projections")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
    return _png(fig)


def curve_figure(curve: Mapping[str, Any]) -> bytes:
    """Test AUC against the number of training studies, one line per arm with its CI band.

    Parameters
    ----------
    curve : the ``curve`` section of results.json: ``{"arms": {name: {"points": [{"n_train",
        "auc", "auc_ci"}, ...]}}}``; the band is the mean of the per-seed 95% DeLong intervals.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.8))
    cmap = plt.get_cmap("tab10")
    sizes: set[int] = set()
    for i, (name, arm) in enumerate(curve["arms"].items()):
        pts = arm["points"]
        if not pts:
            continue
        n = np.array([p["n_train"] for p in pts], dtype=float)
        auc = np.array([p["auc"] for p in pts])
        lo = np.array([p["auc_ci"][0] for p in pts])
        hi = np.array([p["auc_ci"][1] for p in pts])
        sizes.update(int(v) for v in n)
        color = cmap(i % 10)
        ax.plot(n, auc, marker="o", color=color, lw=1.8, label=name)
        ax.fill_between(n, lo, hi, color=color, alpha=0.15)
    ax.axhline(0.5, ls="--", color="0.6", lw=1, label="chance (AUC 0.5)")
    ax.set_xscale("log", base=2)
    ticks = sorted(sizes)
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("Training set size (number of training studies, log scale)")
    ax.set_ylabel("Test AUC (scan level, mean over seeds), 95% DeLong CI band")
    lows = [float(p["auc_ci"][0]) for arm in curve["arms"].values() for p in arm["points"]]
    ax.set_ylim(min([0.3, *[v - 0.05 for v in lows]]), 1.02)
    ax.set_title("Data-scaling curve: AUC vs number of training studies")
    ax.grid(alpha=0.3)
    # beside the axes: inside, it hides the low points that matter most (arms near chance)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="arm")
    fig.tight_layout()
    return _png(fig)


def example_figure(
    sinograms: Mapping[int, np.ndarray],
    recons: Mapping[int, np.ndarray],
    windows: Mapping[str, np.ndarray],
    title: str = "",
) -> bytes:
    """An example slice: sinogram and reconstruction per view count, and the windows.

    Parameters
    ----------
    sinograms : mapping views -> (V, C) line integrals (dimensionless)
    recons : mapping views -> (H, W) HU
    windows : mapping window name -> (H, W) windowed image in [0, 1] (full views)
    """
    plt = _pyplot()
    ncol = max(len(sinograms), len(recons), len(windows), 1)
    fig, axes = plt.subplots(3, ncol, figsize=(2.6 * ncol, 8.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    vmax = max((float(np.percentile(s, 99.5)) for s in sinograms.values()), default=1.0)
    for j, (v, sino) in enumerate(sorted(sinograms.items(), reverse=True)):
        ax = axes[0, j]
        im = ax.imshow(sino, cmap="gray", aspect="auto", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"sinogram, {v} views", fontsize=9)
        ax.set_xlabel("detector channel", fontsize=8)
        ax.set_ylabel("view (angle)", fontsize=8)
    if sinograms:
        fig.colorbar(im, ax=axes[0, len(sinograms) - 1], fraction=0.046, label="line integral of μ")
    for j, (v, rec) in enumerate(sorted(recons.items(), reverse=True)):
        ax = axes[1, j]
        im = ax.imshow(rec, cmap="gray", vmin=0, vmax=80)
        ax.set_title(f"FBP, {v} views (HU, 0-80)", fontsize=9)
    if recons:
        fig.colorbar(im, ax=axes[1, len(recons) - 1], fraction=0.046, label="HU")
    for j, (name, img) in enumerate(windows.items()):
        ax = axes[2, j]
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name} window", fontsize=9)
    fig.suptitle(title or "Example test study: model inputs per arm")
    fig.tight_layout()
    return _png(fig)


def queue_figure(policies: Sequence[Mapping[str, Any]]) -> bytes:
    """Mean and 90th-percentile wait of positive studies per policy (horizontal bars).

    Parameters
    ----------
    policies : sequence of dicts with ``label``, ``mean_wait_pos``, ``p90_wait_pos`` (minutes).
    """
    plt = _pyplot()
    labels = [p["label"] for p in policies]
    mean = np.array([p["mean_wait_pos"] for p in policies], dtype=float)
    p90 = np.array([p["p90_wait_pos"] for p in policies], dtype=float)
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(labels) + 1.6))
    ax.barh(y - 0.2, mean, height=0.38, color="tab:blue", label="mean wait")
    ax.barh(y + 0.2, p90, height=0.38, color="tab:red", alpha=0.7, label="90th percentile")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Wait of positive studies until reading (minutes)")
    ax.set_title("Reading-queue simulation: wait of positive studies per policy")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


__all__ = ["DOMAIN_STYLE", "auc_vs_views_figure", "curve_figure", "example_figure", "queue_figure",
           "roc_figure"]
