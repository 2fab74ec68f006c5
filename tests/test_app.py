"""The dashboard's widget state without a browser (set values, fire the hover/click callbacks, read what
each view holds), its figure builders (aisviz.plots) and the Voila command line (aisviz.serve)."""
from __future__ import annotations

import importlib.util
import logging

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


def _expected_png(dash, i, k):
    from aisviz.ais import top_k_mask
    from aisviz.heatmaps import ais_heatmap, overlay
    from aisviz.plots import png_bytes

    res = dash.current
    small = res.dataset.load_image(i).copy()
    small.thumbnail((dash.panel_size, dash.panel_size))
    keep = None if k is None else top_k_mask(res.scorer.ais_, k)
    heat = ais_heatmap(res.scorer.activations_[i], res.scorer.image_ais_[i], keep=keep)
    return png_bytes(overlay(small, heat)), heat


def _grid_event(dash, i, kind="mousemove"):
    from aisviz.plots import cell_centre

    x, y = cell_centre(dash._grid_layout, i)
    dash._grid_events._dom_handlers({"type": kind, "dataX": x, "dataY": y})  # as ipyevents delivers it


def _mds_event(dash, i, kind="hover"):
    from plotly.callbacks import Points

    trace = dash.mds_box.children[0].data[0]
    points = Points(point_inds=[i], xs=[trace.x[i]], ys=[trace.y[i]], trace_name=trace.name, trace_index=0)
    getattr(trace, f"_dispatch_on_{kind}")(points, None)  # as plotly's FigureWidget delivers it


# ---------------------------------------------------------------------------------------------
# the dashboard


def test_builds_and_every_view_holds_results(dash):
    import plotly.graph_objects as go

    s = dash.state()
    assert s["dataset"] == "tiny" and s["n_maps"] == 1280 and not s["busy"]
    assert s["progress"] == 1.0 and "ready" in s["status"] and s["message"] == ""
    curve, bars = dash.curve_box.children[0], dash.bars_box.children[0]
    assert isinstance(curve, go.FigureWidget) and "aisviz-curve" in curve._dom_classes
    assert {"current k (test)", "current k (train)"} <= {t.name for t in curve.data}
    assert len(bars.data[0].y) == 1280
    assert dash.grid.value[:4] == b"\x89PNG" and dash.p_ais.value[:4] == b"\x89PNG"
    assert dash.p_sal.value[:4] == b"\x89PNG" and dash.p_image.value[:4] == b"\x89PNG"
    assert "data-index='0'" in dash.metrics.value and "aisviz-m-cc" in dash.metrics.value
    assert "tiny" in dash.info.value and "_head_act" in dash.info.value
    # the slider starts at the evaluated k nearest the mean k*
    v = dash.current.validation
    assert dash.w_k.value == v.k_values_[np.argmin(np.abs(v.k_values_ - v.summary_["mean_k_star"]))]
    assert dash.w_k.max == 1280 and dash.w_k.step == dash.current.k_step


def test_slider_reads_precomputed_curves_only(dash, monkeypatch):
    from aisviz import ais

    def boom(*a, **k):
        raise AssertionError("the slider must not recompute")

    monkeypatch.setattr(ais.TopKValidation, "fit", boom)
    monkeypatch.setattr(ais.AlignmentImportance, "fit", boom)
    v, curve = dash.current.validation, dash.curve_box.children[0]
    for k in (1, 31, 200, 1280):
        dash.w_k.value = k
        i = int(np.argmin(np.abs(v.k_values_ - k)))
        marker = next(t for t in curve.data if t.name == "current k (test)")
        assert marker.x[0] == v.k_values_[i]
        assert marker.y[0] == pytest.approx(np.nanmean(v.curves_["test_topk"][:, i]))
        r = dash.last_readout
        assert r["test_random"] == pytest.approx(np.nanmean(v.curves_["test_random"][:, i]))
        assert r["test_all"] == pytest.approx(v.summary_["mean_r2_test_all"])
        assert f"data-test-topk='{r['test_topk']!r}'" in dash.readout.value
        colours = dash.bars_box.children[0].data[0].marker.color
        assert list(colours).count("#d62728") == k
    assert dash.messages == []


