"""AIS heatmaps against saliency maps, and the authors' two further analyses (Truong, Pesenti & Hasson 2025).

compare_maps takes both maps non-negative and at the image's size. compare_dataset prepares them with
one transform for both, so that neither map is favoured (TRANSFORMS):
- "display" (default): heatmaps.display_map on both, the paper's display and what the panels and
  heatmaps.mass_inside use: bilinear resize to the image, clip at 0, divide by the maximum, square.
- "linear": the AIS heatmap resized bilinearly and clipped at 0; the saliency map as the provider gave it.
Ranking metrics (relative risk, AUC) are the same under both; the clip makes every non-positive AIS pixel
a tie at 0. CC, SIM, KL and the mass shares change with the squaring.

Top-q% region of a map: every pixel whose value is >= the ceil(q N)-th largest of the N pixels. Ties at
the cut are all included (no pixel is preferred for its position), so the region covers at least q of
the image, more where a tie block straddles the cut (a constant map: the whole image); the rows note it.

A metric that is undefined for an image (e.g. a constant map has no correlation) raises UndefinedMetric
with the reason; the per-image tables record NaN and the reason in the row's "notes", and the summaries
count such images apart. Values are never NaN without a reason.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from aisviz.core.heatmaps import display_map
from aisviz.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

QS = (0.05, 0.10, 0.15)
KL_EPS = np.finfo(np.float64).eps  # 2.2204e-16, MATLAB's eps as in the MIT saliency benchmark's KLdiv
TRANSFORMS = {
    "display": "both maps through heatmaps.display_map: bilinear resize to the image, clip at 0, divide by "
               "the maximum, square (the paper's display)",
    "linear": "AIS heatmap resized bilinearly to the image and clipped at 0; saliency map as given",
}

DEFINITIONS = {
    "rr": "relative risk at the top q% of pixels (each map thresholded at its own top q%, ties at the cut "
          "included): [TP/(TP+FN)] / [FP/(FP+TN)], saliency region = reference, AIS region = prediction. "
          "1 = chance overlap, higher = more overlap; inf when the AIS region lies inside the saliency region "
          "(FP = 0).",
    "auc": "area under the ROC curve of the AIS map as a score for each pixel, positives = the saliency map's "
           "top q% region, negatives = the other pixels (Mann-Whitney U with tied scores given average ranks). "
           "0.5 = chance, 1 = every salient pixel outranks every other.",
    "cc": "Pearson correlation over pixels between the AIS and saliency maps; -1..1, higher = more similar.",
    "sim": "similarity (histogram intersection): sum over pixels of min(P, Q), P and Q the maps divided by "
           "their sums; 0..1, higher = more similar.",
    "kl": "KL divergence sum P log(eps + P / (Q + eps)), P = saliency (target), Q = AIS (prediction), both "
          "divided by their sums, eps = 2.2204e-16 (MIT saliency benchmark); 0 = identical, higher = worse.",
    "ais_mass_inside": "share of the AIS map's sum inside the relevant region (ground-truth mask); compare "
                       "with mask_area (the share a uniform map would have).",
    "saliency_mass_inside": "share of the saliency map's sum inside the relevant region.",
    "mask_area": "share of the image's pixels inside the relevant region (chance level of the mass shares).",
}


class UndefinedMetric(ValueError):
    """The metric has no value for these maps; the message says why."""


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of all values (flattened), ties sharing their mean rank: scipy.stats.rankdata's
    "average", in numpy, because importing scipy.stats costs the dashboard's first view a second."""
    x = np.asarray(x).ravel()
    if np.isnan(x).any():                       # as rankdata: a NaN leaves no order to rank by
        return np.full(x.size, np.nan)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])   # first position of each run of ties
    ends = np.r_[starts[1:], x.size]
    mean_rank = (starts + ends + 1) / 2.0                                  # mean of the 1-based ranks start+1..end
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _key(metric: str, q: float) -> str:
    return f"{metric}_{q * 100:g}"


def _check_q(q: float) -> None:
    if not 0 < q < 1:
        raise UsageError(f"q is a share of pixels in (0, 1), such as 0.05 for the top 5%, not {q}.")


