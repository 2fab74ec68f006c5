"""The dashboard's observable state (traitlets): what the user chose and what the views show.

Panels observe these traits and never each other. `view` (a ResultView: the published result with its
figures) is assigned whole, once, after its figures exist, so an event handler that reads it once always
sees a matching result and set of figures. Only the main (kernel) thread changes the state.
"""
from __future__ import annotations

from traitlets import Any, Bool, Float, HasTraits, Instance, Int, List, Unicode

from aisviz.pipeline.settings import Settings


class DashboardState(HasTraits):
    settings = Instance(Settings, args=())   # what the controls describe now
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
    status = Unicode("idle")
    messages = List()                        # every error message shown, oldest first
    error = Unicode("")                      # the message shown now ("" = none)
