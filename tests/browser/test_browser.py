"""The dashboard in a real browser (helpers: tests/dashboard_pages.py): Voila served on 127.0.0.1 and
headless Chromium at 1280×800 (then resized to 1920, 1024 and 800 px), a fresh page at 800 px, and the
dashboard cell run in a real `jupyter lab` with its file browser open.

Each page load starts a kernel that computes the default results, so the assertions are grouped per page
(the tests run in file order and share it). Screenshots go to artifacts/screenshots/ (not committed).
Latencies are measured by benchmarks/bench_dashboard.py, not here.
"""
from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import dashboard_pages as dp
import numpy as np
import pytest


def _missing() -> str | None:
    if not Path(dp.CHROMIUM).exists():
        return f"no Chromium at {dp.CHROMIUM} (apt-get install -y chromium fonts-liberation)"
    for module in ("voila", "playwright", "ipywidgets", "plotly", "anywidget", "ipyevents", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the dashboard extra: pip install 'aisviz[app]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("aisviz-browser-home")


@pytest.fixture(scope="module")
def core(home):
    """The result the dashboard must show, computed here by the package with the kernel's default settings
    and the same feature and saliency caches (this also warms them for the kernel)."""
    from aisviz.app import default_provider
    from aisviz.config import paper_seeds
    from aisviz.io.catalog import load_dataset
    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation
    from aisviz.pipeline.result import build_result
    from aisviz.pipeline.settings import auto_k_step
    from aisviz.saliency.providers import saliency_maps

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        ds = load_dataset("synthetic")
        scorer = AlignmentImportance(progress=False).fit(ds)
        v = TopKValidation(n_folds=5, seeds=paper_seeds(8), k_step=auto_k_step(len(scorer.ais_)),
                           progress=False).fit(scorer)
        provider = default_provider()
        return build_result(scorer, v, ds, saliency_maps(ds, provider), saliency_provider=provider)


@pytest.fixture(scope="module")
def server(home, core):
    with dp.voila_server(home) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    page, _ = dp.open_dashboard(browser, server, 1280, 800)
    yield page
    page.context.close()


def _expected(core, i: int, k: int | None, mode: str = "default") -> dict:
    from aisviz.core.heatmaps import overlay
    from aisviz.pipeline.derive import heatmap

    small = core.image(i)
    small.thumbnail((200, 200))
    as_array = lambda im: np.asarray(im.convert("RGB"), dtype=np.int16)  # noqa: E731
    heat = heatmap(core, i, k)
    return {"image": as_array(small), "ais": as_array(overlay(small, heat, mode)),
            "saliency": as_array(overlay(small, core.saliency[i], mode)), "heat": heat}


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) < 1.0


# ---------------------------------------------------------------------------------------------
# Voila at 1280×800


def test_renders_at_1280_with_every_part_visible(page, core):
    info = dp.attrs(page, ".aisviz-info-inner")
    assert info["dataset"] == core.dataset_name and info["layer"] == core.settings.layer
    assert not page.locator(".aisviz-message-box").is_visible()  # no error on a clean start
    # the kernel sets the status right after the view, but the page may draw the charts first (a busy machine)
    page.wait_for_function("() => document.querySelector('.aisviz-status').innerText.startsWith('ready in')",
                           timeout=10_000)
    page.wait_for_timeout(500)
    problems = dp.layout_problems(page)
    assert problems == [], "; ".join(problems)
    dp.shot(page, "voila_1280x800")


