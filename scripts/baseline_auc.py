"""Scan-level AUC of the intensity baseline on synthetic head CT.

The score of a study is the fraction of its brain voxels in 50-90 HU
(:func:`sinotriage.phantoms.intensity_baseline`); the AUC against the scan label is computed
with scikit-learn over ``--studies`` seeds. The "standard" difficulty is tuned so that this AUC
lies between 0.6 and 0.85 (docs/data.md, "Synthetic head CT").

    python scripts/baseline_auc.py --studies 200 --difficulty standard --out auc.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from rich.progress import track
from sklearn.metrics import roc_auc_score

from sinotriage.phantoms import DIFFICULTIES, head_ct, intensity_baseline


def baseline_auc(studies: int, difficulty: str, prevalence: float, n_slices: int,
                 image_size: int, seed0: int = 0, progress: bool = True) -> dict[str, object]:
    """Generate ``studies`` studies (seeds ``seed0 ..``) and return the baseline's AUC."""
    labels, scores = [], []
    seeds = range(seed0, seed0 + studies)
    it = track(seeds, description=f"{difficulty} studies") if progress else seeds
    t0 = time.perf_counter()
    for seed in it:
        case = head_ct(seed, n_slices=n_slices, image_size=image_size,
                       pixel_size=250.0 / image_size, difficulty=difficulty,
                       prevalence=prevalence)
        labels.append(case.label)
        scores.append(intensity_baseline(case))
    y, s = np.asarray(labels), np.asarray(scores)
    return {"difficulty": difficulty, "studies": studies, "seed0": seed0,
            "prevalence": prevalence, "n_slices": n_slices, "image_size": image_size,
            "abnormal": int(y.sum()), "auc": float(roc_auc_score(y, s)),
            "seconds_per_study": (time.perf_counter() - t0) / studies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--difficulty", default="all", choices=["all", *DIFFICULTIES])
    ap.add_argument("--prevalence", type=float, default=0.5)
    ap.add_argument("--slices", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    levels = list(DIFFICULTIES) if args.difficulty == "all" else [args.difficulty]
    results = []
    for level in levels:
        r = baseline_auc(args.studies, level, args.prevalence, args.slices, args.image_size,
                         args.seed0)
        print(json.dumps(r))
        results.append(r)
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(results, fh, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
