"""Checks that stop a silently wrong result: each raises a one-line error or warns (AisvizWarning)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from aisviz.errors import AisvizWarning, DataError

if TYPE_CHECKING:
    import torch

    from aisviz.core.comparison import ComparisonSet

MIN_IMAGES = 4  # image AIS correlates a row of n - 1 values: with 3 images every row correlation is +-1


def check_set_size(dataset: ComparisonSet) -> None:
    if dataset.n_images < MIN_IMAGES:
        raise DataError(
            f"data set '{dataset.name}' has {dataset.n_images} images; AIS needs at least {MIN_IMAGES} (with 3, "
            "each image's row holds 2 similarities, whose correlation is always +-1, so every image AIS is 0). "
            "Add images.")


def warn_negative_alignment(pairs: np.ndarray | torch.Tensor, human: np.ndarray, measure: str,
                            name: str = "") -> list[str]:
    """Warn when the network-human correlation is negative: R^2 squares the sign away, but it usually means a
    dissimilarity matrix was given as a similarity matrix (or the reverse), which inverts every heatmap."""
    from scipy import stats

    pairs = np.asarray(pairs if isinstance(pairs, np.ndarray) else pairs.cpu().numpy(), dtype=np.float64)
    h = np.asarray(human, dtype=np.float64)[np.triu_indices(len(human), 1)]
    ok = np.isfinite(pairs)
    if ok.sum() < 3:
        return []
    x, y = pairs[ok], h[ok]
    if measure == "spearman":  # Spearman's rho is Pearson's r of the (tie-averaged) ranks
        x, y = stats.rankdata(x), stats.rankdata(y)
    r = float(np.corrcoef(x, y)[0, 1])
    if not r < 0:
        return []
    message = (f"data set '{name}': the network-human correlation is negative (r = {r:.3f}); R^2 hides the sign, "
               "but heatmaps and image AIS flip. Check that the matrix holds similarities (higher = more similar): "
               "dissimilarities belong in dissimilarity.npy, or convert them with "
               "aisviz.core.comparison.dissimilarity_to_similarity.")
    warnings.warn(message, AisvizWarning, stacklevel=3)
    return [message]
