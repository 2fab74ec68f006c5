"""Export: the current results as a ZIP of CSVs (per-map AIS, splits, curves, per-image metrics, summary)
with a JSON of the settings, built on click and offered as a download link."""
from __future__ import annotations

from aisviz.app.panels.base import Panel, download_link
from aisviz.pipeline.export import results_zip, zip_name


class ExportPanel(Panel):
    area = "top"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        self.button = self.tag(W.Button(description="Prepare results ZIP (CSV + settings)", disabled=True,
                                        layout=W.Layout(width="auto")), "aisviz-export-zip")
        self.button.on_click(dash.exporting(self.prepare, "prepare the results ZIP"))
        self.link = self.tag(W.HTML(""), "aisviz-export-link")
        self.root = self.tag(W.HBox([self.button, self.link], layout=W.Layout(flex_flow="row wrap",
                                                                             align_items="center")),
                             "aisviz-export")
        self.state.observe(self._on_view, "view")

    def _on_view(self, change):
        self.button.disabled = change["new"] is None
        self.link.value = ""

    def prepare(self):
        view = self.state.view
        if view is None:
            return
        data = results_zip(view.result)
        self.link.value = download_link(data, zip_name(view.result), "application/zip",
                                        f"Download {zip_name(view.result)} ({len(data) // 1024 + 1} KB)",
                                        "aisviz-zip-link")
