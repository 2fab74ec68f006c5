"""The dashboard's torch-free result: built from a fitted scorer and validation, its fields match them,
its tables hold the same values, and importing it (and the panels) never loads torch."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import make_tiny_set

from aisviz.pipeline.derive import result_dataframe


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=15, size=48, seed=3)
        scorer = AlignmentImportance(progress=False).fit(ds)
        validation = TopKValidation(n_folds=3, seeds=(111, 222), k_step=64, progress=False).fit(scorer)
    rng = np.random.default_rng(0)
    saliency = [rng.random((48, 48)).astype(np.float32) for _ in range(ds.n_images)]
    return ds, scorer, validation, saliency


def test_fields_match_the_fitted_objects(fitted):
    from aisviz.pipeline.result import build_result

    ds, scorer, validation, saliency = fitted
    r = build_result(scorer, validation, ds, saliency, saliency_provider="random", display_size=32)
    assert r.image_names == ds.image_names and r.n_maps == len(scorer.ais_) == 1280
    np.testing.assert_array_equal(r.ais, scorer.ais_)
    np.testing.assert_array_equal(r.image_ais, scorer.image_ais_)
    np.testing.assert_array_equal(r.activations, np.asarray(scorer.activations_, dtype=np.float32))
    np.testing.assert_array_equal(r.curves["test_topk"], validation.curves_["test_topk"])
    assert r.summary == validation.summary_ and r.k_step == 64 and int(r.k_values[-1]) == 1280
    assert all(max(im.shape[:2]) == 32 and im.dtype == np.uint8 for im in r.images)
    assert all(s.shape == im.shape[:2] for s, im in zip(r.saliency, r.images, strict=True))
    assert r.image_sizes[0] == (48, 48) and r.mds.shape == (15, 2)
    assert r.settings.layer == scorer.layer_ and r.settings.to_dict()["n_seeds"] == 2


def test_summary_text_gives_the_corrected_t_test_beside_the_papers(fitted):
    from aisviz.pipeline.result import build_result
    from aisviz.viz.text import summary_html

    ds, scorer, validation, saliency = fitted
    text = summary_html(build_result(scorer, validation, ds, saliency, saliency_provider="random", display_size=32))
    s = validation.summary_
    assert f"top-k* > all maps p = {s['p_value']:.3g}" in text
    assert "Corrected resampled t-test (Nadeau &amp; Bengio 2003; Bouckaert &amp; Frank 2004" in text
    assert f"top-k* > all maps p = {s['p_value_corrected']:.3g}" in text
    assert f"top-k* > random p = {s['p_value_vs_random_corrected']:.3g}" in text


def test_dataframes_hold_the_same_values_as_the_fitted_objects(fitted):
    from aisviz.pipeline.result import build_result

    ds, scorer, validation, _ = fitted
    r = build_result(scorer, validation, ds, None, saliency_error="no provider")
    for kind in ("splits", "curves", "summary"):
        ours, theirs = result_dataframe(r, kind), validation.to_dataframe(kind)
        assert list(ours.columns) == list(theirs.columns)
        np.testing.assert_array_equal(ours.select_dtypes("number").to_numpy(),
                                      theirs.select_dtypes("number").to_numpy())
    np.testing.assert_array_equal(result_dataframe(r, "maps").to_numpy(),
                                  scorer.to_dataframe("maps").to_numpy())
    images = result_dataframe(r, "images")
    np.testing.assert_array_equal(images["r_orig"], scorer.r_orig_)
    with pytest.raises(ValueError, match="kind must be"):
        result_dataframe(r, "pixels")


def test_mismatched_arrays_are_refused_in_one_line(fitted):
    import dataclasses

    from aisviz.pipeline.result import build_result

    ds, scorer, validation, _ = fitted
    r = build_result(scorer, validation, ds, None)
    with pytest.raises(ValueError, match="image_ais has shape"):
        dataclasses.replace(r, image_ais=r.image_ais[:3])
    with pytest.raises(ValueError, match="one saliency map per image"):
        build_result(scorer, validation, ds, [np.zeros((4, 4))])


def test_result_and_panels_import_without_torch():
    code = ("import sys; import aisviz.app, aisviz.pipeline.derive, aisviz.app.panels, "
            "aisviz.app.dashboard; assert 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if 'torch' in m)[:5]")
    subprocess.run([sys.executable, "-c", code], check=True)
