"""Detail panel: the shown image | its AIS heatmap | its saliency map, with colour bars that state the scale
in the chosen display mode, the comparison metrics beside their chance levels, and a download of the
labelled panel."""
from __future__ import annotations

import logging
import os
import threading
import time

from aisviz.app.panels.base import Panel, download_link
from aisviz.app.panels.live import CachedImage
from aisviz.core.heatmaps import colourbar_png, overlay, scale_note
from aisviz.pipeline import derive
from aisviz.pipeline.export import panel_png
from aisviz.viz.plots import png_bytes
from aisviz.viz.text import data_attrs, esc, metrics_html

log = logging.getLogger("aisviz.app")
PANEL_SIZE = 200             # px of each of the three images


def placeholder_png(size: int) -> bytes:
    from PIL import Image


    return png_bytes(Image.new("RGB", (size, size), (232, 232, 232)))


class DetailPanel(Panel):
    area = "images"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        self.size = dash.options.get("panel_size") or PANEL_SIZE
        px = f"{self.size}px"
        self.empty = empty = placeholder_png(self.size)

        def slot(cls):  # a grey placeholder until the first result, never a broken image; a picture shown
            # before is not sent again (hovering back and forth sends keys, not bytes)
            return CachedImage(empty, css_class=cls, size=px, layout=W.Layout(width=px, height=px))

        self.p_image, self.p_ais, self.p_sal = (slot("aisviz-panel-image"), slot("aisviz-panel-ais"),
                                                slot("aisviz-panel-saliency"))
        self.empty_bar = bar = placeholder_png(14)
        self.bar_ais = self.tag(W.Image(value=bar, format="png", layout=W.Layout(width="14px", height=px)),
                                "aisviz-bar-ais")
        self.bar_sal = self.tag(W.Image(value=bar, format="png", layout=W.Layout(width="14px", height=px)),
                                "aisviz-bar-sal")
        self.cap_image = self.tag(W.HTML("image"), "aisviz-image-caption")
        self.cap_ais = self.tag(W.HTML("AIS heatmap"), "aisviz-ais-caption")
        self.cap_sal = self.tag(W.HTML("saliency"), "aisviz-sal-caption")
        self.scale = self.tag(W.HTML(""), "aisviz-scale-note")
        self.title = self.tag(W.HTML("<div class='aisviz-placeholder'>computing the first result…</div>"),
                              "aisviz-detail-title")
        self.metrics = self.tag(W.HTML(""), "aisviz-metrics")
        self.w_unpin = self.tag(W.Button(description="Unpin", disabled=True, layout=W.Layout(width="80px")),
                                "aisviz-unpin")
        self.w_unpin.on_click(dash.guard(lambda _: dash.pin_image(None), "unpin"))
        # short labels, each as wide as its text (a fixed 190 px cut "default (viridis, colour b…" in a
        # narrow notebook); the tooltips say the rest
        self.w_display = self.tag(W.ToggleButtons(options=[("default (viridis)", "default"), ("paper (jet)", "paper")],
                                                  tooltips=["viridis, value / image max, with colour bars",
                                                            "jet, as in the authors' figures"],
                                                  value=self.state.display, style={"button_width": "auto"}),
                                  "aisviz-display")
        self.w_display.observe(dash.guard(lambda ch: setattr(self.state, "display", ch["new"]),
                                          "switch the display mode"), "value")
        self.w_export = self.tag(W.Button(description="Labelled PNG of this panel", disabled=True,
                                          layout=W.Layout(width="auto")), "aisviz-panel-export")
        self.w_export.on_click(dash.exporting(self.export, "export the image panel"))
        self.download = self.tag(W.HTML(""), "aisviz-panel-download")

        def column(caption, *items):
            return W.VBox([caption, W.HBox(list(items), layout=W.Layout(overflow="visible"))],
                          layout=W.Layout(flex="0 0 auto", overflow="visible"))

        panels = self.tag(W.HBox([column(self.cap_image, self.p_image), column(self.cap_ais, self.p_ais, self.bar_ais),
                                  column(self.cap_sal, self.p_sal, self.bar_sal)],
                                 # images aligned at their bottom: a caption that wraps to more lines
                                 # (the heatmap's) no longer pushes its image 16 px below its neighbours
                                 layout=W.Layout(flex_flow="row wrap", overflow="visible", align_items="flex-end")),
                        "aisviz-panels")
        self.root = self.tag(W.VBox([
            W.HTML("<h4 class='aisviz-h'>AIS heatmap against saliency</h4>"),
            W.HBox([self.title, self.w_unpin], layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.w_display, panels, self.scale, self.metrics,
            W.HBox([self.w_export, self.download], layout=W.Layout(flex_flow="row wrap")),
        ], layout=W.Layout(flex="1 1 520px", min_width="0")), "aisviz-detail")
        self.state.observe(lambda ch: self.render(), ["view", "image", "follow_slider", "display", "pinned"])
        self._memo_lock, self._wanted = threading.Lock(), threading.Condition()
        self._target, self._worker, self._pending = None, None, None
        self.state.observe(lambda ch: self._schedule_prerender(), ["view", "follow_slider", "display"])
        self.state.observe(lambda ch: self.state.follow_slider and self._schedule_prerender(), "k")
        self.state.observe(lambda ch: self.state.follow_slider and self.render(), "k")
        self.state.observe(lambda ch: setattr(self.w_unpin, "disabled", ch["new"] is None), "pinned")

    def image_view(self, view, i: int, k: int | None, mode: str) -> dict:
        """PNGs and metrics of image i for heatmap k (None = all maps) in a display mode, memoised per view.
        Called from the main thread and from the prerender worker: the memo is only read and written whole."""
        key = (i, k, mode)
        out = view.memo.get(key)
        if out is not None:
            return out
        r = view.result
        small = r.image(i)
        small.thumbnail((self.size, self.size))
        heat = derive.heatmap(r, i, k)
        image_png = view.memo.get(("image", i)) or png_bytes(small, compress_level=1)
        bar = view.memo.get(("bar", mode)) or colourbar_png(mode, height=self.size)
        out = {"image_png": image_png, "ais_png": png_bytes(overlay(small, heat, mode), compress_level=1),
               "saliency_png": None, "bar": bar, "heat": heat}
        if r.saliency is not None:  # the overlay resizes the display-size map to the panel
            out["saliency_png"] = png_bytes(overlay(small, r.saliency[i], mode), compress_level=1)
        with self._memo_lock:
            if len(view.memo) > 600:
                view.memo.clear()
            view.memo[("image", i)], view.memo[("bar", mode)] = image_png, bar
            return view.memo.setdefault(key, out)

    def _schedule_prerender(self):
        """Once the views rest (1 s), render every image's panels and metrics for the heatmap k and display
        mode shown, on a low-priority worker thread: a hover then only sends what is ready (a first hover of an
        image cost 30 ms of overlays and 40 ms of metrics in the kernel). Not without an event loop (scripts,
        tests: prerender() does it in the calling thread)."""
        loop = self.dash.event_loop
        if loop is None:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(1.0, self.dash.guard(self._start_prerender, "prepare the image panels"))

    def _start_prerender(self):
        view, st = self.state.view, self.state
        if view is None:
            return
        if not self.p_ais.seen:        # the page is not built yet: pictures sent now would be lost
            self._schedule_prerender()
            return
        with self._wanted:
            self._target = (view, derive.heatmap_k(view.result, st.k, st.follow_slider), st.display)
            self._wanted.notify()
        if self._worker is None:
            self._worker = threading.Thread(target=self._prerender_loop, name="aisviz-prerender", daemon=True)
            self._worker.start()

    def _prerender_loop(self):
        try:  # Linux: a thread's own nice value; the kernel's main thread (the gestures) goes first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
        except (AttributeError, OSError):
            pass
        while True:
            with self._wanted:
                while self._target is None:
                    self._wanted.wait()
                target, self._target = self._target, None
            try:
                self.prerender(*target, stop=lambda: self._target is not None)
            except Exception:  # noqa: BLE001 - a hover renders (and reports) the same image again
                log.warning("dashboard: could not prepare the image panels ahead", exc_info=True)

    def prerender(self, view, k: int | None, mode: str, stop=lambda: False):
        """Render every image's panels of view for heatmap k in a display mode and (SEND_PICTURES_AHEAD) send
        its pictures to the browser to keep (from the main thread), so that a hover sends keys; then every
        image's metrics (the pictures first: what the eye follows). Until stop()."""
        n = view.result.n_images
        for i in range(n):
            if stop():
                return
            out = self.image_view(view, i, k, mode)
            if self.dash.SEND_PICTURES_AHEAD:
                self.dash.on_main(lambda out=out: view is self.state.view and self._preload(out))
        for i in range(n):
            if stop():
                return
            out = self.image_view(view, i, k, mode)
            if "metrics" not in out:
                out["metrics"] = derive.image_metrics(view.result, i, out["heat"])

    def _preload(self, out: dict):
        self.p_image.preload(out["image_png"])
        self.p_ais.preload(out["ais_png"])
        if out["saliency_png"] is not None:
            self.p_sal.preload(out["saliency_png"])

    def render(self):

        view, st = self.state.view, self.state
        if view is None or st.image is None:
            return
        t0 = time.perf_counter()
        r = view.result
        i = min(st.image, r.n_images - 1)
        k = derive.heatmap_k(r, st.k, st.follow_slider)
        out = self.image_view(view, i, k, st.display)
        self.p_image.show(out["image_png"])
        self.p_ais.show(out["ais_png"])
        self.bar_ais.value = out["bar"]
        # a result without saliency shows the grey placeholder, not the previous result's map
        no_saliency = out["saliency_png"] is None
        self.p_sal.show(self.empty if no_saliency else out["saliency_png"])
        self.bar_sal.value = self.empty_bar if no_saliency else out["bar"]
        maps = ("all maps (the paper's heatmap)" if k is None else
                f"<b>top {k} maps</b> (following the slider)")
        cap = "<div class='aisviz-cap'>{}<br><small>{}</small></div>"
        self.cap_image.value = cap.format("image", esc(f"{r.image_sizes[i][0]}×{r.image_sizes[i][1]} px"))
        self.cap_ais.value = cap.format("AIS heatmap", f"{maps} · image-AIS weights")
        self.cap_sal.value = cap.format("saliency", esc(r.saliency_provider or "none") if r.saliency is not None
                                        else "unavailable")
        self.scale.value = (f"<small>Colour bars: top = 1. {esc(scale_note(st.display, 'Both maps'))}.</small>")
        state = "pinned" if st.pinned == i else "hover"
        attrs = data_attrs(index=i, name=r.image_names[i], state=state, k=k or "all", n=r.n_images,
                           display=st.display)
        self.title.value = (f"<div class='aisviz-detail-inner'{attrs}><b>{esc(r.image_names[i])}</b> (image {i + 1} "
                            f"of {r.n_images}) · {'<b>pinned</b>' if state == 'pinned' else 'follows the mouse'}"
                            "</div>")
        if "metrics" not in out:  # after the overlays and the title went out: what the eye follows first
            out["metrics"] = derive.image_metrics(r, i, out["heat"])
        self.metrics.value = metrics_html(r, i, out["metrics"])
        self.download.value = ""
        self.w_export.disabled = False
        self.dash.timings["render_ms"].append(1000 * (time.perf_counter() - t0))

    def export(self):

        view, st = self.state.view, self.state
        r = view.result
        i = min(st.image, r.n_images - 1)
        k = derive.heatmap_k(r, st.k, st.follow_slider)
        stem = r.image_names[i].rsplit(".", 1)[0]
        name = f"{stem}_panel_{st.display}{'' if k is None else f'_top{k}'}.png"
        self.download.value = download_link(panel_png(r, i, k, st.display), name, "image/png", f"Download {name}",
                                            "aisviz-panel-link")
