"""Status bar: progress over the job's real stages with the time since the click, the info line about
the shown result, and the message area (every error, in plain words, dismissable)."""
from __future__ import annotations

from aisviz.app.panels.base import Panel
from aisviz.viz.text import esc, info_html


class StatusPanel(Panel):
    area = "top"

    def __init__(self, dash):
        super().__init__(dash)
        import ipywidgets as W

        self.progress = self.tag(W.FloatProgress(value=0, min=0, max=1, bar_style="info",
                                                 layout=W.Layout(width="260px", max_width="100%")), "aisviz-progress")
        self.status = self.tag(W.HTML("idle", layout=W.Layout(flex="1 1 300px")), "aisviz-status")
        self.message = self.tag(W.HTML(""), "aisviz-message")
        dismiss = self.tag(W.Button(description="Dismiss", layout=W.Layout(width="90px", flex="0 0 auto")),
                           "aisviz-dismiss")
        dismiss.on_click(lambda _: dash.clear_message())
        self.message_box = self.tag(W.HBox([self.message, dismiss], layout=W.Layout(display="none")),
                                    "aisviz-message-box")
        self.info = self.tag(W.HTML(""), "aisviz-info")
        row = W.HBox([self.progress, self.status], layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.root = self.tag(W.VBox([row, self.message_box, self.info]), "aisviz-status-panel")
        self.state.observe(self._on_status, ["status", "progress", "busy"])
        self.state.observe(self._on_error, "error")
        self.state.observe(lambda ch: self._on_view(ch["new"]), "view")

    def _on_status(self, _change):
        st = self.state
        self.progress.value = st.progress
        self.progress.bar_style = "danger" if st.status.startswith("failed") else "success" if not st.busy else "info"
        self.status.value = f"<span data-busy='{int(st.busy)}'>{esc(st.status)}</span>"

    def _on_error(self, change):
        text = change["new"]
        self.message.value = "" if not text else (
            f"<div class='aisviz-error'><b>Problem.</b> {esc(text)}</div>".replace("\n", "<br>"))
        self.message_box.layout.display = "flex" if text else "none"

    def _on_view(self, view):
        self.info.value = "" if view is None else info_html(view.result)
