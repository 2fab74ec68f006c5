"""Pure functions from a Result to what the panels show: no widgets, no torch, no state.

initial_k: the k the slider starts at. readout: the numbers at k. heatmap: an image's AIS heatmap for
all maps (the paper's) or for the top-k maps. image_metrics: AIS heatmap against saliency for one image.
result_dataframe: the tables of a Result (the ZIP export, the static site).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisviz.core.curves import nearest_k_index
from aisviz.core.heatmaps import ais_heatmap
from aisviz.core.metrics import compare_pair, image_maps
from aisviz.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from aisviz.pipeline.result import Result


def initial_k(result: Result) -> int:
    """The evaluated k nearest to the mean k* over splits (where the held-out test is read)."""
    kv = result.k_values
    return int(kv[nearest_k_index(kv, round(result.summary["mean_k_star"]))])


def readout(result: Result, k: int) -> dict:
    """The numbers the alignment view reports at k, from the stored curves (no recomputation): the
    evaluated k nearest to k, mean and SD over splits of test and train R² with the top-k maps, with k
    random maps, and with all maps (the same at every k)."""
    i = nearest_k_index(result.k_values, k)
    st, s = result.stats, result.summary
    return {
        "k": int(result.k_values[i]), "index": i, "n_maps": result.n_maps,
        "test_topk": float(st["test_topk"]["mean"][i]), "test_topk_sd": float(st["test_topk"]["sd"][i]),
        "train_topk": float(st["train_topk"]["mean"][i]), "train_topk_sd": float(st["train_topk"]["sd"][i]),
        "test_random": float(st["test_random"]["mean"][i]), "test_random_sd": float(st["test_random"]["sd"][i]),
        "test_all": float(s["mean_r2_test_all"]), "test_all_sd": float(s["sd_r2_test_all"]),
        "train_all": float(s["mean_r2_train_all"]), "k_star": float(s["mean_k_star"]),
        "n_splits": int(s["n_splits"]),
    }


def heatmap_k(result: Result, k: int | None, follow_slider: bool) -> int | None:
    """The k whose top-k maps weight the heatmap, or None for all maps (the paper's heatmap, the
    default): only when the user opted in to follow the slider and k is below the number of maps."""
    if not follow_slider or k is None or int(k) >= result.n_maps:
        return None
    return int(k)


def heatmap(result: Result, i: int, k: int | None = None) -> np.ndarray:
    """Image i's raw AIS heatmap at the perturbed layer's size (h, w): image-AIS-weighted average of its
    maps over all maps (k None, the paper) or over the top-k maps by data-set AIS."""

    keep = None
    if k is not None:
        keep = np.zeros(result.n_maps, bool)
        keep[result.ranking[:int(k)]] = True
    return ais_heatmap(result.activations[i], result.image_ais[i], keep=keep)


def image_metrics(result: Result, i: int, heat: np.ndarray) -> dict | None:
    """AIS heatmap vs saliency for image i (compare.compare_pair on both maps through the paper's display
    transform, at the result's display size), or None without saliency maps."""
    if result.saliency is None:
        return None

    a, s = image_maps([heat], [result.saliency[i]], "display")
    mask = None if result.relevant_masks is None else result.relevant_masks[i]
    return compare_pair(a[0], s[0], mask=mask, where=result.image_names[i])


def image_table(result: Result) -> list[dict]:
    """One row per image: r_orig, size, and (with saliency maps) the comparison metrics of its all-maps
    AIS heatmap against the saliency map, at display size."""
    rows = []
    for i, name in enumerate(result.image_names):
        row = {"image": name, "r_orig": float(result.r_orig[i]), "width": result.image_sizes[i][0],
               "height": result.image_sizes[i][1]}
        m = image_metrics(result, i, heatmap(result, i))
        if m is not None:
            row.update({k: v for k, v in m.items() if k not in ("notes", "image")})
            row["notes"] = "; ".join(f"{k}: {v}" for k, v in m["notes"].items())
        rows.append(row)
    return rows


def map_table(result: Result) -> list[dict]:
    """One row per map in channel order: name, channel, data-set AIS, R² without it, rank (1 = highest AIS)."""
    rank = np.empty(result.n_maps, int)
    rank[result.ranking] = np.arange(1, result.n_maps + 1)
    return [{"map": name, "channel": j, "ais": float(result.ais[j]), "r2_without": float(result.r2_without[j]),
             "rank": int(rank[j])} for j, name in enumerate(result.map_names)]


def result_dataframe(result: Result, kind: str = "maps") -> pd.DataFrame:
    """pandas DataFrame of a Result: kind "maps" (one row per map: rank, AIS, R² without it), "images" (one row
    per image: r_orig, size and the heatmap-vs-saliency metrics), "splits", "curves" (one row per split and k),
    "summary" (one row). The tables of the CSV export."""
    import pandas as pd

    if kind == "maps":
        return pd.DataFrame(map_table(result))
    if kind == "images":
        return pd.DataFrame(image_table(result))
    if kind == "splits":
        return pd.DataFrame([{**s, "test_images": ";".join(s["test_images"])} for s in result.splits])
    if kind == "curves":
        n_splits, n_k = len(result.splits), len(result.k_values)
        out = pd.DataFrame({"seed": np.repeat([s["seed"] for s in result.splits], n_k),
                            "fold": np.repeat([s["fold"] for s in result.splits], n_k),
                            "k": np.tile(result.k_values, n_splits)})
        for key, values in result.curves.items():
            out[f"r2_{key}"] = np.asarray(values).ravel()
        return out
    if kind == "summary":
        return pd.DataFrame([result.summary])
    raise UsageError(f"kind must be 'maps', 'images', 'splits', 'curves' or 'summary', not {kind!r}.")
