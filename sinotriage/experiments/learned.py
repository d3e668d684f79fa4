"""The learned arms of the study: their configs and what the report shows of them.

Two kinds of arms learn their upstream processing from the task:

``learned_window``
    The FBP reconstruction in HU through a :class:`~sinotriage.models.learned_window.LearnableWindow`
    (K = 3), then the study's image model. The default grid runs it twice: from the clinical
    brain / subdural / bone windows, and from a wide, uninformative start (three windows of level
    0 HU, width 2000 HU).
``learned``
    The raw sinogram through a differentiable FBP with a learnable filter (ramp x Hann start),
    the learnable window and the image model (``learned_fbp``), at every view count of the study.

Each arm's record in results.json holds ``learned``: its learned windows (HU, with their start)
and, for ``learned``, its filter (:func:`sinotriage.models.learned_fbp.learned_parameters`).
The report gives the windows beside the clinical ones and two figures: the learned windows'
response curves over HU, and the learned filters against the ramp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sinotriage.windowing import WINDOWS

__all__ = ["CLINICAL", "LEARNED_DOMAINS", "WIDE_START", "filter_figure", "learned_markdown",
           "train_fields", "windows_figure", "windows_rows"]

#: arm domains whose models learn their upstream processing
LEARNED_DOMAINS: tuple[str, ...] = ("learned_window", "learned")

#: the clinical windows the report shows the learned ones beside
CLINICAL: tuple[str, ...] = ("brain", "subdural", "bone")

#: the uninformative start of the wide learned-window run: (level, width) in HU, three times
WIDE_START: tuple[tuple[float, float], ...] = ((0.0, 2000.0),) * 3


def train_fields(domain: str, windows: Any, image_model: str,
                 model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields of a learned arm (``domain``, ``model``, ``model_options``).

    ``windows`` (names, or ``(level, width)`` pairs in HU) start the learnable window unless
    ``model_kwargs`` has a ``window`` of its own. ``model_kwargs["window_options"]`` (a mapping of
    :class:`~sinotriage.models.learned_window.LearnableWindow` arguments, e.g. ``{"log_width_lr":
    0.1}``) goes to the window layer with the start.
    """
    options = dict(model_kwargs)
    window = options.pop("window", None)
    window_options = dict(options.pop("window_options", None) or {})
    start: Any = [list(w) if not isinstance(w, str) else w for w in (window or windows)]
    if window_options:
        start = {"init": start, **window_options}
    if domain == "learned_window":
        return {"domain": "recon", "model": image_model,
                "model_options": {**options, "window": start}}
    if domain == "learned":
        return {"domain": "sinogram", "model": "learned_fbp",
                "model_options": {"image_model": image_model, "window": start, **options}}
    raise ValueError(f"domain must be one of {LEARNED_DOMAINS}, got {domain!r}")


