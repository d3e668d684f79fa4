"""Counterfactual data: the same head with and without its lesion, and the lesion band."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinotriage.phantoms import head_ct, without_lesions


def test_twin_is_the_same_head_without_blood() -> None:
    """Same seed, no lesion: no blood, label 0; the anatomy and noise are the same, so the two
    volumes are equal wherever neither the lesion nor its mass effect reaches (most of the head;
    measured > 90 % of voxels identical); a normal case is its own twin."""
    case = head_ct(11, n_slices=8, image_size=64, pixel_size=250 / 64, difficulty="easy",
                   subtypes=("subarachnoid",))
    twin = without_lesions(case)
    assert case.label == 1 and twin.label == 0
    assert not twin.mask.any()
    same = np.isclose(case.hu, twin.hu, atol=1e-3)
    assert same.mean() > 0.9
    assert not same[case.mask > 0].any()  # every blood voxel differs
    normal = head_ct(4, n_slices=4, image_size=64, pixel_size=250 / 64, subtypes=())
    assert without_lesions(normal) is normal


def test_lesion_band_is_the_thresholded_projection_of_the_mask() -> None:
    """The band is where rays cross blood: compared with an independent reference, the exact
    chord through one disc of blood (ellipse line integrals), thresholded at half a pixel;
    tolerance: the rasterised disc (3.9 mm pixels) moves the band edge by up to one channel, so
    the band must contain the reference band shrunk by one channel and lie inside it grown by
    one channel."""
    from _ct_reference import ellipse_line_integrals
    from scipy.ndimage import binary_dilation, binary_erosion

    from sinotriage.geometry import sinoct
    from sinotriage.synth import BAND_MIN_CHORD, lesion_band

    g = sinoct(image_size=64, n_views=246, n_det=111)
    n, d = g.image_size, g.pixel_size
    c = (np.arange(n) - (n - 1) / 2) * d
    xx, yy = np.meshgrid(c, c[::-1])
    x0, y0, r = 40.0, -25.0, 15.0
    mask = ((xx - x0) ** 2 + (yy - y0) ** 2 <= r ** 2).astype(np.uint8)
    band = lesion_band(torch.from_numpy(mask)[None], g)[0].numpy()
    phi, s = g.ray_lines()
    chord = ellipse_line_integrals(phi, s, [(1.0, x0, y0, r, r, 0.0)])
    ref = chord >= BAND_MIN_CHORD * d
    assert band.dtype == np.uint8 and band.shape == g.sinogram_shape
    one = np.ones((1, 3), bool)  # one channel either side, same view
    assert band[binary_erosion(ref, one)].all()
    assert not band[~binary_dilation(ref, one)].any()
    # a few percent of the sinogram, on every view (a point's sinusoid)
    assert 0.01 < band.mean() < 0.2
    assert band.any(axis=1).all()


@pytest.fixture(scope="module")
def cf_store(tmp_path_factory):
    from sinotriage.synth import synthesize

    out = tmp_path_factory.mktemp("cf") / "cf.zarr"
    return synthesize(out, 4, preset="tiny", seed=3, prevalence=0.5, workers=0,
                      progress=False, backend="torch", counterfactual=True).store


def test_counterfactual_store_holds_twin_and_band(cf_store) -> None:
    """Lesion studies hold hu_normal, sinogram_normal (same noise: the difference is the lesion
    and its mass effect) and band; normal studies hold none; the band holds the rays whose
    sinogram changes most (mean squared difference inside the band over 10 times that outside;
    the rest is the mass effect)."""
    from sinotriage.synth import COUNTERFACTUAL_ARRAYS

    labels = {r["study_id"]: r["label"] for r in cf_store.manifest}
    assert set(labels.values()) == {0, 1}
    for sid, label in labels.items():
        names = set(cf_store.arrays(sid))
        assert (set(COUNTERFACTUAL_ARRAYS) <= names) == bool(label), sid
        assert cf_store.record(sid)["counterfactual"] == bool(label)
        if not label:
            continue
        sino = cf_store.read(sid, "sinogram")
        twin = cf_store.read(sid, "sinogram_normal")
        band = cf_store.read(sid, "band").astype(bool)
        mask = cf_store.read(sid, "mask")
        assert twin.shape == sino.shape == band.shape
        np.testing.assert_array_equal(band.any(axis=(1, 2)), mask.any(axis=(1, 2)))
        diff2 = (sino - twin).astype(np.float64) ** 2
        assert diff2[band].mean() > 10 * diff2[~band].mean()
        hu_normal = cf_store.read(sid, "hu_normal")
        assert hu_normal.shape == cf_store.read(sid, "hu").shape


def test_resume_refuses_another_counterfactual_setting(cf_store) -> None:
    from sinotriage.synth import synthesize

    with pytest.raises(ValueError, match="counterfactual"):
        synthesize(cf_store.path, 4, preset="tiny", seed=3, prevalence=0.5, workers=0,
                   progress=False, backend="torch", counterfactual=False)


def test_pack_batches_never_splits_a_pair() -> None:
    from sinotriage.training.paired import pack_batches

    order = [5, 0, 3, 1, 4, 2]
    twin_of = {0: 10, 3: 11, 4: 12}
    batches = pack_batches(order, twin_of, 3)
    assert [i for b in batches for i in b] == [5, 0, 10, 3, 11, 1, 4, 12, 2]
    assert all(len(b) <= 3 for b in batches)
    for b in batches:
        for i, t in twin_of.items():
            assert (i in b) == (t in b)


def _paired_config(store, tmp_path, **kw):
    from sinotriage.training.config import TrainConfig

    base = dict(store=str(store.path), out_dir=str(tmp_path / "run"), domain="sinogram",
                target="binary", model="sino_cnn",
                model_options={"band_head": True, "widths": [4, 8]}, paired=True,
                aux_weight_band=1.0, epochs=1, batch_size=8, max_train_slices=24,
                augment={"view_shift": True, "detector_flip_prob": 0.5}, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_paired_batches_hold_twins_with_the_same_augmentation(cf_store, tmp_path) -> None:
    """A lesion slice and its twin share a batch and a view shift / mirror: after augmentation
    their difference still lies in the (equally augmented) band (mean squared difference inside
    over 10 times that outside), and the twin's label is 0 and its band empty."""
    from sinotriage.data import SliceDataset
    from sinotriage.training.augment import SinogramAugment
    from sinotriage.training.paired import PairedTraining, iter_groups

    cfg = _paired_config(cf_store, tmp_path)
    train = SliceDataset(cf_store, None, domain="sinogram", target="binary")
    pt = PairedTraining(cfg, train)
    assert pt.dataset.twin_of
    aug = SinogramAugment(cfg.augment, cf_store.geometry)
    first = next(iter(pt.dataset.twin_of))
    loader = pt.loader([first, *[i for i in range(len(train)) if i != first][:5]])
    batch = next(iter(loader))
    x, band = pt.augment(aug, batch, torch.Generator().manual_seed(1))
    pairs = [g for g in iter_groups(batch) if len(g) == 2]
    assert pairs
    for a, b in pairs:
        assert float(batch["label"][a]) == 1.0 and float(batch["label"][b]) == 0.0
        assert float(band[b].sum()) == 0.0 and float(band[a].sum()) > 0
        d2 = (x[a] - x[b]).double() ** 2
        inside = band[a].bool()
        assert d2[inside].mean() > 10 * d2[~inside].mean()


