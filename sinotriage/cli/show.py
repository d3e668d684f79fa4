"""``sinotriage show``: one slice of a stored study as the models see it.

Top row: the HU slice (with the hemorrhage outline, when the store has a mask) and the slice in
each requested window. Middle row: the sinogram at the full view count and at each view count
stored by ``sinotriage preprocess``. Bottom row: the FBP reconstruction from each of those view
counts, in the first window (columns aligned by view count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sinotriage.cli._common import console, figure_path, user_errors
from sinotriage.errors import InputError

#: HU range of the raw-HU panel
HU_DISPLAY_RANGE = (-1000.0, 1500.0)


def pick_slice(store: Any, study_id: str) -> int:
    """The slice with the most hemorrhage voxels (mask), else the first positive slice label,
    else the middle slice."""
    import numpy as np

    arrays = store.arrays(study_id)
    if "mask" in arrays:
        mask = store.read(study_id, "mask")
        counts = (mask > 0).reshape(mask.shape[0], -1).sum(axis=1)
        if counts.max() > 0:
            return int(np.argmax(counts))
    if "labels" in arrays:
        labels = store.read(study_id, "labels")
        pos = np.flatnonzero(labels[:, 0] > 0)
        if pos.size:
            return int(pos[pos.size // 2])
    name = "hu" if "hu" in arrays else "sinogram"
    return int(store.array(study_id, name).shape[0]) // 2


def render(store: Any, study_id: str, out: Path, *, slice_index: int | None = None,
           windows: tuple[str, ...] = ("brain", "subdural", "bone"), dpi: int = 100) -> Path:
    """Draw the figure of one slice of one study and write it (atomically) to ``out``.

    Parameters
    ----------
    store
        An open :class:`sinotriage.io.store.Store`.
    study_id
        A study of the store.
    out
        Image path (``.png``, ``.pdf``, ``.svg``).
    slice_index
        Slice along z (default: :func:`pick_slice`).
    windows
        Names of :data:`sinotriage.windowing.WINDOWS` (``histeq`` is accepted too).

    Returns
    -------
    Path of the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    from sinotriage.io.files import atomic_savefig
    from sinotriage.windowing import CHANNEL_NAMES, WINDOWS, multi_window, window

    if not windows:
        raise InputError("--windows must name at least one window")
    for w in windows:
        if w not in CHANNEL_NAMES:
            raise InputError(f"unknown window {w!r}; choose from {', '.join(CHANNEL_NAMES)}")
    if not store.has_study(study_id):
        have = store.study_ids()
        raise InputError(f"store {store.path} has no study {study_id!r} (it has {len(have)} studies, "
                         f"e.g. {', '.join(have[:5])})")
    arrays = store.arrays(study_id)
    if "hu" not in arrays:
        raise InputError(f"study {study_id!r} has no HU volume to show (arrays: {arrays})")
    n_slices = int(store.array(study_id, "hu").shape[0])
    k = pick_slice(store, study_id) if slice_index is None else int(slice_index)
    if not 0 <= k < n_slices:
        raise InputError(f"--slice must be in [0, {n_slices - 1}] for study {study_id!r}, got {k}")
    hu = store.read(study_id, "hu", slices=k).astype(np.float32)
    stack = multi_window(hu, windows)
    record = store.record(study_id)
    mask = store.read(study_id, "mask", slices=k) if "mask" in arrays else None
    recon_views = store.views_available(study_id, name="recon")
    sino_views = store.views_available(study_id, name="sinogram")
    columns = sorted(set(recon_views) | set(sino_views), reverse=True)

    n_top = 1 + len(windows)
    ncols = max(n_top, len(columns), 1)
    nrows = 1 + (len(sino_views) > 0) + (len(recon_views) > 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()

    def image(ax: Any, img: Any, title: str, **kw: Any) -> Any:
        ax.set_axis_on()
        shown = ax.imshow(img, cmap="gray", interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return shown

    shown = image(axes[0, 0], hu, "HU slice", vmin=HU_DISPLAY_RANGE[0], vmax=HU_DISPLAY_RANGE[1])
    fig.colorbar(shown, ax=axes[0, 0], fraction=0.046, pad=0.02).set_label("HU", fontsize=8)
    if mask is not None and (mask > 0).any():
        axes[0, 0].contour(mask > 0, levels=[0.5], colors="red", linewidths=0.8)
    for j, name in enumerate(windows, start=1):
        title = "hist. eq. over the head" if name not in WINDOWS else \
            f"{name} window {WINDOWS[name][0]:g}/{WINDOWS[name][1]:g} HU"
        image(axes[0, j], stack[j - 1], title, vmin=0.0, vmax=1.0)
    row = 1
    if sino_views:
        for j, v in enumerate(columns):
            if v not in sino_views:
                continue
            sino = store.read(study_id, "sinogram", views=v, slices=k)
            ax = axes[row, j]
            ax.set_axis_on()
            ax.imshow(sino, cmap="gray", aspect="auto", interpolation="nearest")
            ax.set_title(f"sinogram, {sino.shape[0]} views x {sino.shape[1]} ch.", fontsize=9)
            ax.set_xlabel("detector channel", fontsize=8)
            ax.set_ylabel("view", fontsize=8)
            ax.tick_params(labelsize=7)
        row += 1
    first = windows[0] if windows[0] in WINDOWS else "brain"
    if recon_views:
        for j, v in enumerate(columns):
            if v not in recon_views:
                continue
            rec = store.read(study_id, "recon", views=v, slices=k).astype(np.float32)
            image(axes[row, j], window(rec, first), f"FBP from {v} views ({first} window)",
                  vmin=0.0, vmax=1.0)
    subtypes = [n for n in store.label_names[1:] if int(record.get(n, 0)) == 1]
    label = {1: "abnormal", 0: "normal"}.get(int(record.get("label", -1)), "label unknown")
    fig.suptitle(f"{study_id}: slice {k} of {n_slices} ({label}"
                 f"{': ' + ', '.join(subtypes) if subtypes else ''}; split {record.get('split', '?')})",
                 fontsize=11)
    fig.tight_layout()
    try:
        out = atomic_savefig(fig, out, dpi=dpi)
    finally:
        plt.close(fig)
    return out


def show(
    store: Path = typer.Argument(..., help="The dataset store (NAME.zarr)."),
    study: str = typer.Option(..., "--study", help="Study id."),
    slice_index: int | None = typer.Option(None, "--slice", help="Slice index (default: the most hemorrhage)."),
    windows: str = typer.Option("brain,subdural,bone", help="Comma-separated window names (or histeq)."),
    out: Path = typer.Option(Path("show.png"), "--out", help="Figure to write (.png, .pdf, .svg)."),
    dpi: int = typer.Option(100, help="Resolution of the figure."),
) -> None:
    """Render a slice: HU, each window, the sinogram and the reconstruction at each stored view count."""
    from sinotriage.io.store import open_store

    with user_errors():
        names = tuple(w.strip() for w in windows.split(",") if w.strip())
        out = figure_path(out, "show.png")
        path = render(open_store(store), study, out, slice_index=slice_index, windows=names, dpi=dpi)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("show")(show)
