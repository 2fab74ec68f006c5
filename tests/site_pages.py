"""Driving the static site (aisviz.site) in a real browser: a `python -m http.server` subprocess serving the
site's folder, headless Debian Chromium through Playwright, and the page's actions (open, move the slider, hover
a thumbnail). Shared by tests/browser/test_site.py and benchmarks/bench_site.py."""
from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PORTS = range(18500, 18600)      # this branch's ports
# what must be on screen, whole
KEY_PARTS = {"curve": ".aisviz-curve .main-svg", "bars": ".aisviz-ais-bars .main-svg", "grid": ".aisviz-grid",
             "image": ".aisviz-panel-image", "heatmap": ".aisviz-panel-ais", "saliency": ".aisviz-panel-saliency"}


def free_port() -> int:
    from serve_helpers import port_is_free

    for port in PORTS:
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextmanager
def static_server(folder: Path):
    """`python -m http.server` on 127.0.0.1 serving folder; yields its base URL."""
    from serve_helpers import wait_listening

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                             str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def new_page(browser, origin: str, width: int = 1280, height: int = 800):
    """A fresh context and page. Every request is recorded in page.requests; http(s) requests outside origin are
    aborted and recorded in page.outside too; console and page errors go to page.errors."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    outside, errors, requests = [], [], []

    def route(r):
        if r.request.url.startswith(origin):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("http*://**/*", route)
    page = context.new_page()
    page.outside, page.errors, page.requests = outside, errors, requests
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    return page


def wait_ready(page, setting: str | None = None, timeout: float = 120_000):
    sel = "body[data-aisviz-ready]" if setting is None else f"body[data-aisviz-ready='{setting}']"
    page.wait_for_selector(sel, state="attached", timeout=timeout)


def open_site(browser, url: str, origin: str, width: int = 1280, height: int = 800):
    """(page, seconds from navigation to interactive: curve drawn, read-out, grid and detail panel shown)."""
    page = new_page(browser, origin, width, height)
    t0 = time.perf_counter()
    page.goto(url)
    wait_ready(page)
    return page, time.perf_counter() - t0


def attrs(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => Object.assign({}, e.dataset)")


def marker(page) -> dict:
    return page.eval_on_selector(".aisviz-curve.js-plotly-plot", """e => {
        const t = e.data.find(d => d.name === 'current k (test)');
        const r = e.data.find(d => d.name === 'current k (train)');
        return {x: t.x[0], y: t.y[0], train_y: r.y[0]}; }""")


def move_slider(page, key: str = "ArrowRight") -> float:
    """Press a key on the focused top-k slider; returns ms until the marker and the read-out show the new k."""
    slider = page.locator(".aisviz-k-input")
    slider.focus()
    before = marker(page)["x"]
    t0 = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function(f"""() => {{
        const e = document.querySelector('.aisviz-curve.js-plotly-plot');
        const t = e.data.find(d => d.name === 'current k (test)');
        const r = document.querySelector('.aisviz-readout-inner');
        return t.x[0] !== {before} && r && Number(r.dataset.k) === t.x[0]; }}""", timeout=20_000)
    return 1000 * (time.perf_counter() - t0)


def hover(page, i: int) -> float:
    """Move the mouse over thumbnail i; returns ms until the detail panel and the metrics show image i."""
    thumb = page.locator(f".aisviz-thumb[data-index='{i}']")
    thumb.scroll_into_view_if_needed()
    box = thumb.bounding_box()
    t0 = time.perf_counter()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(f".aisviz-detail-inner[data-index='{i}']", state="attached", timeout=20_000)
    page.wait_for_selector(f".aisviz-metrics-inner[data-index='{i}']", state="attached", timeout=20_000)
    return 1000 * (time.perf_counter() - t0)


def shown_image(page, selector: str) -> np.ndarray:
    """The pixels an <img> shows (its data URI decoded here)."""
    from PIL import Image

    src = page.eval_on_selector(selector, "e => e.src")
    assert src.startswith("data:image/"), src[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), dtype=np.int16)
