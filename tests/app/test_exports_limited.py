"""Export clicks cannot keep a kernel busy (issue 17: 2000 export clicks kept a viewer's kernel busy for over 10
minutes): a repeated click on an unchanged view builds nothing new, and at most EXPORTS_PER_MINUTE exports are
built a minute; past that the visitor reads a plain refusal."""
from __future__ import annotations

import pytest
from conftest import make_tiny_set

from aisviz.app.dashboard import EXPORTS_PER_MINUTE, TOO_MANY_EXPORTS


@pytest.mark.slow
def test_export_clicks_are_coalesced_and_rate_limited(monkeypatch, tmp_path):
    from aisviz.app import Dashboard
    from aisviz.app.panels import CurvePanel
    from aisviz.app.panels import curve as curve_module

    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    dash = Dashboard(dataset=make_tiny_set(n=12, size=48, seed=1), run_async=False, n_folds=3, n_seeds=1,
                     k_step=256)
    curve = dash.panel(CurvePanel)
    built = []                                    # figures drawn for exports (counted, not timed: a busy
    draw = curve_module.curve_figure              # machine makes wall-time bounds flaky)

    def counting(*args, **kwargs):
        built.append(kwargs.get("k"))
        return draw(*args, **kwargs)

    monkeypatch.setattr(curve_module, "curve_figure", counting)
    curve.w_export.click()
    assert "alignment_curve.png" in curve.downloads.value and len(built) == 1
    for _ in range(200):                          # the same view: the links shown stand
        curve.w_export.click()
    assert len(built) == 1
    for k in range(1, 2 * EXPORTS_PER_MINUTE + 1):  # a new k each time: a new figure, until the limit
        dash.set_k(k)
        curve.w_export.click()
    assert len(built) <= EXPORTS_PER_MINUTE
    assert dash.state.error == TOO_MANY_EXPORTS
