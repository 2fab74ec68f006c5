"""Hover is the core gesture: a hovered thumbnail and its image | heatmap | saliency panels are on one screen.
At 1280x800 the panel sits beside the grid, thumbnail and panels on one screen (on main it was stacked below:
864 px from the grid's top to the heatmap's bottom); at 800 px it follows the grid directly. The three
images are level (on main the heatmap sat 16 px lower, under its longer caption). Real Voila
(`aisviz serve --shared`) and headless Chromium; screenshots of the hovered thumbnail go to
artifacts/screenshots/hover_<width>.png."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_set

sys.path.insert(0, str(Path(__file__).parent))
import dashboard_pages as dp  # noqa: E402
from serve_helpers import wait_listening  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(dp.CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright")), reason="needs the app and test extras")]

PANELS = (".aisviz-panel-image", ".aisviz-panel-ais", ".aisviz-panel-saliency")
RECT_JS = "s => { const r = document.querySelector(s).getBoundingClientRect(); " \
          "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    tmp = tmp_path_factory.mktemp("hover")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp / "home"))
        result = compute_result(dataset=make_tiny_set(n=48, size=64, seed=4), provider="center_bias", n_folds=3,
                                n_seeds=2, k_step=128, progress=False)
    write_bundle(result, tmp / "b", pngs=False)
    port = dp.free_port()
    env = dict(os.environ, AISVIZ_HOME=str(tmp / "home"), AISVIZ_APP_LOG=str(tmp / "dashboard.log"))
    env["PYTHONPATH"] = os.pathsep.join([str(dp.ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    with open(tmp / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(tmp / "b"),
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc, timeout=400)
            yield {"port": port, "url": f"http://127.0.0.1:{port}/"}
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("width", [1280, 800])
def test_a_hovered_thumbnail_and_its_panels_share_the_screen(browser, server, width):
    page = dp.new_page(browser, server["port"], width, 800)
    page.goto(server["url"], timeout=300_000)
    page.wait_for_selector(".aisviz-grid", state="visible", timeout=300_000)
    page.wait_for_selector(".aisviz-detail-inner", timeout=120_000)
    n = int(dp.attrs(page, ".aisviz-detail-inner")["n"])
    page.eval_on_selector(".aisviz-images", "e => e.scrollIntoView({block: 'start'})")   # scrolled to the images
    x, y = dp.cell_point(page, n - 1)              # the last thumbnail: the grid's bottom row
    page.mouse.move(x, y)
    page.wait_for_selector(f".aisviz-detail-inner[data-index='{n - 1}']", timeout=30_000)
    page.wait_for_timeout(500)
    dp.SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(dp.SHOTS / f"hover_{width}.png"))
    scroll_y = page.evaluate("() => [window.scrollX, window.scrollY]")
    rects = {s: page.evaluate(RECT_JS, s) for s in (*PANELS, ".aisviz-grid", ".aisviz-browser", ".aisviz-detail")}
    thumb_y = y - scroll_y[1]                      # cell_point gives page coordinates
    assert 0 <= thumb_y <= 800, f"the hovered thumbnail is off-screen at y = {thumb_y:.0f}"
    if width >= 1280:
        for s in PANELS:
            r = rects[s]
            assert r["top"] >= 0 and r["bottom"] <= 800 and r["right"] <= width, f"{s} is not on screen: {r}"
    image, heatmap = rects[PANELS[0]], rects[PANELS[1]]
    assert abs(image["top"] - heatmap["top"]) <= 2, f"the heatmap sits {heatmap['top'] - image['top']:.0f} px lower"
    grid, browser_box, detail = rects[".aisviz-grid"], rects[".aisviz-browser"], rects[".aisviz-detail"]
    if width >= 1280:
        assert detail["left"] >= grid["right"] and detail["top"] < grid["bottom"], "the panel is not beside the grid"
    else:
        assert 0 <= detail["top"] - browser_box["bottom"] <= 40, "the panel does not follow the grid directly"
    assert not [e for e in page.errors if "Error setting state" in e]
    page.context.close()
