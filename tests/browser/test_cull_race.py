"""A page opened after its preheated kernel sat idle past the cull timeout (issue 19, item 3): the kernel is
handed to the page with an old idle clock and no connection, and a cull pass before the page's websocket
connects shut it down ("Loading widget..." for good). aisviz.server.kernel_grace spares a kernel no page has
connected to yet. Real timing, nothing held back: a shared-viewer Voila server with one preheated kernel, a
short idle timeout and a cull pass every second; the test waits until the pooled kernel has been idle longer
than the timeout, opens the page, and then leaves it connected for another idle period."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_tiny_set
from dashboard_pages import CHROMIUM, CHROMIUM_ARGS, ROOT, move_slider, new_page
from serve_helpers import free_port, get, kernel_processes, wait_listening

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright", "psutil")),
                                 reason="needs the app and test extras")]

IDLE = 6          # s: the idle cull timeout
INTERVAL = 1      # s between cull passes: a page that takes longer than this to connect meets one


def _pooled_kernel(proc, timeout: float = 240) -> str:
    """The id of the preheated kernel, once it exists."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for k in kernel_processes(proc.pid):
            found = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(k.cmdline()))
            if found:
                return found.group(1)
        time.sleep(0.5)
    raise TimeoutError("no preheated kernel started")


def _kernel(port: int, kernel_id: str) -> dict | None:
    """The server's record of a kernel (last_activity, connections, execution_state); None once it is gone."""
    status, body = get(f"http://127.0.0.1:{port}/api/kernels/{kernel_id}", timeout=20)
    return json.loads(body) if status == 200 else None


def _idle_for(record: dict) -> float:
    last = dt.datetime.fromisoformat(record["last_activity"].replace("Z", "+00:00"))
    return (dt.datetime.now(dt.timezone.utc) - last).total_seconds()


def test_a_page_opened_after_the_idle_timeout_gets_a_live_kernel(tmp_path):
    from playwright.sync_api import sync_playwright

    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result
    from aisviz.server.serve import stop_process_tree, viewer_notebook, voila_command
    from aisviz.server.voila_template import voila_environment

    result = compute_result(dataset=make_tiny_set(n=12, size=48, seed=3), provider="center_bias", n_folds=3,
                            n_seeds=1, k_step=256, progress=False)
    write_bundle(replace(result, settings=replace(result.settings, dataset="tiny")), tmp_path / "bundles")
    env = voila_environment(dict(os.environ, AISVIZ_BUNDLES=str(tmp_path / "bundles"),
                                 AISVIZ_APP_LOG=str(tmp_path / "dashboard.log")))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    port = free_port()
    log = tmp_path / "voila.log"
    cmd = voila_command(port=port, pool_size=1, notebook=viewer_notebook(), cull_idle_timeout=IDLE,
                        cull_interval=INTERVAL)
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        kernel_id = _pooled_kernel(proc)
        # past the idle period: the pooled kernel ran the notebook and has been quiet for longer than IDLE
        deadline = time.time() + 300
        while True:
            record = _kernel(port, kernel_id)
            assert record is not None, "the pooled kernel was culled while waiting in the pool"
            if record["execution_state"] == "idle" and _idle_for(record) > IDLE + 2:
                break
            assert time.time() < deadline, f"the pooled kernel never went idle: {record}"
            time.sleep(0.5)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = new_page(browser, port)
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                assert kernel_id in page.content(), "the page did not get the preheated kernel"
                try:
                    page.wait_for_selector(".aisviz-k .noUi-handle", timeout=90_000)    # widgets rendered
                except Exception as exc:
                    culled = [line for line in log.read_text().splitlines() if "Culling" in line]
                    raise AssertionError(f"the page never became interactive; culls: {culled}") from exc
                record = _kernel(port, kernel_id)
                assert record is not None and record["connections"] >= 1, record

                # connected, the kernel outlives another idle period of cull passes and still answers
                time.sleep(IDLE + 3 * INTERVAL)
                assert _kernel(port, kernel_id) is not None, "the connected page's kernel was culled"
                move_slider(page)
                assert not [e for e in page.errors if "Kernel" in e or "WebSocket" in e], page.errors
            finally:
                browser.close()
        assert not [line for line in log.read_text().splitlines() if "Culling" in line and kernel_id in line]
    finally:
        stop_process_tree(proc, grace=10)
