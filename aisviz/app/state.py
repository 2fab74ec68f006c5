"""The dashboard's observable state (traitlets): what the user chose and what the views show.

Panels observe these traits and never each other: a panel that wants a computation writes `settings` and
bumps `requests`; the Dashboard (the runner) observes `requests` and computes `settings`; the controls observe
`settings` and show it. `view` (a ResultView: the published result with its
figures) is assigned whole, once, after its figures exist, so an event handler that reads it once always
sees a matching result and set of figures. Only the main (kernel) thread changes the state.
"""
from __future__ import annotations

from dataclasses import replace

from traitlets import Any, Bool, Float, HasTraits, Instance, Int, List, Unicode

from aisviz.pipeline.settings import Settings


class DashboardState(HasTraits):
    settings = Instance(Settings, args=())   # what the controls describe now
    requests = Int(0)                        # bumped by a panel asking to compute `settings`
    view = Any(None, allow_none=True)        # the published ResultView (None before the first result)
    k = Int(1)                               # the top-k slider
    follow_slider = Bool(False)              # opt-in: the heatmap uses the top-k maps instead of all maps
    display = Unicode("default")             # heatmap display mode: "default" or "paper"
    hovered = Int(None, allow_none=True)     # image under the mouse
    pinned = Int(None, allow_none=True)      # image pinned by a click
    image = Int(None, allow_none=True)       # image in the detail panel (pinned, else hovered, else 0)
    busy = Bool(False)
    stage = Unicode("")                      # what the running job does now, in words
    progress = Float(0.0)                    # 0..1 over the job's stages
    clicked_at = Float(None, allow_none=True)  # perf_counter() of the request being worked on
    by_user = Bool(True)                     # that request came from the user (False: the dashboard's own start)
    status = Unicode("idle")
    messages = List()                        # every error message shown, oldest first
    error = Unicode("")                      # the message shown now ("" = none)


def settings_with_layer(settings: Settings, rows: list[dict], layer: str | None) -> Settings:
    """settings with another perturbed layer: the read-out is kept if it still comes after the layer, else the
    network's default read-out after it (rows: the network's layer table, aisviz.models.networks.list_layers)."""
    if layer is None or not rows:
        return replace(settings, layer=layer)
    index = next(r["index"] for r in rows if r["name"] == layer)
    after = [r for r in rows if r["index"] > index]
    names = [r["name"] for r in after]
    readout = settings.readout
    if readout not in names:
        readout = next((r["name"] for r in after if r["default_readout"]), names[-1] if names else None)
    return replace(settings, layer=layer, readout=readout)
