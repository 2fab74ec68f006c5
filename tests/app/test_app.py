"""The dashboard without a browser: set widget values, fire the hover/click callbacks as ipywidgets,
ipyevents and plotly deliver them, read what each panel holds; the session's job runner on its own; the
race between publishing and user events; the figure builders (aisviz.plots) and the Voila command line."""
from __future__ import annotations

import importlib.util
import io
import logging
import os
import re
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import make_tiny_set

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ipywidgets", "plotly", "anywidget", "ipyevents")),
    reason="the dashboard extra is not installed (pip install 'aisviz[app]')")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("aisviz-app-home")


@pytest.fixture(scope="module")
def dash(home):
    """One dashboard on a small in-memory set, computing in the calling thread."""
    from aisviz.app import Dashboard

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=1), run_async=False, n_folds=4, n_seeds=2)
        yield d


@pytest.fixture(autouse=True)
def _same_home(home, monkeypatch):
    monkeypatch.setenv("AISVIZ_HOME", str(home))  # overrides conftest's per-test cache: share the module's


def P(dash, name):
    from aisviz.app import panels

    return dash.panel(getattr(panels, name))


def _expected_png(dash, i, k, mode="default"):
    """The AIS overlay, recomputed here from the scorer-level arrays of the result."""
    from aisviz.core.heatmaps import ais_heatmap, overlay
    from aisviz.viz.plots import png_bytes

    r = dash.current
    small = r.image(i)
    small.thumbnail((200, 200))
    keep = None
    if k is not None:
        keep = np.zeros(r.n_maps, bool)
        keep[np.argsort(-r.ais, kind="stable")[:k]] = True
    heat = ais_heatmap(r.activations[i], r.image_ais[i], keep=keep)
    return png_bytes(overlay(small, heat, mode), compress_level=1), heat


def _views_built(dash):
    """The detail panel's pictures as a page that has built their views: each asks for its shown picture."""
    d = P(dash, "DetailPanel")
    for w in (d.p_image, d.p_ais, d.p_sal):
        w._handle_custom_msg({"want": w.key}, [])     # as the browser's message arrives


def _grid_event(dash, i, kind="mousemove"):
    from aisviz.viz.plots import cell_centre

    b = P(dash, "BrowserPanel")
    x, y = cell_centre(b.layout, i)
    b.events._dom_handlers({"type": kind, "dataX": x, "dataY": y})  # as ipyevents delivers it


def _mds_event(dash, i, kind="hover"):
    from plotly.callbacks import Points

    trace = P(dash, "BrowserPanel").mds_box.children[0].data[0]
    points = Points(point_inds=[i], xs=[trace.x[i]], ys=[trace.y[i]], trace_name=trace.name, trace_index=0)
    getattr(trace, f"_dispatch_on_{kind}")(points, None)  # as plotly's FigureWidget delivers it


# ---------------------------------------------------------------------------------------------
# the dashboard


def test_builds_and_every_panel_holds_results(dash):
    import plotly.graph_objects as go

    s = dash.state_summary()
    assert s["dataset"] == "tiny" and s["n_maps"] == 1280 and not s["busy"] and s["error"] == ""
    # the dashboard's own first request: nobody clicked
    assert s["progress"] == 1.0 and s["status"].startswith("ready in") and "from the dashboard's start" in s["status"]
    assert "click" not in s["status"]
    curve = P(dash, "CurvePanel").slot.children[0]
    bars = P(dash, "MapsPanel").slot.children[0]
    assert isinstance(curve, go.FigureWidget) and "aisviz-curve" in curve._dom_classes
    names = {t.name for t in curve.data}
    assert {"current k (test)", "current k (train)", "train, all maps", "test, all maps"} <= names
    assert len(bars.data[0].y) == 1280 and {t.name for t in bars.data[1:]} == {
        "top-k maps (kept at the slider's k)", "other maps"}
    d = P(dash, "DetailPanel")
    assert P(dash, "BrowserPanel").grid.value[:4] == b"\x89PNG"
    for slot in (d.p_image, d.p_ais, d.p_sal, d.bar_ais):
        assert slot.value[:4] == b"\x89PNG"
    assert "data-index='0'" in d.metrics.value and "aisviz-m-cc" in d.metrics.value
    assert "0.5 = chance" in d.metrics.value and "1 = chance" in d.metrics.value
    assert "tiny" in P(dash, "StatusPanel").info.value and "_head_act" in P(dash, "StatusPanel").info.value
    r = dash.current
    k0 = r.k_values[np.argmin(np.abs(r.k_values - r.summary["mean_k_star"]))]
    w_k = P(dash, "CurvePanel").w_k
    assert w_k.value == k0 and w_k.max == 1280 and w_k.step == r.k_step


def test_the_first_heatmap_is_the_papers_all_maps_heatmap(dash):
    d = P(dash, "DetailPanel")
    assert not dash.state.follow_slider and dash.state_summary()["heatmap_k"] is None
    dash.hover_image(4)
    assert d.p_ais.value == _expected_png(dash, 4, None)[0]
    assert "all maps (the paper's heatmap)" in d.cap_ais.value and "following" not in d.cap_ais.value


