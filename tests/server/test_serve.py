"""Server lifecycle and server-side limits, against real Voila servers (aisviz.server.voila_server) on free
127.0.0.1 ports with a one-widget notebook (light kernels): SIGTERM/SIGINT stop Voila and every kernel
and free the port; a busy port is a clear error; a closed tab's kernel is culled; the kernel cap serves a
plain "server full" page; a legacy-framing kernel websocket is refused and the server stays responsive."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_helpers import (
    free_port,
    get,
    kernel_id_and_model,
    kernel_processes,
    legacy_request_state,
    port_is_free,
    wait_listening,
    write_tiny_notebook,
)

pytestmark = pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                    for m in ("voila", "psutil", "websocket")),
                                reason="needs the app extra (voila) and psutil, websocket-client")

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path):
    from aisviz.server.voila_template import voila_environment

    env = voila_environment(dict(os.environ, AISVIZ_HOME=str(tmp_path / "home"),
                                 AISVIZ_APP_LOG=str(tmp_path / "dashboard.log")))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


class Server:
    """A Voila server subprocess from aisviz.server.serve.voila_command; stopped (tree and all) on exit."""

    def __init__(self, tmp_path, **options):
        from aisviz.server.serve import voila_command

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        notebook = write_tiny_notebook(tmp_path)
        self.log = tmp_path / "voila.log"
        self.proc = subprocess.Popen(voila_command(port=self.port, notebook=notebook, **options),
                                     env=_env(tmp_path), stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        from aisviz.server.serve import stop_process_tree

        stop_process_tree(self.proc, grace=10)


def test_voila_command_sets_the_limits():
    from aisviz.server.serve import cull_interval_for, voila_command

    cmd = voila_command(port=9999, notebook="x.ipynb", cull_idle_timeout=600, max_kernels=40)
    assert cmd[1:3] == ["-m", "aisviz.server.voila_server"]
    assert "--Voila.port_retries=0" in cmd and "--port=9999" in cmd
    assert "--MappingKernelManager.cull_idle_timeout=600" in cmd
    assert "--MappingKernelManager.cull_interval=60" in cmd and "--AisvizVoila.max_kernels=40" in cmd
    assert [cull_interval_for(t) for t in (3, 120, 600, 3600)] == [5, 12, 60, 60]
    # under a class's load kernels start slowly and outputs lag: nbclient's 4 s left 28 of 30 pages blank
    assert "--VoilaExecutor.startup_timeout=600" in cmd and "--VoilaExecutor.iopub_timeout=300" in cmd
    with pytest.raises(ValueError, match="max_kernels must be 0"):
        voila_command(notebook="x.ipynb", max_kernels=-1)


@pytest.mark.slow
def test_legacy_websocket_is_refused_and_the_server_keeps_answering(tmp_path):
    """Stock Voila 0.5.13 freezes here (reproduced: no answer within 5 s, memory growing by ~100 MB/s):
    the kernel's binary reply in legacy framing sends read_header_from_binary_message into a huge loop."""
    import psutil
    import websocket

    with Server(tmp_path) as server:
        status, page = get(server.url + "/")
        assert status == 200
        kernel, model = kernel_id_and_model(page)
        ws_url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels?session_id=t"
        with pytest.raises(websocket.WebSocketBadStatusException, match="400"):
            ws = websocket.create_connection(ws_url, timeout=10)          # legacy: no subprotocol
            ws.send(legacy_request_state(model))                          # (only reached without the fix)
        rss = psutil.Process(server.proc.pid).memory_info().rss
        t0 = time.perf_counter()
        assert get(server.url + "/voila/static/", timeout=5)[0] == 404    # answers at once
        assert time.perf_counter() - t0 < 2
        assert psutil.Process(server.proc.pid).memory_info().rss < rss + 50 * 2**20
        # the v1 protocol (what Voila's page uses) is accepted
        ws = websocket.create_connection(ws_url, timeout=10, subprotocols=["v1.kernel.websocket.jupyter.org"])
        assert ws.getsubprotocol() == "v1.kernel.websocket.jupyter.org"
        ws.close()
        assert "refused a kernel websocket without the v1.kernel.websocket.jupyter.org" in server.log.read_text()


def test_kernel_cap_serves_a_plain_server_full_page(tmp_path):
    with Server(tmp_path, max_kernels=1) as server:
        assert get(server.url + "/")[0] == 200
        status, body = get(server.url + "/")
        assert status == 503
        assert "<h1>Server full</h1>" in body and "Traceback" not in body and str(tmp_path) not in body
        assert len(kernel_processes(server.proc.pid)) == 1