def test_slider_moves_marker_and_readout(page, core):
    from aisviz.core.curves import nearest_k_index

    for _ in range(3):
        dp.move_slider(page)
    m, readout = dp.marker(page), dp.attrs(page, ".aisviz-readout-inner")
    k = int(readout["k"])
    assert m["x"] == k
    i = nearest_k_index(core.k_values, k)
    assert core.k_values[i] == k
    st = core.stats
    assert m["y"] == pytest.approx(st["test_topk"]["mean"][i], rel=1e-9, abs=1e-12)
    assert m["train_y"] == pytest.approx(st["train_topk"]["mean"][i], rel=1e-9, abs=1e-12)
    assert float(readout["testRandom"]) == pytest.approx(st["test_random"]["mean"][i], rel=1e-9, abs=1e-12)
    assert float(readout["testAll"]) == pytest.approx(core.summary["mean_r2_test_all"], rel=1e-9)
    # the per-map chart highlights the top k once the slider rests
    page.wait_for_function(f"""() => document.querySelector('.aisviz-ais-bars.js-plotly-plot').data[0].marker.color
        .filter(c => c === '#d62728').length === {k}""", timeout=20_000)


def test_hover_changes_the_three_overlays_to_that_images(page, core):
    targets = [5, 17, 30, 9]
    seen = {}
    for i in targets:
        dp.hover(page, i)
        page.wait_for_timeout(300)  # let the three images settle
        seen[i] = {c: dp.img(page, f".aisviz-panel-{c}") for c in ("image", "ais", "saliency")}
    detail = dp.attrs(page, ".aisviz-detail-inner")
    assert detail["k"] == "all" and detail["state"] == "hover"  # the paper's all-maps heatmap by default
    for i in targets[-2:]:
        want = _expected(core, i, None)
        for c in ("image", "ais", "saliency"):
            assert _close(seen[i][c], want[c]), f"panel {c} of image {i} does not show that image's map"
    assert not _close(seen[targets[-1]]["ais"], _expected(core, targets[-2], None)["ais"])
    from aisviz.core.metrics import compare_pair, image_maps

    i = targets[-1]
    a, s = image_maps([_expected(core, i, None)["heat"]], [core.saliency[i]], "display")
    row = compare_pair(a[0], s[0], mask=core.relevant_masks[i])
    for key in ("cc", "sim", "auc_10", "ais_mass_inside"):
        shown = float(page.get_attribute(f".aisviz-m-{key}", "data-value"))
        assert shown == pytest.approx(row[key], rel=1e-6, abs=1e-9), key


def test_paper_display_mode_and_pinning(page, core):
    dp.hover(page, 12)
    x, y = dp.cell_point(page, 12)
    page.mouse.click(x, y)
    page.wait_for_selector(".aisviz-detail-inner[data-state='pinned'][data-index='12']")
    page.locator(".aisviz-display button", has_text="paper").click()
    page.wait_for_selector(".aisviz-detail-inner[data-display='paper']")
    page.wait_for_timeout(300)
    assert _close(dp.img(page, ".aisviz-panel-ais"), _expected(core, 12, None, "paper")["ais"])
    x2, y2 = dp.cell_point(page, 3)
    page.mouse.move(x2, y2)
    page.wait_for_timeout(500)
    assert dp.attrs(page, ".aisviz-detail-inner")["index"] == "12"  # pinned: hover does not replace it
    dp.shot(page, "voila_1280_paper_pinned")
    page.locator(".aisviz-display button", has_text="default").click()
    dp.click_widget_button(page, "aisviz-unpin")
    page.wait_for_selector(".aisviz-detail-inner[data-state='hover']")


