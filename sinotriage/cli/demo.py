"""``sinotriage demo``: the operators on a phantom, end to end, in a few seconds."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, figure_path, user_errors


def demo(
    image_size: int = typer.Option(128, min=16, help="Image grid (pixels across the 250 mm field)."),
    views: int = typer.Option(984, min=1, help="Number of views of the SinoCT fan-beam geometry."),
    out: Path | None = typer.Option(
        None, help="Write a figure of phantom / sinogram / FBP here (.png, .pdf, .svg, ...; a "
                   "folder gets demo.png)."),
) -> None:
    """Project a head phantom in the SinoCT fan-beam geometry and reconstruct it with FBP."""
    import time

    import torch

    from sinotriage.geometry import sinoct
    from sinotriage.operators import fbp, hu_to_mu, mu_to_hu, project
    from sinotriage.phantoms import head_ct

    with user_errors():
        if out is not None:
            out = figure_path(out, "demo.png")
        geometry = sinoct(image_size=image_size, n_views=views)
        hu = torch.from_numpy(head_ct(seed=0, n_slices=1, image_size=image_size,
                                      pixel_size=geometry.pixel_size).hu[0].copy())
        t0 = time.perf_counter()
        sino = project(hu_to_mu(hu), geometry)
        t1 = time.perf_counter()
        rec = mu_to_hu(fbp(sino, geometry))
        t2 = time.perf_counter()
    head = hu > -500
    rmse = float(((rec - hu)[head] ** 2).mean().sqrt())
    console.print(f"geometry: {geometry!r}")
    console.print(f"sinogram {tuple(sino.shape)} in {1e3 * (t1 - t0):.0f} ms; "
                  f"FBP {tuple(rec.shape)} in {1e3 * (t2 - t1):.0f} ms; RMSE inside the head {rmse:.1f} HU")
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sinotriage.io.files import atomic_savefig

        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        axes[0].imshow(hu.numpy(), cmap="gray", vmin=0, vmax=80)
        axes[0].set_title("phantom (HU, brain window 40/80)")
        axes[1].imshow(sino.numpy(), cmap="gray", aspect="auto")
        axes[1].set_title("sinogram (views x channels)")
        axes[2].imshow(rec.numpy(), cmap="gray", vmin=0, vmax=80)
        axes[2].set_title("FBP (HU, brain window)")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        try:
            with user_errors():
                written = atomic_savefig(fig, out, dpi=100)
        finally:
            plt.close(fig)
        console.print(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