@pytest.mark.slow
def test_a_kernel_no_page_connects_to_is_reclaimed_after_the_claim_timeout(tmp_path):
    """A page loaded without a live tab (a plain GET, or a tab closed while loading) leaves a kernel no page
    connects to: it is shut down claim_timeout seconds later (the idle cull spares it that long, so a slow page
    still gets its kernel)."""
    with Server(tmp_path, cull_idle_timeout=3, claim_timeout=4) as server:
        assert get(server.url + "/")[0] == 200
        assert len(kernel_processes(server.proc.pid)) == 1
        t0 = time.time()
        while kernel_processes(server.proc.pid) and time.time() - t0 < 60:
            time.sleep(0.5)
        assert not kernel_processes(server.proc.pid), "the unclaimed kernel was not reclaimed within 60 s"
        assert time.time() - t0 < 4 + 20


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_voila_and_every_kernel_and_frees_the_port(tmp_path, signum):
    import psutil

    port = free_port()
    notebook = write_tiny_notebook(tmp_path)
    code = (f"import sys; from aisviz.server.serve import serve; "
            f"sys.exit(serve(port={port}, notebook={str(notebook)!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_listening(port, proc)
        for _ in range(2):
            assert get(f"http://127.0.0.1:{port}/")[0] == 200
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(kernel_processes(proc.pid)) == 2
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signum
        assert f"on http://127.0.0.1:{port}/" in out
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, f"still running after the signal: {[p.cmdline() for p in alive]}"
        assert port_is_free(port)
    finally:
        if proc.poll() is None:
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()


def test_busy_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "aisviz", "serve", "--port", str(port)], env=_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 4                   # the environment stands in the way
    assert out.stderr.strip().splitlines()[-1] == (
        f"aisviz: error: port {port} on 127.0.0.1 is busy (Address already in use): stop what uses it or choose "
        "another with --port.")


def test_shared_needs_bundles(tmp_path):
    out = subprocess.run([sys.executable, "-m", "aisviz", "serve", "--shared", "--port", str(free_port())],
                         env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--shared needs --bundles DIR" in out.stderr


def test_a_served_kernel_builds_no_iri_grammar_for_plotly_widgets():
    """Issue 18: in a kernel of `aisviz serve` (AISVIZ_SHARED_ASSETS=1), loading plotly's widget code does not
    make jsonschema build its optional IRI grammars (rfc3987_syntax on lark: 1.5 s before the dashboard's first
    view); plotly's FigureWidget still works."""
    code = ("import sys\nfrom aisviz.server.voila_template import share_plotly_bundle\n"
            "assert share_plotly_bundle()\nimport plotly.graph_objects as go\ngo.FigureWidget()\n"
            "print(sorted({'lark', 'rfc3987_syntax'} & {k for k, v in sys.modules.items() if v is not None}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env=dict(os.environ, AISVIZ_SHARED_ASSETS="1"))
    assert out.stdout.strip() == "[]"


def test_the_page_loads_the_widget_extensions_but_not_plotlys_static_renderer(tmp_path):
    """Issue 18: the served page loads the widget managers (ipywidgets, anywidget: plotly's FigureWidget) but
    not jupyterlab-plotly, a renderer of static figures that the pages never show, whose 4.8 MB plotly.js every
    page fetched and compiled before its widgets rendered."""
    with Server(tmp_path) as server:
        status, page = get(server.url + "/")
    assert status == 200
    for wanted in ("@jupyter-widgets/jupyterlab-manager", "anywidget"):
        assert f'"name": "{wanted}"' in page or f'"name":"{wanted}"' in page, wanted
    assert "jupyterlab-plotly" not in page


def _preloads(page: str) -> list[str]:
    import re

    return re.findall(r'<link rel="preload" as="script" href="([^"]+)">', page)


def _headers(url: str) -> tuple[int, dict]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}


def test_the_page_preloads_the_extensions_remote_entries_and_their_hashed_files_are_kept(tmp_path):
    """Issue 19: Voila's page fetched the extensions' remoteEntry files only once voila.js and its chunks had
    run (a wave of its own); the page's head preloads them, each resolves, and a browser may keep them (Voila
    had it revalidate each on every page)."""
    import json
    import re

    with Server(tmp_path) as server:
        status, page = get(server.url + "/")
        assert status == 200
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">\s*(.*?)\s*'
                                      r'</script>', page, re.S).group(1))
        entries = [f"/voila/labextensions/{e['name']}/{e['load']}" for e in config["federated_extensions"]]
        assert len(entries) >= 3 and _preloads(page) == entries
        assert "jupyterlab_pygments" not in {e["name"] for e in config["federated_extensions"]}
        for url in entries:
            status, headers = _headers(server.url + url)
            assert status == 200 and "immutable" in headers["cache-control"], (url, headers)
        status, headers = _headers(server.url + "/voila/labextensions/anywidget/package.json")
        assert status == 200 and headers["cache-control"] == "no-cache"    # not named by its content


@pytest.mark.slow
def test_the_pool_refills_after_the_page_opened_not_during_its_open(tmp_path):
    """Issue 19: Voila refills the preheated pool 1 s after handing a kernel to a page: the new kernel's start
    (in researcher mode seconds of CPU: python, torch, the Dashboard) then ran on the cores the page's open
    needed. In researcher mode the refill starts POOL_FILL_DELAY s after, and does start."""
    from aisviz.server.serve import POOL_FILL_DELAY

    delay = POOL_FILL_DELAY["researcher"]

    with Server(tmp_path, pool_size=1) as server:
        end = time.time() + 90
        while len(kernel_processes(server.proc.pid)) < 1 and time.time() < end:
            time.sleep(0.5)
        time.sleep(3)                                        # the pool's kernel ran its notebook
        assert len(kernel_processes(server.proc.pid)) == 1
        assert get(server.url + "/")[0] == 200
        handed_out = time.time()
        while time.time() < handed_out + delay - 2:
            assert len(kernel_processes(server.proc.pid)) == 1, "the pool refilled during the page's open"
            time.sleep(0.25)
        while len(kernel_processes(server.proc.pid)) < 2 and time.time() < handed_out + delay + 60:
            time.sleep(0.5)
        assert len(kernel_processes(server.proc.pid)) == 2
