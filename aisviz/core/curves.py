"""Summaries of held-out curves and of similarity matrices that every view shares (no plotting here)."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt


def curve_stats(curves: dict) -> dict:
    """Mean and SD (ddof=1; 0 for one split) over splits of each (n_splits, n_k) curve array, NaN-aware.
    Returns {name: {"mean": (n_k,), "sd": (n_k,), "n": (n_k,) defined splits}}."""
    out = {}
    for name, arr in curves.items():
        a = np.asarray(arr, dtype=np.float64)
        n = np.sum(~np.isnan(a), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, np.nansum(a, 0) / np.maximum(n, 1), np.nan)
            dev = np.where(np.isnan(a), 0.0, a - mean) ** 2
            sd = np.where(n > 1, np.sqrt(dev.sum(0) / np.maximum(n - 1, 1)), 0.0)
        out[name] = {"mean": mean, "sd": sd, "n": n}
    return out


def nearest_k_index(k_values: npt.ArrayLike, k: int) -> int:
    """Index of the evaluated k closest to k (ties: the smaller k)."""
    kv = np.asarray(k_values)
    return int(np.argmin(np.abs(kv - int(k))))


def mds_coordinates(similarity: npt.ArrayLike, n_components: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS of a similarity matrix: dissimilarity d = max(s) - s off the diagonal (max
    over the whole matrix, diagonal included; 0 on the diagonal), B = -1/2 J d² J, coordinates = top
    eigenvectors × sqrt(eigenvalue). Signs are fixed so that the largest |coordinate| of each axis is
    positive (deterministic plots)."""
    s = np.asarray(similarity, dtype=np.float64)
    n = len(s)
    off = ~np.eye(n, dtype=bool)
    d = np.where(off, s.max() - s, 0.0)
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d ** 2) @ j
    vals, vecs = np.linalg.eigh((b + b.T) / 2)
    idx = np.argsort(vals)[::-1][:n_components]
    coords = vecs[:, idx] * np.sqrt(np.clip(vals[idx], 0, None))
    flip = np.sign(coords[np.abs(coords).argmax(0), np.arange(coords.shape[1])])
    return coords * np.where(flip == 0, 1, flip)