def test_slider_reads_the_stored_curves_only(dash, monkeypatch):
    from aisviz.pipeline import importance as ais

    def boom(*a, **k):
        raise AssertionError("the slider must not recompute")

    monkeypatch.setattr(ais.TopKValidation, "fit", boom)
    monkeypatch.setattr(ais.AlignmentImportance, "fit", boom)
    r, c = dash.current, P(dash, "CurvePanel")
    curve = c.slot.children[0]
    for k in (1, 31, 201, 1280):
        c.w_k.value = k
        i = int(np.argmin(np.abs(r.k_values - k)))
        marks = c.marks.marks        # what the browser draws on the curve and the bars
        assert marks["x"] == r.k_values[i] and marks["k"] == k
        assert [curve.data[j].name for j in marks["traces"]] == ["current k (train)", "current k (test)"]
        # k = 1 is undefined (one pooled map makes every similarity +-1): no marker then (None, as NaN in plotly)
        np.testing.assert_allclose(np.nan if marks["test"] is None else marks["test"],
                                   np.nanmean(r.curves["test_topk"][:, i]), equal_nan=True)
        values = c.last_readout
        np.testing.assert_allclose(values["test_random"], np.nanmean(r.curves["test_random"][:, i]), equal_nan=True)
        assert values["test_all"] == pytest.approx(r.summary["mean_r2_test_all"])
        assert f"data-test-topk='{values['test_topk']!r}'" in c.readout.value
        assert marks["n_maps"] == r.n_maps and marks["colours"] == ["#d62728", "#9aa5b1"]  # k bars red
    assert dash.messages == []


def test_hover_shows_that_image_and_click_pins_it(dash):
    d = P(dash, "DetailPanel")
    _grid_event(dash, 7)
    assert dash.state.image == 7 and dash.state_summary()["image_name"] == "img07.png"
    png, heat = _expected_png(dash, 7, None)
    assert d.p_ais.value == png
    assert "data-name='img07.png'" in d.title.value and "data-index='7'" in d.metrics.value
    from aisviz.core.metrics import compare_pair, image_maps

    a, s = image_maps([heat], [dash.current.saliency[7]], "display")
    row = compare_pair(a[0], s[0])
    assert f"data-value='{float(row['cc'])!r}'" in d.metrics.value
    mark = P(dash, "BrowserPanel").pin_mark
    assert mark.value == ""
    _grid_event(dash, 7, "click")
    assert dash.state.pinned == 7 and "data-state='pinned'" in d.title.value and not d.w_unpin.disabled
    assert mark.value.count("class='aisviz-pin'") == 1 and "data-index='7'" in mark.value  # the thumbnail outlined
    _grid_event(dash, 3)
    assert dash.state.image == 7  # pinned: hover does not replace it
    _grid_event(dash, 7, "click")  # click the pinned image again: unpin
    assert dash.state.pinned is None and mark.value == ""
    _grid_event(dash, 3)
    assert dash.state.image == 3
    _mds_event(dash, 11)
    assert dash.state.image == 11
    _grid_event(dash, 2, "click")
    _mds_event(dash, 12, "click")        # pinning another image moves the outline
    assert dash.state.pinned == 12 and dash.state.image == 12
    assert mark.value.count("class='aisviz-pin'") == 1 and "data-index='12'" in mark.value
    d.w_unpin.click()
    assert dash.state.pinned is None and mark.value == ""
    P(dash, "BrowserPanel").events._dom_handlers({"type": "mousemove", "dataX": -5, "dataY": 3})
    assert dash.messages == []


def test_the_pin_outline_covers_the_pinned_cell(dash):
    """The outline is placed in % of the grid picture: its box is the pinned image's cell (natural pixels)."""
    from aisviz.viz.plots import cell_centre

    b = P(dash, "BrowserPanel")
    lay = b.layout
    _grid_event(dash, 9, "click")
    try:
        box = {k: float(v) for k, v in re.findall(r"(left|top|width|height):([0-9.]+)%", b.pin_mark.value)}
        pitch = lay["cell"] + lay["gap"]
        width, height = lay["columns"] * pitch - lay["gap"], lay["rows"] * pitch - lay["gap"]
        x, y = cell_centre(lay, 9)
        assert box["left"] * width / 100 == pytest.approx(x - lay["cell"] / 2, abs=0.01)
        assert box["top"] * height / 100 == pytest.approx(y - lay["cell"] / 2, abs=0.01)
        assert box["width"] * width / 100 == pytest.approx(lay["cell"], abs=0.01)   # px
        assert box["height"] * height / 100 == pytest.approx(lay["cell"], abs=0.01)   # px
        assert lay["rows"] > 1 and box["top"] > 0             # image 9 is on the second row
    finally:
        dash.pin_image(None)


