"""Shared viewer mode in a real browser: `aisviz serve --shared --bundles DIR` (a real Voila subprocess)
driven by headless Debian Chromium. One page, grouped assertions (each page load starts a kernel):
no path box; the bundled settings switch at once; comm messages that force seeds past the bundled values,
an unbundled network or another trait are refused in the kernel and the refusal is shown; no server
path or user name in the page's text; the kernel is light (no torch loaded, RSS under 250 MB)."""
from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_tiny_set
from serve_helpers import KernelClient, free_port, kernel_processes, wait_listening

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright", "psutil", "websocket")),
                                 reason="needs the app and test extras")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Two settings of a small set: saliency 'center_bias' with 2 seeds, and no saliency with 3 seeds."""
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=16, size=64, seed=7)
        first = compute_result(dataset=ds, provider="center_bias", n_folds=3, n_seeds=2, k_step=64, progress=False)
        second = compute_result(dataset=ds, provider=None, n_folds=3, n_seeds=3, k_step=64, progress=False)
    write_bundle(first, root)
    write_bundle(replace(second, settings=replace(second.settings, provider="")), root)
    return root


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = dict(os.environ, AISVIZ_HOME=str(home / "home"), AISVIZ_APP_LOG=str(home / "dashboard.log"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    log = open(home / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(bundle),
                             "--port", str(port), "--max-kernels", "4"], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_listening(port, proc)
    yield {"port": port, "url": f"http://127.0.0.1:{port}/", "proc": proc, "home": home, "bundle": bundle}
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        local = f"http://127.0.0.1:{server['port']}"
        ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local) else route.abort())
        page = ctx.new_page()
        page.events = []    # (time, what): when plotly's widget code is asked for, and when the kernel connects
        page.on("request", lambda r: page.events.append((time.monotonic(), "plotly"))
                if "plotly-widget.js" in r.url else None)
        page.on("websocket", lambda ws: page.events.append((time.monotonic(), "websocket")))
        page.on("pageerror", lambda exc: page.events.append((time.monotonic(), f"page error: {exc}")))
        page.goto(server["url"], timeout=180_000)
        page.wait_for_selector(".aisviz-k .noUi-handle", timeout=180_000)
        page.wait_for_selector(".aisviz-grid", state="visible", timeout=60_000)
        yield page
        browser.close()


def _status(page) -> str:
    return page.locator(".aisviz-status").inner_text()


def test_viewer_page_limits_and_refusals(page, server):
    text = page.locator("body").inner_text()
    # no path box, no free choice of network or layer: only the bundled values
    assert page.locator(".aisviz-path").count() == 0 and page.locator("input[type=text]").count() == 0
    assert page.locator(".aisviz-viewer-controls").count() == 1
    assert "Precomputed results" in text
    seeds = page.locator(".aisviz-viewer-n-seeds select")
    assert [o.replace("\xa0", " ") for o in seeds.locator("option").all_inner_texts()] == [
        "2 (111 … 222)", "3 (111 … 333)"]          # ipywidgets shows spaces as no-break spaces
    assert page.locator(".aisviz-viewer-model select option").count() == 1

    # the bundled settings switch at once (read from the bundle, nothing computed)
    t0 = time.perf_counter()
    seeds.select_option(index=1)
    page.wait_for_function("() => document.querySelector('.aisviz-viewer-provider select').selectedOptions[0]"
                           ".textContent === 'none'", timeout=30_000)
    page.wait_for_function("() => /9 splits \\(3 folds × 3 seeds/.test("
                           "document.querySelector('.aisviz-summary').innerText)", timeout=30_000)
    switch_s = time.perf_counter() - t0
    assert switch_s < 10, f"switching took {switch_s:.1f} s"
    assert "ready" in _status(page)

    # a hostile client: comm messages straight to the kernel (the v1 websocket a browser uses)
    kernel_id = page.evaluate("() => { const m = document.body.innerHTML.match(/kernelId[\"' :=]+([0-9a-f-]{36})/);"
                              " return m && m[1]; }")
    if not kernel_id:
        kernels = kernel_processes(server["proc"].pid)
        assert len(kernels) == 1
        kernel_id = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(kernels[0].cmdline())).group(1)
    client = KernelClient(server["port"], kernel_id)
    try:
        seeds_model = client.find_widget("aisviz-viewer-n-seeds")
        client.update(seeds_model, {"index": 10**6})
        page.wait_for_selector(".aisviz-message:has-text('Refused')", timeout=30_000)
        message = page.locator(".aisviz-message").inner_text()
        assert "choice 1000000 of the seeds menu does not exist" in message
        assert seeds.evaluate("s => s.selectedIndex") == 1                                 # unchanged
        network_model = client.find_widget("aisviz-viewer-model")
        client.update(network_model, {"index": 1})
        page.wait_for_function("() => /network menu does not exist/.test("
                               "document.querySelector('.aisviz-message').innerText)", timeout=30_000)
        client.update(network_model, {"_options_labels": ["regnet_y_128gf"], "disabled": False})
        page.wait_for_function("() => /asked to change _options_labels, disabled of the network menu/.test("
                               "document.querySelector('.aisviz-message').innerText)", timeout=30_000)
    finally:
        client.close()
    assert page.locator(".aisviz-viewer-model select option").all_inner_texts() == ["efficientnet_lite0"]

    # no server path, user name or traceback anywhere in the page's text
    text = page.locator("body").inner_text()
    for secret in (str(server["bundle"]), str(server["home"]), str(ROOT), "/tmp/", "/home/", "/root",
                   "Traceback"):
        assert secret not in text, secret
    user = getpass.getuser()
    assert not re.search(rf"\b{re.escape(user)}\b", text), f"the user name {user} is shown"

    # the viewer kernel is light: no torch loaded, well under 250 MB
    kernels = kernel_processes(server["proc"].pid)
    assert len(kernels) == 1
    maps = Path(f"/proc/{kernels[0].pid}/maps").read_text()
    assert "libtorch" not in maps and "/torch/" not in maps
    rss_mb = kernels[0].memory_info().rss / 2**20
    assert rss_mb < 250, f"viewer kernel RSS {rss_mb:.0f} MB"
    print(f"\nviewer kernel RSS {rss_mb:.0f} MB; switching between bundled settings {switch_s:.2f} s")


def test_plotly_code_loads_once_before_the_widgets_exist(page):
    """anywidget fails a widget whose code is not loaded and initialised within 2 s of the widget's creation
    ("[anywidget] Failed to initialize model"): 8 pages opened at once on 2 busy cores lost their charts so.
    The page asks for plotly's widget code while its head is read, before the kernel (and so any widget)
    connects, and only once: the figures' own import finds it loaded."""
    kinds = [what for _, what in page.events]
    assert kinds.count("plotly") == 1, kinds
    assert "websocket" in kinds and kinds.index("plotly") < kinds.index("websocket"), kinds
    assert not [k for k in kinds if k.startswith("page error")], kinds
