"""AIS heatmaps: the AIS-weighted average of an image's feature maps, and the paper's display.

heatmap_i = sum_j AIS(i, j) A_ij / sum_j AIS(i, j)  (np.average(A_i, axis=0, weights=AIS_i), the paper).
AIS can be negative, so the weights can sum to about zero (or below): then the map is divided by the sum
of absolute weights instead, which keeps the sign meaningful (positive = regions whose features support
the image's alignment with people).

Two display modes (display_values, overlay): "paper" reproduces the authors' display pixel for pixel
(OpenCV's bilinear resize in float64, divide by the maximum without clipping, square, matplotlib's jet cast
to uint8, then 0.6 image + 0.4 colours cast to uint8);
"default" clips at 0, divides by the maximum (linear) and uses viridis, a perceptually uniform,
colour-blind-safe colormap, shown with a colour bar. display_map (clip, /max, square) is the transform
the comparison metrics use for both maps (aisviz.core.metrics).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from aisviz.core.resize import opencv_linear
from aisviz.errors import DataError, UsageError

if TYPE_CHECKING:
    from matplotlib.colors import Colormap


def ais_heatmap(activation: np.ndarray, weights: np.ndarray, minmax_maps: bool = False,
                keep: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W) feature maps of one image and (C,) AIS weights -> (H, W) heatmap.

    minmax_maps: min-max scale each map first (the paper's variant). keep: optional (C,) boolean mask of
    the maps to use (e.g. the top-k maps); the others get weight 0."""
    a = np.asarray(activation, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if a.ndim != 3 or w.shape != (a.shape[0],):
        raise DataError(f"need activations (C, H, W) and C weights; got {a.shape} and {w.shape}")
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


DISPLAY_MODES = ("default", "paper")
DEFAULT_CMAP = "viridis"     # perceptually uniform and readable with the common colour-vision deficiencies
PAPER_CMAP = "jet"
DEFAULT_ALPHA = 0.5          # default mode: weight of the colours over the image
PAPER_IMAGE_WEIGHT = 0.6     # paper mode: 0.6 image + 0.4 heatmap colours (the authors' display)


def check_mode(mode: str) -> str:
    if mode not in DISPLAY_MODES:
        raise UsageError(f"display mode must be one of {DISPLAY_MODES}, not {mode!r}.")
    return mode


def _resize(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(h, dtype=np.float64)


def display_map(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The display transform the comparison metrics use: resize (bilinear) to size=(width, height), clip
    at 0, divide by the maximum, square. Returns float values in [0, 1] (all zero when nothing is positive)."""
    h = np.clip(_resize(heatmap, size), 0, None)
    top = h.max()
    return (h / top) ** 2 if top > 0 else h


def display_values(heatmap: np.ndarray, size: tuple[int, int], mode: str = "default") -> np.ndarray:
    """What the colours encode, at size=(width, height).

    "paper" (the authors' display): OpenCV's bilinear resize in float64 (as their cv2.resize), divide by the
    maximum without clipping, square (so strongly negative regions also come out high). "default": bilinear
    resize, clip at 0, divide by the maximum: the share of the image's largest positive heatmap value,
    linear, in [0, 1]."""
    if check_mode(mode) == "paper":
        h = opencv_linear(heatmap, size)
        top = h.max()
        return (h / top) ** 2 if top != 0 else np.zeros_like(h)
    h = _resize(heatmap, size)
    top = h.max()
    h = np.clip(h, 0, None)
    return h / top if top > 0 else h


def colormap(mode: str = "default") -> Colormap:
    """matplotlib's colormap for a display mode (jet for "paper", viridis by default)."""
    from matplotlib import colormaps

    return colormaps[PAPER_CMAP if check_mode(mode) == "paper" else DEFAULT_CMAP]


def colours(values: np.ndarray, mode: str = "default") -> np.ndarray:
    """Display values -> float RGB in [0, 1] through the mode's matplotlib colormap (values above 1 take
    the top colour)."""
    return colormap(mode)(np.asarray(values, dtype=np.float64))[..., :3]


def overlay(image: Image.Image, heatmap: np.ndarray, mode: str = "default") -> Image.Image:
    """The image with the heatmap's colours blended over it. "paper": the authors' display, pixel for pixel:
    the jet colours of display_values cast to uint8 first, then 0.6 image + 0.4 colours. "default": 0.5
    image + 0.5 viridis colours of the clipped, max-scaled heatmap. uint8 by truncation, as numpy's astype."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    size = (rgb.shape[1], rgb.shape[0])
    heat = 255.0 * colours(display_values(heatmap, size, mode), mode)
    if mode == "paper":
        heat = heat.astype(np.uint8)  # the authors cast the colours before blending
    w = PAPER_IMAGE_WEIGHT if mode == "paper" else 1.0 - DEFAULT_ALPHA
    return Image.fromarray((w * rgb + (1.0 - w) * heat).astype(np.uint8))


def scale_note(mode: str = "default", what: str = "AIS heatmap") -> str:
    """One line saying what the colour scale of a mode means."""
    if check_mode(mode) == "paper":
        return (f"{what}: (value / image max)², jet, 0.6 image + 0.4 colour (the authors' display); negative "
                "values also square to high colours")
    return f"{what}: value / image max, clipped at 0 (linear), viridis, 0.5 image + 0.5 colour"


def colourbar_png(mode: str = "default", height: int = 200, width: int = 14) -> bytes:
    """A vertical colour bar (top = 1) as PNG bytes, for panels that show overlays of this mode."""
    import io

    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(width, 1)
    buf = io.BytesIO()
    Image.fromarray((255 * colours(ramp, mode)).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of a heatmap's displayed mass (display_map at the mask's size) inside a boolean mask."""
    h = display_map(heatmap, (mask.shape[1], mask.shape[0]))
    total = h.sum()
    return float(h[mask].sum() / total) if total > 0 else float("nan")
