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


def test_viewer_page_limits_and_refusals(page, server):
    text = page.locator("body").inner_text()
    # no path box, no free choice of network or layer: only the bundled values
    assert page.locator(".aisviz-path").count() == 0 and page.locator("input[type=text]").count() == 0
    assert page.locator(".aisviz-viewer-controls").count() == 1
    assert "Precomputed results" in text
    seeds = page.locator(".aisviz-viewer-n-seeds select")
    assert [o.replace("\xa0", " ") for o in seeds.locator("option").all_inner_texts()] == [
        "2 (111 … 222)", "3 (111 … 333)"]          # ipywidgets shows spaces as no-break spaces
    # a setting with one bundled value has no menu: the line of fixed settings names it
    assert page.locator(".aisviz-viewer-model").count() == 0
    assert "network efficientnet_lite0" in page.locator(".aisviz-viewer-fixed").inner_text()

    # the bundled settings switch at once (read from the bundle, nothing computed)
    t0 = time.perf_counter()
    seeds.select_option(index=1)
    page.wait_for_function("() => document.querySelector('.aisviz-viewer-provider select').selectedOptions[0]"
                           ".textContent === 'none'", timeout=30_000)
    page.wait_for_function("() => /9 splits \\(3 folds × 3 seeds/.test("
                           "document.querySelector('.aisviz-summary').innerText)", timeout=30_000)
    switch_s = time.perf_counter() - t0
    assert switch_s < 10, f"switching took {switch_s:.1f} s"
    page.wait_for_function("() => /^ready/.test(document.querySelector('.aisviz-status').innerText)",
                           timeout=10_000)     # the status line's update may arrive just after the summary's

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
        provider_model = client.find_widget("aisviz-viewer-provider")
        client.update(provider_model, {"index": 2})
        page.wait_for_function("() => /choice 2 of the saliency menu does not exist/.test("
                               "document.querySelector('.aisviz-message').innerText)", timeout=30_000)
        client.update(provider_model, {"_options_labels": ["regnet_y_128gf"], "disabled": False})
        page.wait_for_function("() => /asked to change _options_labels, disabled of the saliency menu/.test("
                               "document.querySelector('.aisviz-message').innerText)", timeout=30_000)
    finally:
        client.close()
    assert page.locator(".aisviz-viewer-provider select option").all_inner_texts() == ["center_bias", "none"]

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


FIRST_SCREEN_JS = """() => {
    // the page scrolls inside Voila's shell: every scrolled box back to the top, then the chart's place
    for (const e of document.querySelectorAll('*')) if (e.scrollTop) e.scrollTop = 0;
    window.scrollTo(0, 0);
    return document.querySelector('.aisviz-curve .main-svg').getBoundingClientRect().top; }"""


@pytest.mark.parametrize("width", [800, 1280])
def test_the_first_screen_shows_the_curve_and_only_real_choices(page, width):
    """A disabled menu per fixed setting (10 of 12 here) pushed the alignment curve below the first screen of an
    800-px window. Only settings with a choice get a menu; the fixed ones are one line."""
    from dashboard_pages import SHOTS

    page.set_viewport_size({"width": width, "height": 800})
    if page.locator(".aisviz-dismiss").is_visible():
        page.click(".aisviz-dismiss")          # the refusals shown by the test above
        page.wait_for_selector(".aisviz-message-box", state="hidden")
    page.wait_for_timeout(800)                 # the charts refit to the new width
    menus = page.locator(".aisviz-viewer-controls select")
    assert page.locator(".aisviz-viewer-controls select:disabled").count() == 0
    assert [menus.nth(i).locator("option").count() for i in range(menus.count())] == [2, 2]   # saliency, seeds
    fixed = page.locator(".aisviz-viewer-fixed").inner_text()
    assert "network efficientnet_lite0" in fixed and "data set tiny" in fixed, fixed
    top = page.evaluate(FIRST_SCREEN_JS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"shared_first_screen_{width}.png"))
    assert top < 800, f"the alignment curve starts at y = {top:.0f} px, below the first screen (800 px)"


@pytest.mark.parametrize("viewport, area, font", [(900, None, None), (1440, 800, 16)])
def test_no_button_is_cut_in_a_900px_area(page, viewport, area, font):
    """In JupyterLab at 1440 px beside its file browser (a ~900-px notebook area, ~800 px of output) the
    display-mode buttons read "default (viridis, colour b…": a fixed 190-px button, and that system's UI font
    drew the label wider than this machine's does. area: the dashboard held to that width, as the notebook
    holds it; font: the widgets' font size (px) for a wider font. Every visible button shows its whole text."""
    from dashboard_pages import SHOTS, cut_buttons

    page.set_viewport_size({"width": viewport, "height": 800})
    page.evaluate("""([w, f]) => { const d = document.querySelector('.aisviz-dashboard');
        d.style.maxWidth = w ? w + 'px' : ''; d.style.setProperty('--jp-widgets-font-size', f ? f + 'px' : ''); }""",
                  [area, font])
    try:
        page.wait_for_timeout(800)
        assert page.locator(".aisviz-display button").count() == 2
        page.locator(".aisviz-display").screenshot(path=str(SHOTS / f"shared_display_buttons_{viewport}.png"))
        assert cut_buttons(page) == []
        assert page.locator(".aisviz-display button").first.get_attribute("title"), "the short label has a tooltip"
    finally:
        page.evaluate("""() => { const d = document.querySelector('.aisviz-dashboard');
            d.style.maxWidth = ''; d.style.removeProperty('--jp-widgets-font-size'); }""")


def test_the_pinned_thumbnail_is_outlined(page):
    """A click pins a thumbnail: an outline marks exactly its cell; pinning another moves it; unpinning clears it."""
    from dashboard_pages import SHOTS, cell_point

    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(500)

    def outline():
        page.wait_for_selector(".aisviz-pin", timeout=20_000)
        return page.locator(".aisviz-pin").bounding_box()

    for i in (5, 10):
        x, y = cell_point(page, i)
        page.mouse.click(x, y)
        page.wait_for_selector(f".aisviz-detail-inner[data-index='{i}'][data-state='pinned']", timeout=20_000)
        page.wait_for_selector(f".aisviz-pin[data-index='{i}']", timeout=20_000)
        box, grid = outline(), page.locator(".aisviz-grid").bounding_box()
        scale = grid["width"] / page.eval_on_selector(".aisviz-grid", "e => e.naturalWidth")
        cell = 56 * scale                      # 16 images: 56-px cells (aisviz.viz.plots.grid_geometry)
        assert abs(box["x"] + box["width"] / 2 - x) < 1.5 and abs(box["y"] + box["height"] / 2 - y) < 1.5, (box, x, y)
        assert abs(box["width"] - cell) < 1.5 and abs(box["height"] - cell) < 1.5, (box, cell)
        assert page.locator(".aisviz-pin").count() == 1
        colour = page.eval_on_selector(".aisviz-pin", "e => getComputedStyle(e).borderTopColor")
        assert colour == "rgb(255, 127, 14)", colour
    page.locator(".aisviz-browser").screenshot(path=str(SHOTS / "shared_pinned_thumbnail.png"))
    x, y = cell_point(page, 10)
    page.mouse.click(x, y)                     # the pinned one again: unpinned
    page.wait_for_selector(".aisviz-detail-inner[data-state='hover']", timeout=20_000)
    page.wait_for_selector(".aisviz-pin", state="detached", timeout=20_000)
