"""Bundle settings are chosen by what they are, not by their place in bundle.json: the index keeps one
documented order whatever the order of the precompute calls; notebooks find a setting by data set, network
and layer (a clear error when it is absent); the shared server opens on a declared setting."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import make_tiny_set


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One result computed with the real offline network on a small set (its settings are varied below)."""
    from aisviz.pipeline.compute import compute_result

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        return compute_result(dataset=make_tiny_set(n=12, size=48, seed=3), provider=None, n_folds=3, n_seeds=2,
                              k_step=128, progress=False)


def _variant(result, dataset: str, layer: str):
    return replace(result, dataset_name=dataset, settings=replace(result.settings, dataset=dataset, layer=layer))


# (data set, layer, is the network's default layer), in the order the instructor guide writes them
GUIDE_ORDER = [("synthetic", "_head_act", True), ("peterson_animals", "_head_act", True),
               ("synthetic", "_blocks.15", False), ("synthetic", "_head_act", True)]


def _write(result, root, order):
    from aisviz.pipeline.bundles import write_bundle

    for dataset, layer, default in order:
        write_bundle(_variant(result, dataset, layer), root, pngs=False, default_layer=default)
    index = json.loads((root / "bundle.json").read_text())
    return [(e["settings"]["dataset"], e["settings"]["layer"]) for e in index["settings"]]


def test_the_index_order_does_not_depend_on_the_order_of_the_calls(result, tmp_path):
    guide = _write(result, tmp_path / "a", GUIDE_ORDER)
    other = _write(result, tmp_path / "b", list(reversed(GUIDE_ORDER)))
    expected = [("synthetic", "_head_act"), ("synthetic", "_blocks.15"), ("peterson_animals", "_head_act")]
    assert guide == other == expected           # the generated set's default layer first, re-adding moves nothing


def test_find_by_settings_and_a_clear_error_when_absent(result, tmp_path):
    from aisviz.errors import InputError
    from aisviz.pipeline.bundles import open_catalog

    _write(result, tmp_path, GUIDE_ORDER[:3])
    catalog = open_catalog(tmp_path)
    found = catalog.find(dataset="synthetic", model=result.settings.model, layer="_blocks.15")
    assert (found.settings["dataset"], found.settings["layer"]) == ("synthetic", "_blocks.15")
    assert catalog.find(dataset="peterson_animals").settings["dataset"] == "peterson_animals"
    with pytest.raises(InputError) as err:                     # exit code 3
        catalog.find(dataset="synthetic", layer="_blocks.9")
    message = str(err.value)
    assert "no result for dataset=synthetic, layer=_blocks.9" in message and "it holds:" in message
    assert "aisviz precompute --out BUNDLE --dataset synthetic --layer _blocks.9" in message
    with pytest.raises(InputError, match="seed is not a setting"):
        catalog.find(seed=1)


def test_the_viewer_opens_on_the_declared_setting(result, tmp_path):
    from aisviz.pipeline.bundle_select import SettingNotFound, default_entry
    from aisviz.pipeline.bundles import open_catalog

    _write(result, tmp_path, list(reversed(GUIDE_ORDER)))
    entries = open_catalog(tmp_path).entries
    assert (entries[0].settings["dataset"], entries[0].settings["layer"]) == ("synthetic", "_head_act")
    chosen = default_entry(entries, "dataset=synthetic,layer=_blocks.15")
    assert chosen.settings["layer"] == "_blocks.15"
    assert default_entry(entries, chosen.id) is chosen
    with pytest.raises(SettingNotFound, match="field=value pairs"):
        default_entry(entries, "dataset=synthetic,layer")
    with pytest.raises(SettingNotFound, match="has no setting 'nope'"):
        default_entry(entries, "nope")


@pytest.mark.slow
def test_serve_refuses_an_unknown_default_before_starting(result, tmp_path):
    _write(result, tmp_path / "b", GUIDE_ORDER[:1])
    r = subprocess.run([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(tmp_path / "b"),
                        "--port", "18431", "--default", "dataset=peterson_animals"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "no result for dataset=peterson_animals" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "aisviz", "serve", "--default", "dataset=synthetic", "--port", "18432"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--default names a bundled setting" in r.stderr


def test_a_menu_choice_that_switches_other_settings_says_so(result, tmp_path):
    from aisviz.app.viewer import Viewer, ViewerControlsPanel

    _write(result, tmp_path, GUIDE_ORDER[:3])
    viewer = Viewer(tmp_path, default="dataset=peterson_animals", run_async=False)
    menus = viewer.panel(ViewerControlsPanel).menus
    menus["layer"].index = menus["layer"].values.index("_blocks.15")
    shown = viewer.state.settings
    assert (shown.dataset, shown.layer) == ("synthetic", "_blocks.15")
    assert "these switched too: data set peterson_animals → synthetic" in viewer.state.error


def test_the_viewer_renders_pictures_ahead_but_sends_them_on_hover(result, tmp_path, monkeypatch):
    """Issue 18: the researcher dashboard sends every image's pictures once the views rest; a shared viewer
    only renders them in its kernel (a class's pages share one network): no bytes go out before a hover."""
    import ipywidgets as W

    from aisviz.app.panels import DetailPanel
    from aisviz.app.viewer import Viewer

    _write(result, tmp_path, GUIDE_ORDER[:1])
    viewer = Viewer(tmp_path, run_async=False)
    detail = viewer.panel(DetailPanel)
    for w in (detail.p_image, detail.p_ais, detail.p_sal):
        w._handle_custom_msg({"want": w.key}, [])      # the page has built the pictures' views
    sent, send = [], W.Widget._send
    monkeypatch.setattr(W.Widget, "_send", lambda self, msg, buffers=None: (
        sent.append(sum(len(b) for b in buffers or [])), send(self, msg, buffers))[1])
    view = viewer.state.view
    detail.prerender(view, None, viewer.state.display)
    assert sum(sent) == 0
    assert all((i, None, viewer.state.display) in view.memo for i in range(view.result.n_images))