def _check_pair(ais_map, sal_map, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    a, s = np.asarray(ais_map, dtype=np.float64), np.asarray(sal_map, dtype=np.float64)
    at = f" for '{where}'" if where else ""
    if a.ndim != 2 or s.ndim != 2:
        raise DataError(f"maps{at} must be 2-D (height, width); got AIS {a.shape} and saliency {s.shape}.")
    if a.shape != s.shape:
        raise DataError(
            f"the AIS map{at} is {a.shape} but the saliency map is {s.shape} (height, width). Resize the AIS "
            "heatmap to the image first (compare.image_maps, or heatmaps.display_map(h, (width, height))).")
    for label, m in (("AIS", a), ("saliency", s)):
        if not np.isfinite(m).all():
            raise DataError(f"the {label} map{at} has NaN or infinite values; recompute it.")
        if (m < 0).any():
            raise DataError(f"the {label} map{at} has negative values (min {m.min():.4g}); the metrics need "
                             "non-negative maps (use heatmaps.display_map for AIS heatmaps).")
    return a, s


def top_region(m: np.ndarray, q: float) -> np.ndarray:
    """Boolean mask of the top-q share of pixels: value >= the ceil(q N)-th largest (ties at the cut kept)."""
    _check_q(q)
    flat = np.asarray(m, dtype=np.float64).ravel()
    k = max(1, int(np.ceil(q * flat.size - 1e-9)))  # the tolerance keeps 0.05 x 400 at 20, not 21
    cut = np.partition(flat, flat.size - k)[flat.size - k]
    return np.asarray(m) >= cut


def relative_risk(ais_map: np.ndarray, sal_map: np.ndarray, q: float) -> float:
    """The paper's relative risk at the top q (see DEFINITIONS['rr']); inf when FP = 0."""
    a, s = _check_pair(ais_map, sal_map)
    return _rr(top_region(a, q), top_region(s, q), q)


def _rr(pred: np.ndarray, ref: np.ndarray, q: float) -> float:
    if ref.all():
        raise UndefinedMetric(f"the saliency map's top {q:.0%} region is the whole image (a constant map, or "
                              "ties at the cut), so no pixel is outside the reference")
    tp, fn = np.sum(pred & ref), np.sum(~pred & ref)
    fp, tn = np.sum(pred & ~ref), np.sum(~pred & ~ref)
    if fp == 0:
        return float("inf")  # pred is non-empty, so TP > 0: the AIS region lies inside the saliency region
    return float((tp / (tp + fn)) / (fp / (fp + tn)))


def auc(ais_map: np.ndarray, sal_map: np.ndarray, q: float) -> float:
    """ROC AUC of the AIS map for the saliency map's top-q region (see DEFINITIONS['auc'])."""
    a, s = _check_pair(ais_map, sal_map)
    return _auc(_ranks(a), top_region(s, q).ravel(), q)


def _auc(ranks: np.ndarray, positives: np.ndarray, q: float) -> float:
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_neg == 0:
        raise UndefinedMetric(f"the saliency map's top {q:.0%} region is the whole image, so there are no "
                              "negative pixels")
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def cc(ais_map: np.ndarray, sal_map: np.ndarray) -> float:
    """Pearson correlation over pixels (DEFINITIONS['cc'])."""
    a, s = _check_pair(ais_map, sal_map)
    return _pearson(a, s)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.ravel() - x.mean(), y.ravel() - y.mean()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        which = "first" if nx == 0 else "second"
        raise UndefinedMetric(f"the {which} map is constant, so its correlation is undefined")
    return float(np.clip(x @ y / (nx * ny), -1, 1))


def _distribution(m: np.ndarray, label: str) -> np.ndarray:
    total = m.sum()
    if total <= 0:
        raise UndefinedMetric(f"the {label} map is all zero, so it is no distribution")
    return m / total


def sim(ais_map: np.ndarray, sal_map: np.ndarray) -> float:
    """Histogram intersection of the sum-normalised maps (DEFINITIONS['sim'])."""
    return _sim(*_check_pair(ais_map, sal_map))


def _sim(a: np.ndarray, s: np.ndarray) -> float:
    return float(np.minimum(_distribution(a, "AIS"), _distribution(s, "saliency")).sum())


def kl(ais_map: np.ndarray, sal_map: np.ndarray) -> float:
    """KL divergence of the AIS map (prediction) from the saliency map (target) (DEFINITIONS['kl'])."""
    return _kl(*_check_pair(ais_map, sal_map))


def _kl(a: np.ndarray, s: np.ndarray) -> float:
    p, q = _distribution(s, "saliency"), _distribution(a, "AIS")
    return float(np.sum(p * np.log(KL_EPS + p / (q + KL_EPS))))


def mass_share(m: np.ndarray, mask: np.ndarray) -> float:
    """Share of a non-negative map's sum inside a boolean mask (a mask of another size is resized to the
    map with nearest neighbours). Like heatmaps.mass_inside, for maps already at the image's size."""
    m = np.asarray(m, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != m.shape:
        mask = np.asarray(Image.fromarray(mask).resize((m.shape[1], m.shape[0]), Image.Resampling.NEAREST))
    total = m.sum()
    if total <= 0:
        raise UndefinedMetric("the map is all zero, so it has no mass to share out")
    return float(m[mask].sum() / total)


def _metric(row: dict, key: str, fn, *args) -> None:
    try:
        row[key] = fn(*args)
    except UndefinedMetric as exc:
        row[key] = float("nan")
        row["notes"][key] = str(exc)


def compare_pair(ais_map: np.ndarray, sal_map: np.ndarray, mask: np.ndarray | None = None,
                 qs: Sequence[float] = QS, where: str = "") -> dict:
    """Every metric for one image: rr_5, rr_10, rr_15, auc_5, ..., cc, sim, kl (+ mass shares with a mask).
    Undefined values are NaN with the reason in `row['notes'][key]`."""
    a, s = _check_pair(ais_map, sal_map, where)
    row: dict = {"notes": {}}
    ranks = _ranks(a)  # shared by the AUCs at every q
    regions = {q: (top_region(a, q), top_region(s, q)) for q in qs}
    for q, (pred, ref) in regions.items():
        _metric(row, _key("rr", q), _rr, pred, ref, q)
    for q, (pred, ref) in regions.items():
        _metric(row, _key("auc", q), _auc, ranks, ref.ravel(), q)
        for label, region in (("AIS", pred), ("saliency", ref)):
            if region.mean() > q + 0.01:
                row["notes"][f"{label.lower()}_top_{q * 100:g}"] = (
                    f"the {label} top {q:.0%} region covers {region.mean():.1%} of the image (ties at the cut)")
    _metric(row, "cc", _pearson, a, s)
    _metric(row, "sim", _sim, a, s)
    _metric(row, "kl", _kl, a, s)
    if mask is not None:
        _metric(row, "ais_mass_inside", mass_share, a, mask)
        _metric(row, "saliency_mass_inside", mass_share, s, mask)
        row["mask_area"] = float(np.asarray(mask, dtype=bool).mean())
    return row


def summarize(values: Iterable[float]) -> dict:
    """mean and SD (ddof=1) over the finite values, median over all defined ones (inf included), and the
    counts: n (defined), n_inf, n_undefined (NaN). SD is NaN for fewer than two finite values."""
    v = np.asarray(values, dtype=np.float64)
    defined = v[~np.isnan(v)]
    finite = defined[np.isfinite(defined)]
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        "median": float(np.median(defined)) if defined.size else float("nan"),
        "n": int(defined.size),
        "n_inf": int(np.isinf(defined).sum()),
        "n_undefined": int(v.size - defined.size),
    }


def _metric_keys(rows: list[dict]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in ("image", "dataset", "notes") and k not in keys]
    return keys


def _summary(rows: list[dict]) -> dict:
    return {k: summarize([r.get(k, np.nan) for r in rows]) for k in _metric_keys(rows)}


def compare_maps(ais_maps: Sequence[np.ndarray], sal_maps: Sequence[np.ndarray], image_names: Sequence[str],
                 masks: Sequence[np.ndarray | None] | np.ndarray | None = None, qs: Sequence[float] = QS,
                 dataset: str = "") -> dict:
    """Per-image metrics between AIS maps and saliency maps (both at image size, in the same order as
    image_names), plus their summary over images (see summarize). masks: optional relevant regions."""
    names = list(image_names)
    if not (len(ais_maps) == len(sal_maps) == len(names)):
        raise DataError(f"got {len(ais_maps)} AIS maps, {len(sal_maps)} saliency maps and {len(names)} image "
                         "names; give one of each per image, in the same order.")
    if masks is not None and len(masks) != len(names):
        raise DataError(f"got {len(masks)} masks for {len(names)} images; give one per image.")
    for q in qs:
        _check_q(q)
    rows = []
    for i, name in enumerate(names):
        row = {"image": name, **compare_pair(ais_maps[i], sal_maps[i], None if masks is None else masks[i],
                                             qs, where=name)}
        row["notes"] = row.pop("notes")  # keep notes last, for reading
        rows.append(row)
    return {"dataset": dataset, "qs": list(qs), "definitions": DEFINITIONS,
            "images": rows, "summary": _summary(rows)}


def comparison_dataframe(result: dict) -> pd.DataFrame:
    """pandas DataFrame of a compare_maps/compare_dataset result: one row per image, one column per metric
    (notes on undefined values joined into one text column)."""
    import pandas as pd

    rows = [{**{k: v for k, v in row.items() if k != "notes"},
             "notes": "; ".join(f"{k}: {v}" for k, v in row.get("notes", {}).items())} for row in result["images"]]
    df = pd.DataFrame(rows)
    df.insert(0, "dataset", result.get("dataset", ""))
    return df


def pool_results(results: list[dict]) -> dict:
    """Pool compare_maps/compare_dataset results of several data sets: every image counts once."""
    rows = [{"dataset": r["dataset"], **row} for r in results for row in r["images"]]
    return {"datasets": [r["dataset"] for r in results],
            "per_dataset": {r["dataset"]: r["summary"] for r in results},
            "n_images": len(rows), "pooled": _summary(rows)}


def jsonable(obj: Any) -> Any:
    """A result dict made strict-JSON safe: NaN -> None (the reason stays in "notes"), inf -> "inf"."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf") if np.isinf(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _bilinear(h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(np.asarray(h, dtype=np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def image_maps(heatmaps: Sequence[np.ndarray], sal_maps: Sequence[np.ndarray],
               transform: str = "display") -> tuple[list, list]:
    """AIS heatmaps (any size) and saliency maps (image size) -> both at image size, through TRANSFORMS."""
    if transform not in TRANSFORMS:
        raise UsageError(f"transform must be one of {list(TRANSFORMS)}, not {transform!r}.")
    sizes = [(s.shape[1], s.shape[0]) for s in sal_maps]
    if transform == "display":
        return ([display_map(h, size) for h, size in zip(heatmaps, sizes)],
                [display_map(s, size) for s, size in zip(sal_maps, sizes)])
    return [np.clip(_bilinear(h, size), 0, None) for h, size in zip(heatmaps, sizes)], list(sal_maps)


# ---------------------------------------------------------------------------------------------
# The authors' further analyses


def heatmap_agreement(heatmaps_a: Sequence[np.ndarray], heatmaps_b: Sequence[np.ndarray], image_names: Sequence[str],
                      sizes: Sequence[tuple[int, int]]) -> dict:
    """Pixel-wise Pearson r per image between two networks' or weight sets' heatmaps, each resized
    bilinearly to the image (sizes: (width, height) per image) with no clip or squaring, so that negative
    AIS regions count too. Returns per-image rows and the summary over images."""
    names = list(image_names)
    if not (len(heatmaps_a) == len(heatmaps_b) == len(names) == len(sizes)):
        raise DataError("give one heatmap from each source, one image name and one size per image.")
    rows = []
    for name, ha, hb, (width, height) in zip(names, heatmaps_a, heatmaps_b, sizes):
        row = {"image": name, "notes": {}}
        _metric(row, "pearson", _pearson, _bilinear(ha, (width, height)), _bilinear(hb, (width, height)))
        rows.append(row)
    return {"images": rows, "summary": _summary(rows),
            "definition": "pixel-wise Pearson r between the two heatmaps after bilinear resizing to the image"}


def _spearman(x, y) -> float:
    return _pearson(_ranks(x), _ranks(y))


def _ais_rank(ais: np.ndarray, j: int) -> int:
    """Rank of map j in the AIS ranking, 1 = highest AIS (ties: the stable order of argsort)."""
    return int(np.flatnonzero(np.argsort(-ais, kind="stable") == j)[0]) + 1


# ---------------------------------------------------------------------------------------------
# Rendering


