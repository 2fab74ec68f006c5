"""The aisviz dashboard: stock ipywidgets and plotly FigureWidgets over the package's computations.

    from aisviz.app import Dashboard
    Dashboard()            # in JupyterLab, or served by Voila (`aisviz serve`, notebooks/dashboard.ipynb)

Layers: this module only composes widgets. Numbers come from aisviz.ais (AlignmentImportance,
TopKValidation), aisviz.heatmaps, aisviz.saliency and aisviz.compare; figures from aisviz.plots.

Behaviour:
- Long work (features, leave-one-map-out AIS, the held-out validation, saliency maps) runs in a
  background thread, one job at a time, with a progress bar; the page stays live. A newer request
  makes an older job stop at its next step (what it finished stays cached).
- Results are cached in memory per (data set, network, weights, layers, similarity, measure,
  validation settings, saliency provider), so switching back is instant; the feature and saliency
  caches on disk make even a fresh kernel quick.
- The top-k slider only reads the precomputed validation curves: it moves the curve's marker, the
  read-out and the per-map highlight, and (by default) re-weights the shown heatmap to the top-k maps.
- Every callback error is caught, shown in plain words in the message area and logged
  (logger "aisviz.app"), never lost.
"""
from __future__ import annotations

import html
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

log = logging.getLogger("aisviz.app")

DEFAULT_DATASET = "synthetic"
AUTO_K_POINTS = 128          # auto k step: at most about this many k values on the curve
RESULTS_IN_MEMORY = 3        # fitted scorers (the big objects) kept in memory
FOLLOW_NOTE = ("The AIS heatmap follows the slider: it weights each image's feature maps by their image AIS, "
               "using only the top-k maps by data-set AIS. At k = all maps it is the paper's heatmap. Untick "
               "to always use all maps.")


_LOGGING_READY = False


def _setup_logging():
    """Log to the file named in AISVIZ_APP_LOG (serve() sets it), once per process. Without it, errors go
    to Python's last-resort handler (stderr)."""
    global _LOGGING_READY
    if _LOGGING_READY:
        return
    _LOGGING_READY = True
    path = os.environ.get("AISVIZ_APP_LOG")
    if not path:
        return
    try:
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(path).expanduser(), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the dashboard log %s (%s)", path, exc)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


AUTO_K_POINTS_SLOW = 32      # ... and for engines that re-run part of the network per mask


def auto_k_step(n_maps: int, reruns_tail: bool = False) -> int:
    """k step used when the k-step field is 0 (auto). Pooled read-outs (every masked similarity from
    per-map statistics, e.g. EfficientNet-Lite0 _head_act -> flatten): every k up to 256 maps, else about
    AUTO_K_POINTS values (step 10 for 1280 maps). Engines that re-run a layer per mask (VGG-16 conv5_3 ->
    fc7): about AUTO_K_POINTS_SLOW values (step 16 for 512 maps). 1 = every k, as in the paper."""
    if not reruns_tail:
        return 1 if n_maps <= 2 * AUTO_K_POINTS else int(np.ceil(n_maps / AUTO_K_POINTS))
    return max(1, int(np.ceil(n_maps / AUTO_K_POINTS_SLOW)))


GRID_WIDTH = 430             # px available to the thumbnail grid


