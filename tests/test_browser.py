"""The dashboard in a real browser: a Voila server subprocess on a free 127.0.0.1 port and headless
Chromium driven by Playwright (the system /usr/bin/chromium; `playwright install` is never needed).

Each page load starts a kernel that computes the default results, so the assertions are grouped on one
page (the tests below run in file order and share it), plus a second page for two sessions at once.
Screenshots of every step go to artifacts/screenshots/; the measurements (slider and hover latency,
page open to interactive, kernel memory) are printed and written to artifacts/screenshots/measurements.json.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPUTE_TIMEOUT_MS = 300_000


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium fonts-liberation)"
    for module in ("voila", "playwright", "ipywidgets", "plotly", "anywidget", "ipyevents", "psutil"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the dashboard extra: pip install 'aisviz[app]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]
MEASURED: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shot(page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("aisviz-browser-home")


@pytest.fixture(scope="module")
def core(home):
    """The numbers the dashboard must show, computed here by the package with the kernel's settings and
    the same feature and saliency caches (this also warms them for the kernel)."""
    from aisviz.ais import AlignmentImportance, TopKValidation
    from aisviz.app import Dashboard, auto_k_step, paper_seeds
    from aisviz.catalog import load_dataset
    from aisviz.saliency import saliency_maps

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        ds = load_dataset("synthetic")
        scorer = AlignmentImportance(progress=False).fit(ds)
        v = TopKValidation(n_folds=5, seeds=paper_seeds(8), k_step=auto_k_step(len(scorer.ais_)),
                           progress=False).fit(scorer)
        provider = Dashboard._default_provider()
        sal = saliency_maps(ds, provider)
    return {"dataset": ds, "scorer": scorer, "validation": v, "saliency": sal, "provider": provider}


@pytest.fixture(scope="module")
def server(home, core):
    from aisviz.serve import voila_command

    port = _free_port()
    env = dict(os.environ, AISVIZ_HOME=str(home), AISVIZ_APP_LOG=str(home / "dashboard.log"))
    log = open(home / "voila.log", "w")
    proc = subprocess.Popen(voila_command(port=port, notebook=NOTEBOOK), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=str(ROOT))
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
    yield {"url": f"http://127.0.0.1:{port}/", "port": port, "proc": proc, "home": home}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, server, name: str):
    """A fresh browser context on the app; every request not to our 127.0.0.1 server is aborted.
    Returns (page, seconds from navigation to an interactive dashboard)."""
    context = browser.new_context(viewport={"width": 1500, "height": 1700})
    local = f"http://127.0.0.1:{server['port']}"
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local) else route.abort())
    page = context.new_page()
    page.set_default_timeout(60_000)
    t0 = time.perf_counter()
    page.goto(server["url"], timeout=120_000)
    page.wait_for_selector(".aisviz-dashboard", timeout=120_000)
    _shot(page, f"{name}_opened")
    page.wait_for_selector(".aisviz-readout-inner", timeout=COMPUTE_TIMEOUT_MS)
    page.wait_for_selector(".aisviz-detail-inner", timeout=60_000)
    return page, time.perf_counter() - t0


@pytest.fixture(scope="module")
def page1(browser, server):
    page, seconds = _open(browser, server, "01")
    MEASURED["page_open_to_interactive_s"] = round(seconds, 1)
    yield page
    page.context.close()


# ---------------------------------------------------------------------------------------------
# helpers reading the page


def _attrs(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => Object.assign({}, e.dataset)")


def _marker(page) -> dict:
    return page.eval_on_selector(".aisviz-curve.js-plotly-plot", """e => {
        const t = e.data.find(d => d.name === 'current k (test)');
        const r = e.data.find(d => d.name === 'current k (train)');
        return {x: t.x[0], y: t.y[0], train_y: r.y[0]}; }""")


def _img(page, selector: str) -> np.ndarray:
    """The pixels an <img> shows (its blob fetched in the page)."""
    from PIL import Image

    b64 = page.eval_on_selector(selector, """async e => {
        const buf = await (await fetch(e.src)).arrayBuffer();
        let s = ''; const a = new Uint8Array(buf);
        for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
        return btoa(s); }""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def _cell_point(page, i: int) -> tuple[float, float]:
    """Page coordinates of the centre of image i in the thumbnail grid."""
    from aisviz.app import grid_geometry
    from aisviz.plots import cell_centre

    box = page.locator(".aisviz-grid").bounding_box()
    natural = page.eval_on_selector(".aisviz-grid", "e => [e.naturalWidth, e.naturalHeight]")
    n = int(_attrs(page, ".aisviz-detail-inner")["n"])
    geo = grid_geometry(n)
    geo.update(rows=int(np.ceil(n / geo["columns"])), n=n)
    x, y = cell_centre(geo, i)
    return box["x"] + x * box["width"] / natural[0], box["y"] + y * box["height"] / natural[1]


