"""Held-out alignment: the curve of train/test R² against k with the top-k slider, the read-out at k,
the summary, and PNG/SVG downloads of the curve. The slider only reads the stored curves."""
from __future__ import annotations

import math
import time
from typing import Any

from aisviz.app.panels.base import Panel, figure_links
from aisviz.app.panels.live import LiveMarks
from aisviz.pipeline import derive
from aisviz.viz.figures import curve_figure
from aisviz.viz.plots import MARKER_TEST, MARKER_TRAIN, OTHER_COLOUR, TOPK_COLOUR, alignment_curve
from aisviz.viz.text import readout_html, summary_html

FOLLOW_NOTE = ("Off (default): the heatmaps use all maps, as in the paper. On: they use only the top-k maps by "
               "data-set AIS at the slider's k, and their captions say so.")


class CurvePanel(Panel):
    area = "charts"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        self.readout = self.tag(W.HTML(""), "aisviz-readout")
        self.slot = self.tag(W.Box(layout=W.Layout(width="100%", min_width="0", min_height="440px",
                                                   overflow="hidden")), "aisviz-slot-curve")
        self.w_k = self._slider(1, 1, 1, disabled=True)
        self.w_follow = self.tag(W.Checkbox(value=self.state.follow_slider, indent=False,
                                            description="heatmaps follow the slider (top-k maps)",
                                            layout=W.Layout(width="auto")), "aisviz-follow")
        self.summary = self.tag(W.HTML(""), "aisviz-summary")
        self.marks = LiveMarks()     # the browser moves the marker and recolours the per-map bars
        self.downloads = self.tag(W.HTML(""), "aisviz-curve-downloads")
        self.w_export = self.tag(W.Button(description="PNG + SVG of this chart", disabled=True,
                                          layout=W.Layout(width="auto")), "aisviz-curve-export")
        self.w_export.on_click(dash.exporting(self.export, "export the curve"))
        self.w_follow.observe(dash.guard(lambda ch: setattr(self.state, "follow_slider", ch["new"]),
                                         "switch the heatmap maps"), "value")
        self.root = self.tag(W.VBox([
            W.HTML("<h4 class='aisviz-h'>Held-out alignment: top-k maps by training AIS, tested on held-out "
                   "images</h4>"),
            self.readout, self.slot, self.w_k, self.w_follow, W.HTML(f"<small>{FOLLOW_NOTE}</small>"),
            self.summary, W.HBox([self.w_export, self.downloads], layout=W.Layout(flex_flow="row wrap")), self.marks,
        ], layout=W.Layout(flex="1 1 480px", min_width="0")), "aisviz-curve-panel")
        self.state.observe(lambda ch: self._on_view(ch["new"]), "view")

    def _slider(self, top: int, step: int, value: int, disabled: bool = False):
        """The top-k slider over 1..top; moving it calls set_k."""
        import ipywidgets as W

        slider = self.tag(W.IntSlider(value=value, min=1, max=top, step=step, description="top k maps",
                                      disabled=disabled, continuous_update=True,
                                      style={"description_width": "initial"}, layout=W.Layout(width="100%")),
                          "aisviz-k")
        slider.observe(self.dash.guard(lambda ch: self.set_k(ch["new"]), "move the top-k slider"), "value")
        return slider

    def _new_range(self, top: int, step: int, k: int):
        """Replace the slider by one over 1..top. ipywidgets' slider (noUiSlider) keeps the range it was created
        with for its Home and End keys, so after a change of range End went to the old maximum (k = 1 before
        the first result; issue 19): a new range needs a new slider."""
        old, self.w_k = self.w_k, self._slider(top, step, k)
        self.root.children = tuple(self.w_k if c is old else c for c in self.root.children)
        old.close()

    def build(self, view):
        import plotly.graph_objects as go


        r = view.result
        k0 = derive.initial_k(r)
        fig: Any = go.FigureWidget(alignment_curve(r.k_values, r.curves, r.summary, k=k0, height=440))
        fig.add_class("aisviz-curve")
        view.figures["curve"] = fig
        view.figures["markers"] = [i for i, t in enumerate(fig.data) if t.name in (MARKER_TRAIN, MARKER_TEST)]
        view.figures["k0"] = k0

    def _on_view(self, view):
        if view is None:
            return
        r = view.result
        self.dash.show_figure("curve", self.slot, view.figures["curve"])
        self.summary.value = summary_html(r)
        self.downloads.value = ""
        self.w_export.disabled = False
        prev = getattr(self, "_shown_settings", None)
        k = view.figures["k0"] if prev is None or prev.scorer_key() != r.settings.scorer_key() else \
            min(self.state.k, r.n_maps)
        self._shown_settings = r.settings
        top = max(r.n_maps, 2)
        if self.w_k.max != top:
            self._new_range(top, r.k_step, k)
            self.set_k(k)
            return
        self.w_k.step = r.k_step  # each step lands on an evaluated k (and the last one, n_maps)
        if self.w_k.value != k:
            self.w_k.value = k    # the observer moves the marker
        else:
            self.set_k(k)

    def set_k(self, k: int):
        """Move to k: marker and read-out from the stored curves (no recomputation), then the state's k
        (when following, the heatmaps). The marker and the per-map bars' colours are drawn by the browser from
        one small message (LiveMarks), not by editing the figures from here."""
        view = self.state.view
        if view is None:
            return
        t0 = time.perf_counter()
        r = view.result
        values = derive.readout(r, int(k))
        self.readout.value = readout_html(r, values, int(k))
        self.marks.marks = {"k": int(k), "x": values["k"], "train": _number(values["train_topk"]),
                            "test": _number(values["test_topk"]), "traces": view.figures["markers"],
                            "n_maps": r.n_maps, "colours": [TOPK_COLOUR, OTHER_COLOUR]}
        self.last_readout = values
        self.dash.timings["slider_ms"].append(1000 * (time.perf_counter() - t0))
        self.state.k = int(k)

    def export(self):

        view = self.state.view
        r, k = view.result, self.state.k
        title = f"{r.dataset_name}: {r.settings.model} {r.settings.layer} → {r.settings.readout}"
        self.downloads.value = figure_links(curve_figure(r.k_values, r.stats, r.summary, k=k, title=title),
                                            "alignment_curve")




def _number(x: float) -> float | None:
    """x for JSON: None where it is NaN (an undefined R²; plotly draws no marker, as for NaN)."""
    return None if math.isnan(x) else x
