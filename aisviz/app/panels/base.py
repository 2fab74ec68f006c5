"""The panel base class and the published view of a result."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

from aisviz.pipeline.result import Result
from aisviz.viz.figures import figure_bytes


@dataclass(eq=False)
class ResultView:
    """A published result with the figures the panels built for it (figures exist before the view is
    published) and a memo of rendered images (PNG bytes), reused when the user comes back to it."""

    result: Result
    figures: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)


def download_link(data: bytes, filename: str, mime: str, label: str, cls: str) -> str:
    """An <a download> link carrying the file as a data URI (served by no one: nothing leaves the page)."""
    href = f"data:{mime};base64," + base64.b64encode(data).decode()
    return f"<a class='aisviz-download {cls}' download='{filename}' href='{href}'>{label}</a>"


class Panel:
    """A part of the dashboard. dash: the Dashboard (its state, session, guard and helpers)."""

    area = "charts"

    def __init__(self, dash):
        self.dash = dash
        self.state = dash.state
        self.root = None

    def build(self, view: ResultView) -> None:
        """Add this panel's figures to a view before it is published (main thread)."""

    @staticmethod
    def tag(widget, cls: str):
        widget.add_class(cls)
        return widget


def figure_links(fig, name: str) -> str:
    """Download links for a matplotlib figure as PNG and SVG."""

    return " · ".join(download_link(figure_bytes(fig, fmt), f"{name}.{fmt}", mime, f"{name}.{fmt}",
                                    f"aisviz-dl-{fmt}") for fmt, mime in (("png", "image/png"),
                                                                          ("svg", "image/svg+xml")))
