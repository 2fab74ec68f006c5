"""Comparing AIS heatmaps with saliency maps over a data set: fit, heatmaps, saliency, metrics and panels."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from aisviz.core.heatmaps import ais_heatmap, check_mode, overlay
from aisviz.core.metrics import QS, TRANSFORMS, _ais_rank, _metric, _spearman, compare_maps, image_maps, summarize
from aisviz.errors import DataError
from aisviz.io.storage import atomic_write
from aisviz.saliency.providers import SaliencyProvider, get_provider, saliency_maps
from aisviz.viz.figures import figure_bytes, panel_figure

if TYPE_CHECKING:
    from aisviz.core.comparison import ComparisonSet
    from aisviz.pipeline.importance import AlignmentImportance


def ais_heatmaps(scorer: AlignmentImportance, minmax_maps: bool = False) -> list[np.ndarray]:
    """The AIS heatmap of every image of a fitted AlignmentImportance, at the feature-map size."""
    return [ais_heatmap(a, w, minmax_maps=minmax_maps) for a, w in zip(scorer.activations_, scorer.image_ais_)]


def compare_dataset(dataset: ComparisonSet, provider: str | Path | SaliencyProvider = "spectral_residual",
                    scorer: AlignmentImportance | None = None, qs: Sequence[float] = QS,
                    transform: str = "display", use_cache: bool = True, progress: bool = False,
                    **scorer_options: Any) -> dict:
    """AIS heatmaps against a saliency provider's maps on one data set, both prepared by `transform`.

    scorer: a fitted AlignmentImportance on this data set, or None to fit one (scorer_options go to
    AlignmentImportance). Returns compare_maps' dict plus the transform, the provider, the network and
    the layer."""

    provider = get_provider(provider)
    if scorer is None:
        from aisviz.pipeline.importance import AlignmentImportance

        scorer = AlignmentImportance(use_cache=use_cache, progress=progress, **scorer_options).fit(dataset)
    if tuple(scorer.image_names_) != tuple(dataset.image_names):
        raise DataError(f"the scorer was fitted on other images than data set '{dataset.name}'; fit it on "
                         "this data set.")
    sal = saliency_maps(dataset, provider, use_cache=use_cache, progress=progress)
    ais, sal = image_maps(ais_heatmaps(scorer), sal, transform)
    out = compare_maps(ais, sal, dataset.image_names, dataset.relevant_masks, qs, dataset=dataset.name)
    out.update(transform=TRANSFORMS[transform], provider=provider.describe(), model=scorer.network_.name,
               layer=scorer.layer_)
    return out


def image_sizes(dataset: ComparisonSet) -> list[tuple[int, int]]:
    """(width, height) of every image of a data set."""
    return [dataset.load_image(i).size for i in range(dataset.n_images)]


def activation_strength(scorer: AlignmentImportance) -> dict:
    """Is AIS just activation strength? For the data set and for each image:
    - the most activated map (largest mean activation) and its rank in the AIS ranking (1 = highest AIS;
      chance = (C + 1) / 2 for C maps);
    - Spearman rho between a map's share of active units (activation > 0, i.e. non-zero after a ReLU)
      and its AIS.
    Data set: mean activation and active share averaged over images, against scorer.ais_. Per image:
    that image's activations against scorer.image_ais_[i]."""
    mean_act = np.stack([a.mean(axis=(1, 2)) for a in scorer.activations_])      # (n, C)
    active = np.stack([(a > 0).mean(axis=(1, 2)) for a in scorer.activations_])  # (n, C)
    n_maps = mean_act.shape[1]
    top = int(mean_act.mean(0).argmax())
    ds = {"most_activated_map": top, "ais_rank_of_most_activated": _ais_rank(scorer.ais_, top), "notes": {}}
    _metric(ds, "spearman_active_vs_ais", _spearman, active.mean(0), scorer.ais_)
    rows = []
    for i, name in enumerate(scorer.image_names_):
        j = int(mean_act[i].argmax())
        row = {"image": name, "most_activated_map": j, "ais_rank_of_most_activated": _ais_rank(scorer.image_ais_[i], j),
               "notes": {}}
        _metric(row, "spearman_active_vs_ais", _spearman, active[i], scorer.image_ais_[i])
        rows.append(row)
    summary = {k: summarize([r[k] for r in rows]) for k in ("ais_rank_of_most_activated", "spearman_active_vs_ais")}
    return {"n_maps": n_maps, "chance_rank": (n_maps + 1) / 2, "dataset": ds, "images": rows, "summary": summary}


def side_by_side(image: Image.Image, heatmap: np.ndarray, sal_map: np.ndarray, gap: int = 4,
                 mode: str = "default") -> Image.Image:
    """image | AIS heatmap overlay | saliency overlay as one plain strip, both overlays through
    heatmaps.overlay in the display mode ("default" or "paper"). heatmap: the raw AIS heatmap (any size),
    not a display map, which the overlay would transform again."""
    rgb = image.convert("RGB")
    panels = [rgb, overlay(rgb, heatmap, mode), overlay(rgb, sal_map, mode)]
    w, h = rgb.size
    canvas = Image.new("RGB", (3 * w + 2 * gap, h), "white")
    for k, p in enumerate(panels):
        canvas.paste(p, (k * (w + gap), 0))
    return canvas


def export_panels(dataset: ComparisonSet, ais_maps: Sequence[np.ndarray], sal_maps: Sequence[np.ndarray],
                  out_dir: str | Path, mode: str = "default", provider: str = "saliency",
                  heatmap_title: str = "AIS heatmap (all maps)") -> list[Path]:
    """Write labelled panels (figures.panel_figure: titles and colour bars) as <image stem>.png into out_dir
    (atomic writes); returns the paths. ais_maps: raw AIS heatmaps (e.g. ais_heatmaps(scorer)); sal_maps:
    saliency maps at image size; mode: the heatmaps display mode."""

    check_mode(mode)
    if not (len(ais_maps) == len(sal_maps) == dataset.n_images):
        raise DataError(f"give one AIS heatmap and one saliency map per image ({dataset.n_images}).")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    stems = [Path(n).stem for n in dataset.image_names]
    if len(set(stems)) < len(stems):  # 'a.png' and 'a.jpg': keep the extension in the file name
        stems = [n.replace(".", "_") for n in dataset.image_names]
    paths = []
    for i, stem in enumerate(stems):
        fig = panel_figure(dataset.load_image(i), ais_maps[i], sal_maps[i], mode=mode,
                           title=f"{dataset.name}: {dataset.image_names[i]}", heatmap_title=heatmap_title,
                           saliency_title=provider)
        png = figure_bytes(fig, "png", dpi=100)
        paths.append(atomic_write(out / f"{stem}.png", lambda f, png=png: f.write(png)))
    return paths
