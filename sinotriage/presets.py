"""Data presets: image grid, scanner geometry, slice count and dose of a synthetic dataset.

Every preset uses the SinoCT fan-beam geometry (:func:`sinotriage.geometry.sinoct`: GE-style
third-generation scanner, curved detector, 250 mm field, 2 pi arc), scaled down for the small
presets: fewer views keep the full rotation, fewer channels keep the same fan angle.

=========  ===========  ==============  ========  ==================  ================================
preset     image        sinogram V x C  slices    photons per bin     use
=========  ===========  ==============  ========  ==================  ================================
tiny       64 x 64      246 x 111       8-12      3.2e6               unit tests (seconds)
quick      128 x 128    492 x 222       16-24     8.0e5               CPU experiments
standard   256 x 256    984 x 444       28-36     4.0e5               workstation / GPU
sinoct     512 x 512    984 x 888       32-40     2.0e5               full SinoCT size, GPU
=========  ===========  ==============  ========  ==================  ================================

Photon counts are the unattenuated counts per detector bin per view used for the transmission
Poisson noise (:func:`sinotriage.operators.add_poisson_noise`). They are dose matched: the
``sinoct`` preset takes ``2e5`` photons per bin, a typical order for a head scan at 120 kVp; a
preset with ``k`` times fewer views and ``m`` times fewer (wider) channels collects ``k * m`` times
more photons per bin, so every preset has the same total dose per slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sinotriage.errors import InputError

__all__ = ["Preset", "PRESETS", "get_preset"]

SINOCT_PHOTONS = 2.0e5
SINOCT_VIEWS = 984
SINOCT_CHANNELS = 888


@dataclass(frozen=True)
class Preset:
    """A synthetic-data preset.

    Attributes
    ----------
    name : str
    image_size : int
        Image grid N (N x N pixels over the 250 mm field; pixel size 250 / N mm).
    n_views, n_det : int
        Sinogram shape (V, C) at the full view count.
    min_slices, max_slices : int
        Each study draws its slice count D uniformly in ``[min_slices, max_slices]``.
    photons : float
        Unattenuated photons per detector bin per view (transmission Poisson noise).
    difficulty : str
        Passed to :func:`sinotriage.phantoms.head_ct`.
    description : str
    """

    name: str
    image_size: int
    n_views: int
    n_det: int
    min_slices: int
    max_slices: int
    photons: float
    difficulty: str = "standard"
    description: str = ""

    def geometry(self) -> Any:
        """The preset's fan-beam geometry (``sinotriage.geometry.sinoct`` scaled)."""
        from sinotriage.geometry import sinoct

        return sinoct(image_size=self.image_size, n_views=self.n_views, n_det=self.n_det)

    @property
    def pixel_size(self) -> float:
        """Pixel size in mm (250 mm field)."""
        return 250.0 / self.image_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dose_matched(n_views: int, n_det: int) -> float:
    return SINOCT_PHOTONS * (SINOCT_VIEWS / n_views) * (SINOCT_CHANNELS / n_det)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 64, 246, 111, 8, 12, _dose_matched(246, 111),
               description="unit tests: seconds per study"),
        Preset("quick", 128, 492, 222, 16, 24, _dose_matched(492, 222),
               description="CPU experiments"),
        Preset("standard", 256, 984, 444, 28, 36, _dose_matched(984, 444),
               description="workstation or GPU"),
        Preset("sinoct", 512, 984, 888, 32, 40, _dose_matched(984, 888),
               description="the SinoCT scanner size (984 x 888 sinograms); GPU"),
    )
}


def get_preset(name: str | Preset) -> Preset:
    """Look a preset up by name; the error lists the choices."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise InputError(f"preset must be one of {tuple(PRESETS)}, got {name!r}")
    return PRESETS[name]
