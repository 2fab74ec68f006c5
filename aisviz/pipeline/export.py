"""Exports of a Result, pure (bytes out): a ZIP of CSVs with a JSON of the settings, and the
labelled image | heatmap | saliency panel of one image. No widgets, no torch."""
from __future__ import annotations

import io
import json
import re
import zipfile
from typing import TYPE_CHECKING

from aisviz.pipeline import derive
from aisviz.viz.figures import figure_bytes, panel_figure

if TYPE_CHECKING:
    from aisviz.pipeline.result import Result

TABLES = {"maps.csv": "maps", "splits.csv": "splits", "curves.csv": "curves", "images.csv": "images",
          "summary.csv": "summary"}
README = """aisviz results ({dataset}; {model} {layer} -> {readout})
maps.csv     one row per feature map: data-set AIS = R2(all maps) - R2(map removed), R2 without it, rank
splits.csv   one row per validation split: k* (argmax of training R2, as the number of maps kept: the authors'
             0-based index + 1), train/test R2 with all, top-k*, random k*
curves.csv   one row per split and evaluated k: train/test R2 with the top-k maps by training AIS and k random maps
images.csv   one row per image: r_orig (Pearson r of its similarity row with the human row, all maps) and, with
             saliency maps, its all-maps AIS heatmap vs the saliency map (display size <= {size} px)
summary.csv  means and SDs over splits, one-sided paired t-tests (the paper's) and corrected resampled t-tests
settings.json  the settings, engine, weights and data set these numbers come from
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "results"


def zip_name(result: Result) -> str:
    s = result.settings
    assert s.layer is not None, "a Result's settings name the resolved layer"
    return f"aisviz_{_slug(result.dataset_name)}_{_slug(s.model)}_{_slug(s.layer)}.zip"


def settings_json(result: Result) -> dict:
    return {"settings": result.settings.to_dict(), "dataset": result.dataset_name, "observer": result.observer,
            "n_images": result.n_images, "n_maps": result.n_maps, "weights": result.weights_label,
            "engine": result.engine, "k_step": result.k_step, "r2_all": result.r2_all,
            "saliency_provider": result.saliency_provider, "saliency_error": result.saliency_error,
            "display_size": result.display_size, "source": result.source}


def results_zip(result: Result) -> bytes:
    """ZIP bytes: maps.csv, splits.csv, curves.csv, images.csv, summary.csv, settings.json, README.txt."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, kind in TABLES.items():
            z.writestr(name, derive.result_dataframe(result, kind).to_csv(index=False))
        z.writestr("settings.json", json.dumps(settings_json(result), indent=2, default=str))
        s = result.settings
        z.writestr("README.txt", README.format(dataset=result.dataset_name, model=s.model, layer=s.layer,
                                               readout=s.readout, size=result.display_size))
    return buf.getvalue()


def panel_png(result: Result, i: int, k: int | None, mode: str = "default") -> bytes:
    """Image i's labelled panel (image | AIS heatmap | saliency, colour bars) as PNG bytes, at display size."""

    heat = derive.heatmap(result, i, k)
    which = "all maps" if k is None else f"top {k} maps by data-set AIS"
    fig = panel_figure(result.image(i), heat, None if result.saliency is None else result.saliency[i], mode=mode,
                       title=f"{result.dataset_name}: {result.image_names[i]} ({result.settings.model} "
                             f"{result.settings.layer}; r_orig = {result.r_orig[i]:.3f})",
                       heatmap_title=f"AIS heatmap ({which})", saliency_title=result.saliency_provider or "saliency")
    return figure_bytes(fig, "png")