def _expected_panels(core, i: int, k: int | None):
    from aisviz.ais import top_k_mask
    from aisviz.heatmaps import ais_heatmap, overlay

    ds, scorer = core["dataset"], core["scorer"]
    small = ds.load_image(i).copy()
    small.thumbnail((200, 200))
    keep = None if k is None else top_k_mask(scorer.ais_, k)
    heat = ais_heatmap(scorer.activations_[i], scorer.image_ais_[i], keep=keep)
    as_array = lambda im: np.asarray(im.convert("RGB"), dtype=np.int16)  # noqa: E731
    return {"image": as_array(small), "ais": as_array(overlay(small, heat)),
            "saliency": as_array(overlay(small, core["saliency"][i])), "heat": heat}


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) < 1.0


def _wait_status_busy(page, timeout_s: float = 30) -> str:
    """Poll until the status line shows a computation step (not 'ready'); returns that text."""
    end = time.time() + timeout_s
    while time.time() < end:
        text = page.inner_text(".aisviz-status")
        if text and not text.startswith("ready") and text != "idle":
            return text
        time.sleep(0.05)
    return ""


# ---------------------------------------------------------------------------------------------
# the tests (in order, on one page)


def test_app_renders(page1, core):
    info = _attrs(page1, ".aisviz-info-inner")
    assert info["dataset"] == core["dataset"].name and info["layer"] == core["scorer"].layer_
    assert page1.locator(".aisviz-curve .main-svg").first.is_visible()
    assert page1.locator(".aisviz-ais-bars .main-svg").first.is_visible()
    assert page1.locator(".aisviz-grid").is_visible()
    for cls in ("image", "ais", "saliency"):
        assert page1.locator(f".aisviz-panel-{cls}").is_visible()
    assert not page1.locator(".aisviz-message-box").is_visible()  # no error on a clean start
    assert page1.inner_text(".aisviz-status").startswith("ready")
    _shot(page1, "02_ready")


def test_slider_moves_marker_and_readout(page1, core):
    from aisviz.plots import nearest_k_index

    v = core["validation"]
    handle = page1.locator(".aisviz-k .noUi-handle")
    handle.focus()
    times = []
    for _ in range(6):
        before = _marker(page1)["x"]
        t0 = time.perf_counter()
        page1.keyboard.press("ArrowRight")
        page1.wait_for_function(f"""() => {{
            const e = document.querySelector('.aisviz-curve.js-plotly-plot');
            const t = e.data.find(d => d.name === 'current k (test)');
            const r = document.querySelector('.aisviz-readout-inner');
            return t.x[0] !== {before} && r && Number(r.dataset.k) === t.x[0]; }}""", timeout=20_000)
        times.append(1000 * (time.perf_counter() - t0))
    MEASURED["slider_to_figure_ms_median"] = round(statistics.median(times), 1)
    marker, readout = _marker(page1), _attrs(page1, ".aisviz-readout-inner")
    k = int(readout["k"])
    assert marker["x"] == k
    i = nearest_k_index(v.k_values_, k)
    assert v.k_values_[i] == k
    expect = {"test_topk": np.nanmean(v.curves_["test_topk"][:, i]),
              "train_topk": np.nanmean(v.curves_["train_topk"][:, i]),
              "test_random": np.nanmean(v.curves_["test_random"][:, i]),
              "test_all": v.summary_["mean_r2_test_all"]}
    assert marker["y"] == pytest.approx(expect["test_topk"], rel=1e-9, abs=1e-12)
    assert marker["train_y"] == pytest.approx(expect["train_topk"], rel=1e-9, abs=1e-12)
    for key, attr in (("test_topk", "testTopk"), ("test_random", "testRandom"), ("test_all", "testAll")):
        assert float(readout[attr]) == pytest.approx(expect[key], rel=1e-9, abs=1e-12), key
    assert f"{expect['test_topk']:.3f}" in page1.inner_text(".aisviz-readout")
    _shot(page1, "03_slider_moved")


