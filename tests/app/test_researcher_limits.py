"""Researcher mode checks its limits in the kernel (issue 17, F5): a client that raises a widget's max and sends
seeds = 1,000,000 starts nothing; served to others, the path box is off unless folders are allowed, and its
refusals read the same whether an outside folder exists or not."""
from __future__ import annotations

import pytest
from conftest import make_tiny_set

from aisviz.app.limits import MAXIMA, MINIMA, OUTSIDE, PATHS_OFF


def _dashboard(monkeypatch, tmp_path, allow=None):
    from aisviz.app import Dashboard

    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    if allow is None:
        monkeypatch.delenv("AISVIZ_ALLOW_PATHS", raising=False)
    else:
        monkeypatch.setenv("AISVIZ_ALLOW_PATHS", allow)
    return Dashboard(dataset=make_tiny_set(n=12, size=48, seed=1), run_async=False, autostart=False)


def _controls(dash):
    from aisviz.app.panels import ControlsPanel

    return dash.panel(ControlsPanel)


@pytest.mark.parametrize("field,widget", [("n_seeds", "w_seeds"), ("n_folds", "w_folds"), ("k_step", "w_kstep"),
                                          ("n_random", "w_random")])
def test_a_raised_widget_max_starts_no_job(monkeypatch, tmp_path, field, widget):
    dash = _dashboard(monkeypatch, tmp_path)
    control = getattr(_controls(dash), widget)
    control.max = 10**7                       # what a crafted comm message can do before sending the value
    control.value = 10**6
    _controls(dash).w_apply.click()
    assert dash.current is None and not dash.busy                        # nothing was computed
    assert f"from {MINIMA[field]} to {MAXIMA[field]} on this server" in dash.state.error


def test_the_path_box_refuses_outside_folders_alike(monkeypatch, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    dash = _dashboard(monkeypatch, tmp_path, allow=str(allowed))
    controls = _controls(dash)
    said = []
    for outside in ("/etc", "/no/such/folder", str(allowed / ".." / ".."), "relative/path"):
        controls.w_path.value = outside
        controls.w_add.click()
        said.append(dash.state.error)
    assert len(set(said)) == 1 and OUTSIDE in said[0]                  # exists or not: the same words
    controls.w_path.value = str(allowed / "missing")                    # inside: the usual help
    controls.w_add.click()
    assert "does not exist" in dash.state.error
    assert "AISVIZ_DATA" not in controls.hint.value                     # no server path in the page


def test_served_to_others_without_allowed_folders_the_path_box_is_off(monkeypatch, tmp_path):
    dash = _dashboard(monkeypatch, tmp_path, allow="")
    controls = _controls(dash)
    assert controls.w_path.layout.display == "none" and controls.w_add.layout.display == "none"
    controls.w_path.value = "/etc"
    controls.w_add.click()
    assert PATHS_OFF in dash.state.error


def test_on_a_private_server_any_folder_opens_as_before(monkeypatch, tmp_path):
    dash = _dashboard(monkeypatch, tmp_path)
    controls = _controls(dash)
    controls.w_path.value = str(tmp_path / "missing")
    controls.w_add.click()
    assert "does not exist" in dash.state.error and controls.w_path.layout.display != "none"


def test_served_to_others_an_unexpected_error_names_no_server_path(monkeypatch, tmp_path):
    dash = _dashboard(monkeypatch, tmp_path, allow="")
    secret = tmp_path / "server-only" / "file.npy"
    dash.guard(lambda: open(secret), "read the file")()
    assert dash.state.error == "Could not read the file. The details are in the server's log."
    assert str(tmp_path) not in " ".join(dash.messages)
