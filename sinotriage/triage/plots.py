"""Figures of the reading-queue simulation (matplotlib, written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sinotriage.io.files import atomic_savefig
from sinotriage.triage.policies import PolicyComparison
from sinotriage.triage.queue import WITHIN_MINUTES

__all__ = ["plot_wait_distributions"]


def plot_wait_distributions(comparison: PolicyComparison, path: str | os.PathLike[str], *,
                            title: str | None = None, dpi: int = 110) -> Path:
    """Plot, per arm, the share of studies read within ``t`` minutes of arrival (the empirical CDF
    of the wait), for positive studies (left) and negative studies (right).

    Parameters
    ----------
    comparison
        From :func:`~sinotriage.triage.simulate_policies` or
        :func:`~sinotriage.triage.compare_operating_points`.
    path
        Output image (``.png``, ``.svg``, ``.pdf``); written to a temporary name then renamed.

    Returns
    -------
    Path of the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    tmax = 0.0
    for wait, _ in comparison.waits.values():
        if wait.size:
            tmax = max(tmax, float(np.percentile(wait, 99)))
    tmax = max(tmax, float(max(WITHIN_MINUTES))) * 1.05
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for ax, group, name in ((axes[0], 1, "positive studies (hemorrhage)"), (axes[1], 0, "negative studies")):
        for j, (arm, (wait, labels)) in enumerate(comparison.waits.items()):
            w = np.sort(wait[labels == group])
            if w.size == 0:
                continue
            frac = np.arange(1, w.size + 1) / w.size
            ax.step(np.r_[0.0, w], np.r_[0.0, frac], where="post", linestyle=styles[j % len(styles)],
                    linewidth=1.8, label=f"{arm} (mean {w.mean():.1f} min)")
        for m in WITHIN_MINUTES:
            ax.axvline(m, color="0.75", linewidth=0.8, zorder=0)
        ax.set_xlim(0, tmax)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("wait from arrival until a radiologist opens the study (minutes)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("fraction of studies read (cumulative)")
    s = comparison.settings
    fig.suptitle(title or (f"Reading-queue simulation: {s['n_repeats']} shift(s) x {s['n_studies']} studies, "
                           f"{s['n_readers']} reader(s), offered load {s['utilization']:.2f}"), fontsize=11)
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
