"""Per-map AIS: every map's data-set AIS sorted from the highest, the top-k maps highlighted at the
slider's k (by the browser: the curve panel's LiveMarks recolours the bars), the ten most important maps as a
table, and PNG/SVG downloads."""
from __future__ import annotations

from aisviz.app.panels.base import Panel, figure_links
from aisviz.pipeline import derive
from aisviz.viz.figures import bars_figure
from aisviz.viz.plots import ais_bars
from aisviz.viz.text import map_table_html


class MapsPanel(Panel):
    area = "charts"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        self.slot = self.tag(W.Box(layout=W.Layout(width="100%", min_width="0", min_height="400px",
                                                   overflow="hidden")), "aisviz-slot-bars")
        self.table = self.tag(W.HTML(""), "aisviz-map-table")
        self.downloads = self.tag(W.HTML(""), "aisviz-bars-downloads")
        self.w_export = self.tag(W.Button(description="PNG + SVG of this chart", disabled=True,
                                          layout=W.Layout(width="auto")), "aisviz-bars-export")
        self.w_export.on_click(dash.exporting(self.export, "export the per-map chart"))
        self.root = self.tag(W.VBox([
            W.HTML("<h4 class='aisviz-h'>Per-map AIS (data set): how much the alignment drops without each map"
                   "</h4>"),
            self.slot, W.HTML("<b>Most important maps</b>"), self.table,
            W.HBox([self.w_export, self.downloads], layout=W.Layout(flex_flow="row wrap")),
        ], layout=W.Layout(flex="1 1 420px", min_width="0")), "aisviz-maps-panel")
        self.state.observe(lambda ch: self._on_view(ch["new"]), "view")

    def build(self, view):
        import plotly.graph_objects as go


        r = view.result
        fig = go.FigureWidget(ais_bars(r.ais, derive.initial_k(r), r.map_names, height=400))
        fig.add_class("aisviz-ais-bars")
        view.figures["bars"] = fig

    def _on_view(self, view):
        if view is None:
            return
        self.dash.show_figure("bars", self.slot, view.figures["bars"])
        self.table.value = map_table_html(view.result)
        self.downloads.value = ""
        self.w_export.disabled = False

    def export(self):

        r = self.state.view.result
        self.downloads.value = figure_links(bars_figure(r.ais, self.state.k, title=f"{r.dataset_name}: "
                                                        f"{r.settings.model} {r.settings.layer}"), "ais_per_map")
