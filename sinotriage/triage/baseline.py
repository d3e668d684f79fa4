"""A simple, fast reference scorer: logistic regression on intracranial HU histograms.

Acute blood is 50-90 HU on unenhanced head CT, brain parenchyma 20-45 HU, so a slice with a bleed
has an excess of dense intracranial pixels. :func:`histogram_features` turns each slice into the
histogram of its intracranial HU (inside the skull, a 3 x 3 mean filter first to tame noise;
bins of 5 HU from 20 to 100 HU, as log-counts and as fractions of the intracranial area), and
:class:`HistogramBaseline` fits an L2-regularized logistic regression (Newton's method, numpy) on
the slices of a training split. The scan score is the maximum slice score.

It trains in seconds on a CPU, so the worklist, the queue simulation and their documentation have
realistic, imperfect scores before any network is trained, and every network has a floor to beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sinotriage.errors import InputError
from sinotriage.io.predictions import SCAN_ROW, Predictions

__all__ = ["HISTOGRAM_EDGES", "histogram_features", "fit_logistic", "HistogramBaseline"]

#: HU bin edges of :func:`histogram_features`
HISTOGRAM_EDGES: np.ndarray = np.arange(20.0, 105.0, 5.0)
#: HU above which a pixel is bone
BONE_HU = 300.0


def histogram_features(hu: np.ndarray, *, smooth: int = 3) -> np.ndarray:
    """Per-slice features of a HU volume: the histogram of its intracranial HU.

    Parameters
    ----------
    hu
        HU volume ``(D, H, W)``.
    smooth
        Side of the in-plane mean filter applied first (1: none).

    Returns
    -------
    float64 ``(D, 2 * (len(HISTOGRAM_EDGES) - 1))``: ``log1p(count)`` per bin, then
    ``count / intracranial pixels`` per bin. "Intracranial" is the region enclosed by bone
    (``> 300 HU``, holes filled) minus a one-pixel rim next to the bone.
    """
    from scipy import ndimage as ndi

    x = np.asarray(hu, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"hu must be a volume (D, H, W), got shape {x.shape}")
    sm = ndi.uniform_filter(x, size=(1, int(smooth), int(smooth)), mode="nearest") if smooth > 1 else x
    out = np.empty((x.shape[0], 2 * (HISTOGRAM_EDGES.size - 1)))
    for k in range(x.shape[0]):
        bone = x[k] > BONE_HU
        inside = ndi.binary_fill_holes(bone) & ~ndi.binary_dilation(bone, iterations=1)
        counts, _ = np.histogram(sm[k][inside], bins=HISTOGRAM_EDGES)
        out[k] = np.r_[np.log1p(counts), counts / max(int(inside.sum()), 1)]
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, *, C: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression by Newton's method.

    Minimizes ``sum_i logloss(y_i, X_i w + b) + ||w||^2 / (2 C)`` (the intercept ``b`` is not
    penalized): scikit-learn's ``LogisticRegression(C=C)`` objective.

    Parameters
    ----------
    X
        Features ``(n, p)``.
    y
        0/1 labels ``(n,)`` with both classes.
    C
        Inverse regularization strength (> 0).

    Returns
    -------
    (w, b)
        Weights ``(p,)`` and intercept.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, p) and y (n,), got {X.shape} and {y.shape}")
    if not (np.any(y == 1) and np.any(y == 0)) or not np.all(np.isin(y, (0, 1))):
        raise ValueError("y must be 0/1 with both classes present")
    if not float(C) > 0:
        raise ValueError(f"C must be > 0, got {C}")
    n, p = X.shape
    A = np.c_[X, np.ones(n)]
    reg = np.r_[np.full(p, 1.0 / float(C)), 0.0]
    theta = np.zeros(p + 1)
    for _ in range(int(max_iter)):
        z = A @ theta
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))  # a numerically safe sigmoid
        grad = A.T @ (prob - y) + reg * theta
        hess = (A * (prob * (1.0 - prob))[:, None]).T @ A + np.diag(reg + 1e-12)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return theta[:p], float(theta[p])


@dataclass
class HistogramBaseline:
    """Slice classifier: standardized :func:`histogram_features` -> logistic regression.

    Attributes
    ----------
    C : float
        Inverse L2 strength of :func:`fit_logistic`.
    mean, std, weights, intercept
        Learned by :meth:`fit`.
    """

    C: float = 1.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std: np.ndarray = field(default_factory=lambda: np.ones(0))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = 0.0

    def fit_arrays(self, features: np.ndarray, labels: np.ndarray) -> HistogramBaseline:
        """Fit on slice features ``(n, p)`` and slice labels ``(n,)``."""
        X = np.asarray(features, dtype=np.float64)
        self.mean = X.mean(axis=0)
        self.std = X.std(axis=0) + 1e-6
        self.weights, self.intercept = fit_logistic((X - self.mean) / self.std, labels, C=self.C)
        return self

    def slice_scores(self, features: np.ndarray) -> np.ndarray:
        """Logits ``(n,)`` of slice features ``(n, p)``."""
        if self.weights.size == 0:
            raise ValueError("the baseline is not fitted; call fit() or fit_arrays() first")
        X = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return X @ self.weights + self.intercept

    def fit(self, store: Any, split: str = "train", views: int | None = None) -> HistogramBaseline:
        """Fit on the slices (label ``any``) of one split of a store (HU, or ``recon`` at ``views``)."""
        feats, labels = [], []
        for sid in store.study_ids(split=split):
            feats.append(histogram_features(_volume(store, sid, views)))
            labels.append(store.read(sid, "labels")[:, 0])
        if not feats:
            raise InputError(f"store {getattr(store, 'path', store)} has no study in split {split!r}")
        return self.fit_arrays(np.concatenate(feats), np.concatenate(labels))

    def predict(self, store: Any, splits: Sequence[str] = ("val", "test"),
                views: int | None = None) -> Predictions:
        """Score every study of ``splits``: slice rows and a scan row (max) per study, label ``any``."""
        ids, split_col, slice_col, labels, scores = [], [], [], [], []
        for split in dict.fromkeys(splits):
            for sid in store.study_ids(split=split):
                s = self.slice_scores(histogram_features(_volume(store, sid, views)))
                if "labels" in store.arrays(sid):
                    lab = store.read(sid, "labels")[:, 0].astype(np.int8)
                else:
                    lab = np.full(s.shape[0], -1, np.int8)
                ids += [sid] * (s.shape[0] + 1)
                split_col += [split] * (s.shape[0] + 1)
                slice_col += [SCAN_ROW, *range(s.shape[0])]
                labels += [-1 if (lab < 0).any() else int(lab.max()), *lab.tolist()]
                scores += [float(s.max()), *s.tolist()]
        if not ids:
            raise InputError(f"store {getattr(store, 'path', store)} has no study in splits {tuple(splits)}")
        return Predictions(ids, split_col, np.asarray(slice_col), np.asarray(labels), np.asarray(scores),
                           ("any",))


def _volume(store: Any, study_id: str, views: int | None) -> np.ndarray:
    name = "hu" if views is None else "recon"
    return store.read(study_id, name, views=views).astype(np.float32)
