"""Synthetic head CT (sinotriage.phantoms): tissue HU, hemorrhage masks and labels, API.

Grids are small (64 x 64, few slices, about 0.05 s a study) so the file runs in seconds; the
slow test reproduces the baseline AUC reported in docs/data.md at the quick preset's grid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt
from sklearn.metrics import roc_auc_score

from sinotriage.phantoms import (
    DIFFICULTIES,
    SUBTYPES,
    TISSUE_NAMES,
    TISSUES,
    brain_mask,
    head_ct,
    intensity_baseline,
)
from sinotriage.phantoms import _image_noise as image_noise

SMALL = {"n_slices": 8, "image_size": 64, "pixel_size": 250 / 64}
BLOOD = TISSUE_NAMES.index("blood")


def _small(seed: int, **kw: object):
    return head_ct(seed, **{**SMALL, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fifty_cases():
    # 50 seeds: random studies (prevalence 0.55) and, for every fifth seed, all five subtypes
    cases = []
    for seed in range(50):
        subtypes = SUBTYPES if seed % 5 == 0 else None
        cases.append(_small(seed, n_slices=6, subtypes=subtypes))
    return cases


def test_tissue_hu_ranges_on_50_seeds(fifty_cases) -> None:
    """Each class's unambiguous voxels lie in its HU range (noise-free exactly, noisy up to 6 SD).

    Only voxels that are ``pure`` (fully covered by their class in every sub-slice, i.e. no
    partial volume) are checked. The image noise of a study is reproducible from its seed
    (``_image_noise``), so the noise-free value ``hu - noise`` must lie in the class range up
    to float rounding (1e-3 HU). The noisy value is within the range widened by 6 noise SD
    (P(|z| > 6) = 2e-9 per voxel over about 1e6 voxels).
    """
    seen = set()
    for case in fifty_cases:
        s = case.settings
        noise, sd = image_noise(s["seed"], case.hu.shape, s["difficulty"])
        assert sd == s["noise_sd_hu"]
        clean = case.hu - noise
        for t in TISSUES:
            sel = case.pure & (case.tissues == t.id)
            if not sel.any():
                continue
            seen.add(t.name)
            lo, hi = t.hu_range
            c, v = clean[sel], case.hu[sel]
            assert c.min() >= lo - 1e-3 and c.max() <= hi + 1e-3, (t.name, s["seed"], c.min(), c.max())
            assert v.min() >= lo - 6 * sd and v.max() <= hi + 6 * sd, (t.name, s["seed"])
    # the thick classes occur unambiguously at this coarse grid (3.9 mm pixels, 20 mm slices);
    # thin ones (cortex, CSF spaces, dura, oedema rim, orbital fat, diploe) are nearly always
    # partial here: test_thin_tissue_ranges_on_a_finer_grid covers them
    assert {"air", "soft_tissue", "cortical_bone", "white_matter", "blood"} <= seen


def test_thin_tissue_ranges_on_a_finer_grid() -> None:
    """At the quick grid (2 mm pixels, 7 mm slices) CSF, cortex, diploe, oedema and vitreous
    have unambiguous voxels too; their noise-free values lie in the class ranges."""
    seen = set()
    for seed in (0, 1):
        case = head_ct(seed, n_slices=20, image_size=128, pixel_size=250 / 128,
                       subtypes=("intraparenchymal",))
        noise, _ = image_noise(seed, case.hu.shape, "standard")
        clean = case.hu - noise
        for t in TISSUES:
            sel = case.pure & (case.tissues == t.id)
            if sel.any():
                seen.add(t.name)
                assert t.hu_range[0] - 1e-3 <= clean[sel].min(), t.name
                assert clean[sel].max() <= t.hu_range[1] + 1e-3, t.name
    assert {"csf", "gray_matter", "white_matter", "diploe", "vitreous"} <= seen, seen


def test_blood_is_50_to_90_hu(fifty_cases) -> None:
    """Every blood voxel that is fully blood has a noise-free value in 50-90 HU."""
    n_blood = 0
    for case in fifty_cases:
        s = case.settings
        noise, _ = image_noise(s["seed"], case.hu.shape, s["difficulty"])
        sel = case.pure & (case.tissues == BLOOD)
        n_blood += int(sel.sum())
        clean = (case.hu - noise)[sel]
        if clean.size:
            assert clean.min() >= 50 - 1e-3 and clean.max() <= 90 + 1e-3
        # majority-blood voxels (partial volume included) are hyperdense to brain on average
        blood = case.tissues == BLOOD
        if blood.sum() >= 20:
            assert (case.hu - noise)[blood].mean() > 45.0
    assert n_blood > 50


@pytest.mark.parametrize("name", SUBTYPES)
def test_each_requested_subtype_appears(name: str) -> None:
    k = SUBTYPES.index(name) + 1
    for seed in range(5):
        case = _small(seed, n_slices=6, subtypes=(name,))
        assert case.subtypes == (name,), (seed, case.subtypes)
        assert case.label == 1
        assert (case.mask == k).any()
        assert case.labels[:, k].any()
        assert set(np.unique(case.mask)) <= {0, k}


def test_several_subtypes_in_one_scan() -> None:
    case = _small(3, subtypes=("subdural", "intraventricular", "epidural"))
    assert case.subtypes == ("epidural", "intraventricular", "subdural")
    assert case.settings["subtypes"] == ["epidural", "intraventricular", "subdural"]


def test_masks_labels_and_tissues_agree(fifty_cases) -> None:
    for case in fifty_cases:
        d = case.hu.shape[0]
        assert case.labels.shape == (d, 6) and case.labels.dtype == np.uint8
        for k in range(1, 6):
            np.testing.assert_array_equal(case.labels[:, k], (case.mask == k).any(axis=(1, 2)))
        np.testing.assert_array_equal(case.labels[:, 0], case.labels[:, 1:].max(axis=1))
        assert case.label == int(case.labels[:, 0].any())
        np.testing.assert_array_equal(case.mask > 0, case.tissues == BLOOD)


def test_normal_cases_have_empty_masks() -> None:
    for seed in range(6):
        case = _small(seed, subtypes=())
        assert case.label == 0 and not case.mask.any() and not case.labels.any()
        assert not (case.tissues == BLOOD).any()
        assert case.settings["lesions"] == []


def test_prevalence_decides_abnormal() -> None:
    assert all(_small(s, prevalence=0.0).label == 0 for s in range(6))
    assert all(_small(s, prevalence=1.0).label == 1 for s in range(6))
    labels = [_small(s, n_slices=2, prevalence=0.55).label for s in range(40)]
    assert 10 <= sum(labels) <= 34  # binomial(40, 0.55): mean 22, SD 3.1


def test_deterministic_per_seed() -> None:
    a, b = _small(11), _small(11)
    for name in ("hu", "tissues", "mask", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name,
                                      strict=True)
    assert a.settings == b.settings
    assert json.loads(json.dumps(a.settings)) == a.settings  # JSON-able for store attributes
    c = _small(12)
    assert a.hu.tobytes() != c.hu.tobytes()
    # the same seed gives the same head with and without a lesion
    n, s = _small(5, subtypes=()), _small(5, subtypes=("intraparenchymal",))
    assert n.settings["anatomy"] == s.settings["anatomy"]
    same = (s.mask == 0)
    assert np.mean(n.tissues[same] == s.tissues[same]) > 0.9


def test_arrays_shapes_dtypes_spacing() -> None:
    case = head_ct(1, n_slices=10, image_size=72, pixel_size=3.5)
    assert case.hu.shape == case.tissues.shape == case.mask.shape == (10, 72, 72)
    assert case.hu.dtype == np.float32 and case.tissues.dtype == np.uint8
    assert case.mask.dtype == np.uint8 and case.pure.dtype == bool
    z0, z1 = case.settings["z_range_mm"]
    assert case.spacing[0] == pytest.approx((z1 - z0) / 10)
    assert case.spacing[1:] == (3.5, 3.5)
    assert case.tissue_names == TISSUE_NAMES
    with pytest.raises(ValueError):
        case.hu[0, 0, 0] = 1.0  # read-only


def test_anatomy_from_skull_base_to_vertex() -> None:
    """Lowest slices: air sinuses and dense bone inside the head; top: small vertex cap."""
    for seed in range(3):
        case = head_ct(seed, n_slices=16, image_size=64, pixel_size=250 / 64)
        t = case.tissues
        head = t != TISSUE_NAMES.index("air")
        low = slice(0, 4)
        # air enclosed by the head in the skull-base slices (sinuses, mastoid cells)
        inner_air = np.zeros_like(head)
        for k in range(low.stop):
            rows = np.nonzero(head[k].any(axis=1))[0]
            for i in rows:
                cols = np.nonzero(head[k, i])[0]
                inner_air[k, i, cols[0]:cols[-1]] = ~head[k, i, cols[0]:cols[-1]]
        assert inner_air[low].sum() > 5, seed
        assert (case.hu[low] > 1300).sum() > 20  # petrous bone
        brain = brain_mask(case)
        area = brain.sum(axis=(1, 2))
        assert area[-1] < 0.25 * area.max()  # vertex
        assert np.argmax(area) in range(5, 13)
        assert (t == TISSUE_NAMES.index("gray_matter")).any() and (
            t == TISSUE_NAMES.index("white_matter")).any()


def _ventricle_voxels(case) -> np.ndarray:
    # CSF voxels far from the brain surface: the ventricles and deep cisterns
    csf = case.tissues == TISSUE_NAMES.index("csf")
    inside = brain_mask(case)
    depth = distance_transform_edt(inside, sampling=case.spacing)
    return csf & (depth > 15)


def test_intraventricular_blood_layers_posteriorly() -> None:
    """IVH sits in the dependent (posterior = image bottom, larger row index) ventricles."""
    for seed in range(3):
        case = head_ct(seed, n_slices=10, image_size=80, pixel_size=250 / 80,
                       subtypes=("intraventricular",))
        blood = case.mask == 3
        vent = _ventricle_voxels(case) | blood
        rows = np.nonzero(blood)[1]
        vrows = np.nonzero(vent)[1]
        assert rows.mean() > vrows.mean(), seed


def test_extra_axial_blood_hugs_the_skull() -> None:
    bone = [TISSUE_NAMES.index("cortical_bone"), TISSUE_NAMES.index("diploe")]
    for name in ("epidural", "subdural"):
        k = SUBTYPES.index(name) + 1
        for seed in range(2):
            case = head_ct(seed, n_slices=10, image_size=80, pixel_size=250 / 80,
                           subtypes=(name,))
            dist = distance_transform_edt(~np.isin(case.tissues, bone), sampling=case.spacing)
            d = dist[case.mask == k]
            assert np.median(d) < 12.0, (name, seed, np.median(d))
            assert d.min() < 4.0


def test_subarachnoid_blood_fills_csf_spaces() -> None:
    for seed in range(2):
        sah = head_ct(seed, n_slices=10, image_size=80, pixel_size=250 / 80,
                      subtypes=("subarachnoid",))
        normal = head_ct(seed, n_slices=10, image_size=80, pixel_size=250 / 80, subtypes=())
        where = sah.mask == 4
        before = normal.tissues[where]
        frac_csf = np.mean(np.isin(before, [TISSUE_NAMES.index("csf"),
                                            TISSUE_NAMES.index("gray_matter")]))
        assert frac_csf > 0.7, (seed, frac_csf)


def test_large_lesions_shift_the_midline() -> None:
    big = _small(2, n_slices=4, difficulty="easy", subtypes=("subdural", "intraparenchymal"))
    assert big.settings["midline_shift_mm"] > 1.0
    small = _small(2, n_slices=4, subtypes=())
    assert small.settings["midline_shift_mm"] == 0.0


def test_difficulty_orders_lesion_size_and_noise() -> None:
    vols = {}
    for level in DIFFICULTIES:
        cases = [_small(s, subtypes=("intraparenchymal", "subdural"), difficulty=level)
                 for s in range(5)]
        vols[level] = np.mean([(c.mask > 0).sum() for c in cases])
        lo, hi = DIFFICULTIES[level]["noise_sd"]
        assert all(lo <= c.settings["noise_sd_hu"] <= hi for c in cases)
    assert vols["easy"] > vols["standard"] > vols["hard"]


def test_intensity_baseline_matches_direct_count() -> None:
    case = _small(4, subtypes=("subdural",))
    keep = np.isin(case.tissues, [TISSUE_NAMES.index(n) for n in
                                  ("csf", "gray_matter", "white_matter", "blood", "edema")])
    vals = case.hu[keep]
    expected = np.mean((vals >= 50) & (vals <= 90))
    assert intensity_baseline(case) == pytest.approx(expected, abs=1e-12)


def test_intensity_baseline_auc_small_sample() -> None:
    """Fast check on 50 studies at 64 x 64 x 6: the AUC is informative but not trivial.

    Looser range than the slow test: at n = 50 the AUC's sampling SD is about 0.07, and the
    coarse grid differs from the quick preset's.
    """
    y, s = [], []
    for seed in range(50):
        case = _small(1000 + seed, n_slices=6, prevalence=0.5)
        y.append(case.label)
        s.append(intensity_baseline(case))
    auc = roc_auc_score(y, s)
    assert 0.55 <= auc <= 0.95, auc


@pytest.mark.slow
def test_intensity_baseline_auc_standard_in_range() -> None:
    """The documented figure: 200 studies at the quick grid (128 x 128 x 20), prevalence 0.5."""
    y, s = [], []
    for seed in range(200):
        case = head_ct(seed, n_slices=20, image_size=128, pixel_size=250 / 128,
                       prevalence=0.5)
        y.append(case.label)
        s.append(intensity_baseline(case))
    auc = roc_auc_score(y, s)
    assert 0.6 <= auc <= 0.85, auc


@pytest.mark.parametrize(("kwargs", "exc", "word"), [
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"seed": True}, TypeError, "seed"),
    ({"n_slices": 0}, ValueError, "n_slices"),
    ({"image_size": 8}, ValueError, "image_size"),
    ({"pixel_size": -1.0}, ValueError, "pixel_size"),
    ({"pixel_size": "1"}, TypeError, "pixel_size"),
    ({"image_size": 64, "pixel_size": 1.0}, ValueError, "field of view"),
    ({"subtypes": ("hematoma",)}, ValueError, "subtypes"),
    ({"subtypes": "subdural"}, TypeError, "subtypes"),
    ({"subtypes": ("subdural", "subdural")}, ValueError, "repeat"),
    ({"difficulty": "medium"}, ValueError, "difficulty"),
    ({"prevalence": 1.5}, ValueError, "prevalence"),
    ({"prevalence": None}, TypeError, "prevalence"),
])
def test_argument_validation(kwargs: dict, exc: type, word: str) -> None:
    args = {"seed": 0, **SMALL, **kwargs}
    with pytest.raises(exc, match=word):
        head_ct(**args)


def test_epidural_stops_at_sutures_and_subdural_crosses_them() -> None:
    """Thickness fields on the inner table: epidural zero outside its bone, subdural not."""
    from sinotriage.phantoms.head import draw_anatomy
    from sinotriage.phantoms.hemorrhage import Lesion, _extra_axial, _plate_margin

    anat = draw_anatomy(np.random.default_rng(0))
    a, b, c = anat.axes
    rng = np.random.default_rng(1)
    n = rng.normal(size=(20000, 3))
    n[:, 2] = np.abs(n[:, 2])  # upper half of the vault
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    u, v, w = (0.97 * n * [a, b, c]).T.astype(np.float32)
    direction = (0.75, 0.0, 0.66)  # right parietal bone
    edh = Lesion("epidural", {"direction": direction, "thickness": 12.0, "half_length": 80.0,
                              "side": 1.0, "plate": "parietal"})
    t = _extra_axial(edh, u, v, w, anat, 1.0, 0.0)
    q = np.stack([u / a, v / b, w / c], axis=-1)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    margin = _plate_margin(q, "parietal", 1.0)
    assert t.max() > 6.0
    assert np.all(t[margin <= 0] == 0)  # nothing across the coronal/lambdoid/sagittal sutures
    coronal = 0.22 + 0.12 * (1 - np.maximum(q[:, 2], 0))
    sdh = Lesion("subdural", {"direction": direction, "thickness": 8.0, "angle": 1.1,
                              "side": 1.0})
    ts = _extra_axial(sdh, u, v, w, anat, 1.0, 0.0)
    assert (ts[q[:, 1] > coronal + 0.05] > 1.0).any()  # frontal bone, across the coronal suture
    assert (ts[q[:, 1] < coronal - 0.05] > 1.0).any()
    assert np.all(ts[u < 0] == 0)  # the falx stops it at the midline