def test_hover_shows_that_image_and_click_pins_it(dash):
    dash.w_k.value = 31
    _grid_event(dash, 7)
    assert dash.shown == 7 and dash.state()["image"] == "img07.png"
    png, heat = _expected_png(dash, 7, 31)
    assert dash.p_ais.value == png
    assert "data-name='img07.png'" in dash.detail_title.value and "data-index='7'" in dash.metrics.value
    # the metrics are compare_pair's for that image's display maps
    from aisviz.compare import compare_pair, image_maps

    a, s = image_maps([heat], [dash.current.saliency[7]], "display")
    row = compare_pair(a[0], s[0])
    assert f"data-value='{float(row['cc'])!r}'" in dash.metrics.value
    _grid_event(dash, 7, "click")
    assert dash.pinned == 7 and "data-state='pinned'" in dash.detail_title.value and not dash.w_unpin.disabled
    _grid_event(dash, 3)
    assert dash.shown == 7  # pinned: hover does not replace it
    _grid_event(dash, 7, "click")  # click the pinned image again: unpin
    assert dash.pinned is None
    _grid_event(dash, 3)
    assert dash.shown == 3
    # the MDS map's plotly callbacks
    _mds_event(dash, 11)
    assert dash.shown == 11
    _mds_event(dash, 12, "click")
    assert dash.pinned == 12 and dash.shown == 12
    dash.w_unpin.click()
    assert dash.pinned is None
    # outside the grid: nothing happens
    dash._grid_events._dom_handlers({"type": "mousemove", "dataX": -5, "dataY": 3})
    assert dash.messages == []


def test_heatmap_follows_the_slider_unless_unticked(dash):
    dash.hover_image(5)
    dash.w_k.value = 11
    assert dash.heatmap_k() == 11 and dash.p_ais.value == _expected_png(dash, 5, 11)[0]
    assert "top 11 maps" in dash.p_ais_caption.value
    dash.w_follow.value = False
    assert dash.heatmap_k() is None and dash.p_ais.value == _expected_png(dash, 5, None)[0]
    assert "all maps" in dash.p_ais_caption.value
    dash.w_follow.value = True


def test_bad_folder_shows_an_in_app_message_and_logs_it(dash, caplog):
    caplog.set_level(logging.ERROR, logger="aisviz.app")
    dash.w_path.value = "/no/such/folder"
    dash.w_add.click()
    assert "does not exist" in dash.message.value and "/no/such/folder" in dash.message.value
    assert dash.message_box.layout.display == "flex"
    assert any("does not exist" in r.getMessage() for r in caplog.records)
    dash.w_dismiss.click()
    assert dash.message_box.layout.display == "none"


def test_unexpected_callback_error_is_caught(dash, monkeypatch):
    def broken(i):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(dash, "image_view", broken)
    _grid_event(dash, 9)
    text = dash.messages[-1]
    assert "unexpected RuntimeError" in text and "simulated failure" in text and "log" in text
    dash.clear_message()


def test_invalid_validation_settings_keep_the_last_results(dash):
    before = dash.current
    dash.w_folds.value = 10  # 20 images: 2 per test fold, too few
    dash.w_apply.click()
    assert "too few" in dash.messages[-1] and "10 folds" in dash.messages[-1]
    assert dash.progress.bar_style == "danger" and "last results" in dash.status.value
    assert dash.current is before
    dash.clear_message()
    dash.w_folds.value = 4
    dash.w_apply.click()  # back to the cached result, instantly
    assert dash.current is before and "from memory" in dash.status.value


def test_switching_provider_reuses_the_cached_scorer(dash, monkeypatch):
    from aisviz import ais

    calls = []
    monkeypatch.setattr(ais.AlignmentImportance, "fit", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(ais.TopKValidation, "fit", lambda *a, **k: calls.append(1))
    first = dash.current
    dash.w_provider.value = "center_bias"
    assert calls == [] and dash.current is not first and dash.current.scorer is first.scorer
    assert "center_bias" in dash.p_sal_caption.value
    dash.w_provider.value = first.settings.provider
    assert dash.current is first and "from memory" in dash.status.value


def test_a_data_set_folder_can_be_added(dash, tmp_path):
    tiny = make_tiny_set(n=15, size=48, seed=4)
    root = tmp_path / "myset"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny.similarity)
    dash.w_folds.value = 3
    dash.use_folder(str(root))
    assert dash.state()["dataset"] == "myset" and dash.messages[-1:] != ["x"]
    assert dash.w_dataset.value == str(root.resolve())
    assert dash.shown == 0 and dash.pinned is None
    # a matrix-only folder is refused in plain words
    bare = tmp_path / "bare"
    bare.mkdir()
    np.save(bare / "similarity.npy", tiny.similarity)
    (bare / "image_list.txt").write_text("\n".join(tiny.image_names) + "\n")
    with pytest.raises(Exception, match="images"):
        dash.use_folder(str(bare))


