"""Shared viewer mode: the dashboard over result bundles, for many visitors of one server
(`aisviz serve --shared --bundles DIR`; in a notebook: `Viewer("DIR")`).

The viewer is the dashboard (aisviz.app.Dashboard and its panels) with one panel replaced: instead
of the researcher's controls (data path box, any network, any layer, free validation settings) it has one
menu per setting the bundles hold several values of, each listing only those values, and a line naming the
settings fixed on this server. Nothing is computed: a result is
read from its bundle (memory-mapped, read-only: the kernels of one server share the pages) and torch is
never imported.

Every limit is checked in the kernel, not only in the browser:
- the menus are GuardedDropdowns: a state change that a browser sends (a comm message) is accepted only
  when it is an index into the menu's own options; anything else (an index out of range, another trait)
  is refused, logged, and the refusal is shown in the message area in plain words;
- `Viewer.request(settings)` (what every menu change goes through) serves only bundled settings;
- messages never show a server path, a user name or a traceback: unexpected errors are logged in full
  (logger "aisviz.app") and shown as one plain sentence.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

from aisviz.app.dashboard import Dashboard
from aisviz.app.panels import BrowserPanel, CurvePanel, DetailPanel, ExportPanel, MapsPanel, StatusPanel
from aisviz.app.panels.base import Panel
from aisviz.io.applog import short
from aisviz.pipeline.bundle_select import default_entry
from aisviz.pipeline.bundles import BundleCatalog, BundleError, open_catalog
from aisviz.pipeline.settings import FACETS, Settings, facet_text
from aisviz.viz.text import esc

log = logging.getLogger("aisviz.app")

ENV_BUNDLES = "AISVIZ_BUNDLES"
ENV_DEFAULT = "AISVIZ_DEFAULT_SETTING"     # the opening setting (aisviz serve --shared --default SETTING)
NOT_OFFERED = ("Refused: {what}. This server shows only its precomputed results: choose among the values in "
               "the menus.")


class Refused(ValueError):
    """A request for something the bundles do not hold (or a malformed widget message)."""


def best_entry(entries, current: dict, field: str, value):
    """The bundled entry whose `field` is `value` and that agrees with `current` on the most other
    settings (ties: the first written). Refused when no entry has that value."""
    matching = [e for e in entries if e.settings.get(field) == value]
    if not matching:
        raise Refused(NOT_OFFERED.format(what=f"{dict(FACETS).get(field, field)} = {facet_text(field, value)} is "
                                              "not among the bundled settings"))
    return max(matching, key=lambda e: (sum(e.settings.get(f) == current.get(f) for f, _ in FACETS),
                                        -entries.index(e)))


def _guarded_dropdown_class():
    import ipywidgets as W

    class GuardedDropdown(W.Dropdown):
        """A Dropdown that accepts from the browser only an index into its own options."""

        values: list  # the setting value of each option, in option order

        def __init__(self, on_refused, **kwargs):
            super().__init__(**kwargs)
            self._on_refused = on_refused

        def set_state(self, sync_data):
            extra = sorted(set(sync_data) - {"index"})
            index = sync_data.get("index", self.index)
            if extra:
                self._on_refused(Refused(NOT_OFFERED.format(
                    what=f"the browser asked to change {short(', '.join(map(str, extra)), 80)} of the "
                         f"{self.description} menu")))
                return
            if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(self.options)):
                self._on_refused(Refused(NOT_OFFERED.format(
                    what=f"choice {short(repr(index), 40)} of the {self.description} menu does not exist (it has "
                         f"{len(self.options)})")))
                self.send_state("index")          # put the browser's menu back
                return
            super().set_state(sync_data)

    return GuardedDropdown


class ViewerControlsPanel(Panel):
    """One menu per setting that the bundles hold more than one value of, listing only the bundled values, and
    one line naming the settings fixed on this server (a disabled menu per fixed setting filled the first
    screen of a narrow window). A change picks the bundled result closest to the other menus' values."""

    area = "controls"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        Guarded = _guarded_dropdown_class()
        self.entries = list(dash.catalog.entries)
        self.current = dash.first_entry
        self._setting = False
        style = {"description_width": "110px"}
        self.menus = {}
        fixed = []
        for field, label in FACETS:
            values = []
            for e in self.entries:
                if e.settings.get(field) not in values:
                    values.append(e.settings.get(field))
            if len(values) < 2:
                fixed.append(f"{label} <b>{esc(facet_text(field, values[0] if values else None))}</b>")
                continue
            menu = Guarded(dash.refused, options=[(facet_text(field, v), i) for i, v in enumerate(values)],
                           description=label, style=style, layout=W.Layout(width="100%"))
            menu.values = values
            menu.index = values.index(self.current.settings.get(field))
            menu.add_class(f"aisviz-viewer-{field.replace('_', '-')}")
            menu.observe(dash.guard(lambda ch, f=field: self._on_menu(f, ch), f"switch the {label}"), "index")
            self.menus[field] = menu
        choice = ("Switching is instant; nothing is computed on this server." if self.menus else
                  "This server holds one setting.")
        intro = W.HTML(f"<b>Precomputed results</b><br><small>This shared dashboard shows results computed in "
                       f"advance. {choice}</small>")
        self.fixed = self.tag(W.HTML(f"<small>Fixed here: {' · '.join(fixed)}</small>" if fixed else ""),
                              "aisviz-viewer-fixed")
        self.root = self.tag(W.VBox([intro, *self.menus.values(), self.fixed], layout=W.Layout(width="100%")),
                             "aisviz-viewer-controls")

    def _on_menu(self, field: str, change):
        if self._setting or change["new"] is None:
            return
        value = self.menus[field].values[change["new"]]
        entry = best_entry(self.entries, self.current.settings, field, value)
        # a value bundled only with other settings switches those too: say so, never silently
        also = [f"{label} {facet_text(f, self.current.settings.get(f))} → {facet_text(f, entry.settings.get(f))}"
                for f, label in FACETS if f != field and entry.settings.get(f) != self.current.settings.get(f)]
        self.show(entry)
        self.dash.request_entry(entry)
        if also:
            self.dash.show_error("", f"{dict(FACETS)[field]} {facet_text(field, value)} is bundled only with other "
                                     f"settings, so these switched too: {'; '.join(also)}.")

    def show(self, entry):
        """Set every menu to the entry's values (without triggering requests)."""
        self.current = entry
        self._setting = True
        try:
            for field, menu in self.menus.items():
                menu.index = menu.values.index(entry.settings.get(field))
        finally:
            self._setting = False

    def settings(self) -> Settings:
        return Settings.from_dict(self.current.settings)


