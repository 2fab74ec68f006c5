"""One class per panel. Each builds its widgets in __init__ (root: the panel's top widget), may add
figures to a result's view before it is published (build), and observes the dashboard state. A panel
declares where the Dashboard places it (area): "top" (full width, above), "controls" (the side column),
"charts" and "images" (rows that wrap on narrow screens), "wide" (full width, below; e.g. a layer
comparison). Adding a panel = one class here and one line in Dashboard.PANELS.

Nothing here imports torch: the panels render from a DashboardResult alone.
"""
from .base import Panel, ResultView
from .browser import BrowserPanel
from .controls import ControlsPanel
from .curve import CurvePanel
from .detail import DetailPanel
from .export import ExportPanel
from .layers import LayerComparisonPanel
from .maps import MapsPanel
from .status import StatusPanel

__all__ = ["BrowserPanel", "ControlsPanel", "CurvePanel", "DetailPanel", "ExportPanel", "LayerComparisonPanel",
           "MapsPanel", "Panel", "ResultView", "StatusPanel"]
