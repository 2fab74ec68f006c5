"""The JupyterHub deployment end to end: deploy/jupyterhub_config.py with the real hub, its npm proxy
(deploy/node_modules, `make hub` installs it) and headless Chromium. A visitor who is not logged in is
sent to the hub's login; after logging in they land on the shared dashboard (the hub-managed
`aisviz serve --shared --hub-auth` service); a researcher starts their own JupyterLab from the hub."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_tiny_set
from serve_helpers import free_port, get, wait_listening

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "node_modules" / ".bin" / "configurable-http-proxy"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PROXY.exists(), reason="JupyterHub's proxy is not installed: "
                                 "cd deploy && npm ci (make hub does it)"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("jupyterhub", "voila", "playwright")),
                                 reason="needs the hub, app and test extras"),
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    state = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(state / "home"))
        result = compute_result(dataset=make_tiny_set(n=12, size=48, seed=2), provider="center_bias", n_folds=3,
                                n_seeds=1, k_step=256, progress=False)
    write_bundle(replace(result, settings=replace(result.settings, dataset="tiny")), state / "bundles")
    port, service_port = free_port(), free_port()
    env = dict(os.environ, AISVIZ_HUB_STATE=str(state), AISVIZ_HUB_PASSWORD="workshop-pw",
               AISVIZ_HUB_PORT=str(port), AISVIZ_HUB_SERVICE_PORT=str(service_port),
               AISVIZ_HUB_API_PORT=str(free_port()), AISVIZ_HUB_PROXY_API_PORT=str(free_port()),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    log = open(state / "hub.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "deploy" / "jupyterhub_config.py")],
                            env=env, cwd=state, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(port, proc, timeout=120)
        wait_listening(service_port, proc, timeout=120)
        deadline = time.time() + 120        # the hub adds the service's proxy route after it started
        while get(f"http://127.0.0.1:{port}/services/aisviz/")[0] == 404 and time.time() < deadline:
            time.sleep(0.5)
        yield {"url": f"http://127.0.0.1:{port}", "state": state, "proc": proc}
    finally:
        import psutil

        tree = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for p in tree:
            if p.is_running():
                p.kill()


def test_login_then_shared_dashboard_then_jupyterlab(hub):
    from playwright.sync_api import sync_playwright

    url = hub["url"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context()
            ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1") else r.abort())
            page = ctx.new_page()
            # not logged in: the dashboard sends the visitor to the hub's login page
            page.goto(f"{url}/services/aisviz/", timeout=120_000)
            page.wait_for_selector("input[name=username]", timeout=60_000)
            assert "/hub/login" in page.url
            page.fill("input[name=username]", "student1")
            page.fill("input[name=password]", "wrong")
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_selector("input[name=username]", timeout=30_000)
            assert "/services/aisviz" not in page.url                       # a wrong password stays out
            page.fill("input[name=username]", "student1")
            page.fill("input[name=password]", "workshop-pw")
            page.click("input[type=submit], button[type=submit]")
            # logged in: OAuth with the hub, then the shared dashboard itself
            page.wait_for_selector(".aisviz-k .noUi-handle", timeout=180_000)
            assert "/services/aisviz/" in page.url
            assert page.locator(".aisviz-viewer-controls").count() == 1 and page.locator(".aisviz-path").count() == 0
            # a researcher's own JupyterLab, started from the hub
            page.goto(f"{url}/hub/spawn", timeout=120_000)
            page.wait_for_url("**/user/student1/lab**", timeout=180_000)
            page.wait_for_selector(".jp-LabShell, #jp-main-dock-panel, .lm-DockPanel", timeout=180_000)
        finally:
            browser.close()
