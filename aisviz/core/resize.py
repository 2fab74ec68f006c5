"""OpenCV's bilinear resize of a float64 map, in numpy, so that the paper display needs no OpenCV.

The authors' display resizes the heatmap with `cv2.resize(heatmap, image.size)` (INTER_LINEAR) on float64
values. OpenCV's geometry: pixel centres aligned (source x = (dst x + 0.5) * src / dst - 0.5), the two
neighbours weighted linearly, edge pixels repeated, and an exact halving in both directions done as
INTER_AREA (the mean of each 2 x 2 block). This module computes that in float64. OpenCV's pip wheels for
x86-64 run it through Intel IPP, which rounds in its own order: the values agree to about 1e-15, so the
uint8 pixels of the display agree (tests/unit/test_heatmaps.py checks both against cv2.resize). OpenCV without
IPP (e.g. ARM builds) uses float32 weights and differs by up to about 1e-6.
"""
from __future__ import annotations

import numpy as np


def _taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the two source indices and the weight of the second."""
    f = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    s = np.floor(f).astype(np.int64)
    w = f - s
    w[(s < 0) | (s >= src - 1)] = 0  # outside the outer pixel centres: repeat the edge pixel
    s = np.clip(s, 0, src - 1)
    return s, np.minimum(s + 1, src - 1), w


def opencv_linear(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize(values, size) with INTER_LINEAR on float64 values (to about 1e-15).

    Parameters
    ----------
    values : (H, W) array, taken as float64.
    size : (width, height) of the result, as cv2.resize and PIL take it.

    Returns
    -------
    (height, width) float64 array.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or min(v.shape) < 1 or min(size) < 1:
        raise ValueError(f"need a non-empty 2-D map and a positive size; got {v.shape} and {size}")
    width, height = int(size[0]), int(size[1])
    if v.shape[1] == 2 * width and v.shape[0] == 2 * height:  # OpenCV switches to INTER_AREA here
        return (v[0::2, 0::2] + v[0::2, 1::2] + v[1::2, 0::2] + v[1::2, 1::2]) * 0.25
    x0, x1, wx = _taps(v.shape[1], width)
    rows = v[:, x0] * (1 - wx) + v[:, x1] * wx
    y0, y1, wy = _taps(v.shape[0], height)
    return rows[y0] * (1 - wy[:, None]) + rows[y1] * wy[:, None]
