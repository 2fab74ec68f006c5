"""AIS heatmaps: the AIS-weighted average of an image's feature maps, and the paper's display.

heatmap_i = sum_j AIS(i, j) A_ij / sum_j AIS(i, j)  (np.average(A_i, axis=0, weights=AIS_i), the paper).
AIS can be negative, so the weights can sum to about zero (or below): then the map is divided by the sum
of absolute weights instead, which keeps the sign meaningful (positive = regions whose features support
the image's alignment with people). Display (paper): bilinear resize to the image, clip negative values
to 0 (an aisviz choice: squaring would turn them into positive evidence), divide by the maximum,
square, jet colour map, overlay at alpha 0.6.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def ais_heatmap(activation: np.ndarray, weights: np.ndarray, minmax_maps: bool = False,
                keep: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) feature maps of one image and (C,) AIS weights -> (H, W) heatmap.

    minmax_maps: min-max scale each map first (the paper's variant). keep: optional (C,) boolean mask of
    the maps to use (e.g. the top-k maps); the others get weight 0."""
    a = np.asarray(activation, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if a.ndim != 3 or w.shape != (a.shape[0],):
        raise ValueError(f"need activations (C, H, W) and C weights; got {a.shape} and {w.shape}")
    if keep is not None:
        w = np.where(keep, w, 0.0)
    if minmax_maps:
        lo = a.min(axis=(1, 2), keepdims=True)
        span = a.max(axis=(1, 2), keepdims=True) - lo
        a = np.divide(a - lo, span, out=np.zeros_like(a), where=span > 0)
    total, scale = w.sum(), np.abs(w).sum()
    if scale == 0:
        return np.zeros(a.shape[1:])
    denominator = total if total > 1e-6 * scale else scale
    return np.tensordot(w, a, axes=1) / denominator


def jet(values: np.ndarray) -> np.ndarray:
    """Matplotlib's 'jet' colour map (piecewise linear) for values in [0, 1] -> uint8 RGB."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def display_map(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The paper's display transform: resize (bilinear) to size=(width, height), clip at 0, divide by
    the maximum, square. Returns float values in [0, 1] (all zero when nothing is positive)."""
    h = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F").resize(size, Image.BILINEAR)
    h = np.clip(np.asarray(h, dtype=np.float64), 0, None)
    top = h.max()
    return (h / top) ** 2 if top > 0 else h


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.6) -> Image.Image:
    """The image with the heatmap in jet colours on top at `alpha` (paper: 0.6)."""
    rgb = image.convert("RGB")
    colours = Image.fromarray(jet(display_map(heatmap, rgb.size)))
    return Image.blend(rgb, colours, alpha)


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of a heatmap's displayed mass (display_map at the mask's size) inside a boolean mask."""
    h = display_map(heatmap, (mask.shape[1], mask.shape[0]))
    total = h.sum()
    return float(h[mask].sum() / total) if total > 0 else float("nan")
