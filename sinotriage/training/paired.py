"""Counterfactual (paired) training and the auxiliary lesion-band loss.

A counterfactual store (``sinotriage synth --counterfactual``) holds, for each study with
hemorrhage, the same head without the lesion (``sinogram_normal``, ``hu_normal``) and the lesion's
band in sinogram coordinates (``band``). Two training options use it (both off by default, both
recorded in the run's config and so in a study's results.json):

``paired: true``
    Every training slice that shows hemorrhage is followed, in the same batch, by its
    lesion-free twin (label 0): the pair differs only by the lesion and its mass effect, which
    tells the network what to look at. For sinograms the pair gets the *same* random view shift
    and mirror. All domains: sinograms (the twin's views selected like the arm's), HU and
    windowed HU (``hu_normal``), and reconstructions at ``views`` (FBP of the twin's selected
    views with the ``sinotriage preprocess`` defaults, Ram-Lak, cutoff 1), so that image arms get
    the same option.
``aux_weight_band: w > 0``
    Adds ``w`` times a per-pixel BCE between the model's band logits
    (``model(x, return_band=True)``, the ``band_head`` of the ``sino_*`` models) and the band
    target: the stored lesion band for sinograms (views selected like the input), the lesion mask
    for image domains; zeros for normal slices and twins.

:class:`PairedTraining` wraps the training dataset, builds the batches and computes the extra
loss; the training loop calls it in four places.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from sinotriage.errors import ConfigError
from sinotriage.training.augment import SinogramAugment, mirror_sinogram, shift_views
from sinotriage.training.config import TrainConfig

__all__ = ["BAND_POS_WEIGHT", "PairedDataset", "PairedTraining", "band_loss", "pack_batches"]

#: positive-class weight of the band BCE (a band covers a few percent of a lesion slice)
BAND_POS_WEIGHT = 10.0


def band_loss(band_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE of ``(B, 1, V, C)`` band logits against a {0, 1} target of the same shape,
    positives weighted by :data:`BAND_POS_WEIGHT`."""
    if band_logits.shape != target.shape:
        raise ValueError(f"band logits {tuple(band_logits.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    pw = torch.tensor(BAND_POS_WEIGHT, device=band_logits.device)
    return F.binary_cross_entropy_with_logits(band_logits.float(), target.float(), pos_weight=pw)


def pack_batches(order: Sequence[int], twin_of: dict[int, int], batch_size: int) -> list[list[int]]:
    """Batches of dataset indices in ``order``, each index followed by its twin (if any).

    A pair is never split across two batches; a batch holds at most ``batch_size`` items
    (a pair may start a new batch early). ``batch_size`` must be at least 2.
    """
    if batch_size < 2:
        raise ConfigError("paired training needs batch_size >= 2 (a pair shares a batch)")
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        unit = [i, twin_of[i]] if i in twin_of else [i]
        if len(cur) + len(unit) > batch_size:
            batches.append(cur)
            cur = []
        cur.extend(unit)
    if cur:
        batches.append(cur)
    return batches


class PairedDataset(Dataset):
    """A training :class:`~sinotriage.data.SliceDataset` plus the twins of its lesion slices.

    Items ``0 .. n-1`` are the base items, items ``n ..`` the twins (label 0). Every item gets
    ``group`` (the base index: a slice and its twin share it) and, when ``band`` is true, a
    ``band`` target ``(1, V, C)`` / ``(1, H, W)`` float32.
    """

    def __init__(self, base: Any, config: TrainConfig, band: bool) -> None:
        self.base, self.config, self.band = base, config, band
        self.store = base.store
        self.geometry = self.store.geometry
        self.twin_of: dict[int, int] = {}
        self._twins: list[int] = []
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        if config.paired:
            for i, (k, s) in enumerate(base.index):
                sid = base.records[k]["study_id"]
                if base.slice_labels(sid)[s, 0] and self.store.has_array(sid, "sinogram_normal"):
                    self.twin_of[i] = len(base) + len(self._twins)
                    self._twins.append(i)

    def __len__(self) -> int:
        return len(self.base) + len(self._twins)

    def _views(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        views = self.config.views
        if views is None or views == self.geometry.n_views:
            return t
        from sinotriage.operators import select_views

        return select_views(t, self.geometry, views)[0].contiguous()

    def _twin_image(self, sid: str, s: int) -> torch.Tensor:
        """(K, ...) input of slice ``s`` of the twin of study ``sid`` in the arm's domain."""
        cfg = self.config
        if cfg.domain == "sinogram":
            return self._as_item(self._views(self._read(sid, "sinogram_normal")[s:s + 1]))
        if cfg.views is None and cfg.domain in ("hu", "windowed"):
            hu = self._read(sid, "hu_normal")[s:s + 1].astype(np.float32)
        else:
            from sinotriage.operators import fbp, mu_to_hu, select_views
            from sinotriage.vocabulary import MU_WATER

            sino = torch.from_numpy(self._read(sid, "sinogram_normal")[s:s + 1].astype(np.float32))
            views = cfg.views or self.geometry.n_views
            sub, g2, _ = select_views(sino, self.geometry, views)
            mu_water = float(self.store.attrs.get("mu_water", MU_WATER))
            with torch.no_grad():
                hu = np.rint(mu_to_hu(fbp(sub.contiguous(), g2), mu_water=mu_water).numpy())
        return self._as_item(hu)

    def _as_item(self, arr: Any) -> torch.Tensor:
        """One stored slice ``(1, ...)`` -> the item image, through the base dataset's transform."""
        image = self.base._to_image(np.asarray(arr), scan=False)
        if self.base.transform is not None:
            image = self.base.transform({"image": image})["image"]
        return image

    def _read(self, sid: str, name: str) -> np.ndarray:
        key = (sid, name)
        if key not in self._cache:
            self._cache[key] = self.store.read(sid, name)
        return self._cache[key]

    def _band(self, sid: str, s: int, like: torch.Tensor) -> torch.Tensor:
        if self.config.domain == "sinogram":
            if not self.store.has_array(sid, "band"):
                return torch.zeros(1, *like.shape[-2:])
            return self._views(self._read(sid, "band")[s:s + 1].astype(np.float32))
        return torch.from_numpy((self._read(sid, "mask")[s:s + 1] > 0).astype(np.float32))

    def __getitem__(self, j: int) -> dict[str, Any]:
        n = len(self.base)
        i = j if j < n else self._twins[j - n]
        item = dict(self.base[i])
        k, s = self.base.index[i]
        sid = self.base.records[k]["study_id"]
        item["group"] = i
        if j >= n:
            item["image"] = self._twin_image(sid, s)
            item["label"] = torch.zeros_like(item["label"])
        if self.band:
            band = self._band(sid, s, item["image"])
            item["band"] = torch.zeros_like(band) if j >= n else band
        return item


class PairedTraining:
    """What the training loop needs for ``paired`` / ``aux_weight_band`` (module docstring).

    Raises
    ------
    ConfigError
        Options that cannot be honoured: scan level, ``context > 0``, a store without
        counterfactual arrays, image augmentations with the band loss.
    """

    def __init__(self, config: TrainConfig, train_ds: Any) -> None:
        self.config = config
        if config.level != "scan" and config.context:
            raise ConfigError("paired / aux_weight_band: context must be 0")
        if config.level == "scan":
            raise ConfigError("paired / aux_weight_band apply to level 'slice' only")
        self.band = config.aux_weight_band > 0
        if self.band and not config.model_options.get("band_head"):
            raise ConfigError(f"aux_weight_band: model {config.model!r} needs a band head; use a "
                              "sino_* model with model_options: {band_head: true}")
        if self.band and config.augment.image_ops:
            raise ConfigError("aux_weight_band: image augmentations would move the lesion mask; "
                              "turn them off or set aux_weight_band: 0")
        if self.band and (config.image_size is not None or config.detector_factor > 1):
            raise ConfigError("aux_weight_band needs the model input at the stored size "
                              "(image_size: null, detector_factor: 1)")
        self.dataset = PairedDataset(train_ds, config, self.band)
        if config.paired and not self.dataset.twin_of:
            raise ConfigError(f"paired: store {config.store} has no lesion-free twins; build it "
                              "with `sinotriage synth --counterfactual`")
        if self.band and config.domain == "sinogram" and not any(
                self.dataset.store.has_array(r["study_id"], "band") for r in train_ds.records):
            raise ConfigError(f"aux_weight_band: store {config.store} has no lesion bands; build "
                              "it with `sinotriage synth --counterfactual`")

    def loader(self, order: Sequence[int]) -> DataLoader:
        """Batches of the epoch's ``order`` (base indices), twins beside their slices."""
        batches = pack_batches(order, self.dataset.twin_of, self.config.batch_size)
        return DataLoader(self.dataset, batch_sampler=batches,
                          num_workers=self.config.num_workers)

    def n_batches(self, order: Sequence[int]) -> int:
        """Batches of an epoch with this ``order`` (for the LR schedule)."""
        return max(len(pack_batches(order, self.dataset.twin_of, self.config.batch_size)), 1)

    def augment(self, aug: SinogramAugment, batch: dict[str, Any],
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """View shift and mirror drawn once per pair (and applied to the band target too)."""
        x, band = batch["image"], batch.get("band")
        groups = [int(v) for v in batch["group"]]
        params: dict[int, tuple[int, bool]] = {}
        xs, bs = [], []
        for b, grp in enumerate(groups):
            if grp not in params:
                shift = int(torch.randint(x.shape[-2], (1,), generator=generator)) \
                    if aug.cfg.view_shift else 0
                flip = aug.cfg.detector_flip_prob > 0 and float(
                    torch.rand(1, generator=generator)) < aug.cfg.detector_flip_prob
                params[grp] = (shift, flip)
            shift, flip = params[grp]
            xs.append(self._apply(x[b], shift, flip, aug.det_offset))
            if band is not None:
                bs.append((self._apply(band[b], shift, flip, aug.det_offset) > 0.5).float())
        x = torch.stack(xs)
        if aug.cfg.sinogram_photons is not None:
            from sinotriage.operators import add_poisson_noise

            x = add_poisson_noise(x, aug.cfg.sinogram_photons, generator=generator)
        return x, (torch.stack(bs) if band is not None else None)

    @staticmethod
    def _apply(t: torch.Tensor, shift: int, flip: bool, det_offset: float) -> torch.Tensor:
        t = shift_views(t, shift) if shift else t
        return mirror_sinogram(t, det_offset) if flip else t

    def forward(self, net: torch.nn.Module, x: torch.Tensor, band: torch.Tensor | None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, extra_loss)``: the model's class logits and ``aux_weight_band`` times the
        band loss (0 without it)."""
        if not self.band:
            out = net(x)
            return (out.logits if hasattr(out, "logits") else out), x.new_zeros(())
        out = net(x, return_band=True)
        extra = self.config.aux_weight_band * band_loss(out.band, band.to(out.band.device))
        return out.logits, extra


def iter_groups(batch: dict[str, Any]) -> Iterator[list[int]]:
    """Indices of a batch grouped by pair (for tests and diagnostics)."""
    groups: dict[int, list[int]] = {}
    for b, grp in enumerate(batch["group"]):
        groups.setdefault(int(grp), []).append(b)
    yield from groups.values()
