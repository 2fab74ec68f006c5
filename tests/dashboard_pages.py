"""Driving the dashboard in a real browser: a Voila (or JupyterLab) server subprocess on a free 127.0.0.1
port and headless Chromium through Playwright (the system /usr/bin/chromium; never `playwright install`).
Shared by tests/browser/test_browser.py and benchmarks/bench_dashboard.py."""
from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPUTE_TIMEOUT_MS = 300_000
# what must be on screen, whole: both charts and the three overlays
KEY_PARTS = {"curve": ".aisviz-curve .main-svg", "bars": ".aisviz-ais-bars .main-svg",
             "image": ".aisviz-panel-image", "heatmap": ".aisviz-panel-ais", "saliency": ".aisviz-panel-saliency"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(proc, port: int, log_path: Path, seconds: float = 90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server did not open port {port} within {seconds} s")


@contextmanager
def server_process(cmd: list, env: dict, log_path: Path, port: int, cwd: Path = ROOT):
    """A server subprocess, stopped (SIGTERM, then SIGKILL) on exit."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd))
        try:
            wait_for_port(proc, port, log_path)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def voila_server(home: Path, pool_size: int = 0):
    from aisviz.server.serve import voila_command
    from aisviz.server.voila_template import voila_environment

    port = free_port()
    env = voila_environment(dict(os.environ, AISVIZ_HOME=str(home), AISVIZ_APP_LOG=str(home / "dashboard.log")))
    with server_process(voila_command(port=port, pool_size=pool_size, notebook=NOTEBOOK), env,
                        home / "voila.log", port) as proc:
        yield {"url": f"http://127.0.0.1:{port}/", "port": port, "proc": proc, "home": home}


def new_page(browser, port: int, width: int = 1280, height: int = 800):
    """A fresh context and page; every request not to our 127.0.0.1 server is aborted and recorded in
    page.outside; console errors and page errors are recorded in page.errors."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    local = f"http://127.0.0.1:{port}"
    outside, errors = [], []

    def route(r):
        if r.request.url.startswith(local) or r.request.url.startswith("data:") or r.request.url.startswith("blob:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.outside, page.errors = outside, errors
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    return page


def open_dashboard(browser, server, width: int = 1280, height: int = 800):
    """The Voila app at that viewport; returns (page, seconds from navigation to an interactive dashboard)."""
    page = new_page(browser, server["port"], width, height)
    t0 = time.perf_counter()
    page.goto(server["url"], timeout=120_000)
    try:
        wait_interactive(page)
    except Exception:
        shot(page, f"failed_open_{width}")  # what the page showed instead
        raise
    return page, time.perf_counter() - t0


def wait_interactive(page):
    page.wait_for_selector(".aisviz-dashboard", timeout=120_000)
    page.wait_for_selector(".aisviz-readout-inner", timeout=COMPUTE_TIMEOUT_MS)
    page.wait_for_selector(".aisviz-detail-inner", timeout=60_000)
    page.wait_for_selector(".aisviz-curve .main-svg", timeout=180_000)  # plotly's bundle loads late under load


def shot(page, name: str):
    """A screenshot of the whole dashboard: the page scrolls inside the app's shell (Voila's and JupyterLab's),
    so the viewport is made tall enough for the dashboard for the shot (same width), then restored."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    size = page.viewport_size
    tall = page.evaluate("() => { const e = document.querySelector('.aisviz-dashboard'); "
                         "return e ? e.getBoundingClientRect().height + 400 : 0; }")
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": int(tall)})
        page.wait_for_timeout(400)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


GEOMETRY_JS = """sel => {
    const e = document.querySelector(sel);
    if (!e) return {missing: true};
    e.scrollIntoView({block: 'nearest', inline: 'nearest'});  // reachable by scrolling is fine; clipped is not
    const r = e.getBoundingClientRect();
    const doc = document.scrollingElement || document.documentElement;
    const clippers = [];
    // An overflow:hidden ancestor clips only what it contains as a containing block: an absolutely
    // positioned box (Lumino's panels) escapes the static ancestors between it and its positioned one.
    let escaping = ['absolute', 'fixed'].includes(getComputedStyle(e).position);
    for (let p = e.parentElement; p; p = p.parentElement) {
        const s = getComputedStyle(p);
        const skip = s.display === 'contents' || (escaping && s.position === 'static');
        if (['absolute', 'fixed'].includes(s.position)) escaping = true;
        else if (s.position !== 'static') escaping = false;
        if (skip) continue;
        const hides = v => v === 'hidden' || v === 'clip';
        const q = p.getBoundingClientRect();
        if (hides(s.overflowX) && (r.left < q.left - 1 || r.right > q.right + 1)) clippers.push(p.className + ' x');
        if (hides(s.overflowY) && (r.top < q.top - 1 || r.bottom > q.bottom + 1))
            clippers.push(`${p.className} y: ${Math.round(r.top)}..${Math.round(r.bottom)} outside ` +
                          `${Math.round(q.top)}..${Math.round(q.bottom)}`);
        if (s.display === 'none' || s.visibility === 'hidden') clippers.push(p.className + ' hidden');
    }
    return {left: r.left + window.scrollX, right: r.right + window.scrollX, top: r.top + window.scrollY,
            width: r.width, height: r.height, clippers: clippers, viewport: window.innerWidth,
            page_width: doc.scrollWidth};
}"""


def geometry(page, selector: str) -> dict:
    return page.evaluate(GEOMETRY_JS, selector)


def layout_problems(page, parts=KEY_PARTS) -> list[str]:
    """What is wrong with the key parts at this viewport: missing, empty, clipped by an overflow:hidden parent,
    or reaching past the viewport's width (the page must not need sideways scrolling to show them)."""
    problems = []
    for name, sel in parts.items():
        g = geometry(page, sel)
        if g.get("missing"):
            problems.append(f"{name}: not on the page")
            continue
        if g["width"] < 50 or g["height"] < 50:
            problems.append(f"{name}: only {g['width']:.0f}×{g['height']:.0f} px")
        if g["clippers"]:
            problems.append(f"{name}: clipped by {g['clippers']}")
        if g["left"] < -1 or g["right"] > g["viewport"] + 1:
            problems.append(f"{name}: spans x {g['left']:.0f}..{g['right']:.0f}, viewport {g['viewport']}")
    return problems


CUT_BUTTONS_JS = """() => [...document.querySelectorAll('.aisviz-dashboard button')]
    .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth + 1)
    .map(b => `${b.textContent.trim()}: text ${b.scrollWidth} px in ${b.clientWidth} px`)"""


def cut_buttons(page) -> list[str]:
    """The dashboard's visible buttons whose text does not fit (shown cut, with an ellipsis)."""
    return page.evaluate(CUT_BUTTONS_JS)


def attrs(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => Object.assign({}, e.dataset)")


def marker(page) -> dict:
    return page.eval_on_selector(".aisviz-curve.js-plotly-plot", """e => {
        const t = e.data.find(d => d.name === 'current k (test)');
        const r = e.data.find(d => d.name === 'current k (train)');
        return {x: t.x[0], y: t.y[0], train_y: r.y[0]}; }""")


def img(page, selector: str) -> np.ndarray:
    """The pixels an <img> shows (its blob fetched in the page)."""
    from PIL import Image

    b64 = page.eval_on_selector(selector, """async e => {
        const buf = await (await fetch(e.src)).arrayBuffer();
        let s = ''; const a = new Uint8Array(buf);
        for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
        return btoa(s); }""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def cell_point(page, i: int) -> tuple[float, float]:
    """Page coordinates of the centre of image i in the thumbnail grid."""
    from aisviz.viz.plots import cell_centre, grid_geometry

    loc = page.locator(".aisviz-grid")
    loc.scroll_into_view_if_needed()
    box = loc.bounding_box()
    natural = page.eval_on_selector(".aisviz-grid", "e => [e.naturalWidth, e.naturalHeight]")
    n = int(attrs(page, ".aisviz-detail-inner")["n"])
    geo = grid_geometry(n)
    geo.update(rows=int(np.ceil(n / geo["columns"])), n=n)
    x, y = cell_centre(geo, i)
    return box["x"] + x * box["width"] / natural[0], box["y"] + y * box["height"] / natural[1]


def move_slider(page, presses: int = 1) -> float:
    """Press ArrowRight on the top-k slider; returns ms until the curve's marker and the read-out agree on
    the new k."""
    handle = page.locator(".aisviz-k .noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    before = marker(page)["x"]
    t0 = time.perf_counter()
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"""() => {{
        const e = document.querySelector('.aisviz-curve.js-plotly-plot');
        const t = e.data.find(d => d.name === 'current k (test)');
        const r = document.querySelector('.aisviz-readout-inner');
        return t.x[0] !== {before} && r && Number(r.dataset.k) === t.x[0]; }}""", timeout=20_000)
    return 1000 * (time.perf_counter() - t0)


def hover(page, i: int) -> float:
    """Move the mouse over image i of the grid; returns ms until the detail panel and metrics show it."""
    x, y = cell_point(page, i)
    t0 = time.perf_counter()
    page.mouse.move(x, y)
    page.wait_for_selector(f".aisviz-detail-inner[data-index='{i}']", timeout=20_000)
    page.wait_for_selector(f".aisviz-metrics-inner[data-index='{i}']", timeout=20_000)
    return 1000 * (time.perf_counter() - t0)


def click_widget_button(page, cls: str):
    sel = f".{cls} button" if page.locator(f".{cls} button").count() else f".{cls}"
    page.locator(sel).first.scroll_into_view_if_needed()
    page.click(sel)


# Latencies measured in the page: from the input event's timeStamp (performance.now()'s clock) until the DOM
# shows the result, seen by a MutationObserver and every animation frame. Arm, send the input, then collect.
ARM_JS = """([kind, wanted]) => {
    const done = {
        slider: () => {
            const gd = document.querySelector('.aisviz-curve.js-plotly-plot');
            const t = gd && gd.data && gd.data.find(d => d.name === 'current k (test)');
            const r = document.querySelector('.aisviz-readout-inner');
            return t && r && t.x[0] !== wanted && Number(r.dataset.k) === t.x[0];
        },
        hover: () => {
            const title = document.querySelector('.aisviz-detail-inner');
            const ais = document.querySelector('.aisviz-panel-ais');
            return title && title.dataset.index === String(wanted) && ais && ais.src !== window.__aisvizSrc &&
                ais.complete;
        },
    }[kind];
    window.__aisvizSrc = (document.querySelector('.aisviz-panel-ais') || {}).src;
    const event = kind === 'slider' ? 'keydown' : 'mousemove';
    window.__aisvizLatency = new Promise(resolve => {
        let t0 = null, finished = false;
        const start = ev => { if (t0 === null) t0 = ev.timeStamp; };
        document.addEventListener(event, start, true);
        const check = () => {
            if (finished || t0 === null || !done()) return;
            finished = true;
            const ms = performance.now() - t0;
            observer.disconnect();
            document.removeEventListener(event, start, true);
            resolve(ms);
        };
        const observer = new MutationObserver(check);
        observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
        const frame = () => { check(); if (!finished) requestAnimationFrame(frame); };
        requestAnimationFrame(frame);
        setTimeout(() => { if (!finished) { finished = true; observer.disconnect(); resolve(null); } }, 20000);
    });
}"""


def slider_latency_in_page(page) -> float | None:
    """ArrowRight on the focused slider handle; ms (performance.now() in the page) from the keydown until the
    curve's marker and the read-out show the new k; None after 20 s."""
    handle = page.locator(".aisviz-k .noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.evaluate(ARM_JS, ["slider", marker(page)["x"]])
    page.keyboard.press("ArrowRight")
    return page.evaluate("() => window.__aisvizLatency")


def hover_latency_in_page(page, i: int) -> float | None:
    """The mouse onto image i of the grid; ms (performance.now() in the page) from the first mousemove until the
    detail panel's title names image i and its AIS overlay shows a new, loaded image; None after 20 s."""
    x, y = cell_point(page, i)
    page.evaluate(ARM_JS, ["hover", i])
    page.mouse.move(x, y)
    return page.evaluate("() => window.__aisvizLatency")


K_STATE_JS = """() => {
    const gd = document.querySelector('.aisviz-curve.js-plotly-plot');
    const t = gd && gd.data && gd.data.find(d => d.name === 'current k (test)');
    const r = document.querySelector('.aisviz-readout-inner');
    const h = document.querySelector('.aisviz-k .noUi-handle');
    const curve = gd && gd.data && gd.data.find(d => d.name === 'test, top-k maps by AIS');
    return {marker: t ? t.x[0] : null, readout: r ? Number(r.dataset.k) : null,
            slider: h ? Number(h.getAttribute('aria-valuenow')) : null, n_k: curve ? curve.x.length : null,
            text: r ? r.innerText : ''}; }"""


def k_state(page) -> dict:
    """The curve's marker x, the read-out's and the slider's k, the number of evaluated k, the read-out text."""
    return page.evaluate(K_STATE_JS)


def press_on_slider(page, key: str, times: int = 1) -> dict:
    """Press a key on the focused slider handle; returns what the page shows once the read-out has moved
    (or after 5 s, so that a frozen marker is reported by the assertion, not by a timeout)."""
    handle = page.locator(".aisviz-k .noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    before = k_state(page)["readout"]
    for _ in range(times):
        page.keyboard.press(key)
    try:
        page.wait_for_function(f"""() => {{ const s = ({K_STATE_JS})();
            return s.readout !== {before} && s.readout === s.slider && s.marker === s.readout; }}""",
                               timeout=5_000)
    except Exception:  # noqa: BLE001 - the assertion below says what is wrong
        pass
    return k_state(page)


def _kernel_message(payload) -> dict | None:
    """A Jupyter kernel websocket frame as (msg, buffer bytes): a JSON text frame, or a binary frame in the
    v1 protocol (uint64 little-endian offsets; channel, header, parent, metadata, content, buffers) or the
    legacy one (uint32 big-endian count and offsets; the message as JSON, then the buffers)."""
    import json
    import struct

    if isinstance(payload, str):
        try:
            return dict(json.loads(payload), _buffers=0)
        except ValueError:
            return None
    n = struct.unpack_from("<Q", payload)[0] if len(payload) >= 8 else 0
    if 6 <= n <= 64 and len(payload) >= 8 * (n + 1):
        offsets = struct.unpack_from(f"<{n}Q", payload, 8)
        parts = [payload[offsets[i]:(offsets[i + 1] if i + 1 < n else len(payload))] for i in range(n)]
        try:
            msg = {"channel": parts[0].decode(), "header": json.loads(parts[1]), "content": json.loads(parts[4])}
        except ValueError:
            return None
        return dict(msg, _buffers=sum(len(p) for p in parts[5:]))
    nbufs = struct.unpack_from(">I", payload)[0]
    offsets = struct.unpack_from(f">{nbufs}I", payload, 4)
    try:
        msg = json.loads(payload[offsets[0]:offsets[1] if nbufs > 1 else len(payload)])
    except ValueError:
        return None
    return dict(msg, _buffers=len(payload) - (offsets[1] if nbufs > 1 else len(payload)))


def record_frames(page) -> list[dict]:
    """Start recording the page's kernel websocket frames (call before page.goto). Returns the list that
    fills: one dict per frame: direction ("sent"/"received"), bytes, msg_type, comm id, method and the
    widget state keys it carries (comm messages), buffer bytes. Clear it (del frames[:]) between gestures."""
    frames: list[dict] = []

    def add(direction, payload):
        size = len(payload.encode() if isinstance(payload, str) else payload)
        msg = _kernel_message(payload) or {}
        content = msg.get("content") or {}
        data = content.get("data") or {}
        frames.append({"direction": direction, "bytes": size,
                       "msg_type": (msg.get("header") or {}).get("msg_type") or msg.get("msg_type"),
                       "comm": content.get("comm_id"), "method": data.get("method"),
                       "keys": sorted((data.get("state") or {}).keys()), "buffers": msg.get("_buffers", 0)})

    def on_socket(ws):
        ws.on("framesent", lambda payload: add("sent", payload))
        ws.on("framereceived", lambda payload: add("received", payload))

    page.on("websocket", on_socket)
    return frames


def widget_updates(frames: list[dict]) -> list[dict]:
    """The widget-state frames among recorded ones (comm messages that update or echo a widget's state)."""
    return [f for f in frames if f["msg_type"] == "comm_msg" and f["method"] in ("update", "echo_update")]