def test_results_zip_and_panel_downloads(page, core):
    import pandas as pd

    dp.click_widget_button(page, "aisviz-export-zip")
    link = page.wait_for_selector(".aisviz-zip-link")
    with page.expect_download() as download:
        link.click()
    data = Path(download.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        maps = pd.read_csv(z.open("maps.csv"))
        splits = pd.read_csv(z.open("splits.csv"))
    np.testing.assert_allclose(maps["ais"].to_numpy(), core.ais, rtol=1e-12)
    np.testing.assert_allclose(splits["r2_test_topk"].to_numpy(), [s["r2_test_topk"] for s in core.splits],
                               rtol=1e-12)
    dp.click_widget_button(page, "aisviz-panel-export")
    link = page.wait_for_selector(".aisviz-panel-link")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes()[:4] == b"\x89PNG"
    dp.click_widget_button(page, "aisviz-curve-export")
    page.wait_for_selector(".aisviz-curve-downloads a[download='alignment_curve.svg']")


def test_other_widths_on_the_same_page(page):
    """The same page resized: both charts and the three overlays stay whole on screen (rows wrap)."""
    for width, height in ((1920, 1080), (1024, 768), (800, 900), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(1200)  # plotly re-lays out on the window's resize event
        problems = dp.layout_problems(page)
        assert problems == [], f"at {width} px: " + "; ".join(problems)
        dp.shot(page, f"voila_resized_{width}")


def test_no_request_left_the_server_and_no_console_errors(page):
    """Whatever ran before on this page, it is used here too (slider and hover), then checked."""
    dp.move_slider(page)
    dp.hover(page, 5)
    assert page.outside == []
    assert page.errors == []


def test_broken_input_shows_an_in_app_error(page, server):
    page.fill(".aisviz-path input", "/no/such/folder")
    dp.click_widget_button(page, "aisviz-add")
    page.wait_for_selector(".aisviz-message-box", state="visible", timeout=20_000)
    text = page.inner_text(".aisviz-message")
    assert "does not exist" in text and "/no/such/folder" in text
    assert "Traceback" not in page.content()
    assert "does not exist" in (server["home"] / "dashboard.log").read_text()
    dp.click_widget_button(page, "aisviz-dismiss")
    page.wait_for_selector(".aisviz-message-box", state="hidden")


# ---------------------------------------------------------------------------------------------
# Voila, a fresh page at 800 px


def test_a_fresh_page_at_800_px(browser, server):
    page, _ = dp.open_dashboard(browser, server, 800, 1000)
    try:
        page.wait_for_timeout(500)
        problems = dp.layout_problems(page)
        assert problems == [], "; ".join(problems)
        dp.move_slider(page)
        dp.hover(page, 20)
        assert page.outside == [] and page.errors == []
        dp.shot(page, "voila_800")
    finally:
        page.context.close()


# ---------------------------------------------------------------------------------------------
# JupyterLab with the file browser open


@pytest.fixture(scope="module")
def lab(home, core, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    shutil.copy(dp.NOTEBOOK, folder / "dashboard.ipynb")
    port, token = dp.free_port(), "aisviz-test-token"
    env = dict(os.environ, AISVIZ_HOME=str(home), JUPYTER_CONFIG_DIR=str(folder / ".jupyter"),
               PYTHONPATH=os.pathsep.join([str(dp.ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with dp.server_process(cmd, env, folder / "lab.log", port, cwd=folder):
        yield {"port": port, "url": f"http://127.0.0.1:{port}/lab/tree/dashboard.ipynb?token={token}"}


def test_in_jupyterlab_with_the_side_panel_open(browser, lab):
    page = dp.new_page(browser, lab["port"], 1600, 1000)
    try:
        page.goto(lab["url"], timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        if not page.locator(".jp-FileBrowser").is_visible():
            page.locator(".jp-SideBar.jp-mod-left [data-id='filebrowser']").click()
        page.wait_for_selector(".jp-FileBrowser", state="visible")
        # a cell run before the kernel is ready can stay queued for good: wait for it
        page.wait_for_function("() => document.querySelector('.jp-StatusBar-Widget') && "
                               "/\\| Idle/.test(document.querySelector('#jp-main-statusbar').innerText)",
                               timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_selector(".aisviz-dashboard", timeout=180_000)
        dp.wait_interactive(page)
        page.wait_for_timeout(1000)
        problems = dp.layout_problems(page)
        assert problems == [], "; ".join(problems)
        dp.move_slider(page)
        dp.hover(page, 8)
        dp.shot(page, "jupyterlab_1600_filebrowser")
        # 1440 px with the file browser open: the display-mode buttons were cut ("default (viridis, colour b…")
        page.set_viewport_size({"width": 1440, "height": 1000})
        page.wait_for_timeout(1000)
        assert dp.cut_buttons(page) == []
    finally:
        page.context.close()
