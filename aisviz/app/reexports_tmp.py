"""The aisviz dashboard (kept importable from here): the code lives in the aisviz.dashboard package.

    from aisviz.app import Dashboard
    Dashboard()            # in JupyterLab, or served by Voila (`aisviz serve`, notebooks/dashboard.ipynb)
"""
from .dashboard.app import Dashboard, default_provider
from .dashboard.html import plain_message
from .dashboard.panels.browser import grid_geometry
from .dashboard.result import DashboardResult, Settings, build_result, paper_seeds
from .dashboard.session import auto_k_step

__all__ = ["Dashboard", "DashboardResult", "Settings", "auto_k_step", "build_result", "default_provider",
           "grid_geometry", "paper_seeds", "plain_message"]
