"""One class per panel. Each builds its widgets in __init__ (root: the panel's top widget), may add
figures to a result's view before it is published (build), and observes the dashboard state. A panel
declares where the Dashboard places it (area): "top" (full width, above), "controls" (the side column),
"charts" and "images" (rows that wrap on narrow screens), "wide" (full width, below; e.g. a layer
comparison). Adding a panel = one class here and one line in Dashboard.PANELS.

Nothing here imports torch: the panels render from a Result alone.
"""
from aisviz.app.panels.base import Panel, ResultView
from aisviz.app.panels.browser import BrowserPanel
from aisviz.app.panels.controls import ControlsPanel
from aisviz.app.panels.curve import CurvePanel
from aisviz.app.panels.detail import DetailPanel
from aisviz.app.panels.export import ExportPanel
from aisviz.app.panels.layers import LayerComparisonPanel
from aisviz.app.panels.maps import MapsPanel
from aisviz.app.panels.status import StatusPanel

__all__ = ["BrowserPanel", "ControlsPanel", "CurvePanel", "DetailPanel", "ExportPanel", "LayerComparisonPanel",
           "MapsPanel", "Panel", "ResultView", "StatusPanel"]