def test_the_status_says_whether_someone_clicked(home, monkeypatch):
    """The first result of a dashboard is not "from the click": nobody clicked. In a preheated Voila kernel
    (VOILA_PREHEAT=True) it was computed as the server prepared the page."""
    from aisviz.app import Dashboard

    monkeypatch.setenv("VOILA_PREHEAT", "True")
    d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=1), run_async=False, n_folds=4, n_seeds=2)
    assert re.fullmatch(r"ready: computed as the server prepared this page \(\d+\.\d s, before any click\)",
                        d.state.status), d.state.status
    P(d, "ControlsPanel").request()                 # the user asks (as Apply does)
    assert re.fullmatch(r"ready in \d+\.\d s from the click \(from memory\)", d.state.status), d.state.status
    monkeypatch.setenv("VOILA_PREHEAT", "False")    # a kernel started for the page: from the dashboard's start
    d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=1), run_async=False, n_folds=4, n_seeds=2)
    assert re.fullmatch(r"ready in \d+\.\d s from the dashboard's start \(computed\)", d.state.status), d.state.status


@pytest.fixture
def sent(monkeypatch):
    """Every message the kernel side of a widget sends to the browser, as (widget, message, buffer sizes):
    ipywidgets' Widget._send, the one path to the comm, recorded and then run as usual."""
    import ipywidgets as W

    out, send = [], W.Widget._send

    def record(self, msg, buffers=None):
        out.append((self, msg, [len(b) for b in buffers or []]))
        return send(self, msg, buffers)

    monkeypatch.setattr(W.Widget, "_send", record)
    return out


def _size(msg) -> int:
    import json

    return len(json.dumps(msg, default=str))


def test_a_slider_move_sends_the_marks_and_the_readout_and_no_figure_edit(dash, sent):
    """Issue 18. A move of the slider as the browser sends it (the slider's comm state) sends two small
    messages: the marks (k, the marker's x and y: the browser moves the curve's marker and recolours the
    per-map bars itself) and the read-out's HTML; besides, only the slider's echo of its value. No figure
    edit: a plotly update made the browser send every trace's and the layout's delta back (about 17 kB a
    step, echoed: 11 kB) and the bars' 1280 colours went out as a 15 kB restyle."""
    c = P(dash, "CurvePanel")
    c.w_k.set_state({"value": 41 if c.w_k.value != 41 else 81})
    by_widget: dict = {}
    for w, msg, buffers in sent:
        assert buffers == [], f"{type(w).__name__} sent bytes"
        by_widget.setdefault(w.model_id, []).append(msg)
    assert set(by_widget) <= {w.model_id for w in (c.w_k, c.readout, c.marks)}, \
        [type(w).__name__ for w, _, _ in sent]
    assert [set(m["state"]) for m in by_widget[c.readout.model_id]] == [{"value"}]
    assert [set(m["state"]) for m in by_widget[c.marks.model_id]] == [{"marks"}]
    assert _size(by_widget[c.marks.model_id][0]) < 400
    assert all(m.get("method") == "echo_update" for m in by_widget.get(c.w_k.model_id, []))
    assert c.marks.marks["k"] == dash.state.k == c.w_k.value


def test_a_hover_sends_each_picture_once_then_only_its_key(dash, sent):
    """A hover over a thumbnail sends the detail panel's three pictures (image, AIS overlay, saliency overlay)
    by key, its title and its metrics table, and nothing else: not the thumbnail grid's image, not the colour
    bars or captions that stay the same, not a figure. A picture's bytes go once (issue 18): hovering back to
    an image shown before sends no bytes at all."""
    d = P(dash, "DetailPanel")
    first = 5 if dash.state.image != 5 else 6
    second = 7
    panels = (d.p_image, d.p_ais, d.p_sal)
    _views_built(dash)
    _grid_event(dash, first)
    _grid_event(dash, second)
    del sent[:]
    _grid_event(dash, first)                       # back to an image shown before
    assert dash.state.image == first
    ids = [w.model_id for w, _, _ in sent]
    assert sorted(ids) == sorted(w.model_id for w in (*panels, d.title, d.metrics)), \
        [type(w).__name__ for w, _, _ in sent]
    assert all(sizes == [] for _, _, sizes in sent), "bytes sent again"
    assert [set(m["state"]) for w, m, _ in sent if w in panels] == [{"key"}] * 3
    assert all(_size(msg) < 4000 for w, msg, _ in sent if w in (d.title, d.metrics))
    png, _ = _expected_png(dash, first, None)
    assert d.p_ais.value == png

    target = next(i for i in range(dash.current.n_images) if ("image", i) not in dash.state.view.memo)
    del sent[:]
    _grid_event(dash, target)                      # an image not shown before: its pictures, once
    png, _ = _expected_png(dash, target, None)
    with_bytes = {w.model_id: sizes for w, _, sizes in sent if sizes}
    assert set(with_bytes) == {w.model_id for w in panels}
    assert with_bytes[d.p_ais.model_id] == [len(png)] and d.p_ais.value == png


