"""Image browser: a thumbnail grid or an MDS map of the human similarities. Hovering shows an image in
the detail panel; a click pins it (click again, or Unpin, to follow the mouse); the pinned thumbnail is
outlined."""
from __future__ import annotations

from typing import Any

from aisviz.app.panels.base import Panel
from aisviz.viz.plots import cell_at, contact_sheet, grid_geometry, mds_scatter, png_bytes


class BrowserPanel(Panel):
    area = "images"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W
        from ipyevents import Event

        self.thumb_size = dash.options.get("thumb_size")
        self.cache: dict = {}           # image names -> {"sheet", "layout", "mds"}
        self.layout = None              # the shown grid's geometry
        self.w_mode = self.tag(W.ToggleButtons(options=["thumbnail grid", "MDS map"], value="thumbnail grid",
                                               style={"button_width": "120px"}), "aisviz-browser-mode")
        self.w_mode.observe(dash.guard(lambda _: self._apply_mode(), "switch the image view"), "value")
        self.grid = self.tag(W.Image(format="png", layout=W.Layout(width="100%", height="auto")), "aisviz-grid")
        # the pinned thumbnail's outline: a box laid over the grid picture (placed in % of the picture, so it
        # follows the picture's scaling; the mouse passes through it to the picture's events)
        self.pin_mark = self.tag(W.HTML(""), "aisviz-pin-layer")
        self.grid_box = self.tag(W.Box([self.grid, self.pin_mark], layout=W.Layout(display="none", max_width="100%")),
                                 "aisviz-grid-box")
        self.placeholder = self.tag(W.HTML("<div class='aisviz-placeholder' style='width:100%;height:160px'>"
                                           "images appear here when the first result is ready</div>"),
                                    "aisviz-grid-placeholder")
        self.events = Event(source=self.grid, watched_events=["mousemove", "click"],
                            throttle_or_debounce="throttle", wait=40)
        self.events.on_dom_event(dash.guard(self._on_grid_event, "show that image"))
        self.mds_box = self.tag(W.Box(layout=W.Layout(display="none", width="100%", min_width="0")), "aisviz-mds-box")
        self.mds_box.add_class("aisviz-slot-mds")
        help_ = W.HTML("<small>Hover over an image to see it; click to pin it (click again or Unpin to follow the "
                       "mouse). MDS map: images placed by classical MDS of the human similarities (near = judged "
                       "similar).</small>")
        self.root = self.tag(W.VBox([W.HTML("<h4 class='aisviz-h'>Images</h4>"), self.w_mode, self.placeholder,
                                     self.grid_box, self.mds_box, help_],
                                    layout=W.Layout(flex="0 1 440px", min_width="0")), "aisviz-browser")
        self.state.observe(lambda ch: self._on_view(ch["new"]), "view")
        self.state.observe(lambda ch: self._mark_pinned(), ["pinned", "view"])

    def build(self, view):
        import plotly.graph_objects as go


        r = view.result
        key = (r.image_names, r.display_size)
        if key not in self.cache:
            images = [r.image(i) for i in range(r.n_images)]
            geo = grid_geometry(r.n_images, self.thumb_size)
            sheet, layout = contact_sheet(images, cell=geo["cell"], columns=geo["columns"], gap=geo["gap"],
                                          background=None)   # gaps show the page's (light or dark) theme
            thumbs = [png_bytes(im, 40) for im in images]
            mds: Any = go.FigureWidget(  # plotly's trace types are generated for editors, not checkers
                mds_scatter(r.mds, r.image_names, thumbnails=thumbs, height=420))
            mds.add_class("aisviz-mds")
            mds.data[0].on_hover(self.dash.guard(self._on_mds_hover, "show that image"))
            mds.data[0].on_click(self.dash.guard(self._on_mds_click, "pin that image"))
            self.cache = {key: {"sheet": png_bytes(sheet), "layout": layout, "mds": mds}}  # the newest set only
        view.figures["browser"] = self.cache[key]

    def _on_view(self, view):
        if view is None:
            return
        b = view.figures["browser"]
        self.layout = b["layout"]
        if self.grid.value != b["sheet"]:
            self.grid.value = b["sheet"]
            lay = b["layout"]
            self.grid_box.layout.width = f"{lay['columns'] * (lay['cell'] + lay['gap']) - lay['gap']}px"
            self.dash.show_figure("mds", self.mds_box, b["mds"])
        self.placeholder.layout.display = "none"
        self._apply_mode()

    def _apply_mode(self):
        grid = self.w_mode.value == "thumbnail grid"
        self.grid_box.layout.display = "block" if grid and self.layout else "none"
        self.mds_box.layout.display = "none" if grid else "flex"

    def _mark_pinned(self):
        """Outline the pinned image's cell of the grid (nothing when no image is pinned)."""
        lay, i = self.layout, self.state.pinned
        if lay is None or i is None or i >= lay["n"]:
            self.pin_mark.value = ""
            return
        pitch = lay["cell"] + lay["gap"]
        width, height = lay["columns"] * pitch - lay["gap"], lay["rows"] * pitch - lay["gap"]
        r, c = divmod(i, lay["columns"])
        self.pin_mark.value = (f"<div class='aisviz-pin' data-index='{i}' style='left:{100 * c * pitch / width:.4f}%;"
                               f"top:{100 * r * pitch / height:.4f}%;width:{100 * lay['cell'] / width:.4f}%;"
                               f"height:{100 * lay['cell'] / height:.4f}%'></div>")

    def _on_grid_event(self, event):

        if self.layout is None or "dataX" not in event:
            return
        i = cell_at(self.layout, float(event["dataX"]), float(event["dataY"]))
        if i is None:
            return
        if event.get("type") == "click":
            self.dash.pin_image(None if self.state.pinned == i else i)
        else:
            self.dash.hover_image(i)

    def _on_mds_hover(self, trace, points, state):
        if points.point_inds:
            self.dash.hover_image(int(points.point_inds[0]))

    def _on_mds_click(self, trace, points, state):
        if points.point_inds:
            i = int(points.point_inds[0])
            self.dash.pin_image(None if self.state.pinned == i else i)
