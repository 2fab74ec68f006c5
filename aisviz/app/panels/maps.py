"""Per-map AIS: every map's data-set AIS sorted from the highest, the top-k maps highlighted at the
slider's k, the ten most important maps as a table, and PNG/SVG downloads."""
from __future__ import annotations

from aisviz.app.panels.base import Panel, figure_links
from aisviz.pipeline import derive
from aisviz.viz.figures import bars_figure
from aisviz.viz.plots import ais_bars, topk_colours
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
        self.state.observe(lambda ch: self._on_k(ch["new"]), "k")

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
        self._recolour(self.state.k)

    def _on_k(self, k):
        """Recolour the bars once the slider rests (0.15 s), so that its marker and read-out, what the eye
        follows, are not queued behind a 1280-bar restyle; at once without an event loop (scripts, tests)."""
        loop = self.dash.event_loop
        if loop is None:
            self._recolour(k)
            return
        if getattr(self, "_pending", None) is not None:
            self._pending.cancel()
        self._pending = loop.call_later(0.15, self.dash.guard(lambda: self._recolour(self.state.k),
                                                              "highlight the top-k maps"))

    def _recolour(self, k):

        view = self.state.view
        if view is None:
            return
        bars = view.figures["bars"]
        colours = topk_colours(view.result.n_maps, int(k))
        if list(bars.data[0].marker.color) != colours:
            bars.data[0].marker.color = colours

    def export(self):

        r = self.state.view.result
        self.downloads.value = figure_links(bars_figure(r.ais, self.state.k, title=f"{r.dataset_name}: "
                                                        f"{r.settings.model} {r.settings.layer}"), "ais_per_map")
