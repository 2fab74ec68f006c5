"""The Dashboard: wires the state, the session and the panels, and lays them out.

    from aisviz.app import Dashboard
    Dashboard()                            # in JupyterLab, or served by Voila (`aisviz serve`)

Threads: the session computes on a worker thread and reports through `progress`, `finished` and `failed`;
these are handed to the kernel's main thread (its event loop) before any widget changes, so the worker
never touches a widget. Every widget callback and every publication hold one UI lock, and a result is
published whole: its figures are built first, then `state.view` is assigned once. Every callback error
is shown in plain words in the message area and logged (logger "aisviz.app"), never lost.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import TypeVar

from aisviz.app.kernel_guard import harden_kernel
from aisviz.app.limits import allowed_roots
from aisviz.app.panels import (
    BrowserPanel,
    ControlsPanel,
    CurvePanel,
    DetailPanel,
    ExportPanel,
    LayerComparisonPanel,
    MapsPanel,
    ResultView,
    StatusPanel,
)
from aisviz.app.panels.base import Panel
from aisviz.app.panels.sizes import SlotWidths
from aisviz.app.session import Session
from aisviz.app.state import DashboardState
from aisviz.core.heatmaps import check_mode
from aisviz.errors import AisvizError, describe
from aisviz.io.applog import app_log_handler
from aisviz.models.networks import OFFLINE_MODEL
from aisviz.pipeline import derive
from aisviz.pipeline.compute import Memo
from aisviz.pipeline.settings import DEFAULT_DATASET, Settings
from aisviz.server.voila_template import share_plotly_bundle

P = TypeVar("P", bound=Panel)
log = logging.getLogger("aisviz.app")

CSS = """
<style>
.aisviz-dashboard { box-sizing: border-box; max-width: 100%; min-width: 0; padding: 0 4px; }
.aisviz-dashboard .widget-box, .aisviz-dashboard .widget-hbox, .aisviz-dashboard .widget-vbox { overflow: visible; }
.aisviz-row { display: flex; flex-flow: row wrap; gap: 8px 16px; align-items: flex-start; width: 100%; }
.aisviz-controls-column { flex: 0 1 320px; max-width: 100%; min-width: 260px; }
.aisviz-main { flex: 1 1 560px; min-width: 0; max-width: 100%; }
.aisviz-curve-panel { flex: 1 1 520px !important; }
.aisviz-dashboard .js-plotly-plot, .aisviz-dashboard .plotly { width: 100%; }
.aisviz-dashboard .aisviz-h { margin: 10px 0 2px 0; }
.aisviz-dashboard .aisviz-table { font-size: 12px; border-collapse: collapse; }
.aisviz-dashboard .aisviz-table td, .aisviz-dashboard .aisviz-table th { padding: 1px 6px; text-align: left; }
.aisviz-dashboard .aisviz-warn, .aisviz-dashboard .aisviz-error { color: #b00; }
.aisviz-dashboard .aisviz-placeholder { color: #777; background: #eee; display: flex; align-items: center;
  justify-content: center; padding: 6px; }
.aisviz-dashboard .aisviz-cap { line-height: 1.25; min-height: 2.5em; max-width: 214px; }
.aisviz-dashboard .widget-inline-hbox .widget-label { max-width: none; }
.aisviz-dashboard .aisviz-viewer-controls .widget-html-content { line-height: 1.4; }
.aisviz-dashboard .aisviz-grid-box { position: relative; }
.aisviz-dashboard .aisviz-grid-box .aisviz-grid { display: block; margin: 0; }
.aisviz-dashboard .aisviz-pin-layer { position: absolute; inset: 0; margin: 0 !important; width: auto !important;
  height: auto !important; min-width: 0; pointer-events: none; }
.aisviz-dashboard .aisviz-pin { position: absolute; box-sizing: border-box; border: 3px solid #ff7f0e;
  box-shadow: 0 0 0 1px #fff, inset 0 0 0 1px #fff; }
.aisviz-message-box { border: 1px solid #d62728; padding: 4px; margin: 4px 0; }
/* Hover is the core gesture: where the width allows, the image | heatmap | saliency panel sits beside the
   thumbnail grid and stays in view while the page scrolls, so a hovered thumbnail and its panels are on
   one screen; narrower, the panel wraps to directly below the grid. */
@media (min-width: 1200px) {
  .aisviz-dashboard .aisviz-images { flex-wrap: nowrap !important; }
  .aisviz-dashboard .aisviz-detail { position: sticky; top: 0; align-self: flex-start; }
}
body[data-jp-theme-light="false"] .aisviz-dashboard .js-plotly-plot .main-svg text {
  fill: var(--jp-ui-font-color1, #ddd) !important; }
body[data-jp-theme-light="false"] .aisviz-dashboard .js-plotly-plot .gridlayer path {
  stroke: var(--jp-border-color2, #555) !important; }
body[data-jp-theme-light="false"] .aisviz-dashboard .js-plotly-plot .legend .bg {
  fill: transparent !important; }
</style>
"""

_LOGGING_READY = False
MAX_MESSAGES = 50        # messages kept (a hostile client can cause a refusal per message)
EXPORTS_PER_MINUTE = 30  # figure and ZIP exports a dashboard builds per minute (2000 clicks once kept a kernel
                         # busy for over 10 minutes)
TOO_MANY_EXPORTS = (f"Refused: more than {EXPORTS_PER_MINUTE} exports in a minute. The links shown are still "
                    "valid; wait a moment before the next export.")


def _setup_logging():
    """Log to the file named in AISVIZ_APP_LOG (serve() sets it), once per process."""
    global _LOGGING_READY
    if _LOGGING_READY:
        return
    _LOGGING_READY = True
    path = os.environ.get("AISVIZ_APP_LOG")
    if not path:
        return
    try:
        handler = app_log_handler(path)            # rotated, messages cut, repeats limited (issue 17, F3)
    except OSError as exc:
        log.warning("cannot write the dashboard log %s (%s)", path, exc)
        return
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def default_provider() -> str:
    try:
        import cv2

        return "spectral_residual" if hasattr(cv2, "saliency") else "center_bias"
    except ImportError:
        return "center_bias"


def _running_loop():
    """The kernel's event loop when there is one running in this (the main) thread, else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def ready_text(seconds: float | None, how: str, by_user: bool, preheated: bool) -> str:
    """The status line once a result is shown. seconds: since the request (None: no request, e.g. a result
    given); how: "computed" or "from memory"; by_user: the request was a click (else the dashboard's own
    first request); preheated: the kernel ran the dashboard before any page asked for it (Voila's pool sets
    VOILA_PREHEAT=True), so that first request started while the server prepared the page, not at a click."""
    if seconds is None:
        return f"ready ({how})"
    if by_user:
        return f"ready in {seconds:.1f} s from the click ({how})"
    if preheated:
        return f"ready: {how} as the server prepared this page ({seconds:.1f} s, before any click)"
    return f"ready in {seconds:.1f} s from the dashboard's start ({how})"


class Dashboard:
    """The AIS dashboard. Display it (it is the ipywidgets tree in `.root`).

    dataset: a catalog name, a data-set folder, or a ComparisonSet; model: a network name (see
    aisviz.models.list_models). run_async=False computes in the calling thread (tests, scripts);
    autostart=False waits for `run()`. results: finished Results to show without computing (the
    first is shown); compute: another source of results, (settings, report, clicked_at) -> result. The
    remaining arguments set the first values of the controls.
    """

    # Every image's pictures go to the browser once the views rest (about 7.5 MB per result for the default
    # set), so that a hover sends only keys. The shared viewer renders ahead but sends on hover: a class's
    # pages share one network and one server.
    SEND_PICTURES_AHEAD = True
    # Adding a panel: one class (see aisviz.app.panels) and one line here. Order = build order.
    PANELS = (StatusPanel, ExportPanel, ControlsPanel, CurvePanel, MapsPanel, BrowserPanel, DetailPanel,
              LayerComparisonPanel)

    def __init__(self, dataset=DEFAULT_DATASET, model: str | None = None, provider: str | None = None,
                 n_folds: int = 5, n_seeds: int = 8, k_step: int = 0, n_random: int = 1,
                 measure: str = "pearson", similarity: str = "pearson", weights: str = "pretrained",
                 run_async: bool = True, autostart: bool = True, thumb_size: int | None = None,
                 panel_size: int = 200, follow_slider: bool = False, display: str = "default",
                 results=(), compute=None):
        import ipywidgets as W


        _setup_logging()
        log.info("dashboard: building")   # with "request 1" and "shown": the kernel's part of a page open
        share_plotly_bundle()
        self.ui_lock = threading.RLock()
        self._loop = _running_loop()
        self._main = threading.get_ident()
        self._views = Memo({"view": 4})
        self._exported: set = set()               # exports whose links show the current view
        self._export_times: list = []
        self.timings = {"slider_ms": [], "hover_ms": [], "render_ms": []}
        given, self.extra_sets = {}, []
        if not isinstance(dataset, str):              # a ComparisonSet given directly
            key = f"<given> {dataset.name}"
            given[key] = dataset
            self.extra_sets.append((f"{dataset.name} (given)", key))
            dataset = key
        elif dataset != DEFAULT_DATASET and Path(dataset).expanduser().is_dir():
            self.extra_sets.append((f"folder: {dataset}", dataset))
        self.session = Session(self, run_async=run_async, compute=compute, given=given)
        self.state = DashboardState(
            settings=Settings(dataset=dataset, model=model or OFFLINE_MODEL, weights=weights, similarity=similarity,
                              measure=measure, n_folds=n_folds, n_seeds=n_seeds, k_step=k_step,
                              n_random=n_random, provider=provider or default_provider()),
            follow_slider=follow_slider, display=check_mode(display))
        self.state.observe(self.guard(lambda _: self.run(), "compute the results"), "requests")
        self.options = {"dataset": dataset, "thumb_size": thumb_size, "panel_size": panel_size}
        self._fitted: dict = {}                 # slot name -> the figure shown in it
        self.slot_widths = SlotWidths()
        self.slot_widths.observe(self.guard(lambda _: self._refit(), "resize the charts"), "widths")
        self.panels = [cls(self) for cls in self.PANELS]
        self.state.observe(lambda _: self._exported.clear(), ["view", "k", "image", "display", "follow_slider"])
        self.root = self._layout(W)
        harden_kernel(lambda text: self.show_error("", text))    # served by Voila: no traceback reaches a client
        for result in results:
            self.session.add(result.settings, result)
        if results:
            self.publish(results[0])
        elif autostart:
            self.run(by_user=False)

    def _layout(self, W):
        areas = {}
        for p in self.panels:
            areas.setdefault(p.area, []).append(p.root)

        def row(children, cls):
            box = W.Box(children, layout=W.Layout(display="flex", flex_flow="row wrap", width="100%"))
            box.add_class("aisviz-row")
            box.add_class(cls)
            return box

        main = W.VBox([row(areas.get("charts", []), "aisviz-charts"), row(areas.get("images", []), "aisviz-images"),
                       *areas.get("wide", [])])
        main.add_class("aisviz-main")
        controls = W.VBox(areas.get("controls", []))
        controls.add_class("aisviz-controls-column")
        title = W.HTML("<h3 style='margin:4px 0'>Alignment importance (AIS) dashboard</h3>")
        root = W.VBox([W.HTML(CSS), self.slot_widths, title, *areas.get("top", []),
                       row([controls, main], "aisviz-body")],
                      layout=W.Layout(width="100%"))
        root.add_class("aisviz-dashboard")
        return root

    def fit(self, slot: str, figure):
        """Show figure in that slot at the slot's width as the browser last reported it; returns the figure."""
        self._fitted[slot] = figure
        width = self.slot_widths.widths.get(slot)
        if width and figure.layout.width != width:
            figure.layout.width = width
        return figure

    def show_figure(self, slot: str, box, figure):
        """Show figure alone in box (the slot of that name) at the slot's width, and close the figure it
        replaces. A FigureWidget is shown once in its life: plotly's widget view leaves its listeners on the
        model when it is removed, so a figure shown again would first run the removed view's handlers, which
        throw ("Error setting state") and keep the new view from updating (issue 19: a frozen k marker)."""
        old = self._fitted.get(slot)
        self.fit(slot, figure)
        if box.children != (figure,):
            box.children = (figure,)
        if old is not None and old is not figure:
            old.close()

    def _refit(self):
        for slot, figure in self._fitted.items():
            self.fit(slot, figure)

    @property
    def event_loop(self):
        """The kernel's event loop (None in scripts and tests without one)."""
        return self._loop

    def panel(self, cls: type[P]) -> P:
        """The panel of that class."""
        return next(p for p in self.panels if isinstance(p, cls))

    # -- display

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)

    # -- threads and errors

    def on_main(self, fn):
        """Run fn on the kernel's main thread (now, when already there or when there is no event loop)."""
        if self._loop is not None and threading.get_ident() != self._main and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.guard(fn, "update the views"))
        else:
            with self.ui_lock:
                fn()

    def guard(self, fn, action: str):
        """Wrap a callback: it runs under the UI lock; any exception is shown in plain words and logged."""
        def wrapped(*args, **kwargs):
            with self.ui_lock:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - every callback error must reach the user
                    self.show_error(action, exc)
                    return None
        return wrapped

    def exporting(self, fn, action: str):
        """guard() for an export button: an export is not built again while nothing it shows (result, k, image,
        display) has changed since it was built, and at most EXPORTS_PER_MINUTE are built a minute.

        Parameters
        ----------
        fn: builds the export (no arguments).
        action: what it does, in words (messages).

        Returns
        -------
        The click callback.
        """
        def run(_button=None):
            if action in self._exported:
                return                              # its link is shown, built from the current view
            now = time.monotonic()
            self._export_times = [t for t in self._export_times if now - t < 60]
            if len(self._export_times) >= EXPORTS_PER_MINUTE:
                self.show_error("", TOO_MANY_EXPORTS)
                return
            self._export_times.append(now)
            fn()
            self._exported.add(action)
        return self.guard(run, action)

    def show_error(self, action: str, exc: BaseException | str):
        text = exc if isinstance(exc, str) else describe(action, exc, where="the server log (logger 'aisviz.app')")
        if isinstance(exc, BaseException) and not isinstance(exc, AisvizError) and allowed_roots() is not None:
            # served to others: even an OS error's text can name server paths; the log has the details
            text = f"Could not {action or 'do that'}. The details are in the server's log."
        if isinstance(exc, BaseException):
            log.error("dashboard: %s", text, exc_info=(type(exc), exc, exc.__traceback__))
        else:
            log.error("dashboard: %s", text)
        self.state.messages = [*self.state.messages[-(MAX_MESSAGES - 1):], text]
        self.state.error = text

    def clear_message(self):
        self.state.error = ""

    @property
    def messages(self) -> list:
        return list(self.state.messages)

    # -- requests

    def settings(self) -> Settings:
        """The settings in the state (what the controls show and the next request computes)."""
        return self.state.settings

    def run(self, by_user: bool = True):
        """Compute (or take from memory) and show the results for the current controls. by_user=False: the
        dashboard's own first request (no one clicked; the status line says so)."""
        s = self.settings()
        with self.ui_lock:
            self.state.settings = s
            self.state.clicked_at = time.perf_counter()
            self.state.by_user = by_user
            self.state.busy = True
            self.state.progress = 0.0
            self.state.status = "starting"
        self.session.request(s, clicked_at=self.state.clicked_at)
        if self._loop is not None and self.state.busy:
            self._loop.call_later(1.0, self._tick)

    def _tick(self):
        """Once a second while busy: the status line's time since the click."""
        if self.state.busy:
            self._status(self._stage)
            assert self._loop is not None, "ticks are only scheduled on an event loop"
            self._loop.call_later(1.0, self._tick)

    _stage = "starting"

    def _status(self, text: str):
        since = "" if self.state.clicked_at is None else f" · {time.perf_counter() - self.state.clicked_at:.0f} s"
        meanwhile = " · the views show the previous results meanwhile" if self.state.view is not None else ""
        self.state.status = f"{text}{since}{meanwhile}"

    def wait(self, timeout: float = 600) -> bool:
        """Block until no job is running or queued (tests and scripts without an event loop). True when idle."""
        return self.session.wait(timeout)

    async def ready(self, timeout: float = 600) -> bool:
        """Await (in a notebook cell) until the newest request is computed and shown. True when it is."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if not self.state.busy:
                return True
            await asyncio.sleep(0.1)
        return False

    @property
    def busy(self) -> bool:
        return self.state.busy

    # -- the session's listener (worker thread)

    def progress(self, job: int, stage: str, fraction: float, text: str):
        def show():
            if self.session.current(job):
                self._stage = text
                self.state.progress = fraction
                self._status(text)
        self.on_main(show)

    def finished(self, job: int, result):
        def show():
            if self.session.current(job):
                self.publish(result)
        self.on_main(show)

    def failed(self, job: int, exc: BaseException):
        def show():
            if self.session.current(job):
                self.show_error("compute the results", exc)
                self.state.busy = False
                shown = "" if self.state.view is None else " Still showing the last results that worked."
                self.state.status = f"failed.{shown}"
        self.on_main(show)

    # -- publishing and images

    def publish(self, result):
        """Show a finished result: build its figures (each time it is shown again), then assign the view
        whole. The view's memo of rendered images is kept while the view is in memory."""
        with self.ui_lock:
            view = self._views.get("view", id(result))
            if view is None or view.result is not result:
                view = ResultView(result)
                self._views.put("view", id(result), view)
            st, prev = self.state, self.state.view
            if view is not prev:        # new figures: those it had were closed when it left the page
                for p in self.panels:
                    p.build(view)
            with st.hold_trait_notifications():
                st.view = view
                if prev is None or prev.result.image_names != result.image_names:
                    st.pinned = st.hovered = None
                    st.image = 0
            how = "from memory" if result.seconds == 0 or view.memo.get("shown") else "computed"
            view.memo["shown"] = True
            st.busy = False
            st.progress = 1.0
            seconds = None if st.clicked_at is None else time.perf_counter() - st.clicked_at
            st.status = ready_text(seconds, how, st.by_user, preheated=os.environ.get("VOILA_PREHEAT") == "True")
            log.info("dashboard: shown a result (source: %s, %s)", result.source, how)
            if result.saliency_error and not view.memo.get("saliency_error_shown"):
                view.memo["saliency_error_shown"] = True
                self.show_error("", result.saliency_error)

    def hover_image(self, i: int):
        """The mouse is over image i: show it in the detail panel unless an image is pinned."""
        st = self.state
        st.hovered = int(i)
        if st.pinned is None and st.image != i:
            t0 = time.perf_counter()
            st.image = int(i)
            self.timings["hover_ms"].append(1000 * (time.perf_counter() - t0))

    def pin_image(self, i: int | None):
        """Pin image i in the detail panel (None: unpin and follow the mouse again)."""
        st = self.state
        st.pinned = None if i is None else int(i)
        target = st.pinned if st.pinned is not None else st.hovered
        if target is not None:
            st.image = target

    def set_k(self, k: int):
        """Move the top-k slider to k (as the user would)."""
        self.panel(CurvePanel).w_k.value = int(k)

    # -- introspection (tests, notebooks)

    @property
    def current(self):
        """The shown Result, or None."""
        return None if self.state.view is None else self.state.view.result

    def state_summary(self) -> dict:
        """A plain summary of what the views hold now."""
        st, r = self.state, self.current
        out = {"busy": st.busy, "status": st.status, "error": st.error, "messages": list(st.messages),
               "progress": st.progress, "k": st.k, "image": st.image, "pinned": st.pinned,
               "follow_slider": st.follow_slider, "display": st.display}
        if r is not None:

            out.update(dataset=r.dataset_name, model=r.settings.model, layer=r.settings.layer,
                       readout=r.settings.readout, n_maps=r.n_maps, readout_values=derive.readout(r, st.k),
                       heatmap_k=derive.heatmap_k(r, st.k, st.follow_slider),
                       image_name=None if st.image is None else r.image_names[st.image])
        return out