def test_a_cached_image_sends_no_bytes_before_its_view_asks(sent):
    """A message to a widget the page has not built yet is lost (the browser logs "Comm not found"): a
    CachedImage sends pictures only once a browser view has asked for its shown one, and each picture once."""
    from aisviz.app.panels.live import CachedImage

    w = CachedImage(b"first", css_class="x", size="10px")
    w.show(b"second")
    assert [sizes for _, _, sizes in sent if sizes] == [] and w.value == b"second"
    w._handle_custom_msg({"want": w.key}, [])      # the view is built: it lacks the shown picture
    w.show(b"third")
    w.show(b"second")
    assert [sizes for _, _, sizes in sent if sizes] == [[6], [5]]


def test_pictures_sent_ahead_make_a_first_hover_send_keys_only(dash, sent):
    """Issue 18: once the views rest, the detail panel renders every image's pictures and metrics ahead (a
    worker thread where there is an event loop; here in the calling thread) and sends the pictures to the
    browser to keep: a hover of an image not shown before then sends its keys, title and metrics, no bytes."""
    d, view = P(dash, "DetailPanel"), dash.state.view
    _views_built(dash)
    d.prerender(view, None, dash.state.display)
    assert any(sizes for _, _, sizes in sent)                   # the pictures went ahead
    shown = {dash.state.image}
    target = next(i for i in range(dash.current.n_images) if i not in shown)
    del sent[:]
    t0 = len(dash.timings["render_ms"])
    _grid_event(dash, target)
    assert dash.state.image == target and all(sizes == [] for _, _, sizes in sent)
    assert all(view.memo[(target, None, dash.state.display)].get(key) is not None for key in ("ais_png", "metrics"))
    assert len(dash.timings["render_ms"]) == t0 + 1


def test_a_result_shown_again_gets_new_figures_and_replaced_ones_are_closed(dash):
    """Issue 19 item 3: plotly's widget view leaves its listeners on the model when removed, so a FigureWidget
    shown a second time froze (tests/browser/test_slider_switch.py). Each showing gets its own figures."""
    from dataclasses import replace

    first = dash.current
    before = P(dash, "CurvePanel").slot.children[0], P(dash, "MapsPanel").slot.children[0]
    dash.publish(replace(first, k_step=first.k_step))     # another result object: another view
    dash.publish(first)                                     # back to the first one's view
    after = P(dash, "CurvePanel").slot.children[0], P(dash, "MapsPanel").slot.children[0]
    assert all(a is not b for a, b in zip(after, before, strict=True))
    assert all(b.comm is None for b in before) and all(a.comm is not None for a in after)
    dash.set_k(201)
    assert P(dash, "CurvePanel").marks.marks["x"] == 201      # the browser draws it on the figure shown
    assert dash.messages == []


def test_following_the_slider_is_opt_in_and_labelled(dash):
    c, d = P(dash, "CurvePanel"), P(dash, "DetailPanel")
    dash.hover_image(5)
    c.w_k.value = 11
    assert d.p_ais.value == _expected_png(dash, 5, None)[0]  # off: all maps whatever k
    c.w_follow.value = True
    assert dash.state_summary()["heatmap_k"] == 11 and d.p_ais.value == _expected_png(dash, 5, 11)[0]
    assert "top 11 maps" in d.cap_ais.value and "following the slider" in d.cap_ais.value
    c.w_follow.value = False
    assert d.p_ais.value == _expected_png(dash, 5, None)[0] and "all maps" in d.cap_ais.value


def test_display_modes_switch_the_overlays_and_the_colour_bar(dash):
    from aisviz.core.heatmaps import colourbar_png

    d = P(dash, "DetailPanel")
    dash.hover_image(6)
    d.w_display.value = "paper"
    assert d.p_ais.value == _expected_png(dash, 6, None, "paper")[0]
    assert d.bar_ais.value == colourbar_png("paper", height=200) and "jet" in d.scale.value
    d.w_display.value = "default"
    assert d.p_ais.value == _expected_png(dash, 6, None, "default")[0] and "viridis" in d.scale.value


def test_results_zip_holds_the_same_values_as_the_results(dash):
    import pandas as pd

    e = P(dash, "ExportPanel")
    e.button.click()
    href = e.link.value.split("href='")[1].split("'")[0]
    import base64

    data = base64.b64decode(href.split(",", 1)[1])
    r = dash.current
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert set(z.namelist()) >= {"maps.csv", "splits.csv", "curves.csv", "images.csv", "summary.csv",
                                     "settings.json"}
        maps = pd.read_csv(z.open("maps.csv"))
        curves = pd.read_csv(z.open("curves.csv"))
        images = pd.read_csv(z.open("images.csv"))
        settings = __import__("json").loads(z.read("settings.json"))
    np.testing.assert_allclose(maps["ais"].to_numpy(), r.ais, rtol=1e-12)
    np.testing.assert_allclose(curves["r2_test_topk"].to_numpy(), r.curves["test_topk"].ravel(), rtol=1e-12)
    np.testing.assert_allclose(images["r_orig"].to_numpy(), r.r_orig, rtol=1e-12)
    assert settings["settings"]["n_seeds"] == 2 and settings["n_maps"] == 1280
    assert "efficientnet_lite0" in e.link.value and "download=" in e.link.value


