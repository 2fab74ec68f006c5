"""The static site (`aisviz site`, aisviz.site.write) in real headless Chromium, opened from file:// and from a
local `python -m http.server`: its values are the bundle's (read-out at three k, heatmap, saliency and metrics of
three images), its controls work (slider by keyboard, hover, pin, Enter, display mode, setting menus, downloads),
no request leaves the page's origin and nothing is logged as an error; a damaged or foreign bundle is a one-line
error (exit 3) that writes nothing."""
from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import statistics
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import site_pages as sp
from conftest import make_tiny_set

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
needs_browser = [pytest.mark.skipif(not Path(sp.CHROMIUM).exists(), reason="needs Debian's chromium"),
                 pytest.mark.skipif(__import__("importlib").util.find_spec("playwright") is None,
                                    reason="needs the test extra (playwright)")]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Two settings of a small set with the real offline network: saliency 'center_bias' (2 seeds) and
    'spectral_residual' (3 seeds); returns (folder, [DashboardResult, DashboardResult] as the bundle holds them)."""
    from aisviz.pipeline.bundles import open_catalog, write_bundle
    from aisviz.pipeline.compute import compute_result

    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=20, size=96, seed=7)
        for provider, seeds in (("center_bias", 2), ("spectral_residual", 3)):
            result = compute_result(dataset=ds, provider=provider, n_folds=3, n_seeds=seeds, k_step=64, progress=False)
            write_bundle(result, root)
    catalog = open_catalog(root)
    return root, [catalog.load(e.id) for e in catalog.entries], [e.id for e in catalog.entries]


@pytest.fixture(scope="module")
def site(bundle, tmp_path_factory):
    from aisviz.site import write

    out = tmp_path_factory.mktemp("site") / "site"
    return write(bundle[0], out)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=sp.CHROMIUM, args=sp.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(site):
    with sp.static_server(site.path) as url:
        yield url


def _text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


def _shown(page, selector: str) -> str:
    return re.sub(r"\s+", " ", page.inner_text(selector)).strip()


# ---------------------------------------------------------------------------------------------------
# writing: the command line, errors, atomic replacement


def test_cli_writes_a_site_and_a_single_file_with_their_sizes(bundle, tmp_path, capsys):
    from aisviz.cli.commands import main

    assert main(["site", "--bundles", str(bundle[0]), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"wrote .*s \(\d+\.\d MB in \d+ files, 2 setting\(s\)\)", out), out
    for name in ("index.html", "assets/site.js", "assets/site.css", "assets/plotly.min.js", "data/index.js",
                 "aisviz-site.json"):
        assert (tmp_path / "s" / name).is_file(), name
    # plotly.js is the installed package's, byte for byte (no CDN)
    import plotly
    assert (tmp_path / "s/assets/plotly.min.js").read_bytes() == \
        (Path(plotly.__file__).parent / "package_data/plotly.min.js").read_bytes()
    page = (tmp_path / "s/index.html").read_text()
    assert "https://" not in page and "http://" not in page
    assert main(["site", "--bundles", str(bundle[0]), "--out", str(tmp_path / "one.html"), "--single-file"]) == 0
    out = capsys.readouterr().out
    size = (tmp_path / "one.html").stat().st_size
    assert f"({size / 1e6:.1f} MB, 2 setting(s))" in out
    # a rewrite replaces the earlier site whole
    (tmp_path / "s" / "data" / "stale.js").write_text("x")
    assert main(["site", "--bundles", str(bundle[0]), "--out", str(tmp_path / "s")]) == 0
    assert not (tmp_path / "s" / "data" / "stale.js").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.html", "s"]      # no temporary folders left


def test_damaged_or_foreign_bundle_is_one_line_exit_3_and_writes_nothing(bundle, tmp_path, capsys):
    from aisviz.cli.commands import main

    root, _, ids = bundle
    damaged = Path(shutil.copytree(root, tmp_path / "damaged"))
    path = damaged / ids[0] / "arrays" / "image_ais.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                                      # same size: only the checksum tells
    path.write_bytes(bytes(data))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "bundle.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    out = tmp_path / "out" / "site"
    for folder, what in ((damaged, "image_ais.npy is damaged"), (foreign, "is not an aisviz result bundle"),
                         (tmp_path / "nowhere", "is not a folder")):
        assert main(["site", "--bundles", str(folder), "--out", str(out)]) == 3
        err = capsys.readouterr().err.strip()
        assert what in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "out").exists()
    # a folder of other files is not replaced (usage error, exit 2), and stays as it was
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["site", "--bundles", str(root), "--out", str(other)]) == 2
    assert "holds other files" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_noise_ceiling_is_shown_where_present_and_labelled_subject_level(bundle, tmp_path):
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.site import write

    result = bundle[1][0]
    ceiling = {"n_subjects": 12, "ceiling_lower": 0.4123, "ceiling_upper": 0.5234, "subject_r2_test_topk": 0.2345,
               "ceiling_fraction_topk": 0.2345 / 0.4123}
    write_bundle(replace(result, summary={**result.summary, **ceiling}), tmp_path / "b", pngs=False)
    data = (write(tmp_path / "b", tmp_path / "s").path / "data" / f"{bundle[2][0]}.js").read_text()
    text = _text(json.loads(data[data.index("(") + 1:data.rindex(")")].split(",", 1)[1])["html"]["ceiling"])
    assert "Noise ceiling (subject-level" in text and "lower bound 0.412, upper bound 0.523" in text
    assert "subject-level test R² of 0.234 (0.57 of the lower bound)" in text
    # without a ceiling in the bundle the site says nothing about one
    data = (write(bundle[0], tmp_path / "s2").path / "data" / f"{bundle[2][0]}.js").read_text()
    assert '"ceiling":""' in data


# ---------------------------------------------------------------------------------------------------
# in the browser


@pytest.mark.slow
@pytest.mark.parametrize("origin", ["file", "http"])
def test_opens_offline_at_three_widths_with_no_outside_request_or_error(site, served, browser, origin):
    url = site.path.as_uri() + "/index.html" if origin == "file" else served + "index.html"
    base = site.path.as_uri() + "/" if origin == "file" else served
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 800, 400):
        page, _ = sp.open_site(browser, url, base, width, 800)
        page.wait_for_selector(".aisviz-curve .main-svg")
        problems = []
        for name, sel in sp.KEY_PARTS.items():
            box = page.locator(sel).first.bounding_box()
            if box is None or box["width"] < 40 or box["height"] < 40:
                problems.append(f"{name}: {box}")
            elif box["x"] < -1 or box["x"] + box["width"] > width + 1:
                problems.append(f"{name}: spans x {box['x']:.0f}..{box['x'] + box['width']:.0f} at {width} px")
        assert not problems, problems
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1    # no sideways scrolling
        assert page.locator("img:not([alt])").count() == 0
        assert all(a for a in page.eval_on_selector_all("img", "es => es.map(e => e.alt)"))
        info = _shown(page, ".aisviz-provenance")
        assert re.search(r"Computed on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00 with aisviz 0\.1\.0", info), info
        page.screenshot(path=str(SHOTS / f"site_{origin}_{width}.png"), full_page=True)
        assert page.errors == [] and page.outside == []
        assert [u for u in page.requests if not u.startswith((base, "data:", "blob:"))] == []
        # only the first image's detail file was loaded, not every image
        assert sum("/c0" in u or "/c1" in u for u in page.requests) == 1, page.requests
        page.context.close()


@pytest.mark.slow
def test_slider_readout_equals_the_bundle_at_three_k(bundle, served, browser):
    from aisviz.pipeline.derive import readout
    from aisviz.viz.text import readout_html

    r = bundle[1][0]
    page, _ = sp.open_site(browser, served + "index.html", served)
    kv = [int(k) for k in r.k_values]
    seen = []
    for key in ("Home", "ArrowRight", "End"):
        if key == "Home":
            page.locator(".aisviz-k-input").focus()
            page.keyboard.press("Home")
            page.wait_for_function(f"document.querySelector('.aisviz-readout-inner').dataset.k === '{kv[0]}'")
        else:
            sp.move_slider(page, key)
        a = sp.attrs(page, ".aisviz-readout-inner")
        k = int(a["k"])
        v = readout(r, k)
        assert v["k"] == k
        for name, attr in (("test_topk", "testTopk"), ("test_all", "testAll"), ("test_random", "testRandom"),
                           ("train_topk", "trainTopk")):
            assert float(a[attr]) == pytest.approx(v[name], abs=1e-12, nan_ok=True), name
        # the dashboard's own read-out, word for word
        assert _shown(page, ".aisviz-readout") == _text(readout_html(r, v, k))
        m = sp.marker(page)
        assert m["x"] == k and (m["y"] if m["y"] is not None else np.nan) == pytest.approx(v["test_topk"], abs=1e-12,
                                                                                    nan_ok=True)
        page.wait_for_function(f"document.querySelector('.aisviz-ais-bars').dataset.k === '{k}'")
        assert page.eval_on_selector(".aisviz-ais-bars", "e => e.data[0].marker.color.filter(c => c === "
                                     "'#d62728').length") == k          # the top k maps highlighted
        seen.append(k)
        if np.isnan(v["test_topk"]):   # k = 1 of a pooled read-out: said in words, not "n/a ± 0.000"
            assert "R² is undefined at k = 1" in _shown(page, ".aisviz-readout") and "n/a" not in _shown(
                page, ".aisviz-readout")
    assert seen == [kv[0], kv[1], kv[-1]] and np.isnan(readout(r, 1)["test_topk"])
    # arrows, Home and End move the slider when no control has the focus (issue 19 item 7: End went to k = 1)
    page.evaluate("document.activeElement.blur()")
    for key, k in (("ArrowLeft", kv[-2]), ("Home", kv[0]), ("End", kv[-1])):
        page.keyboard.press(key)
        page.wait_for_function(f"document.querySelector('.aisviz-readout-inner').dataset.k === '{k}'")
    assert page.errors == []
    page.context.close()


@pytest.mark.slow
def test_hover_shows_the_bundles_heatmap_saliency_and_metrics_pin_enter_and_display_mode(bundle, served, browser):
    from aisviz.core.heatmaps import overlay
    from aisviz.pipeline import derive

    r = bundle[1][0]
    page, _ = sp.open_site(browser, served + "index.html", served)

    def expected(i, mode):
        small = r.image(i)
        small.thumbnail((200, 200))
        heat = derive.heatmap(r, i)
        return (np.asarray(overlay(small, heat, mode), np.int16), np.asarray(overlay(small, r.saliency[i], mode),
                                                                               np.int16), heat)

    for i in (0, 9, r.n_images - 1):
        sp.hover(page, i)
        ais, sal, heat = expected(i, "default")
        for sel, want in ((".aisviz-panel-ais", ais), (".aisviz-panel-saliency", sal)):
            got = sp.shown_image(page, sel)
            assert got.shape == want.shape and np.abs(got - want).mean() < 3.0, (sel, np.abs(got - want).mean())
        metrics = derive.image_metrics(r, i, heat)
        cells = page.eval_on_selector_all(".aisviz-metrics-inner td[data-value]",
                                          "es => es.map(e => [e.className, Number(e.dataset.value)])")
        assert len(cells) >= 7
        for cls, value in cells:
            key = cls.replace("aisviz-m-", "")
            assert value == pytest.approx(float(metrics[key]), abs=1e-12, nan_ok=True), key
        assert "1 = chance; higher = more overlap" in page.inner_text(".aisviz-metrics")
        assert f"{r.image_names[i]}" in sp.attrs(page, ".aisviz-detail-inner")["name"]
    # click pins: hovering another image then changes nothing; Unpin follows the mouse again
    page.locator(".aisviz-thumb[data-index='3']").click()
    page.wait_for_selector(".aisviz-detail-inner[data-index='3'][data-state='pinned']", state="attached")
    page.locator(".aisviz-thumb[data-index='5']").hover()
    page.wait_for_timeout(300)
    assert sp.attrs(page, ".aisviz-detail-inner")["index"] == "3"
    page.click(".aisviz-unpin")
    page.wait_for_selector(".aisviz-detail-inner[data-state='hover']", state="attached")
    # keyboard: Tab reaches the thumbnails (focus shows the image), Enter pins it
    page.locator(".aisviz-thumb[data-index='1']").focus()
    page.keyboard.press("Tab")
    page.wait_for_selector(".aisviz-detail-inner[data-index='2']", state="attached")
    page.keyboard.press("Enter")
    page.wait_for_selector(".aisviz-detail-inner[data-index='2'][data-state='pinned']", state="attached")
    # the paper display: jet overlays, its colour bar and its scale note
    page.click(".aisviz-display button[data-display='paper']")
    page.wait_for_selector(".aisviz-detail-inner[data-display='paper']", state="attached")
    ais, sal, _ = expected(2, "paper")
    assert np.abs(sp.shown_image(page, ".aisviz-panel-ais") - ais).mean() < 3.0
    assert np.abs(sp.shown_image(page, ".aisviz-panel-saliency") - sal).mean() < 3.0
    assert "(value / image max)², jet" in page.inner_text(".aisviz-scale-note")
    # the MDS map shows the same images and hovering a point shows it
    page.click(".aisviz-browser-mode button[data-mode='mds']")
    page.wait_for_selector(".aisviz-mds .main-svg")
    assert page.eval_on_selector(".aisviz-mds", "e => e.layout.images.length") == r.n_images
    assert page.errors == [] and page.outside == []
    page.context.close()


@pytest.mark.slow
def test_setting_menus_and_downloads(bundle, site, browser, tmp_path):
    from aisviz.pipeline.derive import result_dataframe

    r1, ids = bundle[1][1], bundle[2]
    base = site.path.as_uri() + "/"
    page, _ = sp.open_site(browser, base + "index.html", base)        # downloads from file:// too
    assert page.is_disabled(".aisviz-viewer-model select")          # one bundled network: fixed
    page.select_option(".aisviz-viewer-provider select", label="spectral_residual")
    sp.wait_ready(page, ids[1])
    assert "spectral_residual" in page.inner_text(".aisviz-sal-caption")
    assert page.eval_on_selector(".aisviz-viewer-n-seeds select", "e => e.selectedOptions[0].text") == \
        "3 (111 … 333)"
    assert float(sp.attrs(page, ".aisviz-readout-inner")["testAll"]) == \
        pytest.approx(r1.summary["mean_r2_test_all"], abs=1e-12)
    with page.expect_download() as d:
        page.click(".aisviz-dl-maps-csv")
    assert Path(d.value.path()).read_text() == result_dataframe(r1, "maps").to_csv(index=False)
    assert d.value.suggested_filename.endswith("_maps.csv")
    with page.expect_download() as d:
        page.click(".aisviz-dl-images-csv")
    assert Path(d.value.path()).read_text() == result_dataframe(r1, "images").to_csv(index=False)
    for button, name in ((".aisviz-curve-export", "alignment_curve.png"), (".aisviz-bars-export", "ais_per_map.png"),
                         (".aisviz-panel-export", "img00_panel_default.png")):
        with page.expect_download() as d:
            page.click(button)
        assert d.value.suggested_filename == name
        data = Path(d.value.path()).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, (name, len(data))
    assert page.errors == []
    page.context.close()


@pytest.mark.slow
def test_single_file_opens_from_file_and_loads_images_when_needed(bundle, browser, tmp_path):
    from aisviz.site import write

    report = write(bundle[0], tmp_path / "results.html", single_file=True)
    assert report.files == 1 and report.path.stat().st_size == report.bytes
    base = report.path.as_uri()
    page, _ = sp.open_site(browser, base, base)
    sp.hover(page, 9)                      # image 9 is in the second detail file
    assert page.evaluate("Object.keys(AISVIZ.store).filter(k => /\\/c\\d\\d$/.test(k)).length") == 2
    assert page.errors == [] and page.outside == []
    assert [u for u in page.requests if not u.startswith((base, "data:", "blob:"))] == []
    page.context.close()


@pytest.mark.slow
def test_fifty_pages_at_once_from_one_static_server(site, served):
    """N = 50 pages opened at once from one `python -m http.server` all become interactive, with no error."""
    from playwright.async_api import async_playwright

    async def one(browser, i, results):
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        t0 = time.perf_counter()
        try:   # on 2 busy cores the browser's 50 renderers, not the server, take the time: a generous limit
            await page.goto(served + "index.html", wait_until="commit", timeout=900_000)
            await page.wait_for_selector("body[data-aisviz-ready]", state="attached", timeout=900_000)
            results[i] = (errors, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 -- recorded and asserted below
            results[i] = (errors + [f"{type(exc).__name__}: {str(exc).splitlines()[0]}"], None)
        finally:
            await context.close()

    async def run(n):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=sp.CHROMIUM, args=sp.CHROMIUM_ARGS)
            results = {}
            await asyncio.gather(*(one(browser, i, results) for i in range(n)))
            await browser.close()
            return results

    # a thread of its own: the sync Playwright of the other tests keeps an event loop on this one
    done: list = []
    worker = threading.Thread(target=lambda: done.append(asyncio.run(run(50))))
    worker.start()
    worker.join()
    assert done, "the 50 pages could not be driven (see the thread's error above)"
    results = done[0]
    failed = {i: errors for i, (errors, _) in results.items() if errors}
    seconds = sorted(t for _, t in results.values() if t is not None)
    print(f"50 pages at once: {len(seconds)} interactive, median {statistics.median(seconds):.0f} s, "
          f"slowest {seconds[-1]:.0f} s" if seconds else "50 pages at once: none interactive")
    assert len(results) == 50 and not failed, f"{len(failed)} of 50 failed: {failed}"


pytestmark = needs_browser
