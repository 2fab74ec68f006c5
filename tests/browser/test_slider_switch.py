"""The top-k slider and the curve's "current k" marker in a real browser, across switches between results
(issue 19 items 3 and 7): `aisviz serve --shared` over a bundle of two settings of a small set whose k grids
differ (perturbed layer _blocks.15, 320 maps, k step 40, shown first; _head_act, 1280 maps, k step 64), driven
by headless Debian Chromium. One page (each page load starts a kernel):

- switching to the other layer and back re-shows the first result's charts; moving the slider must then
  still move the plotted marker to the slider's k (read from plotly's gd.data in the page) and no
  "Error setting state" may reach the console (issue 19 item 3: the marker froze and the console said so);
- on the result with more maps than the first, End sends the slider to the largest k (it went to the first
  result's) and Home to k = 1, where the read-out states that R² is undefined (issue 19 item 7).
"""
from __future__ import annotations

from pathlib import Path

import dashboard_pages as dp
import pytest
from conftest import make_tiny_set
from serve_helpers import shared_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(dp.CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright")), reason="needs the app and test extras")]

PORTS = range(19100, 19200)
SETTINGS = (("_blocks.15", 40), ("_head_act", 64))    # (perturbed layer, k step); the first is shown first
N_MAPS = {"_blocks.15": 320, "_head_act": 1280}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=16, size=64, seed=7)
        for layer, step in SETTINGS:
            r = compute_result(dataset=ds, layer=layer, provider="center_bias", n_folds=3, n_seeds=2, k_step=step,
                               progress=False)
            write_bundle(r, root)
    return root


@pytest.fixture(scope="module")
def page(bundle, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with shared_server(bundle, tmp_path_factory.mktemp("serve"), PORTS) as port:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            local = f"http://127.0.0.1:{port}"
            ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local) else r.abort())
            page = ctx.new_page()
            page.console_errors = []
            page.on("console", lambda m: m.type in ("error", "warning") and page.console_errors.append(m.text))
            page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
            page.goto(f"{local}/", timeout=180_000)
            page.wait_for_selector(".aisviz-k .noUi-handle", timeout=180_000)
            page.wait_for_selector(".aisviz-curve .main-svg", timeout=180_000)
            yield page
            browser.close()


def _switch(page, layer: str):
    """Pick that perturbed layer in its menu and wait until its result's curve and read-out are on screen."""
    from aisviz.core.splits import k_grid

    n_maps, step = N_MAPS[layer], dict(SETTINGS)[layer]
    page.locator(".aisviz-viewer-layer select").select_option(label=layer)
    page.wait_for_function(f"""() => {{ const s = ({dp.K_STATE_JS})();
        return /ready/.test(document.querySelector('.aisviz-status').innerText) &&
               s.n_k === {len(k_grid(n_maps, step))} && s.text.includes('of {n_maps} maps'); }}""", timeout=30_000)


def _errors(page) -> list:
    return [e for e in page.console_errors if "Error setting state" in e or "Cannot read properties" in e]


def test_marker_follows_the_slider_after_switching_results_and_back(page):
    first = dp.k_state(page)
    assert first["marker"] == first["readout"] == first["slider"], first
    _switch(page, SETTINGS[1][0])
    moved = dp.press_on_slider(page, "ArrowRight", 2)
    assert moved["marker"] == moved["readout"] == moved["slider"], moved
    _switch(page, SETTINGS[0][0])       # back: the first result is shown again
    for presses in (1, 2):
        moved = dp.press_on_slider(page, "ArrowRight", presses)
        assert moved["marker"] == moved["readout"] == moved["slider"], f"the marker froze: {moved}"
    assert _errors(page) == []


def test_end_and_home_keys_and_the_readout_at_one_map(page):
    _switch(page, SETTINGS[1][0])       # more maps than the result the slider was first shown with
    n_maps = N_MAPS[SETTINGS[1][0]]
    end = dp.press_on_slider(page, "End")
    assert end["slider"] == end["readout"] == end["marker"] == n_maps, end
    home = dp.press_on_slider(page, "Home")
    assert home["slider"] == home["readout"] == home["marker"] == 1, home
    assert "n/a" not in home["text"] and "R² is undefined at k = 1" in home["text"], home["text"]
    assert _errors(page) == []
