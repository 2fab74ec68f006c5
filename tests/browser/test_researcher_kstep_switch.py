"""The top-k slider and the curve's "current k" marker in the researcher dashboard (Voila, not --shared) across
a change of the k step in the Advanced controls (issue 19 item 4): k step 40 -> Apply, then back to auto (0) ->
Apply, which re-shows the first result's charts from the kernel's memo. After each, moving the slider must
move the plotted marker (read from plotly's gd.data in the page) to the slider's k, the read-out must agree,
and no "Error setting state" may reach the console: the marker froze there after the switch back.

The page opens a notebook written here: the Dashboard on a folder of 16 small images with the centre-bias
provider, 3 folds and 2 seeds (EfficientNet-Lite0 _head_act, 1280 maps: auto k step 10, so the two results
have 129 and 33 values of k); the features are computed here first, in the kernel's cache, so the kernel's
computations take seconds. Headless Debian Chromium, one page (each page load starts a kernel): the tests run
in file order on it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import dashboard_pages as dp
import numpy as np
import pytest
from conftest import make_tiny_set
from serve_helpers import port_is_free

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(dp.CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("voila", "playwright")),
                                 reason="needs the app and test extras")]

PORTS = range(19500, 19600)
N_MAPS = 1280                     # EfficientNet-Lite0 _head_act, the offline network's default layer
OPTIONS = {"provider": "center_bias", "n_folds": 3, "n_seeds": 2}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """AISVIZ_HOME shared with the kernel, its feature cache warmed by computing the first result here."""
    from aisviz.pipeline.compute import compute_result

    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("set") / "discs"
    (folder / "images").mkdir(parents=True)
    tiny = make_tiny_set(n=16, size=64, seed=11)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(folder / "images" / name)
    np.save(folder / "similarity.npy", tiny.similarity)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        r = compute_result(dataset=folder, k_step=0, progress=False, **OPTIONS)
    assert r.n_maps == N_MAPS, r.n_maps
    return home, folder


@pytest.fixture(scope="module")
def page(home):
    import nbformat
    from playwright.sync_api import sync_playwright

    from aisviz.server.serve import voila_command
    from aisviz.server.voila_template import voila_environment

    home, folder = home
    source = ("from aisviz.app import Dashboard\n"
              f"Dashboard(dataset={str(folder)!r}, " + ", ".join(f"{k}={v!r}" for k, v in OPTIONS.items()) + ")")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = home / "dashboard.ipynb"
    nbformat.write(nb, notebook)
    port = next(p for p in PORTS if port_is_free(p))
    env = voila_environment(dict(os.environ, AISVIZ_HOME=str(home), AISVIZ_APP_LOG=str(home / "dashboard.log")))
    env["PYTHONPATH"] = os.pathsep.join([str(dp.ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p])
    with dp.server_process(voila_command(port=port, notebook=notebook), env, home / "voila.log", port), \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
        page = dp.new_page(browser, port, 1400, 1000)
        page.on("console", lambda m: m.type == "warning" and page.errors.append(m.text))
        page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        dp.wait_interactive(page)
        page.wait_for_selector(".aisviz-k .noUi-handle", timeout=60_000)
        yield page
        browser.close()


def _apply_k_step(page, step: int):
    """Type that k step in the Advanced controls, press Apply, and wait until the result with that k grid
    (auto: step 10 for 1280 maps) is on screen and the status says ready."""
    from aisviz.core.splits import k_grid
    from aisviz.pipeline.settings import auto_k_step

    field = page.locator(".aisviz-kstep input")
    if not field.is_visible():
        page.locator(".aisviz-advanced").get_by_text("Advanced", exact=True).click()
    field.fill(str(step))
    field.press("Enter")
    dp.click_widget_button(page, "aisviz-apply")
    n_k = len(k_grid(N_MAPS, step or auto_k_step(N_MAPS)))
    page.wait_for_function(f"""() => {{ const s = ({dp.K_STATE_JS})();
        return /ready/.test(document.querySelector('.aisviz-status').innerText) && s.n_k === {n_k}; }}""",
                           timeout=120_000)


def _errors(page) -> list:
    return [e for e in page.errors if "Error setting state" in e or "Cannot read properties" in e]


def _slider_moves_the_marker(page, when: str):
    for key, times in (("ArrowRight", 1), ("ArrowRight", 2), ("ArrowLeft", 1)):
        moved = dp.press_on_slider(page, key, times)
        assert moved["marker"] == moved["readout"] == moved["slider"], f"{when}, {key}: the marker froze: {moved}"
    end = dp.press_on_slider(page, "End")
    assert end["marker"] == end["readout"] == end["slider"] == N_MAPS, f"{when}, End: {end}"
    home = dp.press_on_slider(page, "Home")
    assert home["marker"] == home["readout"] == home["slider"] == 1, f"{when}, Home: {home}"


def test_marker_follows_the_slider_after_a_new_k_step(page):
    first = dp.k_state(page)
    assert first["marker"] == first["readout"] == first["slider"], first
    _apply_k_step(page, 40)
    _slider_moves_the_marker(page, "k step 40")
    assert _errors(page) == []


def test_marker_follows_the_slider_back_on_the_auto_k_step(page):
    _apply_k_step(page, 0)              # back to auto: the first result's charts are shown again
    _slider_moves_the_marker(page, "back to auto")
    assert _errors(page) == []