class Viewer(Dashboard):
    """The dashboard over a bundle folder, read-only. bundles: the folder (or an opened BundleCatalog);
    default: the setting it opens on (aisviz.pipeline.bundle_select.default_entry: a setting id or
    "field=value,..."; None = the bundle's first, i.e. the generated set's default layer when present)."""

    PANELS = (StatusPanel, ExportPanel, ViewerControlsPanel, CurvePanel, MapsPanel, BrowserPanel, DetailPanel)
    SEND_PICTURES_AHEAD = False     # a class on one network: pictures travel when a visitor hovers

    def __init__(self, bundles, default: str | None = None, **options):
        self.catalog = bundles if isinstance(bundles, BundleCatalog) else open_catalog(bundles)
        self.first_entry = default_entry(self.catalog.entries, default)
        first = replace(self.catalog.load(self.first_entry.id), seconds=0.0)   # shown from the bundle
        s = first.settings
        super().__init__(dataset=s.dataset, model=s.model, provider=s.provider, n_folds=s.n_folds,
                         n_seeds=s.n_seeds, k_step=s.k_step, n_random=s.n_random, measure=s.measure,
                         similarity=s.similarity, weights=s.weights, results=(first,), compute=self._load,
                         **options)
        self.root.add_class("aisviz-viewer")

    # -- requests: only bundled settings

    def _entry_for(self, settings: Settings):
        wanted = settings.to_dict()
        for e in self.catalog.entries:
            if e.settings == wanted:
                return e
        differing = sorted({f for f, _ in FACETS if all(e.settings.get(f) != wanted.get(f)
                                                          for e in self.catalog.entries)})
        what = ", ".join(f"{dict(FACETS)[f]} = {facet_text(f, wanted.get(f))}" for f in differing) or \
            "this combination of settings"
        raise Refused(NOT_OFFERED.format(what=f"{what} is not among the bundled settings"))

    def request(self, settings: Settings):
        """Show the result of these settings: only bundled settings are served (Refused otherwise)."""
        entry = self._entry_for(settings)
        self.panel(ViewerControlsPanel).show(entry)
        self.request_entry(entry)

    def request_entry(self, entry):
        with self.ui_lock:
            self.state.settings = Settings.from_dict(entry.settings)
            self.state.clicked_at = time.perf_counter()
            self.state.by_user = True
            self.state.busy = True
            self.state.status = "opening the precomputed result"
        self.session.request(self.state.settings, clicked_at=self.state.clicked_at)

    def settings(self) -> Settings:
        return self.panel(ViewerControlsPanel).settings()

    def _load(self, settings: Settings, report, clicked_at):
        entry = self._entry_for(settings)          # checked again where the work happens
        report("views", 0.0, "opening the precomputed result")
        return replace(self.catalog.load(entry.id), seconds=0.0)

    # -- messages without paths, user names or tracebacks

    def refused(self, exc: Refused):
        self.show_error("", str(exc))

    def show_error(self, action: str, exc):
        if isinstance(exc, str):
            return super().show_error(action, exc)
        if isinstance(exc, Refused):
            log.warning("viewer: %s", exc)
            return super().show_error(action, str(exc))
        log.error("viewer: could not %s", action, exc_info=(type(exc), exc, exc.__traceback__))
        what = "open that result: the bundle on the server is damaged" if isinstance(exc, BundleError) else \
            f"{action or 'do that'}"
        return super().show_error(action, f"Could not {what}. The instructor can find the details in the "
                                          "server's log.")


def viewer_from_environment(**options) -> Viewer:
    """The Viewer over the bundle folder named in AISVIZ_BUNDLES, opening on the setting in
    AISVIZ_DEFAULT_SETTING when set (both set by `aisviz serve --shared`)."""
    folder = os.environ.get(ENV_BUNDLES)
    if not folder:
        raise BundleError(f"{ENV_BUNDLES} is not set: start the shared dashboard with "
                          "`aisviz serve --shared --bundles DIR`.")
    return Viewer(folder, default=os.environ.get(ENV_DEFAULT) or None, **options)