def test_panel_and_chart_downloads(dash):
    import base64

    from PIL import Image

    d, c, m = P(dash, "DetailPanel"), P(dash, "CurvePanel"), P(dash, "MapsPanel")
    dash.hover_image(2)
    d.w_export.click()
    png = base64.b64decode(d.download.value.split("base64,")[1].split("'")[0])
    im = Image.open(io.BytesIO(png))
    assert im.width > 3 * 200 and "img02_panel_default.png" in d.download.value
    c.w_export.click()
    m.w_export.click()
    for panel, name in ((c, "alignment_curve"), (m, "ais_per_map")):
        assert f"download='{name}.png'" in panel.downloads.value and f"download='{name}.svg'" in panel.downloads.value
    assert dash.messages == []


def test_bad_folder_shows_an_in_app_message_and_logs_it(dash, caplog):
    caplog.set_level(logging.ERROR, logger="aisviz.app")
    ctl, st = P(dash, "ControlsPanel"), P(dash, "StatusPanel")
    ctl.w_path.value = "/no/such/folder"
    ctl.w_add.click()
    assert "does not exist" in st.message.value and "/no/such/folder" in st.message.value
    assert st.message_box.layout.display == "flex"
    assert any("does not exist" in r.getMessage() for r in caplog.records)
    st.message_box.children[1].click()
    assert st.message_box.layout.display == "none"


def test_unexpected_callback_error_is_caught(dash, monkeypatch):
    def broken(*args):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(P(dash, "DetailPanel"), "image_view", broken)
    _grid_event(dash, 9)
    text = dash.messages[-1]
    assert "unexpected RuntimeError" in text and "log" in text
    assert "simulated failure" not in text  # the text of a bug can hold paths: it goes to the log only
    dash.clear_message()


def test_invalid_validation_settings_keep_the_last_results(dash):
    ctl, st = P(dash, "ControlsPanel"), P(dash, "StatusPanel")
    before = dash.current
    ctl.w_folds.value = 10  # 20 images: 2 per test fold, too few
    ctl.w_apply.click()
    assert "too few" in dash.messages[-1] and "10 folds" in dash.messages[-1]
    assert st.progress.bar_style == "danger" and "last results" in st.status.value
    assert dash.current is before
    n = len(dash.messages)
    dash.clear_message()
    ctl.w_folds.value = 4
    ctl.w_apply.click()  # back to the cached result, instantly
    assert dash.current is before and "from memory" in st.status.value and len(dash.messages) == n


def test_switching_provider_reuses_the_cached_scorer(dash, monkeypatch):
    from aisviz.pipeline import importance as ais

    calls = []
    monkeypatch.setattr(ais.AlignmentImportance, "fit", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(ais.TopKValidation, "fit", lambda *a, **k: calls.append(1))
    first = dash.current
    ctl = P(dash, "ControlsPanel")
    ctl.w_provider.value = "center_bias"
    assert calls == [] and dash.current is not first
    np.testing.assert_array_equal(dash.current.ais, first.ais)
    assert "center_bias" in P(dash, "DetailPanel").cap_sal.value
    ctl.w_provider.value = first.settings.provider
    assert dash.current is first and "from memory" in dash.state.status


def test_a_saliency_failure_is_reported_once(dash, monkeypatch):
    from aisviz.app.panels.detail import placeholder_png
    from aisviz.errors import DataError
    from aisviz.pipeline import compute

    def broken(*a, **k):
        raise DataError("the provider is broken here")

    monkeypatch.setattr(compute, "saliency_maps", broken)
    n = len(dash.messages)
    P(dash, "ControlsPanel").w_provider.value = "fine_grained"
    new = dash.messages[n:]
    assert len(new) == 1 and "the provider is broken here" in new[0]
    d = P(dash, "DetailPanel")
    assert dash.current.saliency is None and "unavailable" in d.cap_sal.value
    grey = placeholder_png(d.size)
    assert d.p_sal.value == grey and d.bar_sal.value == placeholder_png(14)   # not the previous result's map
    dash.clear_message()
    P(dash, "ControlsPanel").w_provider.value = "center_bias"


def test_a_data_set_folder_can_be_added(dash, tmp_path):
    from aisviz.errors import DataError

    tiny = make_tiny_set(n=15, size=48, seed=4)
    root = tmp_path / "myset"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny.similarity)
    ctl = P(dash, "ControlsPanel")
    ctl.w_folds.value = 3
    n = len(dash.messages)
    ctl.use_folder(str(root))
    assert dash.state_summary()["dataset"] == "myset" and dash.messages[n:] == []
    assert ctl.w_dataset.value == str(root.resolve())
    assert dash.state.image == 0 and dash.state.pinned is None
    bare = tmp_path / "bare"
    bare.mkdir()
    np.save(bare / "similarity.npy", tiny.similarity)
    (bare / "image_list.txt").write_text("\n".join(tiny.image_names) + "\n")
    with pytest.raises(DataError, match="images"):
        ctl.use_folder(str(bare))