def test_hover_changes_the_three_overlays(page1, core):
    ds = core["dataset"]
    targets = [5, 17, 30, 44, 9, 26]
    times, seen = [], {}
    for i in targets:
        x, y = _cell_point(page1, i)
        t0 = time.perf_counter()
        page1.mouse.move(x, y)
        page1.wait_for_selector(f".aisviz-detail-inner[data-index='{i}']", timeout=20_000)
        page1.wait_for_selector(f".aisviz-metrics-inner[data-index='{i}']", timeout=20_000)
        times.append(1000 * (time.perf_counter() - t0))
        page1.wait_for_timeout(300)  # let the three images settle
        seen[i] = {c: _img(page1, f".aisviz-panel-{c}") for c in ("image", "ais", "saliency")}
    MEASURED["hover_to_overlays_ms_median"] = round(statistics.median(times), 1)
    detail = _attrs(page1, ".aisviz-detail-inner")
    k = None if detail["k"] == "all" else int(detail["k"])
    assert detail["name"] == ds.image_names[targets[-1]] and detail["state"] == "hover"
    for i in targets[-2:]:
        want = _expected_panels(core, i, k)
        for c in ("image", "ais", "saliency"):
            assert _close(seen[i][c], want[c]), f"panel {c} of image {i} does not show that image's map"
    other = _expected_panels(core, targets[-2], k)
    assert not _close(seen[targets[-1]]["ais"], other["ais"])  # it changed from the previous image's
    # the comparison metrics are that image's
    from aisviz.compare import compare_pair, image_maps

    i = targets[-1]
    a, s = image_maps([_expected_panels(core, i, k)["heat"]], [core["saliency"][i]], "display")
    row = compare_pair(a[0], s[0], mask=ds.relevant_masks[i])
    for key in ("cc", "sim", "auc_10", "ais_mass_inside"):
        shown = float(page1.get_attribute(f".aisviz-m-{key}", "data-value"))
        assert shown == pytest.approx(row[key], rel=1e-6, abs=1e-9), key
    _shot(page1, "04_hover")


def test_click_pins_an_image(page1):
    x, y = _cell_point(page1, 12)
    page1.mouse.move(x, y)
    page1.wait_for_selector(".aisviz-detail-inner[data-index='12']")
    page1.mouse.click(x, y)
    page1.wait_for_selector(".aisviz-detail-inner[data-state='pinned'][data-index='12']")
    x2, y2 = _cell_point(page1, 3)
    page1.mouse.move(x2, y2)
    page1.wait_for_timeout(800)
    assert _attrs(page1, ".aisviz-detail-inner")["index"] == "12"  # pinned: hover does not replace it
    _shot(page1, "05_pinned")
    page1.click(".aisviz-unpin button" if page1.locator(".aisviz-unpin button").count() else ".aisviz-unpin")
    page1.wait_for_selector(".aisviz-detail-inner[data-state='hover']")
    page1.mouse.move(x2 + 1, y2 + 1)
    page1.wait_for_selector(".aisviz-detail-inner[data-index='3']")


def test_mds_map_hover(page1):
    page1.click(".aisviz-browser-mode button:has-text('MDS map')")
    points = page1.locator(".aisviz-mds .scatterlayer .trace .points path")
    points.first.wait_for(state="visible")
    boxes = [points.nth(j).bounding_box() for j in range(points.count())]
    centres = np.array([[b["x"] + b["width"] / 2, b["y"] + b["height"] / 2] for b in boxes])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres)) * 1e9
    i = int(gaps.min(1).argmax())  # the most isolated point: hover cannot pick a neighbour
    page1.mouse.move(*(centres[i] + [-15, 0]))
    page1.mouse.move(*centres[i], steps=4)
    page1.wait_for_selector(f".aisviz-detail-inner[data-index='{i}']", timeout=20_000)
    _shot(page1, "06_mds_hover")
    page1.click(".aisviz-browser-mode button:has-text('thumbnail grid')")
    page1.locator(".aisviz-grid").wait_for(state="visible")


