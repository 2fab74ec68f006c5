"""The paper's held-out partitions and k grids: repeated k-fold splits of the images (scikit-learn's KFold with
shuffling, one partition per seed) and the k values a validation evaluates. numpy only, so that a command checks
its folds before anything imports torch."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aisviz.config import PAPER_SEEDS
from aisviz.errors import UsageError


def kfold_splits(n: int, n_folds: int = 5,
                 seeds: Sequence[int] = PAPER_SEEDS) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(seed, fold, train, test) for each seed and fold; the same partitions as scikit-learn's
    KFold(n_folds, shuffle=True, random_state=seed)."""
    if n_folds < 2:
        raise UsageError(f"folds must be at least 2, not {n_folds}.")
    if n // n_folds < 3:
        fix = f"Use at most {n // 3} folds, or more images." if n // 3 >= 2 else \
            "A held-out test needs at least 6 images (2 folds of 3): add images."
        raise UsageError(
            f"{n} images are too few for {n_folds} folds: each test fold needs at least 3 images (3 pairs). {fix}")
    out = []
    for seed in seeds:
        order = np.arange(n)
        np.random.RandomState(seed).shuffle(order)
        sizes = np.full(n_folds, n // n_folds)
        sizes[: n % n_folds] += 1
        start = 0
        for fold, size in enumerate(sizes):
            test = np.sort(order[start:start + size])
            start += size
            out.append((int(seed), fold, np.setdiff1d(np.arange(n), test), test))
    return out


def k_grid(n_maps: int, k_step: int = 1) -> np.ndarray:
    """The k values evaluated: every k (k_step=1, the paper) or 1, 1+step, ... always ending at n_maps."""
    if k_step < 1:
        raise UsageError(f"k_step must be at least 1, not {k_step}.")
    ks = list(range(1, n_maps + 1, k_step))
    if ks[-1] != n_maps:
        ks.append(n_maps)
    return np.asarray(ks)