def test_paired_training_with_band_loss_runs_and_records_its_options(cf_store, tmp_path) -> None:
    """One short epoch end to end; the options are in the saved config (and so in results)."""
    import json

    from sinotriage.training.engine import train

    cfg = _paired_config(cf_store, tmp_path)
    res = train(cfg)
    assert np.isfinite(res.history[0]["train_loss"])
    saved = json.loads((tmp_path / "run" / "best.json").read_text())
    assert saved["config"]["paired"] is True and saved["config"]["aux_weight_band"] == 1.0


def test_paired_options_are_checked(cf_store, tmp_path) -> None:
    from sinotriage.data import SliceDataset
    from sinotriage.errors import ConfigError
    from sinotriage.training.paired import PairedTraining

    train = SliceDataset(cf_store, None, domain="sinogram", target="binary")
    with pytest.raises(ConfigError, match="band head"):
        PairedTraining(_paired_config(cf_store, tmp_path, model="densenet_slim",
                                      model_options={}), train)
    with pytest.raises(ConfigError, match="context"):
        PairedTraining(_paired_config(cf_store, tmp_path, context=1), train)


def test_image_arms_get_the_same_pairs(cf_store, tmp_path) -> None:
    """Windowed HU arm: the twin item is the windowed lesion-free HU slice, label 0; with the
    band loss the image-domain target is the lesion mask."""
    from sinotriage.data import SliceDataset
    from sinotriage.training.paired import PairedTraining
    from sinotriage.windowing import multi_window

    cfg = _paired_config(cf_store, tmp_path, domain="windowed", augment={},
                         model_options={"band_head": True, "widths": [4, 8]})
    train = SliceDataset(cf_store, None, domain="windowed", target="binary")
    pt = PairedTraining(cfg, train)
    i, j = next(iter(pt.dataset.twin_of.items()))
    k, s = train.index[i]
    sid = train.records[k]["study_id"]
    lesion, twin = pt.dataset[i], pt.dataset[j]
    assert lesion["group"] == twin["group"] == i
    assert float(lesion["label"]) == 1.0 and float(twin["label"]) == 0.0
    ref = multi_window(torch.from_numpy(cf_store.read(sid, "hu_normal")[s:s + 1].astype(
        np.float32)), cfg.windows)[0]
    torch.testing.assert_close(twin["image"], ref)
    np.testing.assert_array_equal(lesion["band"][0].numpy(), cf_store.read(sid, "mask")[s] > 0)
    assert float(twin["band"].sum()) == 0.0