def test_changing_the_layer_shows_progress_then_new_results(page1, server):
    label = page1.eval_on_selector(".aisviz-layer select", """e => [...e.options].map(o => o.textContent)
        .find(t => t.replace(/\u00a0/g, ' ').startsWith('_conv_head '))""")
    assert label, "the perturbed-layer menu does not offer _conv_head"
    page1.select_option(".aisviz-layer select", label=label)
    status = _wait_status_busy(page1)
    assert status, "no progress was shown after changing the layer"
    assert page1.locator(".aisviz-progress").is_visible()
    _shot(page1, "07_layer_progress")
    page1.wait_for_selector(".aisviz-info-inner[data-layer='_conv_head']", timeout=COMPUTE_TIMEOUT_MS)
    page1.wait_for_function("() => document.querySelector('.aisviz-status').textContent.startsWith('ready')")
    # EfficientNet-Lite0's _conv_head feeds BN + ReLU6, whose output for a zeroed map is 0 as well, so its
    # AIS equal those of _head_act: the check is that the new layer was computed, not that numbers moved.
    assert "AIS of efficientnet_lite0 _conv_head" in (server["home"] / "dashboard.log").read_text()
    assert _attrs(page1, ".aisviz-readout-inner")["k"]
    _shot(page1, "08_layer_done")


@pytest.fixture(scope="module")
def folder_set(tmp_path_factory):
    """A small user data-set folder: 20 generated images + similarity.npy."""
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_tiny_set

    tiny = make_tiny_set(n=20, size=72, seed=3)
    root = tmp_path_factory.mktemp("data") / "myset"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny.similarity)
    return root


def test_changing_the_data_set_shows_progress_then_new_results(page1, folder_set):
    page1.fill(".aisviz-path input", str(folder_set))
    page1.click(".aisviz-add button" if page1.locator(".aisviz-add button").count() else ".aisviz-add")
    status = _wait_status_busy(page1)
    assert status, "no progress was shown after changing the data set"
    _shot(page1, "09_dataset_progress")
    page1.wait_for_selector(".aisviz-info-inner[data-dataset='myset']", timeout=COMPUTE_TIMEOUT_MS)
    page1.wait_for_selector(".aisviz-detail-inner[data-name='img00.png']")
    assert not page1.locator(".aisviz-message-box").is_visible()
    _shot(page1, "10_dataset_done")


def test_broken_input_shows_an_in_app_error(page1, server):
    page1.fill(".aisviz-path input", "/no/such/folder")
    page1.click(".aisviz-add button" if page1.locator(".aisviz-add button").count() else ".aisviz-add")
    page1.wait_for_selector(".aisviz-message-box", state="visible", timeout=20_000)
    text = page1.inner_text(".aisviz-message")
    assert "does not exist" in text and "/no/such/folder" in text
    assert "Traceback" not in page1.content()
    _shot(page1, "11_error")
    log = (server["home"] / "dashboard.log").read_text()
    assert "does not exist" in log  # and it was logged
    page1.click(".aisviz-dismiss button" if page1.locator(".aisviz-dismiss button").count() else ".aisviz-dismiss")
    page1.wait_for_selector(".aisviz-message-box", state="hidden")


def test_two_sessions_at_once(page1, browser, server, core):
    page2, seconds = _open(browser, server, "12_second_session")
    MEASURED["second_session_open_to_interactive_s"] = round(seconds, 1)
    try:
        # each session has its own kernel and state: page 1 still shows its folder set, page 2 the default
        assert _attrs(page1, ".aisviz-info-inner")["dataset"] == "myset"
        assert _attrs(page2, ".aisviz-info-inner")["dataset"] == core["dataset"].name
        for page in (page2, page1):
            before = _attrs(page, ".aisviz-readout-inner")["k"]
            page.locator(".aisviz-k .noUi-handle").focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"() => document.querySelector('.aisviz-readout-inner').dataset.k !== '{before}'")
        x, y = _cell_point(page2, 20)
        page2.mouse.move(x, y)
        page2.wait_for_selector(".aisviz-detail-inner[data-index='20']")
        _shot(page2, "13_second_session_used")
        import psutil

        kernels = [p for p in psutil.Process(server["proc"].pid).children(recursive=True)
                   if "ipykernel" in " ".join(p.cmdline())]
        MEASURED["kernel_rss_mb_two_sessions"] = [round(p.memory_info().rss / 2 ** 20) for p in kernels]
        _shot(page1, "14_first_session_still_live")
    finally:
        page2.context.close()


def test_report_measurements(server):
    import psutil

    kernels = [p for p in psutil.Process(server["proc"].pid).children(recursive=True)
               if "ipykernel" in " ".join(p.cmdline())]
    if kernels:
        MEASURED["kernel_rss_mb"] = [round(p.memory_info().rss / 2 ** 20) for p in kernels]
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "measurements.json").write_text(json.dumps(MEASURED, indent=1))
    print("\ndashboard measurements (cached results):", json.dumps(MEASURED))
    assert MEASURED.get("slider_to_figure_ms_median") is not None
