"""Tests of ``sinotriage show`` on a small hand-made store."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image as mpimg
from typer.testing import CliRunner

from sinotriage.cli import app
from sinotriage.cli.show import pick_slice, render
from sinotriage.geometry import sinoct
from sinotriage.io.store import create_store, open_store

N, D = 32, 5


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    g = sinoct(image_size=N, n_views=48, n_det=24)
    path = tmp_path_factory.mktemp("show") / "s.zarr"
    store = create_store(path, {"source": "test"}, geometry=g)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    r = np.hypot(xx, yy)
    hu = np.where(r < 0.45 * N, 1000.0, -1000.0)   # skull ...
    hu[r < 0.38 * N] = 35.0                        # ... around brain
    hu = hu[None].repeat(D, 0)
    mask = np.zeros((D, N, N), np.uint8)
    mask[3, 10:14, 10:14] = 5          # subdural blood on slice 3
    mask[1, 10:12, 10:12] = 5          # a smaller bit on slice 1
    hu[mask > 0] = 70.0
    labels = np.zeros((D, 6), np.uint8)
    labels[[1, 3], 0] = 1
    labels[[1, 3], 5] = 1
    rng = np.random.default_rng(0)
    sino = rng.uniform(0, 3, size=(D, *g.sinogram_shape)).astype(np.float32)
    store.write_study("st-1", {"hu": hu, "sinogram": sino, "mask": mask, "labels": labels})
    for v in (24, 12):
        g2 = sinoct(image_size=N, n_views=v, n_det=24)
        arrays = {"recon": hu + rng.normal(0, 5, size=hu.shape)}
        if v == 24:
            arrays["sinogram"] = sino[:, ::2]
        store.write_derived("st-1", v, arrays, g2)
    store.write_manifest()
    return path


def test_pick_slice_prefers_most_hemorrhage(store_path):
    assert pick_slice(open_store(store_path), "st-1") == 3


def test_render_layout_and_size(store_path, tmp_path):
    out = render(open_store(store_path), "st-1", tmp_path / "fig.png", windows=("brain", "subdural", "bone"),
                 dpi=50)
    img = mpimg.imread(out)
    # 4 columns (HU + 3 windows; view counts 48, 24, 12) x 3 rows (HU/windows, sinograms at 48 and
    # 24 views, reconstructions at 24 and 12 views), 3.0 x 3.2 inches each, 50 dpi
    assert img.shape[:2] == (int(3 * 3.2 * 50), int(4 * 3.0 * 50))
    assert not list(tmp_path.glob(".fig.*.tmp"))


def test_cli_show_and_errors(store_path, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.png"
    res = runner.invoke(app, ["show", str(store_path), "--study", "st-1", "--slice", "1",
                              "--windows", "brain,histeq", "--out", str(out), "--dpi", "40"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and mpimg.imread(out).shape[:2] == (int(3 * 3.2 * 40), int(3 * 3.0 * 40))
    res = runner.invoke(app, ["show", str(store_path), "--study", "nope", "--out", str(out)])
    assert res.exit_code == 2 and "has no study 'nope'" in res.output
    res = runner.invoke(app, ["show", str(store_path), "--study", "st-1", "--slice", "9", "--out", str(out)])
    assert res.exit_code == 2 and "--slice must be in [0, 4]" in res.output
    res = runner.invoke(app, ["show", str(store_path), "--study", "st-1", "--windows", "lung", "--out", str(out)])
    assert res.exit_code == 2 and "unknown window 'lung'" in res.output


def test_histogram_baseline_predictions_from_store(store_path):
    from sinotriage.triage.baseline import HistogramBaseline, histogram_features

    store = open_store(store_path)
    base = HistogramBaseline().fit(store, split="unassigned")
    p = base.predict(store, splits=("unassigned",))
    scan = p.scans()
    assert scan.study_id == ["st-1"] and scan.labels[0, 0] == 1
    expected = base.slice_scores(histogram_features(store.read("st-1", "hu").astype(np.float32)))
    np.testing.assert_allclose(p.slices().scores[:, 0], expected)
    assert scan.scores[0, 0] == expected.max()
    # fitted on these five slices, it ranks the two bleeding slices (1 and 3) first
    assert set(np.argsort(-expected)[:2]) == {1, 3}
    assert len(base.predict(store, splits=("unassigned",), views=12).slices()) == D


def test_worklist_html_thumbnail_is_the_windowed_top_slice(store_path, tmp_path):
    import base64
    import io
    import re

    from sinotriage.io.predictions import Predictions
    from sinotriage.triage import build_worklist, write_worklist_html
    from sinotriage.triage.worklist_output import head_box
    from sinotriage.windowing import resize, window

    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.95, 0.4])  # scan row, then slices 0..4: top slice is 3
    p = Predictions(["st-1"] * 6, ["test"] * 6, np.array([-1, 0, 1, 2, 3, 4]), np.ones(6, int), scores)
    wl = build_worklist(p, threshold=0.5)
    assert wl.flagged[0].top_slices[0] == (3, 0.95)
    page = write_worklist_html(wl, tmp_path / "w.html", store=open_store(store_path), window_name="brain",
                               views=12).read_text()
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    thumb = mpimg.imread(io.BytesIO(png), format="png")[..., 0]
    recon = open_store(store_path).read("st-1", "recon", views=12, slices=3).astype(np.float32)
    rows, cols = head_box(recon)
    # the head (skull radius 0.45 N around the centre) plus 4 pixels, square, inside the image
    lit = np.flatnonzero((recon > -500).any(axis=1))
    assert rows.start == max(lit[0] - 4, 0) and rows.stop - rows.start == min(lit[-1] - lit[0] + 9, N)
    expected = resize(window(recon[rows, cols], "brain"), 128, mode="bilinear")
    assert thumb.shape == (128, 128)
    # the 256-level grey colormap and 8-bit PNG quantize to within 2 grey levels
    np.testing.assert_allclose(thumb, expected, atol=2.5 / 255)