def test_a_data_root_adds_its_catalog_sets_and_refreshes_the_hint(dash, tmp_path, monkeypatch):
    tiny = make_tiny_set(n=15, size=48, seed=5)
    folder = tmp_path / "root" / "peterson2018" / "fruits"
    (folder / "images").mkdir(parents=True)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(folder / "images" / name)
    np.save(folder / "similarity_normalized.npy", tiny.similarity)
    (folder / "image_list.txt").write_text("\n".join(tiny.image_names) + "\n")
    monkeypatch.setenv("AISVIZ_DATA", "")  # restored after the test; the dashboard prepends the root
    ctl = P(dash, "ControlsPanel")
    ctl.refresh_datasets()
    assert "peterson_fruits" in ctl.hint.value  # missing before
    ctl.w_folds.value = 3
    ctl.use_folder(str(tmp_path / "root"))
    assert ctl.w_dataset.value == "peterson_fruits" and dash.state_summary()["n_maps"] == 1280
    assert dash.current.n_images == 15
    assert "peterson_fruits" not in ctl.hint.value.split("Search path")[0]  # the hint is no longer stale
    assert str(tmp_path / "root") in ctl.hint.value
    assert os.environ["AISVIZ_DATA"] == ""     # the dashboard's own search path, not the process's


def test_unavailable_network_weights_are_an_in_app_message(dash):
    from aisviz.models.networks import weights_cache_path

    if weights_cache_path("vgg16").exists():
        pytest.skip("VGG-16 weights are cached here: the offline error path cannot be shown")
    n = len(dash.messages)
    ctl = P(dash, "ControlsPanel")
    ctl.w_model.value = "vgg16"
    assert len(dash.messages) == n + 1 and "weights" in dash.messages[-1]
    assert "efficientnet_lite0" in dash.messages[-1]  # the message names the offline alternative
    ctl.w_model.value = "efficientnet_lite0"
    assert dash.state_summary()["model"] == "efficientnet_lite0"


def test_a_result_from_another_source_is_shown_without_computing(dash, monkeypatch):
    """A read-only viewer's path: a finished Result handed to a Dashboard, nothing computed."""
    from aisviz.app import Dashboard
    from aisviz.pipeline import importance as ais

    monkeypatch.setattr(ais.AlignmentImportance, "fit", lambda *a, **k: pytest.fail("must not compute"))
    viewer = Dashboard(results=[dash.current], run_async=False)
    assert viewer.current is dash.current and viewer.state.status.startswith("ready")
    assert P(viewer, "CurvePanel").slot.children[0] is not P(dash, "CurvePanel").slot.children[0]
    assert P(viewer, "DetailPanel").p_ais.value[:4] == b"\x89PNG" and viewer.messages == []


# ---------------------------------------------------------------------------------------------
# races and the job runner


def test_hover_and_slider_during_publication_raise_no_error(dash):
    """Publish two results back and forth on another thread while the slider moves and the mouse hovers
    here: every event sees a result and its figures together, nothing raises."""
    first = dash.current
    P(dash, "ControlsPanel").w_seeds.value = 3
    P(dash, "ControlsPanel").w_apply.click()
    second = dash.current
    assert second is not first
    stop = threading.Event()

    def publisher():  # bounded: an unbounded loop can starve the events it races against (GIL)
        for _ in range(10):
            if stop.is_set():
                return
            for r in (first, second):
                dash.publish(r)
                time.sleep(0.01)

    n_messages = len(dash.messages)
    t = threading.Thread(target=publisher)
    t.start()
    try:
        w_k = P(dash, "CurvePanel").w_k
        for n in range(50):
            w_k.value = 1 + 10 * (n % 100)
            _grid_event(dash, n % 20)
    finally:
        stop.set()
        t.join()
    assert dash.messages[n_messages:] == []
    P(dash, "ControlsPanel").w_seeds.value = 2
    P(dash, "ControlsPanel").w_apply.click()
    assert dash.current is first