def grid_geometry(n_images: int, cell: int | None = None) -> dict:
    """Cell size (px), gap and columns of the thumbnail grid for n images (see plots.contact_sheet)."""
    cell = cell or (56 if n_images <= 64 else 44)
    gap = 2
    return {"cell": cell, "gap": gap, "columns": max(1, min(n_images, GRID_WIDTH // (cell + gap)))}


def paper_seeds(n: int) -> tuple:
    """The paper's seeds 111, 222, ..., continued the same way past 8 (as the CLI)."""
    if n < 1:
        raise ValueError(f"the number of seeds must be at least 1, not {n}.")
    return tuple(111 * (i + 1) for i in range(n))


@dataclass(frozen=True)
class Settings:
    """Everything a result depends on. layer/readout None = the network's defaults."""

    dataset: str = DEFAULT_DATASET
    model: str = "efficientnet_lite0"
    weights: str = "pretrained"
    layer: str | None = None
    readout: str | None = None
    similarity: str = "pearson"
    measure: str = "pearson"
    n_folds: int = 5
    n_seeds: int = 8
    k_step: int = 0              # 0 = auto_k_step
    n_random: int = 1
    provider: str = "spectral_residual"

    def scorer_key(self):
        return (self.dataset, self.model, self.weights, self.layer, self.readout, self.similarity, self.measure)

    def validation_key(self, k_step: int):
        return self.scorer_key() + (self.n_folds, self.n_seeds, k_step, self.n_random)


@dataclass
class Results:
    """One finished computation and the views built for it (figures are cached with it)."""

    settings: Settings
    dataset: object
    scorer: object
    validation: object
    k_step: int
    stats: dict
    saliency: list | None
    saliency_error: str = ""
    seconds: float = 0.0
    views: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class _Stale(Exception):
    """A newer request replaced the running job."""


_PLAIN_ERRORS = (ValueError, ImportError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def plain_message(action: str, exc: BaseException) -> str:
    """An error in plain words: the package's own errors (DataError, ModelError, SaliencyError are
    ValueErrors) carry their fix in the message; anything else is named and pointed to the log."""
    if isinstance(exc, _PLAIN_ERRORS):
        text = str(exc).strip() or type(exc).__name__
        return f"Could not {action}: {text}"
    return (f"Could not {action}: an unexpected {type(exc).__name__} happened ({exc}). The details are in the "
            "server log (logger 'aisviz.app').")


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    if np.isnan(x):
        return "n/a"
    if np.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}f}"


def _esc(x) -> str:
    return html.escape(str(x))


class Dashboard:
    """The AIS dashboard. Display it (it is the ipywidgets tree in `.root`).

    dataset: a catalog name, a data-set folder, or a ComparisonSet; model: a network name (see
    aisviz.models.list_models). run_async=False computes in the calling thread (tests, scripts);
    autostart=False waits for `run()`. The remaining arguments set the first values of the controls.
    """

    def __init__(self, dataset=DEFAULT_DATASET, model: str | None = None, provider: str | None = None,
                 n_folds: int = 5, n_seeds: int = 8, k_step: int = 0, n_random: int = 1,
                 measure: str = "pearson", similarity: str = "pearson", weights: str = "pretrained",
                 run_async: bool = True, autostart: bool = True, thumb_size: int | None = None,
                 panel_size: int = 200, follow_slider: bool = True):
        import ipywidgets as W

        from .models import OFFLINE_MODEL

        _setup_logging()
        self.W = W
        self.run_async = run_async
        self.thumb_size = thumb_size
        self.panel_size = panel_size
        self._lock = threading.RLock()
        self._gen = 0
        self._pending = None
        self._worker: threading.Thread | None = None
        self._busy_since: float | None = None
        self._stage = ""
        self._quiet = 0                       # >0 while the app sets widget values itself
        self._datasets = _LRU(6)             # dataset key -> ComparisonSet
        self._given = {}                     # key -> ComparisonSet passed in by the caller
        self._networks = _LRU(2)             # (model, weights) -> Network
        self._layers = {}                    # model -> list_layers rows
        self._scorers = _LRU(RESULTS_IN_MEMORY)
        self._validations = _LRU(16)
        self._saliency = _LRU(4)
        self._results = _LRU(RESULTS_IN_MEMORY)
        self._alias = {}                     # requested Settings -> resolved Settings
        self._browser_views = _LRU(6)        # dataset key -> (sheet png, sheet layout, mds FigureWidget, panels)
        self.current: Results | None = None
        self.hovered: int | None = None
        self.pinned: int | None = None
        self.shown: int | None = None        # image index in the detail panel
        self.messages: list[str] = []        # every error message shown, oldest first
        self.timings = {"slider_ms": [], "hover_ms": []}

        model = model or OFFLINE_MODEL
        provider = provider or self._default_provider()
        self._build_controls(W, dataset, model, provider, n_folds, n_seeds, k_step, n_random, measure, similarity,
                             weights, follow_slider)
        self._build_views(W)
        self.root = W.VBox([self._header, W.HBox([self._controls, self._main],
                                                 layout=W.Layout(align_items="flex-start"))])
        self.root.add_class("aisviz-dashboard")
        if autostart:
            self.run()

    # ------------------------------------------------------------------------------------------
    # display

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.root)

    # ------------------------------------------------------------------------------------------
    # construction

    @staticmethod
    def _default_provider() -> str:
        try:
            import cv2  # noqa: F401

            return "spectral_residual" if hasattr(cv2, "saliency") else "center_bias"
        except ImportError:
            return "center_bias"

    def _dataset_options(self, extra=()):
        """(label, value) pairs: the generated default first, then the catalog sets found on the data
        search path that have images, then folders the user added."""
        from .catalog import list_datasets

        opts, missing = [], []
        for row in list_datasets():
            if row["name"] == DEFAULT_DATASET:
                if row["available"]:
                    opts.insert(0, (f"{DEFAULT_DATASET} (generated default, simulated observer)", DEFAULT_DATASET))
            elif row["available"] and row["has_images"]:
                opts.append((f"{row['name']} ({row['location']})", row["name"]))
            else:
                missing.append(row["name"])
        for label, value in extra:
            if value not in [v for _, v in opts]:
                opts.append((label, value))
        self._missing_sets = missing
        return opts

    def _build_controls(self, W, dataset, model, provider, n_folds, n_seeds, k_step, n_random, measure,
                        similarity, weights, follow_slider):
        from .models import list_models
        from .saliency import PROVIDERS

        extra = []
        if not isinstance(dataset, str):              # a ComparisonSet given directly
            key = f"<given> {dataset.name}"
            self._given[key] = dataset
            extra.append((f"{dataset.name} (given)", key))
            dataset = key
        elif dataset != DEFAULT_DATASET and Path(dataset).expanduser().is_dir():
            extra.append((f"folder: {dataset}", dataset))
        self._extra_sets = extra
        desc = {"description_width": "110px"}
        def wide():
            return W.Layout(width="330px")

        self.w_dataset = W.Dropdown(options=self._dataset_options(extra), description="data set", style=desc,
                                    layout=wide())
        values = [v for _, v in self.w_dataset.options]
        if dataset in values:
            self.w_dataset.value = dataset
        self.w_path = W.Text(placeholder="folder of a data set, or a data root", description="data path",
                             style=desc, layout=W.Layout(width="330px"))
        self.w_add = W.Button(description="Use this folder", icon="folder-open", layout=W.Layout(width="160px"))
        models = [r["name"] for r in list_models()]
        if model not in models:
            models.insert(0, model)
        self.w_model = W.Dropdown(options=models, value=model, description="network", style=desc, layout=wide())
        self.w_layer = W.Dropdown(options=[("(network default)", None)], value=None, description="perturbed layer",
                                  style=desc, layout=wide())
        self.w_readout = W.Dropdown(options=[("(network default)", None)], value=None, description="read-out layer",
                                    style=desc, layout=wide())
        labels = {"spectral_residual": "spectral residual (classic baseline)",
                  "fine_grained": "fine-grained contrast (classic baseline)",
                  "center_bias": "centre bias (position only)",
                  "deepgaze_iie": "DeepGaze IIE (needs internet once)"}
        self.w_provider = W.Dropdown(options=[(labels.get(p, p), p) for p in PROVIDERS], value=provider,
                                     description="saliency", style=desc, layout=wide())
        self.w_k = W.IntSlider(value=1, min=1, max=1, description="top k maps", style=desc, continuous_update=True,
                               layout=W.Layout(width="330px"), disabled=True)
        self.w_follow = W.Checkbox(value=follow_slider, description="heatmap follows the slider (top-k maps)",
                                   indent=False, layout=W.Layout(width="320px"))
        self.w_folds = W.BoundedIntText(value=n_folds, min=2, max=50, description="folds", style=desc,
                                        layout=W.Layout(width="200px"))
        self.w_seeds = W.BoundedIntText(value=n_seeds, min=1, max=50, description="seeds (111, 222…)", style=desc,
                                        layout=W.Layout(width="200px"))
        self.w_kstep = W.BoundedIntText(value=k_step, min=0, max=10000, description="k step (0 = auto)",
                                        style=desc, layout=W.Layout(width="200px"))
        self.w_random = W.BoundedIntText(value=n_random, min=1, max=100, description="random orders",
                                         style=desc, layout=W.Layout(width="200px"))
        self.w_measure = W.Dropdown(options=[("Pearson r² (paper)", "pearson"), ("Spearman ρ²", "spearman")],
                                    value=measure, description="alignment", style=desc, layout=W.Layout(width="300px"))
        self.w_similarity = W.Dropdown(options=[("Pearson (paper)", "pearson"), ("cosine", "cosine")],
                                       value=similarity, description="network RSM", style=desc,
                                       layout=W.Layout(width="300px"))
        self.w_weights = W.Dropdown(options=[("pretrained", "pretrained"), ("none (random, for timing)", "none")],
                                    value=weights, description="weights", style=desc, layout=W.Layout(width="300px"))
        self.w_apply = W.Button(description="Apply", button_style="primary", icon="play")
        adv_help = W.HTML(
            "<small>Held-out validation (the paper): folds × seeds splits; in each, maps are ranked by "
            "training AIS and the top-k kept. k step 0 = auto: for pooled read-outs every k up to 256 maps, "
            "else about 128 values of k (step 10 for EfficientNet-Lite0's 1280 maps); for read-outs that "
            "re-run a layer per mask (VGG-16 conv5_3 → fc7) about 32 values (step 16 for 512 maps). "
            "1 = every k, as in the paper (slow on a CPU for VGG-16).</small>",
            layout=W.Layout(width="320px"))
        self.w_advanced = W.Accordion(children=[W.VBox([self.w_folds, self.w_seeds, self.w_kstep, self.w_random,
                                                        self.w_measure, self.w_similarity, self.w_weights,
                                                        adv_help, self.w_apply])],
                                      layout=W.Layout(width="340px"))
        self.w_advanced.set_title(0, "Advanced")
        self.w_advanced.selected_index = None
        for w, cls in ((self.w_dataset, "aisviz-dataset"), (self.w_path, "aisviz-path"), (self.w_add, "aisviz-add"),
                       (self.w_model, "aisviz-model"), (self.w_layer, "aisviz-layer"),
                       (self.w_readout, "aisviz-readout-layer"), (self.w_provider, "aisviz-provider"),
                       (self.w_k, "aisviz-k"), (self.w_follow, "aisviz-follow"), (self.w_folds, "aisviz-folds"),
                       (self.w_seeds, "aisviz-seeds"), (self.w_kstep, "aisviz-kstep"),
                       (self.w_random, "aisviz-nrandom"), (self.w_measure, "aisviz-measure"),
                       (self.w_similarity, "aisviz-similarity"), (self.w_weights, "aisviz-weights"),
                       (self.w_apply, "aisviz-apply"), (self.w_advanced, "aisviz-advanced")):
            w.add_class(cls)
        self.w_dataset.observe(self._guard(self._on_dataset, "switch the data set"), "value")
        self.w_add.on_click(self._guard(lambda _: self.use_folder(self.w_path.value), "use that folder"))
        self.w_model.observe(self._guard(self._on_model, "switch the network"), "value")
        self.w_layer.observe(self._guard(self._on_layer, "switch the perturbed layer"), "value")
        self.w_readout.observe(self._guard(self._on_settings, "switch the read-out layer"), "value")
        self.w_provider.observe(self._guard(self._on_settings, "switch the saliency provider"), "value")
        self.w_apply.on_click(self._guard(lambda _: self.run(), "apply the advanced settings"))
        self.w_k.observe(self._guard(lambda ch: self.set_k(ch["new"], from_slider=True), "move the top-k slider"),
                         "value")
        self.w_follow.observe(self._guard(lambda _: self._render_detail(), "redraw the heatmap"), "value")
        missing = ", ".join(getattr(self, "_missing_sets", [])) or "none"
        self._controls = W.VBox([
            W.HTML("<b>Data and network</b>"), self.w_dataset, W.HBox([self.w_path]), self.w_add,
            W.HTML(f"<small>Catalog sets not found on the data search path (or without images): {_esc(missing)}. "
                   "Type a data-set folder or a data root (a folder holding e.g. peterson2018/animals) above."
                   "</small>", layout=W.Layout(width="330px")),
            self.w_model, self.w_layer, self.w_readout, self.w_provider,
            W.HTML("<b>Top-k maps</b>"), self.w_k, self.w_follow,
            W.HTML(f"<small>{_esc(FOLLOW_NOTE)}</small>", layout=W.Layout(width="330px")),
            self.w_advanced,
        ], layout=W.Layout(width="350px", min_width="350px", padding="0 10px 0 0"))
        self._controls.add_class("aisviz-controls")

    def _build_views(self, W):
        self._header = W.HTML("<h3 style='margin:4px 0'>Alignment importance (AIS) dashboard</h3>")
        self.progress = W.FloatProgress(value=0, min=0, max=1, description="", bar_style="info",
                                        layout=W.Layout(width="320px"))
        self.status = W.HTML("idle")
        self.message = W.HTML("")
        self.w_dismiss = W.Button(description="Dismiss", layout=W.Layout(width="90px"))
        self.w_dismiss.on_click(lambda _: self.clear_message())
        self.message_box = W.HBox([self.message, self.w_dismiss],
                                  layout=W.Layout(display="none", border="1px solid #d62728", padding="4px",
                                                  margin="4px 0"))
        self.info = W.HTML("")
        for w, cls in ((self.progress, "aisviz-progress"), (self.status, "aisviz-status"),
                       (self.message, "aisviz-message"), (self.message_box, "aisviz-message-box"),
                       (self.info, "aisviz-info"), (self.w_dismiss, "aisviz-dismiss")):
            w.add_class(cls)
        # held-out alignment
        self.readout = W.HTML("")
        self.readout.add_class("aisviz-readout")
        self.curve_box = W.Box(layout=W.Layout(min_height="420px"))
        self.summary = W.HTML("")
        self.summary.add_class("aisviz-summary")
        # per-map AIS
        self.bars_box = W.Box(layout=W.Layout(min_height="360px"))
        self.map_table = W.HTML("")
        self.map_table.add_class("aisviz-map-table")
        # image browser
        self.w_browser_mode = W.ToggleButtons(options=["thumbnail grid", "MDS map"], value="thumbnail grid",
                                              style={"button_width": "130px"})
        self.w_browser_mode.add_class("aisviz-browser-mode")
        self.w_browser_mode.observe(self._guard(lambda _: self._apply_browser_mode(), "switch the image view"),
                                    "value")
        self.grid = W.Image(format="png")
        self.grid.add_class("aisviz-grid")
        from ipyevents import Event

        self._grid_events = Event(source=self.grid, watched_events=["mousemove", "click"],
                                  throttle_or_debounce="throttle", wait=40)
        self._grid_events.on_dom_event(self._guard(self._on_grid_event, "show that image"))
        self.mds_box = W.Box(layout=W.Layout(display="none"))
        self.browser_help = W.HTML("<small>Hover over an image to see it; click to pin it (click again or "
                                   "Unpin to follow the mouse). MDS map: images placed by classical MDS of the "
                                   "human similarities (near = judged similar).</small>")
        size = f"{self.panel_size}px"

        def box():
            return W.Layout(width=size, height=size, min_width=size, object_fit="contain", flex="0 0 auto")

        self.p_image = W.Image(format="png", layout=box())
        self.p_ais = W.Image(format="png", layout=box())
        self.p_sal = W.Image(format="png", layout=box())
        cap = lambda: W.Layout(height="44px", overflow="hidden")  # noqa: E731
        self.p_sal_caption = W.HTML("saliency", layout=cap())
        self.p_ais_caption = W.HTML("AIS heatmap", layout=cap())
        self.detail_title = W.HTML("")
        self.metrics = W.HTML("")
        self.w_unpin = W.Button(description="Unpin", icon="thumb-tack", disabled=True,
                                layout=W.Layout(width="90px"))
        self.w_unpin.on_click(self._guard(lambda _: self.pin_image(None), "unpin"))
        for w, cls in ((self.p_image, "aisviz-panel-image"), (self.p_ais, "aisviz-panel-ais"),
                       (self.p_sal, "aisviz-panel-saliency"), (self.detail_title, "aisviz-detail-title"),
                       (self.metrics, "aisviz-metrics"), (self.w_unpin, "aisviz-unpin"),
                       (self.p_ais_caption, "aisviz-ais-caption"), (self.p_sal_caption, "aisviz-sal-caption")):
            w.add_class(cls)
        col = lambda: W.Layout(width=f"{self.panel_size + 6}px", flex="0 0 auto")  # noqa: E731
        panels = W.HBox([W.VBox([W.HTML("image", layout=cap()), self.p_image], layout=col()),
                         W.VBox([self.p_ais_caption, self.p_ais], layout=col()),
                         W.VBox([self.p_sal_caption, self.p_sal], layout=col())])
        detail = W.VBox([W.HBox([self.detail_title, self.w_unpin]), panels, self.metrics])
        detail.add_class("aisviz-detail")
        section = lambda title: W.HTML(f"<h4 style='margin:10px 0 2px 0'>{title}</h4>")  # noqa: E731
        self._main = W.VBox([
            W.HBox([self.progress, self.status]), self.message_box, self.info,
            section("Held-out alignment: top-k maps by training AIS, tested on held-out images"),
            self.readout,
            W.HBox([self.curve_box, W.VBox([section("Per-map AIS (data set)"), self.bars_box])]),
            self.summary,
            section("Images: AIS heatmap against saliency"),
            W.HBox([W.VBox([self.w_browser_mode, self.grid, self.mds_box, self.browser_help],
                           layout=W.Layout(width="460px", flex="0 0 auto")), detail]),
            section("Most important maps"), self.map_table,
        ], layout=W.Layout(flex="1 1 auto"))
        self._main.add_class("aisviz-main")

    # ------------------------------------------------------------------------------------------
    # messages, status, errors

    def _guard(self, fn, action: str):
        """Wrap a callback: any exception is shown in the message area in plain words and logged."""
        def wrapped(*args, **kwargs):
            if self._quiet:
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every callback error must reach the user
                self.show_error(action, exc)
                return None
        return wrapped

    def show_error(self, action: str, exc: BaseException):
        text = plain_message(action, exc)
        log.error("dashboard: %s", text, exc_info=(type(exc), exc, exc.__traceback__))
        self.messages.append(text)
        self.message.value = (f"<div style='color:#a00'><b>Problem.</b> {_esc(text)}</div>"
                              .replace("\n", "<br>"))
        self.message_box.layout.display = "flex"

    def clear_message(self):
        self.message.value = ""
        self.message_box.layout.display = "none"

    def _set_status(self, text: str, fraction: float | None = None, style: str | None = None):
        self._stage = text
        if fraction is not None:
            self.progress.value = float(min(max(fraction, 0.0), 1.0))
        if style is not None:
            self.progress.bar_style = style
        elapsed = "" if self._busy_since is None else f" ({time.perf_counter() - self._busy_since:.0f} s)"
        meanwhile = " · the views show the previous results meanwhile" if (
            self._busy_since is not None and self.current is not None) else ""
        self.status.value = f"<span>{_esc(text)}{elapsed}{meanwhile}</span>"

    def _ticker(self, gen):
        while self._busy_since is not None and gen == self._gen:
            time.sleep(1.0)
            if self._busy_since is not None:
                self._set_status(self._stage)

    @property
    def busy(self) -> bool:
        return self._busy_since is not None or self._pending is not None

    # ------------------------------------------------------------------------------------------
    # requests and the background job

    def settings(self) -> Settings:
        """The Settings the controls describe now."""
        return Settings(dataset=self.w_dataset.value, model=self.w_model.value, weights=self.w_weights.value,
                        layer=self.w_layer.value, readout=self.w_readout.value, similarity=self.w_similarity.value,
                        measure=self.w_measure.value, n_folds=int(self.w_folds.value),
                        n_seeds=int(self.w_seeds.value), k_step=int(self.w_kstep.value),
                        n_random=int(self.w_random.value), provider=self.w_provider.value)

    def run(self):
        """Compute (or take from memory) and show the results for the current controls."""
        self._request(self.settings())

    def wait(self, timeout: float = 600) -> bool:
        """Block until no job is running or pending (for tests and scripts). True when idle."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._lock:
                worker = self._worker
                idle = worker is None and self._pending is None
            if idle:
                return True
            if worker is not None:
                worker.join(timeout=min(0.2, max(0.0, end - time.perf_counter())))
            else:
                time.sleep(0.05)
        return False

    def _request(self, s: Settings):
        if s.dataset is None:
            raise ValueError("no data set is selected. Pick one in the list, or type a folder under 'data path'.")
        log.info("dashboard: request %s", s)
        with self._lock:
            self._gen += 1
            gen = self._gen
            res = self._results.get_(self._alias.get(s, s))
            if res is not None:
                self._pending = None
        if res is not None:
            self._busy_since = None
            self._show(res)
            self._set_status(f"ready: from memory ({res.seconds:.1f} s to compute)", 1.0, "success")
            return
        with self._lock:
            self._pending = (gen, s)
            if not self.run_async:
                self._pending = None
        if not self.run_async:
            self._job(gen, s)
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._worker_loop, name="aisviz-dashboard-job", daemon=True)
                self._worker.start()

    def _worker_loop(self):
        while True:
            with self._lock:
                if self._pending is None:
                    self._worker = None
                    return
                gen, s = self._pending
                self._pending = None
            self._job(gen, s)

    def _check(self, gen):
        if gen != self._gen:
            raise _Stale()

    def _job(self, gen: int, s: Settings):
        if gen != self._gen:
            return
        t0 = time.perf_counter()
        self._busy_since = t0
        threading.Thread(target=self._ticker, args=(gen,), daemon=True).start() if self.run_async else None
        try:
            res = self._compute(gen, s, t0)
        except _Stale:
            log.info("dashboard: a newer request replaced the job for %s", s)
            return
        except Exception as exc:  # noqa: BLE001
            if gen == self._gen:
                self._busy_since = None
                self.show_error("compute the results", exc)
                shown = "" if self.current is None else " Still showing the last results that worked."
                self._set_status(f"failed.{shown}", None, "danger")
            else:
                log.warning("dashboard: an abandoned job failed: %s", exc)
            return
        finally:
            if gen == self._gen or self._pending is None:
                self._busy_since = None
        if gen == self._gen:
            try:
                self._show(res)
            except Exception as exc:  # noqa: BLE001 - never lose an error in the worker thread
                self.show_error("show the results", exc)
                self._set_status("failed to show the results", None, "danger")
                return
            self._set_status(f"ready: computed in {res.seconds:.1f} s", 1.0, "success")

    def _compute(self, gen: int, s: Settings, t0: float) -> Results:
        from .ais import AlignmentImportance, TopKValidation

        def step(text, fraction):  # a stale job stops here, before it can touch the status line
            self._check(gen)
            self._set_status(text, fraction, "info")

        step("loading the data set", 0.02)
        dataset = self._get_dataset(s.dataset)
        self._check(gen)
        step(f"loading {s.model}", 0.05)
        net = self._get_network(s.model, s.weights)
        li, ri = net.resolve_layers(s.layer, s.readout)
        resolved = replace(s, layer=net.stage_names[li], readout=net.stage_names[ri])
        self._fill_layers(gen, s.model, net, resolved.layer, resolved.readout)
        self._check(gen)
        scorer = self._scorers.get_(resolved.scorer_key())
        if scorer is None:
            step(f"features and leave-one-map-out AIS: {dataset.n_images} images, "
                 f"{resolved.layer} → {resolved.readout}", 0.1)
            t = time.perf_counter()
            scorer = AlignmentImportance(model=s.model, layer=resolved.layer, readout=resolved.readout,
                                         similarity=s.similarity, measure=s.measure, weights=s.weights,
                                         progress=False).fit(dataset, network=net)
            log.info("dashboard: AIS of %s %s on %s in %.1f s (%s)", s.model, resolved.layer, dataset.name,
                     time.perf_counter() - t, scorer.engine_.kind)
            with self._lock:
                self._scorers.put(resolved.scorer_key(), scorer)
        self._check(gen)
        n_maps = len(scorer.ais_)
        k_step = s.k_step or auto_k_step(n_maps, scorer.engine_.reruns_tail)
        vkey = resolved.validation_key(k_step)
        validation = self._validations.get_(vkey)
        if validation is None:
            seeds = paper_seeds(s.n_seeds)
            t = time.perf_counter()

            def on_progress(p):  # called on this worker thread; raises _Stale when superseded
                step(f"held-out validation: split {min(int(p.done) + 1, p.total)} of {p.total} "
                     f"({s.n_folds} folds × {len(seeds)} seeds), k step {k_step}", 0.45 + 0.45 * p.done / p.total)

            validation = TopKValidation(n_folds=s.n_folds, seeds=seeds, k_step=k_step, n_random=s.n_random,
                                        progress=False).fit(scorer, callback=on_progress)
            log.info("dashboard: validation %d folds x %d seeds, k step %d, in %.1f s", s.n_folds, s.n_seeds,
                     k_step, time.perf_counter() - t)
            with self._lock:
                self._validations.put(vkey, validation)
        step(f"saliency maps ({s.provider})", 0.92)
        saliency, sal_error = self._get_saliency(s.dataset, dataset, s.provider)
        self._check(gen)
        from .plots import curve_stats

        res = Results(settings=resolved, dataset=dataset, scorer=scorer, validation=validation, k_step=k_step,
                      stats=curve_stats(validation.curves_), saliency=saliency, saliency_error=sal_error,
                      seconds=time.perf_counter() - t0)
        with self._lock:
            self._results.put(resolved, res)
            self._alias[s] = resolved
            self._alias[resolved] = resolved
        return res

    def _get_dataset(self, key: str):
        if key in self._given:
            return self._given[key]
        ds = self._datasets.get_(key)
        if ds is None:
            from .catalog import load_dataset

            ds = load_dataset(key)
            ds.load_image(0)  # fail now, in plain words, if the images are missing or unreadable
            with self._lock:
                self._datasets.put(key, ds)
        return ds

    def _get_network(self, model: str, weights: str):
        net = self._networks.get_((model, weights))
        if net is None:
            from .models import load_network

            net = load_network(model, weights=weights)
            with self._lock:
                self._networks.put((model, weights), net)
        return net

    def _get_saliency(self, dkey: str, dataset, provider: str):
        key = (dkey, provider)
        maps = self._saliency.get_(key)
        if maps is not None:
            return maps, ""
        from .saliency import saliency_maps

        try:
            maps = saliency_maps(dataset, provider)
        except Exception as exc:  # noqa: BLE001 - a saliency failure must not hide the AIS results
            text = plain_message(f"compute the {provider} saliency maps", exc)
            log.error("dashboard: %s", text, exc_info=True)
            self.messages.append(text)
            self.show_error(f"compute the {provider} saliency maps", exc)
            return None, text
        with self._lock:
            self._saliency.put(key, maps)
        return maps, ""

    def _fill_layers(self, gen, model, net, layer, readout):
        """Fill the layer menus for this network (perturbed: layers with feature maps; read-out: later
        layers), showing the resolved choices, without starting a new request."""
        from .models import list_layers

        rows = self._layers.get(model)
        if rows is None:
            rows = self._layers[model] = list_layers(net)
        if gen != self._gen:
            return
        shape = lambda r: "×".join(map(str, r["shape"]))  # noqa: E731
        li = next(r["index"] for r in rows if r["name"] == layer)
        layer_opts = [(f"{r['name']} ({shape(r)})" + ("  default" if r["default_layer"] else ""), r["name"])
                      for r in rows if r["conv_map"]]
        readout_opts = [(f"{r['name']} ({shape(r)})" + ("  default" if r["default_readout"] else ""), r["name"])
                        for r in rows if r["index"] > li]
        self._quiet += 1
        try:
            if list(self.w_layer.options) != layer_opts:
                self.w_layer.options = layer_opts
            self.w_layer.value = layer
            if list(self.w_readout.options) != readout_opts:
                self.w_readout.options = readout_opts
            self.w_readout.value = readout
        finally:
            self._quiet -= 1

    # ------------------------------------------------------------------------------------------
    # control callbacks

    def _on_dataset(self, change):
        self.pinned = None
        self.run()

    def _on_model(self, change):
        self._quiet += 1
        try:  # the new network's defaults; the job fills in its layer names
            self.w_layer.options = [("(network default)", None)]
            self.w_layer.value = None
            self.w_readout.options = [("(network default)", None)]
            self.w_readout.value = None
        finally:
            self._quiet -= 1
        self.run()

    def _on_layer(self, change):
        """A new perturbed layer: keep the read-out if it still comes after it, else take the network's
        default read-out (or the last layer)."""
        rows = self._layers.get(self.w_model.value)
        if rows is not None and change["new"] is not None:
            li = next(r["index"] for r in rows if r["name"] == change["new"])
            later = [r for r in rows if r["index"] > li]
            opts = [(f"{r['name']} ({'×'.join(map(str, r['shape']))})" + ("  default" if r["default_readout"] else ""),
                     r["name"]) for r in later]
            values = [v for _, v in opts]
            readout = self.w_readout.value
            if readout not in values:
                readout = next((r["name"] for r in later if r["default_readout"]), values[-1] if values else None)
            self._quiet += 1
            try:
                self.w_readout.options = opts or [("(none after this layer)", None)]
                self.w_readout.value = readout
            finally:
                self._quiet -= 1
        self.run()

    def _on_settings(self, change):
        self.run()

    def refresh_datasets(self):
        """Re-read the catalog and the data search path (e.g. after `aisviz download` or a new AISVIZ_DATA)."""
        current = self.w_dataset.value
        opts = self._dataset_options(self._extra_sets)
        self._quiet += 1
        try:
            self.w_dataset.options = opts
            if current in [v for _, v in opts]:
                self.w_dataset.value = current
        finally:
            self._quiet -= 1

    def use_folder(self, path: str):
        """Add a data-set folder to the data-set menu and select it, or add a data root (a folder holding
        catalog sets such as peterson2018/animals) to the search path (AISVIZ_DATA) and list its sets."""
        from .catalog import load_dataset
        from .datasets import DataError

        text = (path or "").strip()
        if not text:
            raise DataError("the data path is empty. Type the full path of a data-set folder (a similarity "
                            "matrix and images/, see data/README.md) or of a data root.")
        p = Path(text).expanduser()
        if not p.exists():
            raise DataError(f"the folder {p} does not exist. Type the full path of a data-set folder (a "
                            "similarity matrix and images/, see data/README.md) or of a data root holding "
                            "catalog folders such as peterson2018/animals.")
        if not p.is_dir():
            raise DataError(f"{p} is a file, not a folder. Give the folder that holds the similarity matrix "
                            "and images/.")
        try:
            ds = load_dataset(str(p))
        except DataError as as_set:
            before = {v for _, v in self.w_dataset.options}
            old = os.environ.get("AISVIZ_DATA", "")
            os.environ["AISVIZ_DATA"] = os.pathsep.join([str(p)] + ([old] if old else []))
            opts = self._dataset_options(self._extra_sets)
            new = [v for _, v in opts if v not in before]
            if not new:
                os.environ["AISVIZ_DATA"] = old
                raise DataError(f"{p} is not a data-set folder ({as_set}) and holds no catalog data set either "
                                "(e.g. peterson2018/animals/ with its matrix and images).") from None
            self.w_dataset.options = opts
            self.w_dataset.value = new[0]
            return
        ds.load_image(0)  # the images must be there too
        key = str(p.resolve())
        with self._lock:
            self._datasets.put(key, ds)
        label = f"folder: {ds.name} ({ds.n_images} images)"
        self._extra_sets.append((label, key))
        self.w_dataset.options = self._dataset_options(self._extra_sets)
        if self.w_dataset.value == key:
            self.run()
        else:
            self.w_dataset.value = key

    # ------------------------------------------------------------------------------------------
    # showing results

    def _show(self, res: Results):
        """Put a finished result into every view (figures built once per result, then reused)."""
        import plotly.graph_objects as go

        from .plots import ais_bars, alignment_curve

        prev = self.current
        self.current = res
        s, v, scorer, ds = res.settings, res.validation, res.scorer, res.dataset
        n_maps = len(scorer.ais_)
        k0 = int(v.k_values_[np.argmin(np.abs(v.k_values_ - v.summary_["mean_k_star"]))])
        if "curve" not in res.views:
            title = f"{ds.name}: {s.model} {s.layer} → {s.readout}"
            res.views["curve"] = go.FigureWidget(alignment_curve(v.k_values_, v.curves_, v.summary_, k=k0,
                                                                 title=title, height=420).update_layout(width=640))
            res.views["curve"].add_class("aisviz-curve")
            res.views["bars"] = go.FigureWidget(ais_bars(scorer.ais_, k0, scorer.map_names_, height=400)
                                                .update_layout(width=520))
            res.views["bars"].add_class("aisviz-ais-bars")
            res.views["marker_index"] = [i for i, t in enumerate(res.views["curve"].data)
                                         if t.name in ("current k (train)", "current k (test)")]
        self.curve_box.children = (res.views["curve"],)
        self.bars_box.children = (res.views["bars"],)
        self._show_browser(res, prev)
        self.info.value = self._info_html(res)
        self.summary.value = self._summary_html(res)
        self.map_table.value = self._map_table_html(res)
        self._quiet += 1
        try:
            self.w_k.disabled = False
            self.w_k.min, self.w_k.max = 1, max(n_maps, 2)
            self.w_k.step = res.k_step  # each step lands on an evaluated k (plus the last one, n_maps)
            self.w_k.value = k0 if prev is None or prev.settings.scorer_key() != s.scorer_key() else \
                min(self.w_k.value, n_maps)
        finally:
            self._quiet -= 1
        self.set_k(self.w_k.value)

    def _info_html(self, res: Results) -> str:
        s, sc, ds = res.settings, res.scorer, res.dataset
        sal = "" if not res.saliency_error else " <span style='color:#a00'>(saliency unavailable: see message)</span>"
        return (f"<div class='aisviz-info-inner' data-dataset='{_esc(ds.name)}' data-layer='{_esc(s.layer)}' "
                f"data-readout='{_esc(s.readout)}' data-model='{_esc(s.model)}'>"
                f"<b>{_esc(ds.name)}</b> ({ds.n_images} images, {_esc(ds.observer)} judgments) · "
                f"<b>{_esc(s.model)}</b> ({_esc(sc.network_.weights)} weights) perturbed layer <b>{_esc(s.layer)}</b> "
                f"({len(sc.ais_)} maps) → read-out <b>{_esc(s.readout)}</b> · network RSM {s.similarity}, "
                f"alignment {s.measure} · engine: {_esc(sc.engine_.kind)} · alignment with all maps "
                f"R² = <b>{_fmt(sc.r2_all_)}</b>{sal}</div>")

    def _summary_html(self, res: Results) -> str:
        v, sm = res.validation, res.validation.summary_
        p = lambda x: "n/a" if x is None else f"{x:.3g}"  # noqa: E731
        return (
            f"<div style='max-width:1100px'><small>{sm['n_splits']} splits ({res.settings.n_folds} folds × "
            f"{res.settings.n_seeds} seeds), k evaluated every {res.k_step} "
            f"({len(v.k_values_)} values). In each split k* maximises training R²; at k*: test R² "
            f"<b>{_fmt(sm['mean_r2_test_topk'])}</b> ± {_fmt(sm['sd_r2_test_topk'])} with the top-k* maps vs "
            f"{_fmt(sm['mean_r2_test_all'])} ± {_fmt(sm['sd_r2_test_all'])} with all maps vs "
            f"{_fmt(sm['mean_r2_test_random'])} ± {_fmt(sm['sd_r2_test_random'])} with k* random maps; mean k* = "
            f"{sm['mean_k_star']:.0f} ± {sm['sd_k_star']:.0f}. One-sided paired t-test over splits: top-k* > all "
            f"maps p = {p(sm['p_value'])}, top-k* > random p = {p(sm['p_value_vs_random'])}. Bands: ±1 SD over "
            f"splits; dotted lines: all maps; grey: k random maps.</small></div>")

    def _map_table_html(self, res: Results, n: int = 10) -> str:
        rows = sorted(res.scorer.table(), key=lambda r: r["rank"])[:n]
        body = "".join(f"<tr><td>{r['rank']}</td><td>{_esc(r['map'])}</td><td>{r['ais']:+.5f}</td>"
                       f"<td>{r['r2_without']:.4f}</td></tr>" for r in rows)
        return ("<table style='font-size:12px'><tr><th>rank</th><th>map</th><th>AIS</th>"
                f"<th>R² without it</th></tr>{body}</table>")

    # -- the slider

    def set_k(self, k: int, from_slider: bool = False):
        """Move to k: marker, read-out and per-map highlight from the precomputed curves (no recomputation)."""
        res = self.current
        if res is None:
            return
        t0 = time.perf_counter()
        from .plots import readout_at, topk_colours

        if not from_slider and int(k) != self.w_k.value:
            self._quiet += 1
            try:
                self.w_k.value = int(k)
            finally:
                self._quiet -= 1
        r = readout_at(res.validation, int(k), stats=res.stats)
        fig = res.views["curve"]
        it, ie = res.views["marker_index"]
        with fig.batch_update():
            fig.data[it].x, fig.data[it].y = [r["k"]], [r["train_topk"]]
            fig.data[ie].x, fig.data[ie].y = [r["k"]], [r["test_topk"]]
        step = "" if res.k_step == 1 else f" (nearest evaluated k; step {res.k_step})"
        self.readout.value = (
            f"<div class='aisviz-readout-inner' data-k='{r['k']}' data-slider='{int(self.w_k.value)}' "
            f"data-test-topk='{r['test_topk']!r}' data-test-all='{r['test_all']!r}' "
            f"data-test-random='{r['test_random']!r}' data-train-topk='{r['train_topk']!r}'>"
            f"<b>k = {r['k']}</b> of {r['n_maps']} maps{step} · held-out test R²: "
            f"<b>{_fmt(r['test_topk'])}</b> ± {_fmt(r['test_topk_sd'])} with the top-k maps by training AIS · "
            f"{_fmt(r['test_all'])} ± {_fmt(r['test_all_sd'])} with all maps · {_fmt(r['test_random'])} ± "
            f"{_fmt(r['test_random_sd'])} with k random maps <small>(mean ± SD over {r['n_splits']} splits; "
            f"train R² {_fmt(r['train_topk'])})</small></div>")
        self.last_readout = r
        # Marker and read-out are sent first (what the eye follows); the 1280-bar highlight and the
        # heatmap re-render come after them.
        n_maps = len(res.scorer.ais_)
        res.views["bars"].data[0].marker.color = topk_colours(n_maps, int(self.w_k.value))
        if self.w_follow.value:
            self._render_detail()
        self.timings["slider_ms"].append(1000 * (time.perf_counter() - t0))

    # -- the image browser

    def _show_browser(self, res: Results, prev: Results | None):
        import plotly.graph_objects as go

        from .plots import contact_sheet, mds_coordinates, mds_scatter, png_bytes

        dkey = res.settings.dataset
        views = self._browser_views.get_(dkey)
        ds = res.dataset
        if views is None:
            images = [ds.load_image(i) for i in range(ds.n_images)]
            geo = grid_geometry(ds.n_images, self.thumb_size)
            sheet, layout = contact_sheet(images, cell=geo["cell"], columns=geo["columns"], gap=geo["gap"])
            coords = mds_coordinates(ds.similarity)
            thumbs = [png_bytes(im, 40) for im in images]
            mds = go.FigureWidget(mds_scatter(coords, ds.image_names, thumbnails=thumbs, height=450)
                                  .update_layout(width=450))
            mds.add_class("aisviz-mds")
            mds.data[0].on_hover(self._guard(self._on_mds_hover, "show that image"))
            mds.data[0].on_click(self._guard(self._on_mds_click, "pin that image"))
            small = []
            for im in images:
                im = im.copy()
                im.thumbnail((self.panel_size, self.panel_size))
                small.append(im)
            views = self._browser_views.put(dkey, {"sheet": png_bytes(sheet), "layout": layout, "mds": mds,
                                                   "small": small, "panel": {}})
        res.views["browser"] = views
        self._grid_layout = views["layout"]
        if prev is None or prev.settings.dataset != dkey or self.grid.value != views["sheet"]:
            self.grid.value = views["sheet"]
            w = views["layout"]["columns"] * (views["layout"]["cell"] + views["layout"]["gap"]) - views["layout"]["gap"]
            self.grid.layout.width = f"{w}px"
            self.mds_box.children = (views["mds"],)
        if prev is None or prev.settings.dataset != dkey:
            self.pinned, self.hovered = None, None
            self.shown = 0
        self._apply_browser_mode()
        self._render_detail()

    def _apply_browser_mode(self):
        grid = self.w_browser_mode.value == "thumbnail grid"
        self.grid.layout.display = "block" if grid else "none"
        self.mds_box.layout.display = "none" if grid else "flex"

    def _on_grid_event(self, event):
        from .plots import cell_at

        if self.current is None or "dataX" not in event:
            return
        i = cell_at(self._grid_layout, float(event["dataX"]), float(event["dataY"]))
        if i is None:
            return
        if event.get("type") == "click":
            self.pin_image(None if self.pinned == i else i)
        else:
            self.hover_image(i)

    def _on_mds_hover(self, trace, points, state):
        if points.point_inds:
            self.hover_image(int(points.point_inds[0]))

    def _on_mds_click(self, trace, points, state):
        if points.point_inds:
            i = int(points.point_inds[0])
            self.pin_image(None if self.pinned == i else i)

    def hover_image(self, i: int):
        """The mouse is over image i: show it in the detail panel unless an image is pinned."""
        self.hovered = int(i)
        if self.pinned is None and i != self.shown:
            t0 = time.perf_counter()
            self.shown = int(i)
            self._render_detail()
            self.timings["hover_ms"].append(1000 * (time.perf_counter() - t0))

    def pin_image(self, i: int | None):
        """Pin image i in the detail panel (None: unpin and follow the mouse again)."""
        self.pinned = None if i is None else int(i)
        self.w_unpin.disabled = self.pinned is None
        if self.pinned is not None:
            self.shown = self.pinned
        elif self.hovered is not None:
            self.shown = self.hovered
        self._render_detail()

    def heatmap_k(self) -> int | None:
        """The k whose top-k maps weight the shown heatmap, or None for all maps."""
        res = self.current
        if res is None or not self.w_follow.value or self.w_k.value >= len(res.scorer.ais_):
            return None
        return int(self.w_k.value)

    def image_view(self, i: int) -> dict:
        """What the detail panel shows for image i under the current settings: the raw AIS heatmap, the
        overlays (PNG bytes) and the comparison metrics (compare.compare_pair on the display maps)."""
        from .ais import top_k_mask
        from .compare import compare_pair, image_maps
        from .heatmaps import ais_heatmap, overlay
        from .plots import png_bytes

        res = self.current
        k = self.heatmap_k()
        key = ("view", i, k)
        if key in res.memo:
            return res.memo[key]
        scorer, ds = res.scorer, res.dataset
        keep = None if k is None else top_k_mask(scorer.ais_, k)
        heat = ais_heatmap(scorer.activations_[i], scorer.image_ais_[i], keep=keep)
        panel = res.views["browser"]["panel"]
        small = res.views["browser"]["small"][i]
        if ("image", i) not in panel:
            panel[("image", i)] = png_bytes(small)
        out = {"index": i, "name": ds.image_names[i], "k": k, "heatmap": heat, "image_png": panel[("image", i)],
               "ais_png": png_bytes(overlay(small, heat)), "saliency_png": None, "metrics": None}
        if res.saliency is not None:
            skey = ("sal", res.settings.provider, i)
            if skey not in panel:
                panel[skey] = png_bytes(overlay(small, res.saliency[i]))
            out["saliency_png"] = panel[skey]
            a, s = image_maps([heat], [res.saliency[i]], "display")
            mask = None if ds.relevant_masks is None else ds.relevant_masks[i]
            out["metrics"] = compare_pair(a[0], s[0], mask=mask, where=ds.image_names[i])
        out["r_orig"] = float(scorer.r_orig_[i])
        if len(res.memo) > 400:
            res.memo.clear()
        res.memo[key] = out
        return out

    def _render_detail(self):
        res = self.current
        if res is None or self.shown is None:
            return
        i = min(self.shown, res.dataset.n_images - 1)
        view = self.image_view(i)
        self.p_image.value = view["image_png"]
        self.p_ais.value = view["ais_png"]
        if view["saliency_png"] is not None:
            self.p_sal.value = view["saliency_png"]
        maps = "all maps" if view["k"] is None else f"top {view['k']} maps"
        cap = "<div style='line-height:1.25'>{}<br><small>{}</small></div>"
        self.p_ais_caption.value = cap.format("AIS heatmap", f"{maps} · image-AIS weights")
        self.p_sal_caption.value = cap.format("saliency", _esc(res.settings.provider))
        state = "pinned" if self.pinned == i else "hover"
        self.detail_title.value = (f"<div class='aisviz-detail-inner' data-index='{i}' "
                                   f"data-name='{_esc(view['name'])}' "
                                   f"data-state='{state}' data-k='{view['k'] or 'all'}' "
                                   f"data-n='{res.dataset.n_images}'><b>{_esc(view['name'])}</b> "
                                   f"(image {i + 1} of {res.dataset.n_images}) · "
                                   f"{'<b>pinned</b>' if state == 'pinned' else 'follows the mouse'}</div>")
        self.metrics.value = self._metrics_html(res, view)

    def _metrics_html(self, res: Results, view: dict) -> str:
        from .compare import DEFINITIONS

        head = (f"<div class='aisviz-metrics-inner' data-index='{view['index']}' data-name='{_esc(view['name'])}'>"
                f"<small>This image's row alignment with people (Pearson r of its similarity row, all maps): "
                f"<b>{_fmt(view['r_orig'])}</b>.</small>")
        m = view["metrics"]
        if m is None:
            return head + f"<br><small style='color:#a00'>{_esc(res.saliency_error)}</small></div>"
        cells = []
        names = [("rr_5", "RR top 5%", "rr"), ("rr_10", "RR top 10%", "rr"), ("rr_15", "RR top 15%", "rr"),
                 ("auc_10", "AUC (top 10%)", "auc"), ("cc", "CC", "cc"), ("sim", "SIM", "sim"), ("kl", "KL", "kl"),
                 ("ais_mass_inside", "AIS mass in relevant region", "ais_mass_inside"),
                 ("saliency_mass_inside", "saliency mass in relevant region", "saliency_mass_inside"),
                 ("mask_area", "relevant region area (chance)", "mask_area")]
        for key, label, d in names:
            if key not in m:
                continue
            note = m["notes"].get(key, "")
            title = _esc(DEFINITIONS.get(d, "") + (f" Undefined here: {note}" if note else ""))
            cells.append(f"<tr title='{title}'><td>{label}</td><td class='aisviz-m-{key}' "
                         f"data-value='{float(m[key])!r}'>{_fmt(m[key])}</td></tr>")
        return (head + "<table style='font-size:12px'><tr><th colspan=2>AIS heatmap vs saliency (both through the "
                "paper's display: resize, clip at 0, /max, square); hover a row for its definition</th></tr>"
                + "".join(cells) + "</table></div>")

    # ------------------------------------------------------------------------------------------
    # introspection (tests, notebooks)

    def state(self) -> dict:
        """A plain summary of what the views hold now."""
        res = self.current
        out = {"busy": self.busy, "message": self.message.value, "messages": list(self.messages),
               "status": self.status.value, "progress": self.progress.value, "k": self.w_k.value,
               "shown": self.shown, "pinned": self.pinned}
        if res is not None:
            out.update(dataset=res.dataset.name, model=res.settings.model, layer=res.settings.layer,
                       readout=res.settings.readout, n_maps=len(res.scorer.ais_),
                       readout_values=getattr(self, "last_readout", None), heatmap_k=self.heatmap_k(),
                       image=None if self.shown is None else res.dataset.image_names[self.shown])
        return out
