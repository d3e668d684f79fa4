"""``sinotriage triage`` (the prioritized worklist) and ``sinotriage simulate`` (the reading queue)."""

from __future__ import annotations

from pathlib import Path

import typer

from sinotriage.cli._common import console, figure_path, user_errors
from sinotriage.errors import InputError


def _load_predictions(scores: Path | None, checkpoint: Path | None, store: Path | None,
                      split: str, val_split: str):
    """Predictions from a CSV, or from a checkpoint run over the store's val and worklist splits."""
    if (scores is None) == (checkpoint is None):
        raise InputError("give exactly one of --scores predictions.csv or --checkpoint CKPT (with --store)")
    if scores is not None:
        from sinotriage.io.predictions import read_predictions

        return read_predictions(scores)
    if store is None:
        raise InputError("--checkpoint needs --store DIR.zarr (the studies to score)")
    from sinotriage.triage.scoring import predictions_from_checkpoint

    return predictions_from_checkpoint(checkpoint, store, splits=(val_split, split))


def triage(
    store: Path | None = typer.Option(None, "--store", help="Dataset store (DIR.zarr): thumbnails, and studies for --checkpoint."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Model checkpoint to score the store with."),
    scores: Path | None = typer.Option(None, "--scores", help="Predictions CSV (study_id,split,slice,label_L,score_L...)."),
    sensitivity: float = typer.Option(0.95, help="Target sensitivity of the threshold chosen on the validation split."),
    threshold: float | None = typer.Option(None, help="Use this threshold instead of choosing one on validation."),
    split: str = typer.Option("test", help="Split to put on the worklist ('all' for every study)."),
    val_split: str = typer.Option("val", help="Split the threshold is chosen on."),
    top_k: int = typer.Option(3, help="Top-scoring slices listed per flagged study."),
    window_name: str = typer.Option("brain", "--window", help="Window of the HTML thumbnails."),
    views: int | None = typer.Option(None, help="Show the stored FBP reconstruction at this view count (default: HU)."),
    out: Path = typer.Option(Path("worklist.csv"), "--out", help="Worklist CSV; the HTML goes beside it (.html)."),
    html: Path | None = typer.Option(None, help="HTML path (default: --out with .html)."),
    rows: int = typer.Option(20, help="Rows printed in the terminal."),
) -> None:
    """Rank studies by score, flag those above the operating threshold, write CSV and HTML."""
    from rich.table import Table

    from sinotriage.triage import build_worklist, write_worklist_csv, write_worklist_html

    with user_errors():
        preds = _load_predictions(scores, checkpoint, store, split, val_split)
        wl = build_worklist(preds, sensitivity=sensitivity, threshold=threshold,
                            split=None if split == "all" else split, val_split=val_split, top_k=top_k)
        opened = None
        if store is not None:
            from sinotriage.io.store import open_store

            opened = open_store(store)
        csv_path = write_worklist_csv(wl, out)
        html_path = write_worklist_html(wl, html or out.with_suffix(".html"), store=opened,
                                        window_name=window_name, views=views)
    op = wl.operating_point
    console.print(f"[bold]operating point:[/] {op.describe()}")
    if wl.metrics:
        m = wl.metrics
        console.print(f"on the {split} studies: sensitivity {m['sensitivity']:.3f}, specificity "
                      f"{m['specificity']:.3f}, {len(wl.flagged)} of {len(wl.entries)} flagged")
    table = Table(title=f"worklist ({split}), label '{wl.label}'", show_lines=False)
    for col in ("rank", "study", "score", "flag", "top slices", "predicted subtypes", "truth"):
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for e in wl.entries[:rows]:
        truth = "" if e.label < 0 else ("pos" if e.label else "neg")
        table.add_row(str(e.rank), e.study_id, f"{e.score:.4f}", "[bold red]FLAG[/]" if e.flagged else "",
                      ", ".join(str(k) for k, _ in e.top_slices), ", ".join(n for n, _ in e.subtypes), truth,
                      style="on grey15" if e.flagged else None)
    console.print(table)
    if len(wl.entries) > rows:
        console.print(f"... {len(wl.entries) - rows} more in {csv_path}")
    console.print(f"wrote {csv_path} and {html_path}")


def _parse_shares(text: str) -> dict[str, float]:
    from sinotriage.triage.queue import CLASSES

    shares: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in CLASSES:
            raise InputError(f"--shares: unknown class {name!r}; choose from {', '.join(CLASSES)}")
        try:
            shares[name] = float(value)
        except ValueError:
            raise InputError(f"--shares expects class=fraction pairs, got {part!r}") from None
    if not shares:
        raise InputError(f"--shares expects e.g. emergency=0.4,inpatient=0.3,outpatient=0.3, got {text!r}")
    return shares


def simulate(
    scores: Path = typer.Option(..., "--scores", help="Predictions CSV with val and test studies."),
    sensitivity: float = typer.Option(0.95, help="Target sensitivity of the validation-chosen threshold."),
    threshold: float | None = typer.Option(None, help="Use this threshold instead."),
    split: str = typer.Option("test", help="Studies that arrive at the reading list."),
    val_split: str = typer.Option("val", help="Split the threshold is chosen on."),
    n_readers: int = typer.Option(1, "--n-readers", help="Radiologists reading in parallel."),
    rate: float = typer.Option(6.0, help="Poisson arrival rate, studies per hour."),
    read_time: str = typer.Option("lognormal", help="Read-time distribution: lognormal, exponential, constant."),
    read_mean: float = typer.Option(8.0, help="Mean read time, minutes."),
    read_sd: float = typer.Option(4.0, help="Read-time standard deviation (lognormal), minutes."),
    shares: str = typer.Option("emergency=0.4,inpatient=0.3,outpatient=0.3", help="Priority-class shares."),
    repeats: int = typer.Option(20, help="Simulated shifts (waits are pooled)."),
    studies_per_shift: int | None = typer.Option(
        None, help="Studies per shift, drawn with replacement from the split (default: each study once)."),
    seed: int = typer.Option(0, help="Seed of the shifts."),
    plot: Path | None = typer.Option(None, help="Write the wait distributions here (PNG)."),
    out: Path | None = typer.Option(None, help="Write the table as markdown (.md) or JSON (.json)."),
) -> None:
    """Simulate the reading queue under no triage, the model's flags and score order, and an oracle."""
    import json

    from rich.table import Table

    from sinotriage.io.files import atomic_write_bytes, json_safe
    from sinotriage.io.predictions import read_predictions
    from sinotriage.triage import WITHIN_MINUTES, simulate_policies
    from sinotriage.triage.worklist import build_worklist

    with user_errors():
        if plot is not None:
            plot = figure_path(plot, "waits.png", "--plot")
        preds = read_predictions(scores)
        wl = build_worklist(preds, sensitivity=sensitivity, threshold=threshold, split=split,
                            val_split=val_split, top_k=0)
        y = [max(e.label, 0) for e in wl.entries]
        if any(e.label < 0 for e in wl.entries):
            raise InputError(f"{scores}: every {split} study needs a known label to simulate waits")
        s = [e.score for e in wl.entries]
        comp = simulate_policies(y, s, wl.operating_point.threshold, n_readers=n_readers, n_repeats=repeats,
                                 seed=seed, studies_per_shift=studies_per_shift, rate_per_hour=rate, read_time=read_time, read_mean=read_mean,
                                 read_sd=read_sd, class_shares=_parse_shares(shares))
    console.print(f"[bold]operating point:[/] {wl.operating_point.describe()}")
    n_pos = int(comp.rows[0]["n_pos"])
    table = Table(title=f"reading queue: {comp.settings['n_repeats']} shifts x {comp.settings['n_studies']} "
                        f"studies ({n_pos} positive reads), {n_readers} reader(s), {rate:g}/h, "
                        f"load {comp.settings['utilization']:.2f}")
    table.add_column("arm", min_width=17)
    table.add_column("flag", justify="right", no_wrap=True)
    table.add_column("pos. wait\nmean/med/p90", justify="right", no_wrap=True)
    table.add_column("neg. wait\nmean/med/p90", justify="right", no_wrap=True)
    table.add_column("% pos. read in\n" + "/".join(map(str, WITHIN_MINUTES)) + " min",
                     justify="right", no_wrap=True)
    for r in comp.rows:
        table.add_row(r["arm"], f"{100 * r['flag_rate']:.0f}%",
                      "/".join(f"{r[k]:.1f}" for k in ("pos_mean", "pos_median", "pos_p90")),
                      "/".join(f"{r[k]:.1f}" for k in ("neg_mean", "neg_median", "neg_p90")),
                      "/".join(f"{100 * r[f'pos_within_{m}_frac']:.0f}" for m in WITHIN_MINUTES))
    console.print(table)
    console.print("waits in minutes from arrival until a radiologist opens the study; arms: no triage = "
                  "fifo, flags = flagged_first, score order = score_ordered")
    if plot is not None:
        from sinotriage.triage.plots import plot_wait_distributions

        with user_errors():
            console.print(f"wrote {plot_wait_distributions(comp, plot)}")
    if out is not None:
        with user_errors():
            if out.suffix == ".json":
                doc = {"operating_point": wl.operating_point.__dict__, "rows": comp.rows,
                       "settings": comp.settings}
                text = json.dumps(json_safe(doc), indent=2, allow_nan=False)
            elif out.suffix == ".md":
                text = comp.to_markdown() + "\n"
            else:
                raise InputError(f"--out must end in .md or .json, got {out}")
            console.print(f"wrote {atomic_write_bytes(out, text.encode('utf-8'))}")


def register(app: typer.Typer) -> None:
    app.command("triage")(triage)
    app.command("simulate")(simulate)