def test_with_a_running_event_loop_only_the_main_thread_changes_the_state(home):
    """As in a kernel: the Dashboard on a running asyncio loop computes on its worker thread, and every change
    of the observable state (what the widgets follow) happens on the loop's thread, also for a request made
    while a job runs."""
    import asyncio

    import traitlets

    from aisviz.app import Dashboard

    threads = set()

    async def scenario():
        d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=2), run_async=True, n_folds=4, n_seeds=1,
                      k_step=64, provider="center_bias", autostart=False)
        d.state.observe(lambda change: threads.add(threading.get_ident()), names=traitlets.All)
        d.run()
        controls = P(d, "ControlsPanel")
        while "validation" not in d.state.stage and d.busy:
            await asyncio.sleep(0.02)             # the loop runs the worker's hand-offs
        controls.w_seeds.value = 2
        controls.w_apply.click()                  # superseding the running job
        deadline = time.perf_counter() + 600
        while d.busy and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return d

    d = asyncio.run(scenario())
    assert not d.busy and d.current is not None and d.current.settings.n_seeds == 2
    assert d.messages == []
    assert threads == {threading.get_ident()}


class _Recorder:
    def __init__(self):
        self.events = []

    def progress(self, job, stage, fraction, text):
        self.events.append(("progress", job, stage, time.perf_counter()))

    def finished(self, job, result):
        self.events.append(("finished", job, result, time.perf_counter()))

    def failed(self, job, exc):
        self.events.append(("failed", job, exc, time.perf_counter()))


def test_a_superseded_job_stops_within_a_chunk(home):
    """The session alone (no widgets): a second request while the first is in its validation stops the
    first at its next progress report; only the newest result is delivered."""
    from aisviz.app.session import Session
    from aisviz.pipeline.settings import Settings

    rec = _Recorder()
    ds = make_tiny_set(n=20, size=64, seed=1)
    session = Session(rec, given={"tiny": ds})
    slow = Settings(dataset="tiny", n_folds=4, n_seeds=20, k_step=1, provider="center_bias")
    first = session.request(slow)
    deadline = time.time() + 300
    while not any(e[0] == "progress" and e[2] == "validation" for e in rec.events) and time.time() < deadline:
        time.sleep(0.01)
    second = session.request(Settings(dataset="tiny", n_folds=4, n_seeds=2, provider="center_bias"))
    asked = time.perf_counter()
    assert session.wait(300)
    late = [e for e in rec.events if e[1] == first and e[0] == "progress" and e[3] > asked]
    assert late == []  # the first job reported nothing after being superseded
    delivered = [e for e in rec.events if e[0] == "finished"]
    assert [e[1] for e in delivered] == [second] and delivered[0][2].settings.n_seeds == 2
    assert not any(e[0] == "failed" for e in rec.events)


def test_the_progress_bar_moves_while_the_activations_are_extracted(home):
    """A new set's extraction can take minutes: the bar moves per batch of images, not only per stage."""
    from aisviz.app import Dashboard

    d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=5), run_async=False, autostart=False, n_folds=2,
                  n_seeds=1, provider="center_bias")
    seen = []
    d.state.observe(lambda _: seen.append((d.state.status, d.state.progress)), ["status", "progress"])
    d.run()
    extracting = [p for status, p in seen if status.startswith("activations of")]
    assert len(set(extracting)) > 2, seen        # 20 images: before the first batch, after 16 and after 20
    assert extracting == sorted(extracting) and max(extracting) < max(p for _, p in seen) == 1.0


@pytest.mark.slow
def test_default_dashboard_computes_in_the_background(home):
    """The real default: the generated set, the offline network, work in a thread with progress."""
    pytest.importorskip("aisviz.io.synthetic")
    from aisviz.app import Dashboard

    d = Dashboard()
    assert d.busy  # returned at once; the work goes on in the background
    assert d.wait(timeout=600)
    s = d.state_summary()
    assert s["dataset"] == "synthetic" and s["error"] == "" and s["progress"] == 1.0
    assert "ais_mass_inside" in P(d, "DetailPanel").metrics.value  # the generated set has ground-truth regions
    assert d.current.k_step == 10  # auto k step for 1280 maps


def test_auto_k_step():
    from aisviz.pipeline.settings import auto_k_step

    assert auto_k_step(256) == 1 and auto_k_step(512) == 4 and auto_k_step(1280) == 10
    assert auto_k_step(512, reruns_tail=True) == 16 and auto_k_step(20, reruns_tail=True) == 1


# ---------------------------------------------------------------------------------------------
# figure builders


def test_mds_recovers_a_planar_configuration():
    from aisviz.core.curves import mds_coordinates

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(15, 2))
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    coords = mds_coordinates(d.max() - d)  # similarity = max - distance, so d is recovered exactly
    np.testing.assert_allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), d, atol=1e-9)


def test_contact_sheet_cells_round_trip():
    from PIL import Image

    from aisviz.viz.plots import cell_at, cell_centre, contact_sheet

    images = [Image.new("RGB", (30 + i, 20), (i * 10, 0, 0)) for i in range(11)]
    sheet, layout = contact_sheet(images, cell=24, columns=4, gap=2)
    assert sheet.size == (4 * 26 - 2, 3 * 26 - 2)
    for i in range(11):
        assert cell_at(layout, *cell_centre(layout, i)) == i
    assert cell_at(layout, *cell_centre(layout, 11)) is None  # empty cell after the last image
    assert cell_at(layout, 500, 5) is None


