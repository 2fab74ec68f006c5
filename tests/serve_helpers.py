"""Helpers for the server tests: a tiny notebook (one Image widget: light kernels), free ports, a
Voila/`aisviz serve` subprocess, and a kernel-websocket client that speaks either framing."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TINY_SOURCE = ("import ipywidgets as W\n"
               "image = W.Image(value=bytes(range(256)) * 64, format='png')\n"
               "image.add_class('tiny-image')\n"
               "image")


def write_tiny_notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(TINY_SOURCE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(folder) / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def get(url: str, timeout: float = 60.0):
    """(status, body text) of a plain GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def get_from(url: str, source: str, timeout: float = 120.0):
    """(status, body text) of a plain GET sent from the loopback address `source` (e.g. 127.0.0.2): another
    client, as the server sees it."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 90.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@contextmanager
def shared_server(bundles: Path, home: Path, ports: Iterable[int], max_kernels: int = 2) -> Iterator[int]:
    """`aisviz serve --shared` on bundles, this checkout first on PYTHONPATH, its home, dashboard log and
    serve.log under home; yields its port once it listens, and stops it."""
    root = Path(__file__).resolve().parents[1]
    port = next(p for p in ports if port_is_free(p))
    env = dict(os.environ, AISVIZ_HOME=str(home / "home"), AISVIZ_APP_LOG=str(home / "dashboard.log"))
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    with open(home / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(bundles),
                                 "--port", str(port), "--max-kernels", str(max_kernels)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def kernel_processes(pid: int) -> list:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    kernels = []
    for child in children:
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                kernels.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # a kernel ending while we look (e.g. being reclaimed): not counted, the others are
    return kernels


def kernel_id_and_model(page_html: str) -> tuple[str, str]:
    """The kernel id and the Image widget's model id in a page Voila rendered."""
    kernel = re.search(r'kernelId["\']?\s*[:=]\s*["\']([0-9a-f-]{36})', page_html) or re.search(
        r'"kernelId":\s*"([0-9a-f-]{36})"', page_html)
    models = re.findall(r'"model_id":\s*"([0-9a-f]{32})"', page_html)
    if not kernel or not models:
        raise AssertionError("the page names no kernel or widget model")
    return kernel.group(1), models[-1]


def legacy_request_state(comm_id: str) -> str:
    """A comm message in the legacy JSON framing asking a widget for its state: the kernel answers
    with a message that carries the Image widget's bytes as a binary buffer."""
    session = uuid.uuid4().hex
    return json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": "comm_msg", "username": "t", "session": session,
                   "date": "2026-01-01T00:00:00Z", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"comm_id": comm_id, "data": {"method": "request_state"}}})


class KernelClient:
    """A v1-protocol kernel websocket client (what a browser speaks), for sending comm messages by hand:
    a hostile viewer's tool. find_widget(css_class) -> model id; update(model, state) sends a state change."""

    V1 = "v1.kernel.websocket.jupyter.org"

    def __init__(self, port: int, kernel_id: str, timeout: float = 20, source: str = "127.0.0.1"):
        import websocket
        from jupyter_client.session import Session

        self.session = Session(key=b"", username="t")
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={self.session.session}",
            subprotocols=[self.V1], timeout=timeout, socket=sock)

    def send(self, msg_type: str, content: dict, channel: str = "shell"):
        from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

        msg = self.session.msg(msg_type, content)
        self.ws.send_binary(serialize_msg_to_ws_v1(msg, channel, self.session.pack))
        return msg["header"]["msg_id"]

    def receive(self, until: float):
        """(channel, msg dict) pairs until the deadline."""
        import json

        import websocket
        from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

        while time.time() < until:
            self.ws.settimeout(max(0.1, until - time.time()))
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return
            if isinstance(raw, str):
                continue
            channel, parts = deserialize_msg_from_ws_v1(raw)
            header, parent, _, content = (json.loads(p) for p in parts[:4])
            yield channel, {"header": header, "parent_header": parent, "content": content}

    def comm_ids(self) -> list[str]:
        msg_id = self.send("comm_info_request", {"target_name": "jupyter.widget"})
        for _, msg in self.receive(time.time() + 20):
            if msg["parent_header"].get("msg_id") == msg_id and msg["header"]["msg_type"] == "comm_info_reply":
                return list(msg["content"]["comms"])
        raise TimeoutError("no comm_info_reply")

    def find_widget(self, css_class: str) -> str:
        """The model id of the widget whose _dom_classes hold css_class (asks every widget for its state)."""
        ids = self.comm_ids()
        for comm_id in ids:
            self.send("comm_msg", {"comm_id": comm_id, "data": {"method": "request_state"}})
        for _, msg in self.receive(time.time() + 30):
            data = msg["content"].get("data", {})
            if msg["header"]["msg_type"] == "comm_msg" and data.get("method") == "update" and \
                    css_class in data.get("state", {}).get("_dom_classes", []):
                return msg["content"]["comm_id"]
        raise AssertionError(f"no widget with class {css_class} among {len(ids)} comms")

    def update(self, comm_id: str, state: dict):
        self.send("comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state,
                                                            "buffer_paths": []}})

    def close(self):
        self.ws.close()
