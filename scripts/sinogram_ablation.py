"""Ablation of the raw-sinogram arm: augmentation, pooling, trunk, paired training, band loss.

Builds (or reuses) a counterfactual store of the quick study's data (tiny preset: 64 x 64
images, 246 x 111 sinograms, easy lesions, 200 studies, prevalence 0.5, seed 0) with the 61- and
15-view sinograms derived, then trains one configuration per call and appends a JSON line::

    python scripts/sinogram_ablation.py --store data/quick_cf.zarr --views 15 --epochs 6 \\
        --names cnn_max_noaug cnn_max cnn_max_paired_band --out results/sino_ablation.jsonl
    python scripts/sinogram_ablation.py --table results/sino_ablation.jsonl

Every run: Adam, lr 2e-3, cosine schedule, batch 32, seed 0, one torch thread. Reported: the
validation scan AUC (max over slices) of every epoch, and the validation slice AUC of the last
epoch's model. docs/results.md ("Raw-sinogram arm and paired training") holds the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

AUG = {"view_shift": True, "detector_flip_prob": 0.5}
GRID: dict[str, tuple[str, dict]] = {
    "cnn_max_noaug": ("sino_cnn, max, no augmentation",
                      dict(model="sino_cnn", model_options={"pooling": "max"}, augment={})),
    "cnn_max": ("sino_cnn, max", dict(model="sino_cnn", model_options={"pooling": "max"})),
    "cnn_topk": ("sino_cnn, top-k 3 %", dict(model="sino_cnn", model_options={"pooling": "topk"})),
    "cnn_attention": ("sino_cnn, attention",
                      dict(model="sino_cnn", model_options={"pooling": "attention"})),
    "cnn_mean": ("sino_cnn, mean", dict(model="sino_cnn", model_options={"pooling": "mean"})),
    "viewconv_max": ("sino_viewconv, max",
                     dict(model="sino_viewconv", model_options={"pooling": "max"})),
    "sinonet_max": ("sino_net, max", dict(model="sino_net", model_options={"pooling": "max"})),
    "cnn_max_paired": ("sino_cnn, max, paired",
                       dict(model="sino_cnn", model_options={"pooling": "max"}, paired=True)),
    "cnn_max_paired_band": ("sino_cnn, max, paired + band loss (weight 1)",
                            dict(model="sino_cnn",
                                 model_options={"pooling": "max", "band_head": True},
                                 paired=True, aux_weight_band=1.0)),
    "cnn_max_band": ("sino_cnn, max, band loss (weight 1)",
                     dict(model="sino_cnn", model_options={"pooling": "max", "band_head": True},
                          aux_weight_band=1.0)),
    "mini_unet_slim": ("mini_unet_slim (the previous quick-preset arm), no augmentation",
                       dict(model="mini_unet_slim", model_options={}, augment={})),
}


def make_store(path: Path) -> None:
    from sinotriage.preprocess import preprocess
    from sinotriage.presets import get_preset
    from sinotriage.synth import synthesize

    preset = replace(get_preset("tiny"), difficulty="easy")
    synthesize(path, 200, preset, 0, prevalence=0.5, workers=2, progress=False,
               counterfactual=True)
    preprocess(path, [61, 15], workers=2, progress=False)


def run(store: Path, views: int, name: str, epochs: int, out_dir: Path) -> dict:
    import numpy as np
    import torch

    from sinotriage.metrics import roc_auc
    from sinotriage.training.config import TrainConfig
    from sinotriage.training.engine import make_dataset, score_dataset, train

    torch.set_num_threads(1)
    kw = dict(GRID[name][1])
    kw.setdefault("augment", AUG)
    cfg = TrainConfig(store=str(store), out_dir=str(out_dir / f"v{views}_{name}"),
                      domain="sinogram", views=views, target="binary", epochs=epochs,
                      batch_size=32, lr=2e-3, schedule="cosine", seed=0, progress=False, **kw)
    t0 = time.time()
    res = train(cfg)
    auc = [r["val_auc"] for r in res.history]
    scored = score_dataset(res.model, make_dataset(cfg, "val"), cfg, torch.device("cpu"))
    return {"views": views, "name": name, "epochs": epochs,
            "val_auc": [round(a, 3) for a in auc], "best_val_auc": max(auc),
            "best_epoch": int(np.argmax(auc)) + 1, "last3_val_auc": float(np.mean(auc[-3:])),
            "last_slice_auc": round(float(roc_auc(scored["labels"][:, 0].astype(int),
                                                  scored["scores"][:, 0])), 3),
            "train_loss": [round(r["train_loss"], 4) for r in res.history],
            "seconds": round(time.time() - t0, 1)}


def table(path: Path) -> str:
    rows = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[(r["views"], r["name"])] = r
    out = ["| views | configuration | val scan AUC per epoch | best (epoch) | mean of last 3 | "
           "val slice AUC, last epoch | train loss first -> last | s |",
           "|---:|---|---|---|---:|---:|---|---:|"]
    for (v, n), r in sorted(rows.items(), key=lambda kv: (-kv[0][0], list(GRID).index(kv[0][1]))):
        out.append(f"| {v} | {GRID[n][0]} | {' '.join(f'{x:.2f}' for x in r['val_auc'])} | "
                   f"{r['best_val_auc']:.2f} ({r['best_epoch']}) | {r['last3_val_auc']:.2f} | "
                   f"{r.get('last_slice_auc', '-')} | {r['train_loss'][0]:.3f} -> "
                   f"{r['train_loss'][-1]:.3f} | {r['seconds']:.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path("data/quick_cf.zarr"))
    ap.add_argument("--views", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--names", nargs="*", default=[], choices=list(GRID))
    ap.add_argument("--out", type=Path, default=Path("results/sino_ablation.jsonl"))
    ap.add_argument("--table", type=Path, help="Print the markdown table of a results file.")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    if not args.store.exists():
        make_store(args.store)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        row = run(args.store, args.views, name, args.epochs, args.out.parent / "runs")
        print(json.dumps(row), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