def test_alignment_curve_and_readout(dash):
    from aisviz.core.curves import curve_stats
    from aisviz.pipeline.derive import readout
    from aisviz.viz.plots import MARKER_TEST, alignment_curve

    r = dash.current
    fig = alignment_curve(r.k_values, r.curves, r.summary, k=21)
    marker = next(t for t in fig.data if t.name == MARKER_TEST)
    values = readout(r, 21)
    assert marker.x[0] == values["k"] == 21 and marker.y[0] == pytest.approx(values["test_topk"])
    assert fig.layout.annotations == ()  # every line is named in the legend, no labels to overlap
    st = curve_stats({"a": np.array([[1.0, np.nan], [3.0, 2.0]])})["a"]
    np.testing.assert_allclose(st["mean"], [2.0, 2.0])
    np.testing.assert_allclose(st["sd"], [np.sqrt(2), 0.0])


# ---------------------------------------------------------------------------------------------
# serving


def test_voila_command():
    from aisviz.server.serve import dashboard_notebook, voila_command

    cmd = voila_command(port=9001, pool_size=2)
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=9001" in cmd and "--show_tracebacks=False" in cmd
    assert "--preheat_kernel=True" in cmd and "--pool_size=2" in cmd
    assert any(a.startswith("--MappingKernelManager.cull_idle_timeout=") for a in cmd)
    assert "--preheat_kernel=True" not in voila_command(port=9001)
    assert dashboard_notebook().is_file()
    with pytest.raises(ValueError, match="port"):
        voila_command(port=0)
    with pytest.raises(ValueError, match="pool_size"):
        voila_command(pool_size=-1)


def test_notebook_written_when_not_in_a_checkout(tmp_path, monkeypatch):
    import nbformat

    from aisviz.server import serve

    monkeypatch.setattr(serve, "NOTEBOOK", tmp_path / "missing.ipynb")
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    path = serve.dashboard_notebook()
    assert path.parent == tmp_path / "home" / "app"
    assert "Dashboard()" in nbformat.read(path, as_version=4).cells[0].source


def test_a_newer_request_replaces_a_running_job(home):
    """Asynchronous mode: ask for new settings, then at once go back to cached ones. The cached result is
    shown immediately and the abandoned job neither replaces it nor leaves the status busy."""
    from aisviz.app import Dashboard

    d = Dashboard(dataset=make_tiny_set(n=20, size=64, seed=1), n_folds=4, n_seeds=2)
    assert d.wait(timeout=600) and d.current is not None
    first = d.current
    ctl = P(d, "ControlsPanel")
    ctl.w_seeds.value = 5
    ctl.w_apply.click()                  # a validation job starts in the background
    ctl.w_seeds.value = 2
    ctl.w_apply.click()                  # back to the cached result: shown at once
    assert d.current is first and "from memory" in d.state.status
    assert d.wait(timeout=600)
    assert d.current is first and not d.busy and "from memory" in d.state.status
    assert d.messages == []


def test_a_dashboard_opening_on_a_cached_result_imports_no_torch(home, tmp_path):
    """Issue 18 item 2: a result computed before (another tab, kernel or server restart) is shown from the disk
    cache of results before any heavy work: the kernel that opens on it imports neither torch nor torchvision.
    A kernel of `aisviz serve` (AISVIZ_SHARED_ASSETS=1) opening on it, with no sweep folder to show, also skips
    what its first view does not need (measured in benchmarks/bench_dashboard.py): pandas (the layer panel),
    scipy.stats (the image's metrics) and jsonschema's IRI grammars on lark (plotly's widget code)."""
    import json
    import subprocess
    import sys

    tiny = make_tiny_set(n=12, size=48, seed=8)
    root = tmp_path / "myset"
    (root / "images").mkdir(parents=True)
    for name, image in zip(tiny.image_names, tiny.images):
        image.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny.similarity)
    script = ("import json, sys\nfrom aisviz.app import Dashboard\n"
              "d = Dashboard(dataset=sys.argv[1], run_async=False, n_folds=2, n_seeds=1, k_step=640, "
              "provider='center_bias')\n"
              "print(json.dumps({'source': d.current.source, 'error': d.state_summary()['error'],"
              " 'heavy': sorted({'torch', 'torchvision', 'pandas', 'scipy.stats', 'lark'}"
              " & {k for k, v in sys.modules.items() if v is not None})}))")

    def run(**env):
        return json.loads(subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True,
                                         check=True, env=dict(os.environ, **env), timeout=600)
                          .stdout.strip().splitlines()[-1])

    computed = run()
    assert computed["source"] == "computed" and "torch" in computed["heavy"]
    plain = run()   # a JupyterLab kernel: jsonschema is left whole there (lark)
    assert plain["source"] == "cache" and not plain["error"] and set(plain["heavy"]) <= {"lark"}
    assert run(AISVIZ_SHARED_ASSETS="1") == {"source": "cache", "error": "", "heavy": []}
