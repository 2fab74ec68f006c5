"""Controls: data set (catalog, or a folder / data root typed in), network, layers, saliency provider and
the Advanced validation settings. Each change asks the Dashboard for the result of the new settings."""
from __future__ import annotations

from aisviz.app.limits import allowed_roots, check_folder, check_image_count, check_settings
from aisviz.app.panels.base import Panel
from aisviz.app.state import settings_with_layer
from aisviz.errors import DataError
from aisviz.io.catalog import data_search_path, list_datasets, load_dataset
from aisviz.models.networks import list_models
from aisviz.pipeline.settings import DEFAULT_DATASET, Settings
from aisviz.saliency.providers import PROVIDERS
from aisviz.viz.text import esc

PROVIDER_LABELS = {"spectral_residual": "spectral residual (classic baseline)",
                   "fine_grained": "fine-grained contrast (classic baseline)",
                   "center_bias": "centre bias (position only)",
                   "deepgaze_iie": "DeepGaze IIE (needs internet once)"}
ADVANCED_HELP = (
    "Held-out validation (the paper): folds × seeds splits; in each, maps are ranked by training AIS and the "
    "top-k kept. k step 0 = auto: for pooled read-outs every k up to 256 maps, else about 128 values of k (step "
    "10 for EfficientNet-Lite0's 1280 maps); for read-outs that re-run a layer per mask (VGG-16 conv5_3 → fc7) "
    "about 32 values (step 16 for 512 maps). 1 = every k, as in the paper (slow on a CPU for VGG-16).")


def dataset_options(extra=(), roots=()) -> tuple[list, list]:
    """(label, value) pairs: the generated default first, then the catalog sets found on the data search
    path that have images, then folders the user added; and the catalog sets not found."""

    opts, missing = [], []
    for row in list_datasets(roots):
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
    return opts, missing


