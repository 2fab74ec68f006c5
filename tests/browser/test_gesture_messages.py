"""What one gesture costs on the websocket (issue 18), in a real browser: `aisviz serve --shared` over a bundle
of a small set, headless Debian Chromium, every kernel websocket frame recorded (Playwright's framesent /
framereceived, decoded by dashboard_pages.record_frames).

- A slider step sends the slider's value and gets back its echo, the read-out and the marks (a few hundred
  bytes each): no plotly figure edit, and so none of the trace and layout deltas that the browser sent back
  after each one (before: 29 frames, 86 kB a step). The browser moves the curve's marker to the slider's k
  and, once the slider rests, colours the top-k bars.
- Hovering back to an image shown before sends no picture bytes (before: its three PNGs again, 160 kB);
  the detail panel then shows that image's pictures.
"""
from __future__ import annotations

import time
from pathlib import Path

import dashboard_pages as dp
import pytest
from conftest import make_tiny_set
from serve_helpers import shared_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(dp.CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright")), reason="needs the app and test extras")]

PORTS = range(19550, 19600)
FIGURE_EDITS = ("_js2py_traceDeltas", "_js2py_widget_layoutDelta", "_py2js_update", "_py2js_restyle",
                "_py2js_relayout")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        r = compute_result(dataset=make_tiny_set(n=16, size=64, seed=7), layer="_blocks.15",
                           provider="center_bias", n_folds=3, n_seeds=2, k_step=40, progress=False)
        write_bundle(r, root)
    return root


@pytest.fixture(scope="module")
def page(bundle, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with shared_server(bundle, tmp_path_factory.mktemp("serve"), PORTS) as port:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
            page = dp.new_page(browser, port, 1400, 1000)
            page.frames_seen = dp.record_frames(page)
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            dp.wait_interactive(page)
            yield page
            browser.close()


def _quiet(page, seconds: float = 1.5, timeout: float = 60):
    """Wait until no frame has crossed the websocket for `seconds` (the pictures sent ahead have arrived);
    then forget the frames seen."""
    frames, end = page.frames_seen, time.time() + timeout
    while time.time() < end:
        n = len(frames)
        page.wait_for_timeout(seconds * 1000)
        if len(frames) == n:
            break
    del frames[:]


def _received(frames) -> list:
    return [f for f in frames if f["direction"] == "received" and f["msg_type"] != "status"]


def test_a_slider_step_sends_a_few_small_messages_and_no_figure_edit(page):
    _quiet(page)
    moved = dp.press_on_slider(page, "ArrowRight")
    page.wait_for_timeout(500)                       # anything the step causes later (the bars, deltas)
    frames = list(page.frames_seen)
    assert moved["marker"] == moved["readout"] == moved["slider"], moved
    edits = [f for f in frames if set(f["keys"]) & set(FIGURE_EDITS)]
    assert edits == [], edits
    back = _received(frames)
    assert len(back) <= 4 and sum(f["bytes"] for f in back) < 4000, back
    assert sum(f["buffers"] for f in frames) == 0
    red = page.eval_on_selector(".aisviz-ais-bars.js-plotly-plot",
                                "e => e.data[0].marker.color.filter(c => c === '#d62728').length")
    assert red == moved["slider"]                    # the bars follow, drawn by the browser
    assert page.errors == []


def test_hovering_back_to_an_image_sends_no_picture_bytes(page):
    for i in (2, 9):
        x, y = dp.cell_point(page, i)
        page.mouse.move(x, y)
        page.wait_for_selector(f".aisviz-detail-inner[data-index='{i}']")
    _quiet(page)
    before = page.eval_on_selector(".aisviz-panel-ais", "e => e.src")
    x, y = dp.cell_point(page, 2)
    page.mouse.move(x, y)
    page.wait_for_selector(".aisviz-metrics-inner[data-index='2']")
    page.wait_for_function(f"() => {{ const e = document.querySelector('.aisviz-panel-ais'); "
                           f"return e.src !== '{before}' && e.complete && e.naturalWidth > 0; }}")
    page.wait_for_timeout(300)
    frames = list(page.frames_seen)
    assert sum(f["buffers"] for f in frames) == 0, [f for f in frames if f["buffers"]]
    back = _received(frames)
    assert sum(f["bytes"] for f in back) < 12_000, back
    assert page.errors == []
