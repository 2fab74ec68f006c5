"""The dashboard: JupyterLab widgets and the Voila app (`aisviz serve`), and the shared viewer over bundles.

    from aisviz.app import Dashboard
    Dashboard()            # in JupyterLab, or served by Voila (notebooks/dashboard.ipynb)

An observable state, a session with a job runner, one class per panel and a thin Dashboard that wires them.
Nothing here imports torch at import time: the viewer renders results from stored arrays.
"""
from aisviz.app.dashboard import Dashboard, default_provider

__all__ = ["Dashboard", "default_provider"]
