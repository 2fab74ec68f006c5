"""Serve the dashboard with Voila: `aisviz serve` (see serve()).

Voila runs a thin notebook in one kernel per browser tab, shows only its widgets, and never the code.
Two modes:
- researcher mode (default): notebooks/dashboard.ipynb builds aisviz.app.Dashboard, which computes any
  setting;
- shared mode (`--shared --bundles DIR`): a generated notebook builds aisviz.app.viewer's viewer over the result
  bundles in DIR (aisviz precompute): light kernels that import no torch, offer only the bundled settings
  and compute nothing.

Choices made here:
- bound to 127.0.0.1 only (`--Voila.ip`; Voila ignores a plain `--ip`): put a reverse proxy with
  authentication in front (JupyterHub, see deploy/) to share it beyond this machine;
- the port printed is the port served: a busy port is an error (Voila would silently take the next one);
- Voila runs as aisviz.server.voila_server: legacy-framing kernel websockets refused and every v1 frame checked
  before jupyter_server parses it (either can freeze the server), fair admission (a cap on kernels, kernels
  and page loads per visitor, with defaults per mode in LIMITS; plain 429/503 pages past them; kernels whose
  page never connects reclaimed after the claim timeout), hub users reaching only their own kernels, and the
  tab-close beacon accepted;
- served to others (a base URL, the hub, a non-loopback address) the researcher path box is off unless
  allow_paths names folders (AISVIZ_ALLOW_PATHS, see aisviz.app.limits);
- tracebacks hidden from viewers (`--show_tracebacks=False`) but kept in the server log; the dashboard
  also logs every callback error (logger "aisviz.app") to the file in AISVIZ_APP_LOG, which serve()
  sets to <AISVIZ_HOME>/logs/dashboard.log unless it is set already;
- optional preheated kernels (`--preheat_kernel=True --pool_size=N`), the pool refilled POOL_FILL_DELAY s after a
  kernel is handed out (in researcher mode not during the page's open);
- kernels with no tab open are culled after the idle timeout (default 10 min), checked every tenth of it,
  but never a kernel handed to a page that has not connected yet (aisviz.server.kernel_grace);
- SIGTERM or SIGINT stops Voila and every kernel, and frees the port.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aisviz.config import ENV_ALLOW_PATHS, aisviz_home
from aisviz.errors import EnvironmentProblem, UsageError
from aisviz.io.storage import atomic_write
from aisviz.pipeline.bundle_select import default_entry
from aisviz.pipeline.bundles import open_catalog
from aisviz.server.voila_template import voila_environment

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"
NOTEBOOK_SOURCE = (
    "# The aisviz dashboard (served by `aisviz serve`, i.e. Voila). Keep this notebook thin: the app is\n"
    "# aisviz.app.Dashboard; the computations are in the aisviz package.\n"
    "from aisviz.app import Dashboard\n"
    "\n"
    "dashboard = Dashboard()\n"
    "dashboard"
)
VIEWER_SOURCE = (
    "# The aisviz dashboard in shared viewer mode (served by `aisviz serve --shared --bundles DIR`): it shows\n"
    "# only the precomputed result bundles in the folder named by AISVIZ_BUNDLES, imports no torch and\n"
    "# computes nothing.\n"
    "import sys\n"
    "\n"
    "# This kernel validates no notebook: skip jsonschema's optional IRI checker (plotly -> nbformat ->\n"
    "# jsonschema imports it and it builds a grammar for seconds of the kernel's start).\n"
    "sys.modules.setdefault('rfc3987_syntax', None)\n"
    "from aisviz.app.viewer import viewer_from_environment  # noqa: E402\n"
    "\n"
    "viewer = viewer_from_environment()\n"
    "viewer"
)


def _write_notebook(name: str, source: str) -> Path:
    """A one-cell notebook written atomically to <AISVIZ_HOME>/app/<name> (an installed wheel has no
    notebooks/ folder; the viewer notebook is generated so that no path of this checkout is served)."""
    import nbformat


    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    text = nbformat.writes(nb).encode("utf-8")
    return atomic_write(aisviz_home() / "app" / name, lambda f: f.write(text))


def dashboard_notebook() -> Path:
    """The notebook Voila serves in researcher mode: notebooks/dashboard.ipynb of a source checkout, else a
    copy written to <AISVIZ_HOME>/app/dashboard.ipynb."""
    if NOTEBOOK.is_file():
        return NOTEBOOK
    return _write_notebook("dashboard.ipynb", NOTEBOOK_SOURCE)


def viewer_notebook() -> Path:
    """The notebook Voila serves in shared mode (<AISVIZ_HOME>/app/aisviz.ipynb: the page title is its name)."""
    return _write_notebook("aisviz.ipynb", VIEWER_SOURCE)


DEFAULT_CULL_IDLE = 600      # seconds a kernel with no open tab may stay idle before it is shut down


CLAIM_TIMEOUT = 45.0        # seconds after its page is sent for a kernel's websocket to connect
# Admission defaults (0 = no limit), per mode: a viewer kernel's memory is measured in viewer_memory.json, a
# researcher kernel is 1.3-1.4 GB.
LIMITS = {"shared": {"max_kernels": 40, "kernels_per_client": 4, "pages_per_minute": 20},
          "researcher": {"max_kernels": 4, "kernels_per_client": 0, "pages_per_minute": 0}}

# Seconds between handing a preheated kernel to a page and starting the kernel that refills the pool, per mode
# (Voila: 1). A researcher kernel's start (python, torch, the Dashboard, the cached result) is seconds of CPU:
# started after 1 s it ran during the page's open, on the cores the browser and the server need for it. A
# viewer kernel is light, and a class arrives in bursts: its pool refills at once.
POOL_FILL_DELAY = {"shared": 1.0, "researcher": 8.0}
KERNEL_START_TIMEOUT = 600   # seconds a visitor's kernel may take to start (Voila: 60)
OUTPUT_TIMEOUT = 300         # seconds a cell's output may lag its execution reply (nbclient: 4)


def cull_interval_for(cull_idle_timeout: int) -> int:
    """How often the culler looks: a tenth of the idle timeout, 5 to 60 s, so a closed tab's kernel is gone
    within cull_idle_timeout + that interval (jupyter-server's fixed default is 300 s)."""
    return int(min(60, max(5, int(cull_idle_timeout) // 10)))


# Front-end extensions not loaded in the served pages: jupyterlab-jupytext, installed with the docs extra
# (mkdocs-jupyter), is a JupyterLab-only UI; jupyterlab-plotly only renders static plotly figures (the pages show
# FigureWidgets, which load the shared plotly module), and loading it costs every page a second 4.8 MB plotly.js,
# fetched and compiled before the widgets render; jupyterlab_pygments colours code cells, which Voila hides (three
# more scripts fetched and run before the widgets).
PAGE_DENYLIST = ("jupyterlab-jupytext", "jupyterlab-plotly", "jupyterlab_pygments")


def voila_command(port: int = 8866, pool_size: int = 0, open_browser: bool = False, notebook=None,
                  cull_idle_timeout: int = DEFAULT_CULL_IDLE, cull_interval: int | None = None,
                  base_url: str | None = None, max_kernels: int = 0, hub_auth: bool = False,
                  kernels_per_client: int = 0, pages_per_minute: int = 0,
                  claim_timeout: float = CLAIM_TIMEOUT, pool_fill_delay: float = POOL_FILL_DELAY["researcher"],
                  extra_args=()) -> list[str]:
    """The Voila command line serve() runs (a list for subprocess): aisviz.server.voila_server, i.e. Voila with the
    admission limits (0 = none), the checked v1-only kernel websockets and the working tab-close beacon.
    pool_fill_delay: seconds from handing out a preheated kernel to starting its replacement."""
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"port must be 1 to 65535, not {port}.")
    if int(pool_size) < 0:
        raise UsageError(f"pool_size must be 0 (no preheated kernels) or more, not {pool_size}.")
    if int(cull_idle_timeout) < 1:
        raise UsageError(f"the idle timeout must be at least 1 second, not {cull_idle_timeout}.")
    for name, value in (("max_kernels", max_kernels), ("kernels_per_client", kernels_per_client),
                        ("pages_per_minute", pages_per_minute)):
        if int(value) < 0:
            raise UsageError(f"{name} must be 0 (no limit) or more, not {value}.")
    if float(claim_timeout) < 1:
        raise UsageError(f"the claim timeout must be at least 1 second, not {claim_timeout}.")
    interval = cull_interval_for(cull_idle_timeout) if cull_interval is None else int(cull_interval)
    cmd = [sys.executable, "-m", "aisviz.server.voila_server", str(notebook or dashboard_notebook()),
           "--Voila.ip=127.0.0.1", f"--port={int(port)}", "--Voila.port_retries=0",
           "--show_tracebacks=False", "--template=aisviz",  # aisviz.server.voila_template: no CDN
           f"--Voila.open_browser={bool(open_browser)}",
           f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_timeout)}",
           f"--MappingKernelManager.cull_interval={interval}",
           "--MappingKernelManager.cull_connected=False",
           # a kernel just handed to a page is not culled before the page connects (aisviz.server.kernel_grace)
           "--VoilaConfiguration.multi_kernel_manager_class=aisviz.server.kernel_grace.HandoutGraceKernelManager",
           "--ZMQChannelsWebsocketConnection.kernel_ws_protocol=v1.kernel.websocket.jupyter.org",
           # front-end extensions that fail in Voila's page (a console error on every page): not loaded
           *(f"--VoilaConfiguration.extension_denylist={name}" for name in PAGE_DENYLIST),
           f"--AisvizVoila.max_kernels={int(max_kernels)}",
           f"--AisvizVoila.kernels_per_client={int(kernels_per_client)}",
           f"--AisvizVoila.pages_per_minute={int(pages_per_minute)}",
           f"--AisvizVoila.claim_timeout={float(claim_timeout)}",
           f"--AisvizVoila.limit_by={'user' if hub_auth else 'address'}",
           # A class arriving at once starts dozens of kernels on a few cores. A cell whose output (here:
           # the dashboard) comes more than 4 s after its reply loses that output: a blank page (28 of 30
           # pages opened at once on 2 cores); a kernel slower than 60 s to start fails its page. Waiting
           # longer costs nothing when the kernel is quick.
           f"--VoilaExecutor.startup_timeout={KERNEL_START_TIMEOUT}",
           f"--VoilaExecutor.iopub_timeout={OUTPUT_TIMEOUT}"]
    if pool_size > 0:
        cmd += ["--preheat_kernel=True", f"--pool_size={int(pool_size)}",
                f"--VoilaKernelManager.fill_delay={float(pool_fill_delay)}"]
    if base_url:
        cmd.append(f"--Voila.base_url={base_url}")
    if hub_auth:   # run as a JupyterHub service: only users the hub lets in (access:services!service=...)
        cmd += ["--Voila.identity_provider_class=jupyterhub.singleuser.extension.JupyterHubIdentityProvider",
                "--Voila.authorizer_class=jupyterhub.singleuser.extension.JupyterHubAuthorizer"]
    return cmd + list(extra_args)


def loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.x.x.x, ::1, localhost)."""
    return host in ("localhost", "::1") or host.startswith("127.")


def check_installed() -> None:
    """Raise ImportError naming what to install when the dashboard stack is missing."""
    from importlib.util import find_spec

    # found, not imported: this process only supervises Voila, and stays small (~30 MB)
    missing = [package for package in ("voila", "ipywidgets", "plotly", "anywidget", "ipyevents", "ipykernel")
               if find_spec(package) is None]
    if missing:
        raise ImportError(f"the dashboard needs {', '.join(missing)}: pip install 'aisviz[app]' "
                          f"(or pip install {' '.join(missing)}).")


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise PortBusyError when port cannot be bound on host (bound as Voila binds it, SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            raise PortBusyError(f"port {port} on {host} is busy ({exc.strerror}): stop what uses it or choose "
                                "another with --port.") from None


class PortBusyError(EnvironmentProblem):
    """The requested port is taken (exit code 4)."""


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_process_tree(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM to Voila (it shuts its kernels down), then SIGKILL to whatever of its process tree (kernels
    included) is still alive after `grace` seconds, so no kernel outlives the server and the port is free."""
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    alive = [p for p in tree if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def serve(port: int = 8866, pool_size: int = 0, open_browser: bool = False,
          cull_idle_timeout: int = DEFAULT_CULL_IDLE, base_url: str | None = None, max_kernels: int | None = None,
          bundles=None, notebook=None, hub_auth: bool = False, kernels_per_client: int | None = None,
          pages_per_minute: int | None = None, claim_timeout: float = CLAIM_TIMEOUT, allow_paths=None,
          default: str | None = None,
          extra_args=()) -> int:
    """Run the dashboard with Voila on http://127.0.0.1:<port>/ until SIGINT/SIGTERM; returns Voila's exit
    code (130/143 when stopped by a signal, after Voila and every kernel have stopped).

    bundles: a folder of result bundles (aisviz precompute) = shared mode: viewer kernels that only show the
    bundled settings, import no torch and compute nothing. Without it: researcher mode (compute anything).
    pool_size > 0 keeps that many preheated kernels (each costs a kernel's memory; measured sizes, with their
    commands, machine and date, are in the documentation's Performance and scale page). Kernels with no
    tab open are shut down after cull_idle_timeout seconds, kernels whose page never connected after
    claim_timeout seconds. max_kernels caps the kernels serving visitors ("server full" page past it);
    kernels_per_client and pages_per_minute limit each visitor (an address, or a hub user with hub_auth). None
    takes the mode's default (LIMITS), 0 means no limit.
    allow_paths: folders the researcher dashboard's path box may open. Served to others (a base URL, hub_auth,
    or a --Voila.ip in extra_args other than loopback) the box is off unless folders are given; on a plain
    127.0.0.1 server it opens any folder unless folders are given.
    default: the setting shared pages open on (a setting id or "field=value,...", see
    aisviz.pipeline.bundle_select.default_entry; None = the bundle's first: the generated set's default layer).
    notebook: serve this notebook instead (researcher mode only). hub_auth: run as a JupyterHub service
    (deploy/jupyterhub_config.py): visitors log in through the hub."""
    check_installed()
    check_port_free(port)

    env = voila_environment()
    log_file = env.get("AISVIZ_APP_LOG") or str(aisviz_home() / "logs" / "dashboard.log")
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    env["AISVIZ_APP_LOG"] = log_file
    if allow_paths:
        env[ENV_ALLOW_PATHS] = os.pathsep.join(str(Path(p).expanduser().resolve()) for p in allow_paths)
    elif base_url or hub_auth or not all(loopback(a.split("=", 1)[1]) for a in extra_args
                                         if str(a).startswith("--Voila.ip=")):
        env[ENV_ALLOW_PATHS] = ""                 # served to others: the path box is off
    else:
        env.pop(ENV_ALLOW_PATHS, None)
    if bundles is not None:

        catalog = open_catalog(bundles, verify=True)   # schema and every checksum here; kernels check schema, sizes
        opening = default_entry(catalog.entries, default)  # a wrong --default fails here, not in every page
        env["AISVIZ_BUNDLES"] = str(Path(bundles).expanduser().resolve())
        env["AISVIZ_DEFAULT_SETTING"] = opening.id
        print(f"shared pages open on: {opening.label}", file=sys.stderr, flush=True)
        notebook = viewer_notebook()
    mode = "shared" if bundles is not None else "researcher"
    limits = dict(LIMITS[mode])
    given = {"max_kernels": max_kernels, "kernels_per_client": kernels_per_client,
             "pages_per_minute": pages_per_minute}
    limits.update({name: value for name, value in given.items() if value is not None})
    cmd = voila_command(port=port, pool_size=pool_size, open_browser=open_browser, notebook=notebook,
                        cull_idle_timeout=cull_idle_timeout, base_url=base_url, hub_auth=hub_auth,
                        claim_timeout=claim_timeout, pool_fill_delay=POOL_FILL_DELAY[mode], extra_args=extra_args,
                        **limits)
    shown = "shared viewer" if mode == "shared" else "researcher"
    print(f"aisviz dashboard ({shown} mode) on http://127.0.0.1:{port}{base_url or '/'} (Ctrl-C stops it); "
          f"dashboard log: {log_file}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, env=env)

    def on_signal(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
        if code == 1 and pool_size == 0:
            print(f"aisviz: Voila stopped with exit code 1 (see the messages above; is port {port} taken?)",
                  file=sys.stderr)
        return code
    except _Stop as stop:
        print("aisviz: stopping the dashboard and its kernels ...", file=sys.stderr, flush=True)
        stop_process_tree(proc)
        return 128 + stop.signum
    except KeyboardInterrupt:
        stop_process_tree(proc)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