def test_a_data_root_adds_its_catalog_sets(dash, tmp_path, monkeypatch):
    tiny = make_tiny_set(n=15, size=48, seed=5)
    folder = tmp_path / "root" / "peterson2018" / "fruits"
    (folder / "images").mkdir(parents=True)
    for name, img in zip(tiny.image_names, tiny.images, strict=True):
        img.save(folder / "images" / name)
    np.save(folder / "similarity_normalized.npy", tiny.similarity)
    (folder / "image_list.txt").write_text("\n".join(tiny.image_names) + "\n")
    monkeypatch.setenv("AISVIZ_DATA", "")  # restored after the test; the dashboard prepends the root
    dash.refresh_datasets()
    dash.w_folds.value = 3
    dash.use_folder(str(tmp_path / "root"))
    assert dash.w_dataset.value == "peterson_fruits" and dash.state()["n_maps"] == 1280
    assert dash.current.dataset.n_images == 15


def test_unavailable_network_weights_are_an_in_app_message(dash):
    from aisviz.models import weights_cache_path

    if weights_cache_path("vgg16").exists():
        pytest.skip("VGG-16 weights are cached here: the offline error path cannot be shown")
    n = len(dash.messages)
    dash.w_model.value = "vgg16"
    assert len(dash.messages) == n + 1 and "weights" in dash.messages[-1]
    assert "efficientnet_lite0" in dash.messages[-1]  # the message names the offline alternative
    dash.w_model.value = "efficientnet_lite0"
    assert dash.state()["model"] == "efficientnet_lite0"


def test_default_dashboard_computes_in_the_background(home):
    """The real default: the generated set, the offline network, work in a thread with progress."""
    pytest.importorskip("aisviz.synthetic")
    from aisviz.app import Dashboard

    d = Dashboard()
    assert d.busy  # returned at once; the work goes on in the background
    assert d.wait(timeout=600)
    s = d.state()
    assert s["dataset"] == "synthetic" and s["message"] == "" and s["progress"] == 1.0
    assert "ais_mass_inside" in d.metrics.value  # the generated set has ground-truth regions
    assert d.current.k_step == 10  # auto k step for 1280 maps
    d.w_k.value = 1280
    assert d.heatmap_k() is None


def test_auto_k_step():
    from aisviz.app import auto_k_step

    assert auto_k_step(256) == 1 and auto_k_step(512) == 4 and auto_k_step(1280) == 10
    assert auto_k_step(512, reruns_tail=True) == 16 and auto_k_step(20, reruns_tail=True) == 1


# ---------------------------------------------------------------------------------------------
# figure builders


def test_mds_recovers_a_planar_configuration():
    from aisviz.plots import mds_coordinates

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(15, 2))
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    coords = mds_coordinates(d.max() - d)  # similarity = max - distance, so d is recovered exactly
    np.testing.assert_allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), d, atol=1e-9)


def test_contact_sheet_cells_round_trip():
    from PIL import Image

    from aisviz.plots import cell_at, cell_centre, contact_sheet

    images = [Image.new("RGB", (30 + i, 20), (i * 10, 0, 0)) for i in range(11)]
    sheet, layout = contact_sheet(images, cell=24, columns=4, gap=2)
    assert sheet.size == (4 * 26 - 2, 3 * 26 - 2)
    for i in range(11):
        assert cell_at(layout, *cell_centre(layout, i)) == i
    assert cell_at(layout, *cell_centre(layout, 11)) is None  # empty cell after the last image
    assert cell_at(layout, 500, 5) is None


def test_alignment_curve_and_readout(dash):
    from aisviz.plots import MARKER_TEST, alignment_curve, curve_stats, readout_at

    v = dash.current.validation
    fig = alignment_curve(v.k_values_, v.curves_, v.summary_, k=21)
    marker = next(t for t in fig.data if t.name == MARKER_TEST)
    r = readout_at(v, 21)
    assert marker.x[0] == r["k"] == 21 and marker.y[0] == pytest.approx(r["test_topk"])
    st = curve_stats({"a": np.array([[1.0, np.nan], [3.0, 2.0]])})["a"]
    np.testing.assert_allclose(st["mean"], [2.0, 2.0])
    np.testing.assert_allclose(st["sd"], [np.sqrt(2), 0.0])


# ---------------------------------------------------------------------------------------------
# serving


def test_voila_command():
    from aisviz.serve import dashboard_notebook, voila_command

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

    from aisviz import serve

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
    d.w_seeds.value = 5
    d.w_apply.click()                  # a validation job starts in the background
    d.w_seeds.value = 2
    d.w_apply.click()                  # back to the cached result: shown at once
    assert d.current is first and "from memory" in d.status.value
    assert d.wait(timeout=600)
    assert d.current is first and not d.busy and "from memory" in d.status.value
    assert d.messages == []
