"""Layer comparison: alignment along network depth for the shown data set and network (aisviz.sweep cells).

Rows come from sweep folders: the dashboard's own (AISVIZ_HOME/sweeps/dashboard, where layers computed
here are kept) and any folder typed in (`aisviz sweep --out DIR`). Only cells computed with the shown
settings are used (data set, network, weights, read-out, similarity, measure, folds, seeds, random orders;
the k step may differ). "Compute" runs the selected layers in the background through a Session (the
dashboard's job runner: the newest request wins, a superseded job stops within a chunk); finished cells
are reused. Clicking a point opens that layer in the other views (it sets the perturbed-layer control).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisviz.app.panels.base import Panel
from aisviz.app.session import Session, Superseded
from aisviz.app.state import settings_with_layer
from aisviz.config import aisviz_home, paper_seeds
from aisviz.errors import UsageError
from aisviz.models.networks import load_network
from aisviz.pipeline.result import Result
from aisviz.pipeline.settings import Settings
from aisviz.pipeline.sweeps import layer_table, read_cells, run_cells
from aisviz.viz.plots import layer_comparison
from aisviz.viz.text import esc

MATCHED = ("weights", "readout", "similarity", "measure", "folds", "n_seeds", "n_random")


@dataclass(frozen=True)
class LayerRequest(Settings):
    """The shown settings plus the layers to compute: the key of one layer-comparison job."""

    layers: tuple = ()


@dataclass(frozen=True)
class LayerRows:
    """A finished layer-comparison job: its request and one sweep row per layer."""

    settings: LayerRequest
    rows: list


def own_folder() -> Path:

    return aisviz_home() / "sweeps" / "dashboard"


class LayerComparisonPanel(Panel):
    area = "wide"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W


        self.folders = [own_folder()]
        self.table = None              # the rows shown (aisviz.sweep.layer_table), or None
        self.w_source = self.tag(W.Text(placeholder="a sweep folder (aisviz sweep --out DIR)",
                                        description="sweep results", style={"description_width": "initial"},
                                        layout=W.Layout(flex="1 1 320px")), "aisviz-sweep-folder")
        self.w_add = self.tag(W.Button(description="Add folder", layout=W.Layout(width="auto")), "aisviz-sweep-add")
        self.w_layers = self.tag(W.SelectMultiple(options=[], rows=6, description="layers",
                                                  layout=W.Layout(width="320px")), "aisviz-sweep-layers")
        self.w_compute = self.tag(W.Button(description="Compute the selected layers", disabled=True,
                                           layout=W.Layout(width="auto")), "aisviz-sweep-compute")
        self.w_progress = self.tag(W.FloatProgress(value=0, min=0, max=1, layout=W.Layout(width="320px")),
                                   "aisviz-sweep-progress")
        self.note = self.tag(W.HTML(""), "aisviz-sweep-note")
        self.slot = self.tag(W.Box(layout=W.Layout(width="100%")), "aisviz-layer-slot")
        on = dash.guard
        self.w_add.on_click(on(lambda _: self.add_folder(self.w_source.value), "read that sweep folder"))
        self.w_compute.on_click(on(lambda _: self.compute(list(self.w_layers.value)), "compute the layers"))
        self.session = Session(self, run_async=dash.session.run_async, compute=self._compute)
        self.root = self.tag(W.VBox([
            W.HTML("<h4 class='aisviz-h'>Layer comparison: held-out alignment by perturbed layer</h4>"),
            self.slot, self.note,
            W.HBox([self.w_layers, W.VBox([self.w_compute, self.w_progress])],
                   layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.w_source, self.w_add], layout=W.Layout(flex_flow="row wrap")),
        ], layout=W.Layout(width="100%")), "aisviz-layer-panel")
        self.state.observe(lambda ch: self.refresh(), "view")

    # -- what is shown

    def _shown(self) -> Result | None:
        view = self.state.view
        return None if view is None else view.result

    def rows(self):
        """The cells of every sweep folder that match the shown result's settings, by depth; None while no folder
        holds a finished cell (the common first view: pandas, half a second of it, is not imported then)."""
        if not any(next(Path(f).glob("cells/*/row.json"), None) for f in self.folders):
            return None
        import pandas as pd

        r = self._shown()
        assert r is not None, "the rows are read only while a result is shown"
        cells = pd.concat([read_cells(f) for f in self.folders], ignore_index=True)
        s = r.settings
        want = {"weights": s.weights, "readout": s.readout, "similarity": s.similarity, "measure": s.measure,
                "folds": s.n_folds, "n_seeds": s.n_seeds, "n_random": s.n_random}
        keep = cells.dataset.isin([s.dataset, r.dataset_name]) & (cells.model == s.model)
        for column in MATCHED:
            keep &= cells[column] == want[column]
        # one data set under either name (the dashboard's key, or the set's own name in a sweep run elsewhere)
        cells = cells[keep & (cells.status != "failed")].assign(dataset=s.dataset)
        cells = cells.drop_duplicates("layer", keep="last")  # the folder added last wins
        return layer_table(cells) if len(cells) else cells

    def refresh(self):
        """Rebuild the layer menu and the figure for the shown result (main thread)."""
        r = self._shown()
        if r is None:
            return
        rows = self.dash.session.layers.get(r.settings.model) or []
        conv = [row["name"] for row in rows if row["conv_map"]]
        if list(self.w_layers.options) != conv:
            self.w_layers.options = conv
            self.w_layers.value = tuple(dict.fromkeys(conv[-3:] + [r.settings.layer]))
        self.w_compute.disabled = self.session.busy or not conv
        self.table = self.rows()
        self._draw()

    def _draw(self):
        import plotly.graph_objects as go


        r = self._shown()
        assert r is not None, "drawn only while a result is shown"
        if self.table is None or not len(self.table):
            self.slot.children = ()
            self.note.value = (f"<small>No layer results yet for {esc(r.dataset_name)} · {esc(r.settings.model)} → "
                               f"{esc(r.settings.readout)} with these settings. Select layers and compute them "
                               "here, or add a folder written by <code>aisviz sweep</code>.</small>")
            return
        fig: Any = go.FigureWidget(layer_comparison(self.table, height=380))
        fig.add_class("aisviz-layer-figure")
        for trace in fig.data:
            if trace.customdata is not None:
                trace.on_click(self.dash.guard(self._clicked, "open that layer"))
        self.slot.children = (fig,)
        self.figure = fig
        steps = ", ".join(sorted({str(k or "auto") for k in self.table.k_step}))
        self.note.value = (f"<small>{len(self.table)} layers of {esc(r.settings.model)} on "
                           f"{esc(r.dataset_name)}, read out at {esc(r.settings.readout)}: {r.settings.n_folds} "
                           f"folds × {r.settings.n_seeds} seeds, k step {esc(steps)}. All maps, all pairs is the "
                           "read-out's alignment (the same for every perturbed layer); the test R² lines show what "
                           "selecting that layer's maps by training AIS does on held-out images (mean ± SD over "
                           "splits); all of these are group-level R², against the mean human matrix. Sets with "
                           "per-subject matrices get a second panel of subject-level R² (the mean over people of "
                           "R² with each person): the noise-ceiling band bounds that, not the group-level lines. "
                           "Click a point to open that layer.</small>")

    def add_folder(self, path: str):
        """Show the cells of a sweep folder too."""
        folder = Path((path or "").strip()).expanduser()
        if not (folder / "cells").is_dir():
            raise UsageError(f"{folder} holds no sweep results (no cells/ folder). Give the folder passed to "
                             "`aisviz sweep --out`.")
        if folder not in self.folders:
            self.folders.append(folder)
        self.refresh()

    def _clicked(self, trace, points, _selector=None):
        if points.point_inds:
            self.open_layer(trace.customdata[points.point_inds[0]])

    def open_layer(self, layer: str):
        """Show this layer in the other views, as if it were picked in the perturbed-layer control."""

        settings = self.state.settings
        rows = self.dash.session.layers.get(settings.model) or []
        if layer not in [r["name"] for r in rows if r["conv_map"]]:
            raise UsageError(f"{layer!r} is not a perturbed layer of the shown network; pick one in the layer menu.")
        self.state.settings = settings_with_layer(settings, rows, layer)
        self.state.requests += 1

    # -- computing (the Session calls these)

    def compute(self, layers: list[str]):
        """Compute the selected layers for the shown settings in the background (finished cells are reused)."""
        r = self._shown()
        if r is None or not layers:
            raise UsageError("select one or more layers first (and wait for the first results).")
        s = r.settings
        self.w_compute.disabled = True
        self.w_progress.value = 0
        self.session.request(LayerRequest(**s.to_dict(), layers=tuple(layers)))

    def _compute(self, request: LayerRequest, report, clicked_at):
        n = len(request.layers)
        config = {"readout": request.readout, "folds": request.n_folds, "seeds": tuple(paper_seeds(request.n_seeds)),
                  "k_step": request.k_step, "n_random": request.n_random, "weights": request.weights,
                  "similarity": request.similarity, "measure": request.measure, "dtype": "float32",
                  "device": "auto", "use_cache": True}

        def progress(i, stage, fraction, text):  # each layer: its features, then its validation, half the bar each
            within = 0.5 * fraction + (0.5 if stage == "validation" else 0.0)
            self._fraction = min((i + within) / n, 1.0)
            report("validation", self._fraction, f"layer {request.layers[i]} ({i + 1} of {n}): {text}")

        rows = run_cells(request.dataset, request.model, list(request.layers), config, own_folder(),
                         lambda: self.dash.session.dataset(request.dataset),
                         lambda: load_network(request.model, weights=request.weights),
                         callback=progress, stop_on=(Superseded,))
        return LayerRows(request, rows)

    _fraction = 0.0

    def progress(self, job, stage, fraction, text):
        def show():
            self.w_progress.value = self._fraction
            self.note.value = f"<small>computing: {esc(text)}</small>"
        self.dash.on_main(show)

    def finished(self, job, result: LayerRows):
        def show():
            failed = [f"{row['layer']}: {row['error']}" for row in result.rows if row["status"] == "failed"]
            self.w_progress.value = 1.0
            self.refresh()
            if failed:
                self.dash.show_error("compute every layer", "Some layers failed: " + "; ".join(failed))
        self.dash.on_main(show)

    def failed(self, job, exc):
        def show():
            self.w_compute.disabled = False
            self.dash.show_error("compute the layer comparison", exc)
        self.dash.on_main(show)