class ControlsPanel(Panel):
    area = "controls"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W


        dataset, settings, providers = dash.options["dataset"], dash.state.settings, PROVIDERS

        self.W = W
        self.extra = list(dash.extra_sets)
        self._setting = False          # True while this panel sets its own widgets (main thread only)
        style = {"description_width": "initial"}
        full = W.Layout(width="100%")
        self.w_dataset = self.tag(W.Dropdown(options=[], description="data set", style=style, layout=full),
                                  "aisviz-dataset")
        self.w_path = self.tag(W.Text(placeholder="folder of a data set, or a data root", description="data path",
                                      style=style, layout=full), "aisviz-path")
        self.w_add = self.tag(W.Button(description="Use this folder", layout=W.Layout(width="auto")), "aisviz-add")
        self.hint = self.tag(W.HTML(""), "aisviz-catalog-hint")
        models = [r["name"] for r in list_models()]
        if settings.model not in models:
            models.insert(0, settings.model)
        self.w_model = self.tag(W.Dropdown(options=models, value=settings.model, description="network", style=style,
                                           layout=full), "aisviz-model")
        default = [("(network default)", None)]
        self.w_layer = self.tag(W.Dropdown(options=default, value=None, description="perturbed layer", style=style,
                                           layout=full), "aisviz-layer")
        self.w_readout = self.tag(W.Dropdown(options=default, value=None, description="read-out layer", style=style,
                                             layout=full), "aisviz-readout-layer")
        self.w_provider = self.tag(W.Dropdown(options=[(PROVIDER_LABELS.get(p, p), p) for p in providers],
                                              value=settings.provider, description="saliency", style=style,
                                              layout=full), "aisviz-provider")
        small = W.Layout(width="100%")
        self.w_folds = self.tag(W.BoundedIntText(value=settings.n_folds, min=2, max=50, description="folds",
                                                 style=style, layout=small), "aisviz-folds")
        self.w_seeds = self.tag(W.BoundedIntText(value=settings.n_seeds, min=1, max=50,
                                                 description="seeds (111, 222, …)", style=style, layout=small),
                                "aisviz-seeds")
        self.w_kstep = self.tag(W.BoundedIntText(value=settings.k_step, min=0, max=10000,
                                                 description="k step (0 = auto)", style=style, layout=small),
                                "aisviz-kstep")
        self.w_random = self.tag(W.BoundedIntText(value=settings.n_random, min=1, max=100,
                                                  description="random orders", style=style, layout=small),
                                 "aisviz-nrandom")
        self.w_measure = self.tag(W.Dropdown(options=[("Pearson r² (paper)", "pearson"), ("Spearman ρ²", "spearman")],
                                             value=settings.measure, description="alignment", style=style,
                                             layout=small), "aisviz-measure")
        self.w_similarity = self.tag(W.Dropdown(options=[("Pearson (paper)", "pearson"), ("cosine", "cosine")],
                                                value=settings.similarity, description="network RSM", style=style,
                                                layout=small), "aisviz-similarity")
        self.w_weights = self.tag(W.Dropdown(options=[("pretrained", "pretrained"),
                                                      ("none (random, for timing)", "none")],
                                             value=settings.weights, description="weights", style=style,
                                             layout=small), "aisviz-weights")
        self.w_apply = self.tag(W.Button(description="Apply", button_style="primary"), "aisviz-apply")
        advanced = W.VBox([self.w_folds, self.w_seeds, self.w_kstep, self.w_random, self.w_measure,
                           self.w_similarity, self.w_weights, W.HTML(f"<small>{esc(ADVANCED_HELP)}</small>"),
                           self.w_apply])
        self.w_advanced = self.tag(W.Accordion(children=[advanced], layout=W.Layout(width="100%")),
                                   "aisviz-advanced")
        self.w_advanced.set_title(0, "Advanced")
        self.w_advanced.selected_index = None
        self.refresh_datasets(select=dataset)
        on = dash.guard
        self.w_dataset.observe(on(self._changed, "switch the data set"), "value")
        self.w_add.on_click(on(lambda _: self.use_folder(self.w_path.value), "use that folder"))
        self.w_model.observe(on(self._on_model, "switch the network"), "value")
        self.w_layer.observe(on(self._on_layer, "switch the perturbed layer"), "value")
        self.w_readout.observe(on(self._changed, "switch the read-out layer"), "value")
        self.w_provider.observe(on(self._changed, "switch the saliency provider"), "value")
        self.w_apply.on_click(on(lambda _: self.request(), "apply the advanced settings"))
        self.root = self.tag(W.VBox([W.HTML("<b>Data and network</b>"), self.w_dataset, self.w_path, self.w_add,
                                     self.hint, self.w_model, self.w_layer, self.w_readout, self.w_provider,
                                     self.w_advanced]), "aisviz-controls")
        self.state.observe(lambda ch: self._on_view(ch["new"]), "view")
        self.state.observe(lambda ch: self._on_settings(ch["new"]), "settings")
        if allowed_roots() == []:                 # served to others without --allow-paths: no path box
            self.w_path.layout.display = self.w_add.layout.display = "none"

    # -- reading and setting

    def settings(self) -> Settings:
        """The controls' settings, checked against the server's limits (a client can send any value)."""
        return check_settings(Settings(
            dataset=self.w_dataset.value, model=self.w_model.value, weights=self.w_weights.value,
            layer=self.w_layer.value, readout=self.w_readout.value, similarity=self.w_similarity.value,
            measure=self.w_measure.value, n_folds=int(self.w_folds.value), n_seeds=int(self.w_seeds.value),
            k_step=int(self.w_kstep.value), n_random=int(self.w_random.value), provider=self.w_provider.value))

    def _set(self, widget, **values):
        """Set a widget's traits without starting a request."""
        self._setting = True
        try:
            for name, value in values.items():
                if getattr(widget, name) != value:
                    setattr(widget, name, value)
        finally:
            self._setting = False

    def request(self) -> None:
        """Ask for the settings the controls show: written to the state, where the runner picks them up."""
        self.state.settings = self.settings()
        self.state.requests += 1

    def _changed(self, _change=None):
        if not self._setting:
            self.request()

    def _on_model(self, change):
        if self._setting:
            return
        default = [("(network default)", None)]
        self._set(self.w_layer, options=default, value=None)
        self._set(self.w_readout, options=default, value=None)
        self.request()

    def _layer_options(self, model: str, layer: str | None):
        rows = self.dash.session.layers.get(model)
        if rows is None or layer is None:
            return None, None
        shape = lambda r: "×".join(map(str, r["shape"]))  # noqa: E731
        li = next(r["index"] for r in rows if r["name"] == layer)
        layers = [(f"{r['name']} ({shape(r)})" + ("  default" if r["default_layer"] else ""), r["name"])
                  for r in rows if r["conv_map"]]
        readouts = [(f"{r['name']} ({shape(r)})" + ("  default" if r["default_readout"] else ""), r["name"])
                    for r in rows if r["index"] > li]
        return layers, readouts

    def _on_layer(self, change):
        """A new perturbed layer: keep the read-out if it still comes after it, else the network's default."""
        if self._setting:
            return
        self._show_layers(settings_with_layer(self.settings(), self.dash.session.layers.get(self.w_model.value, []),
                                              change["new"]))
        self.request()

    def _show_layers(self, s: Settings) -> None:
        """Show s's perturbed layer and read-out (with their menus) without starting a request."""
        layers, readouts = self._layer_options(s.model, s.layer)
        if layers is not None:
            self._set(self.w_layer, options=layers, value=s.layer)
        if readouts is not None:
            self._set(self.w_readout, options=readouts or [("(none after this layer)", None)], value=s.readout)

    def _on_settings(self, s: Settings) -> None:
        """Settings written by another panel (e.g. a layer picked in the layer comparison): show them."""
        if s.model == self.w_model.value and (s.layer, s.readout) != (self.w_layer.value, self.w_readout.value):
            self._show_layers(s)

    def _on_view(self, view):
        """Show the resolved layers of the published result (the network's defaults named)."""
        if view is None:
            return
        s = view.result.settings
        layers, readouts = self._layer_options(s.model, s.layer)
        self._set(self.w_layer, options=layers or [(s.layer, s.layer)], value=s.layer)
        self._set(self.w_readout, options=readouts or [(s.readout, s.readout)], value=s.readout)

    # -- data sets

    def refresh_datasets(self, select=None):
        """Re-read the catalog and the data search path, and the hint about what is missing."""
        opts, missing = dataset_options(self.extra, self.dash.session.data_roots)
        current = select if select is not None else self.w_dataset.value
        values = [v for _, v in opts]
        self._set(self.w_dataset, options=opts)
        if current in values:
            self._set(self.w_dataset, value=current)
        data = ", ".join(str(p) for p in data_search_path(self.dash.session.data_roots))
        if allowed_roots() is not None:            # served to others: no server path in the page
            self.hint.value = (f"<small>Catalog sets not found on this server: {esc(', '.join(missing) or 'none')}."
                               "</small>")
            return
        self.hint.value = (f"<small>Catalog sets not found on the data search path (or without images): "
                           f"{esc(', '.join(missing) or 'none')}. Search path (roots added here, AISVIZ_DATA, "
                           f"data/, the user folder): {esc(data)}. Type a data-set folder or a data root (a "
                           "folder holding e.g. peterson2018/animals) above."
                           "</small>")

    def use_folder(self, path: str):
        """Add a data-set folder to the menu and select it, or add a data root (a folder holding catalog sets
        such as peterson2018/animals) to this dashboard's data search path and list its sets."""

        text = (path or "").strip()
        if not text:
            raise DataError("the data path is empty. Type the full path of a data-set folder (a similarity "
                            "matrix and images/, see data/README.md) or of a data root.")
        p = check_folder(text)                     # the server's allowed folders, before anything else
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
            roots = [p, *self.dash.session.data_roots]
            new = [v for _, v in dataset_options(self.extra, roots)[0] if v not in before]
            if not new:
                raise DataError(f"{p} is not a data-set folder ({as_set}) and holds no catalog data set either "
                                "(e.g. peterson2018/animals/ with its matrix and images).") from None
            self.dash.session.data_roots.insert(0, p)   # this dashboard's search path, not the process's
            self.refresh_datasets(select=new[0])
            self.request()
            return
        check_image_count(ds.n_images)
        ds.load_image(0)  # the images must be there too
        key = str(p.resolve())
        self.dash.session.keep_dataset(key, ds)
        self.extra.append((f"folder: {ds.name} ({ds.n_images} images)", key))
        self.refresh_datasets(select=key)
        self.request()
