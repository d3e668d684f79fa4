"""Writing a worklist: CSV for machines, a self-contained HTML page with slice thumbnails for
people.

The worklist itself (ranking, operating point, flags) is :mod:`sinotriage.triage.worklist`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.files import atomic_write_bytes
from sinotriage.triage.worklist import Worklist

__all__ = ["CSV_COLUMNS", "head_box", "slice_thumbnail_png", "write_worklist_csv", "write_worklist_html"]


#: columns of the worklist CSV
CSV_COLUMNS: tuple[str, ...] = ("rank", "study_id", "split", "score", "flagged", "label",
                                "top_slices", "top_slice_scores", "subtypes", "threshold")


def write_worklist_csv(worklist: Worklist, path: str | os.PathLike[str]) -> Path:
    """Write the worklist as CSV (atomically). Columns :data:`CSV_COLUMNS`; lists are ``;``-separated.

    ``label`` is empty when unknown; ``threshold`` repeats the operating threshold on every row.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in worklist.entries:
        w.writerow([e.rank, e.study_id, e.split, repr(e.score), int(e.flagged),
                    "" if e.label < 0 else e.label,
                    ";".join(str(k) for k, _ in e.top_slices),
                    ";".join(f"{v:.6g}" for _, v in e.top_slices),
                    ";".join(n for n, _ in e.subtypes), repr(worklist.operating_point.threshold)])
    return atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def head_box(image_hu: np.ndarray, *, threshold: float = -500.0, margin: int = 4) -> tuple[slice, slice]:
    """The square ``(rows, cols)`` window around the head (``hu > threshold``) plus ``margin`` pixels.

    The square is centred on the head's bounding box and clipped to the image; the whole image
    when no pixel is above the threshold.
    """
    img = np.asarray(image_hu)
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    H, W = img.shape
    if rows.size == 0:
        return slice(0, H), slice(0, W)
    side = min(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 + 2 * margin, H, W)
    centre_r, centre_c = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2
    r0 = int(np.clip(centre_r - side // 2, 0, H - side))
    c0 = int(np.clip(centre_c - side // 2, 0, W - side))
    return slice(r0, r0 + side), slice(c0, c0 + side)


def slice_thumbnail_png(image_hu: np.ndarray, window_name: str = "brain", size: int = 128) -> bytes:
    """PNG bytes of one HU slice ``(H, W)``: cropped to the head (:func:`head_box`), windowed,
    resized to ``size`` x ``size`` pixels (bilinear) and drawn with a 256-level grey map."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from sinotriage.windowing import resize, window

    img = np.asarray(image_hu, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image_hu must be one slice (H, W), got shape {img.shape}")
    small = resize(window(img[head_box(img)], window_name), int(size), mode="bilinear")
    buf = io.BytesIO()
    plt.imsave(buf, small, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()


def write_worklist_html(
    worklist: Worklist,
    path: str | os.PathLike[str],
    *,
    store: Any | None = None,
    window_name: str = "brain",
    views: int | None = None,
    max_thumbnails: int = 200,
    title: str = "sinotriage worklist",
) -> Path:
    """Write a self-contained HTML page of the worklist (atomically).

    Parameters
    ----------
    worklist
        From :func:`build_worklist`.
    path
        Output ``.html``.
    store
        An open :class:`sinotriage.io.store.Store`; when given, each flagged study gets an inline
        PNG thumbnail of its top slice in ``window_name`` (HU from ``hu``, or from the FBP
        reconstruction ``recon`` at ``views`` when given).
    window_name
        A key of :data:`sinotriage.windowing.WINDOWS`.
    views
        View count of the stored reconstruction to show (``None``: the HU volume).
    max_thumbnails
        At most this many thumbnails (the highest-ranked flagged studies).
    """
    from sinotriage.windowing import WINDOWS

    if window_name not in WINDOWS:
        raise InputError(f"unknown window name {window_name!r}; choose one of {', '.join(WINDOWS)}")
    op = worklist.operating_point
    esc = html.escape
    rows = []
    n_thumbs = 0
    for e in worklist.entries:
        thumb = ""
        if store is not None and e.flagged and n_thumbs < max_thumbnails:
            k = e.top_slices[0][0] if e.top_slices else None
            if k is None:
                n = int(store.array(e.study_id, "hu").shape[0])
                k = n // 2
            name = "hu" if views is None else "recon"
            img = store.read(e.study_id, name, views=views, slices=int(k))
            png = base64.b64encode(slice_thumbnail_png(img, window_name)).decode("ascii")
            thumb = (f'<img alt="slice {k} of {esc(e.study_id)}" width="128" height="128" '
                     f'src="data:image/png;base64,{png}">')
            n_thumbs += 1
        label = "" if e.label < 0 else ("positive" if e.label == 1 else "negative")
        slices = ", ".join(f"{k} ({v:.2f})" for k, v in e.top_slices)
        subs = ", ".join(f"{esc(n)} ({v:.2f})" for n, v in e.subtypes)
        cls = ' class="flag"' if e.flagged else ""
        rows.append(f"<tr{cls}><td>{e.rank}</td><td>{esc(e.study_id)}</td><td>{e.score:.4f}</td>"
                    f"<td>{'FLAG' if e.flagged else ''}</td><td>{slices}</td><td>{subs}</td>"
                    f"<td>{label}</td><td>{thumb}</td></tr>")
    metrics = ""
    if worklist.metrics:
        m = worklist.metrics
        metrics = (f"<p>On these studies at this threshold: sensitivity {m['sensitivity']:.3f}, "
                   f"specificity {m['specificity']:.3f}, {m['tp'] + m['fp']:.0f} flagged of "
                   f"{m['tp'] + m['fp'] + m['tn'] + m['fn']:.0f}.</p>")
    source = "HU" if views is None else f"FBP reconstruction at {views} views"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; vertical-align: middle; }}
tr.flag td {{ background: #fde2e1; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(worklist.entries)} studies, {len(worklist.flagged)} flagged for label <b>{esc(worklist.label)}</b>;
{esc(op.describe())}.</p>
{metrics}
<p>Thumbnails: the top-scoring slice of each flagged study, {esc(source)}, window {esc(window_name)}
{WINDOWS[window_name][0]:g}/{WINDOWS[window_name][1]:g} HU.</p>
<table><thead><tr><th>rank</th><th>study</th><th>score</th><th>flag</th><th>top slices (score)</th>
<th>predicted subtypes (score)</th><th>ground truth</th><th>top slice</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
    return atomic_write_bytes(Path(path), page.encode("utf-8"))
