"""The AIS dashboard package: an observable state, a session with a job runner, pure derived
functions, HTML helpers, one class per panel and a thin Dashboard that wires them.

Nothing here imports torch at import time: a read-only viewer can render a DashboardResult from
stored arrays. `Dashboard` loads on first use.
"""
from .result import DashboardResult, Settings, build_result, curve_stats, paper_seeds

__all__ = ["Dashboard", "DashboardResult", "Settings", "build_result", "curve_stats", "paper_seeds"]


def __getattr__(name):
    if name == "Dashboard":
        from .app import Dashboard

        return Dashboard
    raise AttributeError(f"module 'aisviz.dashboard' has no attribute {name!r}")
