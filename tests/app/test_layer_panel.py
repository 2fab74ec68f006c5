"""The dashboard's layer comparison without a browser: compute layers on request through the panel's job
runner, the numbers against the dashboard's own result, a click opens the layer, sweep folders fill it."""
from __future__ import annotations

import importlib.util

import pytest
from conftest import make_tiny_set

pytestmark = [pytest.mark.slow, pytest.mark.skipif(  # slow: the dashboard fixture computes a first result
    any(importlib.util.find_spec(m) is None for m in ("ipywidgets", "plotly", "anywidget", "ipyevents", "dask")),
    reason="the dashboard and sweep extras are not installed (pip install 'aisviz[app,sweep]')")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("aisviz-layer-home")


@pytest.fixture(autouse=True)
def _same_home(home, monkeypatch):
    monkeypatch.setenv("AISVIZ_HOME", str(home))


@pytest.fixture(scope="module")
def dash(home):
    from aisviz.app import Dashboard

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        yield Dashboard(dataset=make_tiny_set(n=20, size=64, seed=1), run_async=False, n_folds=4, n_seeds=2,
                        provider="center_bias")


def _panel(dash):
    from aisviz.app.panels import LayerComparisonPanel

    return dash.panel(LayerComparisonPanel)


def _trace(panel, name):
    return next(t for t in panel.figure.data if t.name == name)


def test_empty_until_layers_are_computed(dash):
    panel = _panel(dash)
    assert panel.slot.children == () and "No layer results yet" in panel.note.value
    assert "_head_act" in panel.w_layers.options and "_stem_act" in panel.w_layers.options
    assert "_head_act" in panel.w_layers.value  # the shown layer is selected by default
    assert not panel.w_compute.disabled


def test_compute_on_request_then_click_opens_the_layer(dash):
    panel = _panel(dash)
    shown = dash.current
    panel.w_layers.value = ("_blocks.15", "_head_act")
    panel.w_compute.click()                      # run_async=False: the job runs now
    assert not dash.state.error, dash.state.error
    assert list(panel.table.layer) == ["_blocks.15", "_head_act"]
    topk = _trace(panel, "test, top-k* maps by AIS")
    assert list(topk.x) == ["_blocks.15", "_head_act"] and panel.w_progress.value == 1.0
    # the shown layer's point is the dashboard's own result, computed separately by the main session
    assert topk.y[1] == pytest.approx(shown.summary["mean_r2_test_topk"], abs=1e-12)
    assert _trace(panel, "test, all maps").y[1] == pytest.approx(shown.summary["mean_r2_test_all"], abs=1e-12)
    assert list(_trace(panel, "all maps, all pairs").y) == pytest.approx([shown.r2_all] * 2, abs=1e-12)
    assert topk.y[0] != topk.y[1]
    # a click on the first point opens _blocks.15 in the other views
    from plotly.callbacks import Points

    points = Points(point_inds=[0], xs=[topk.x[0]], ys=[topk.y[0]], trace_name=topk.name, trace_index=0)
    topk._dispatch_on_click(points, None)        # as plotly's FigureWidget delivers it
    assert dash.current.settings.layer == "_blocks.15" and dash.state_summary()["layer"] == "_blocks.15"
    assert dash.current.summary["mean_r2_test_topk"] == pytest.approx(topk.y[0], abs=1e-12)
    assert list(panel.table.layer) == ["_blocks.15", "_head_act"]  # still shown for the new view
    # asking again reuses the finished cells
    panel.w_compute.click()
    assert not dash.state.error


def test_a_sweep_folder_fills_the_view(dash, tmp_path):
    import aisviz

    aisviz.sweep(make_tiny_set(n=20, size=64, seed=1), "efficientnet_lite0", ["_conv_head"], folds=4, seeds=2,
                 k_step=0, out=tmp_path, progress=False)
    panel = _panel(dash)
    panel.w_source.value = str(tmp_path)
    panel.w_add.click()
    assert "_conv_head" in list(panel.table.layer)
    assert list(panel.table.layer_index) == sorted(panel.table.layer_index)  # along depth


def test_a_folder_without_sweep_results_is_an_in_app_message(dash, tmp_path):
    panel = _panel(dash)
    panel.w_source.value = str(tmp_path)
    panel.w_add.click()
    assert "holds no sweep results" in dash.state.error
    dash.clear_message()
