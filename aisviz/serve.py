"""Serve the dashboard with Voila: `aisviz serve` (see serve()).

Voila runs notebooks/dashboard.ipynb (a few lines that build aisviz.app.Dashboard) in one kernel per
browser tab, shows only its widgets, and never the code. Choices made here:
- bound to 127.0.0.1 only (`--Voila.ip`; Voila ignores a plain `--ip`): put a reverse proxy with
  authentication in front to share it beyond this machine;
- tracebacks hidden from viewers (`--show_tracebacks=False`) but kept in the server log; the dashboard
  also logs every callback error (logger "aisviz.app") to the file in AISVIZ_APP_LOG, which serve()
  sets to <AISVIZ_HOME>/logs/dashboard.log unless it is set already;
- optional preheated kernels (`--preheat_kernel=True --pool_size=N`): each pooled kernel has already
  run the notebook (so the default results are computing or ready) when a visitor arrives;
- idle kernels culled (`--MappingKernelManager.cull_idle_timeout`), so a workshop server does not
  collect kernels of closed tabs; kernels with an open tab are never culled.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .storage import aisviz_home

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"
NOTEBOOK_SOURCE = (
    "# The aisviz dashboard (served by `aisviz serve`, i.e. Voila). Keep this notebook thin: the app is\n"
    "# aisviz.app.Dashboard; the computations are in the aisviz package.\n"
    "from aisviz.app import Dashboard\n"
    "\n"
    "dashboard = Dashboard()\n"
    "dashboard"
)


def dashboard_notebook() -> Path:
    """The notebook Voila serves: notebooks/dashboard.ipynb of a source checkout, else a copy written to
    <AISVIZ_HOME>/app/dashboard.ipynb (an installed wheel has no notebooks/ folder)."""
    if NOTEBOOK.is_file():
        return NOTEBOOK
    import nbformat

    target = aisviz_home() / "app" / "dashboard.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_SOURCE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    return target


def voila_command(port: int = 8866, pool_size: int = 0, open_browser: bool = False, notebook=None,
                  cull_idle_timeout: int = 1800, cull_interval: int = 300, base_url: str | None = None,
                  extra_args=()) -> list[str]:
    """The Voila command line serve() runs (a list for subprocess)."""
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1 to 65535, not {port}.")
    if int(pool_size) < 0:
        raise ValueError(f"pool_size must be 0 (no preheated kernels) or more, not {pool_size}.")
    cmd = [sys.executable, "-m", "voila", str(notebook or dashboard_notebook()),
           "--Voila.ip=127.0.0.1", f"--port={int(port)}",
           "--show_tracebacks=False", "--template=aisviz",  # aisviz.dashboard.voila_template: no CDN
           f"--Voila.open_browser={bool(open_browser)}",
           f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_timeout)}",
           f"--MappingKernelManager.cull_interval={int(cull_interval)}",
           "--MappingKernelManager.cull_connected=False"]
    if pool_size > 0:
        cmd += ["--preheat_kernel=True", f"--pool_size={int(pool_size)}"]
    if base_url:
        cmd.append(f"--Voila.base_url={base_url}")
    return cmd + list(extra_args)


def check_installed() -> None:
    """Raise ImportError naming what to install when the dashboard stack is missing."""
    missing = []
    for module, package in (("voila", "voila"), ("ipywidgets", "ipywidgets"), ("plotly", "plotly"),
                            ("anywidget", "anywidget"), ("ipyevents", "ipyevents"), ("ipykernel", "ipykernel")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(f"the dashboard needs {', '.join(missing)}: pip install 'aisviz[app]' "
                          f"(or pip install {' '.join(missing)}).")


def serve(port: int = 8866, pool_size: int = 0, open_browser: bool = False, cull_idle_timeout: int = 1800,
          base_url: str | None = None, extra_args=()) -> int:
    """Run the dashboard with Voila on http://127.0.0.1:<port>/ until interrupted; returns Voila's exit code.

    pool_size > 0 keeps that many preheated kernels per notebook (each costs a kernel's memory: measured
    1.3-1.4 GB resident after the default job, about 0.7 GB of it its own, the rest shared libraries).
    Kernels idle for cull_idle_timeout seconds (with no tab open) are shut down at the next cull check
    (every cull_interval seconds)."""
    check_installed()
    from .dashboard.voila_template import voila_environment

    env = voila_environment()
    log_file = env.get("AISVIZ_APP_LOG") or str(aisviz_home() / "logs" / "dashboard.log")
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    env["AISVIZ_APP_LOG"] = log_file
    cmd = voila_command(port=port, pool_size=pool_size, open_browser=open_browser,
                        cull_idle_timeout=cull_idle_timeout, base_url=base_url, extra_args=extra_args)
    print(f"aisviz dashboard on http://127.0.0.1:{port}{base_url or '/'} (Ctrl-C stops it); "
          f"dashboard log: {log_file}", file=sys.stderr)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