def _learned(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {name: a for name, a in arms.items() if a.get("learned")}


def windows_rows(arms: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One row per learned window: arm, views, window, start and learned level/width (HU),
    and the nearest clinical window (by level and log-width)."""
    rows = []
    for name, arm in _learned(arms).items():
        for k, w in enumerate(arm["learned"].get("windows", [])):
            near = min(CLINICAL, key=lambda c: abs(WINDOWS[c][0] - w["level"]) / 100
                       + abs(np.log(WINDOWS[c][1] / w["width"])))
            rows.append([name, str(arm.get("views")), str(k + 1),
                         f"{w['init_level']:.0f} / {w['init_width']:.0f}",
                         f"{w['level']:.0f} / {w['width']:.0f}",
                         f"{near} ({WINDOWS[near][0]:.0f} / {WINDOWS[near][1]:.0f})"])
    return rows


def learned_markdown(arms: Mapping[str, Mapping[str, Any]]) -> str:
    """The report's section on the learned arms (markdown), or "" when there are none."""
    rows = windows_rows(arms)
    if not rows:
        return ""
    head = ["Arm", "Views", "Window", "Start L / W (HU)", "Learned L / W (HU)",
            "Nearest clinical window (L / W)"]
    out = ["## What the learned arms learned", "",
           "Level L and width W of each learnable window at the best validation epoch, beside "
           "where it started and the nearest clinical window (brain 40 / 80, subdural 75 / 215, "
           "bone 600 / 2800 HU). Each window is `sigmoid(2 ln 99 (HU - L) / W)`: 0.01 at "
           "L - W/2, 0.99 at L + W/2.", "",
           "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    if any(a["learned"].get("filter") for a in _learned(arms).values()):
        out += ["", "The `learned` arms' reconstruction filters are in the figure "
                "`figures/learned_filter.png`, against the ramp and the ramp x Hann start."]
    return "\n".join(out) + "\n"


def windows_figure(arms: Mapping[str, Mapping[str, Any]]) -> bytes | None:
    """Response curves over HU of every learned window (solid) and the clinical ones (dashed)."""
    from sinotriage.experiments.plots import _png, _pyplot

    learned = {n: a for n, a in _learned(arms).items() if a["learned"].get("windows")}
    if not learned:
        return None
    plt = _pyplot()
    n = len(learned)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True)
    hu = np.linspace(-1000, 2000, 1201)
    for ax, (name, arm) in zip(axes[0], learned.items(), strict=True):
        for c in CLINICAL:
            lv, wd = WINDOWS[c]
            ax.plot(hu, np.clip((hu - lv + wd / 2) / wd, 0, 1), ls="--", lw=1, color="0.6")
        for k, w in enumerate(arm["learned"]["windows"]):
            y = 1 / (1 + np.exp(-2 * np.log(99) * (hu - w["level"]) / w["width"]))
            ax.plot(hu, y, lw=1.8, label=f"{k + 1}: {w['level']:.0f} / {w['width']:.0f}")
        ax.set_title(f"{name} ({arm.get('views')} views)", fontsize=9)
        ax.set_xlabel("Hounsfield units (HU)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="learned L / W (HU)", title_fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("window output (0 to 1)")
    fig.suptitle("Learned windows (solid) and the clinical brain, subdural and bone windows "
                 "(dashed)", fontsize=10)
    return _png(fig)


def filter_figure(arms: Mapping[str, Mapping[str, Any]]) -> bytes | None:
    """The learned FBP filters against the ramp and the ramp x Hann start (left), and the change
    of their gain from that start in percent of the ramp (right: a filter that moved by 1 % is
    invisible on the left, and 1 % of gain at low frequencies is about 10 HU)."""
    from sinotriage.experiments.plots import _png, _pyplot

    learned = {n: a["learned"]["filter"] for n, a in _learned(arms).items()
               if a["learned"].get("filter")}
    if not learned:
        return None
    plt = _pyplot()
    fig, (ax, rel) = plt.subplots(1, 2, figsize=(11.0, 4.4))
    first = next(iter(learned.values()))
    f = np.asarray(first["frequency"])
    ax.plot(f, first["ramp"], ls="--", color="0.4", lw=1.2, label="ramp (Ram-Lak)")
    ax.plot(f, first["reference"], ls=":", color="0.2", lw=1.5, label="ramp x Hann (start)")
    for name, filt in learned.items():
        freq, resp = np.asarray(filt["frequency"]), np.asarray(filt["response"])
        ref, ramp = np.asarray(filt["reference"]), np.asarray(filt["ramp"])
        line, = ax.plot(freq, resp, lw=1.6, label=f"learned: {name}")
        keep = np.abs(ramp) > 1e-6 * np.abs(ramp).max()  # the gain is response / ramp
        rel.plot(freq[keep], 100.0 * (resp[keep] - ref[keep]) / ramp[keep], lw=1.4,
                 color=line.get_color(), label=name)
    ax.set_xlabel("Frequency (cycles per detector channel of the rebinned rows)")
    ax.set_ylabel("Filter response (unit channel spacing)")
    ax.set_title("Reconstruction filters learned end to end")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    rel.axhline(0.0, color="0.4", lw=1)
    rel.set_xlabel("Frequency (cycles per detector channel of the rebinned rows)")
    rel.set_ylabel("Gain change from the start (% of the ramp)")
    rel.set_title("Learned gain minus the Hann start")
    rel.grid(alpha=0.3)
    rel.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)
