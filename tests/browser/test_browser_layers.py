"""The layer comparison in a real browser: Voila serving the dashboard notebook, headless Chromium (the system
/usr/bin/chromium, driven by Playwright). The dashboard's sweep folder is filled first (two layers computed with
the dashboard's default settings), so the page shows the layer view at once; a click on a layer's point opens
that layer in the other views."""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAYERS = ["_conv_head", "_head_act"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium fonts-liberation)"
    for module in ("voila", "playwright", "ipywidgets", "plotly", "anywidget", "ipyevents", "dask"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'aisviz[app,sweep]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An AISVIZ_HOME whose dashboard sweep folder holds two layers of the default setting."""
    from aisviz.app.panels.layers import own_folder
    from aisviz.config import paper_seeds
    from aisviz.pipeline.sweeps import run_cells

    home = tmp_path_factory.mktemp("aisviz-browser-layers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))

        from aisviz import load_dataset, load_network

        config = {"readout": "flatten", "folds": 5, "seeds": tuple(paper_seeds(8)), "k_step": 0, "n_random": 1,
                  "weights": "pretrained", "similarity": "pearson", "measure": "pearson", "dtype": "float32",
                  "device": "auto", "use_cache": True}
        rows = run_cells("synthetic", "efficientnet_lite0", LAYERS, config, own_folder(),
                         lambda: load_dataset("synthetic"), lambda: load_network("efficientnet_lite0"))
    assert [r["status"] for r in rows] == ["computed", "computed"]
    return home


@pytest.fixture(scope="module")
def server(home):
    from aisviz.server.serve import voila_command
    from aisviz.server.voila_template import voila_environment

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = voila_environment(dict(os.environ, AISVIZ_HOME=str(home)))  # finds the dashboard's Voila template
    log = open(home / "voila.log", "w")
    proc = subprocess.Popen(voila_command(port=port, notebook=ROOT / "notebooks" / "dashboard.ipynb"), env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Voila exited with {proc.returncode}: {(home / 'voila.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("Voila did not open its port within 60 s")
    yield f"http://127.0.0.1:{port}/"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 2200})
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(server) else r.abort())
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server, timeout=300_000)  # Voila sends the page once the kernel has run the notebook
        page.wait_for_selector(".aisviz-readout-inner", timeout=300_000)   # the first result is shown
        yield page
        browser.close()


def test_layer_view_shows_the_sweep_cells_and_a_click_opens_the_layer(page):
    page.wait_for_selector(".aisviz-layer-figure .scatterlayer .trace .points path")
    x = page.eval_on_selector(".aisviz-layer-figure.js-plotly-plot",
                              "e => e.data.find(d => d.name === 'test, top-k* maps by AIS').x")
    assert list(x) == LAYERS
    index = page.eval_on_selector(".aisviz-layer-figure.js-plotly-plot",
                                  "e => e.data.findIndex(d => d.name === 'test, top-k* maps by AIS')")
    point = page.locator(".aisviz-layer-figure .scatterlayer .trace").nth(index).locator(".points path").first
    point.scroll_into_view_if_needed()
    point.hover(force=True)                      # plotly clicks the point it last showed as hovered
    try:
        page.wait_for_selector(".aisviz-layer-figure .hoverlayer .hovertext", timeout=20_000)
    finally:
        _shot(page, "layers_00_hover")
    page.mouse.down()
    page.mouse.up()
    page.wait_for_selector(".aisviz-info-inner[data-layer='_conv_head']", timeout=300_000)
    page.wait_for_function("() => document.querySelector('.aisviz-status').textContent.startsWith('ready')")
    assert not page.locator(".aisviz-message-box").is_visible()
    _shot(page, "layers_01_clicked")


def _shot(page, name):
    shots = ROOT / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
