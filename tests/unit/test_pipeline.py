"""One pipeline: the command line, the dashboard's session, precompute and sweep give the same results for the
same settings, and each step is shared (a saliency failure is handled the same way everywhere)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from conftest import SessionListener, make_tiny_set

from aisviz.app.session import Session
from aisviz.cli import main
from aisviz.errors import DataError
from aisviz.pipeline import compute
from aisviz.pipeline.bundles import open_catalog
from aisviz.pipeline.compute import Memo, compute_result, precompute, saliency_for
from aisviz.pipeline.settings import Settings
from aisviz.pipeline.sweeps import sweep


def _write_folder(ds, folder):
    (folder / "images").mkdir(parents=True)
    for name, image in zip(ds.image_names, ds.images):
        image.save(folder / "images" / name)
    np.save(folder / "similarity.npy", ds.similarity)
    (folder / "image_list.txt").write_text("\n".join(ds.image_names))
    return folder


@pytest.mark.slow
def test_the_four_entry_points_give_equal_results(tmp_path, capsys):
    folder = _write_folder(make_tiny_set(n=12, size=48, seed=3), tmp_path / "tiny")
    settings = Settings(dataset=str(folder), n_folds=3, n_seeds=2, k_step=128, provider="center_bias")

    direct = compute_result(settings)

    listener = SessionListener()
    Session(listener, run_async=False).request(settings)
    assert not listener.errors
    (session,) = listener.results

    entry, _ = precompute(tmp_path / "bundles", settings, progress=False)
    bundled = open_catalog(tmp_path / "bundles", verify=True).load(entry.id)

    table = sweep([str(folder)], ["efficientnet_lite0"], [direct.settings.layer], folds=3, seeds=2, k_step=128,
                  out=tmp_path / "sweep", progress=False)
    (cell,) = list((tmp_path / "sweep" / "cells").iterdir())
    swept = open_catalog(cell / "bundle").load(open_catalog(cell / "bundle").entries[0].id)

    assert main(["validate", "--dataset", str(folder), "--folds", "3", "--seeds", "2", "--k-step", "128",
                 "--json", "--quiet"]) == 0
    cli = json.loads(capsys.readouterr().out)

    for other in (session, bundled, swept):
        np.testing.assert_array_equal(other.ais, direct.ais)
        np.testing.assert_array_equal(other.image_ais, direct.image_ais)
        np.testing.assert_array_equal(other.k_values, direct.k_values)
        for key, curve in direct.curves.items():
            np.testing.assert_array_equal(other.curves[key], curve)
        assert [s["k_star"] for s in other.splits] == [s["k_star"] for s in direct.splits]
    for other in (session, bundled):
        np.testing.assert_array_equal(np.stack(other.saliency), np.stack(direct.saliency))
    assert cli["k_values"] == direct.k_values.tolist()
    assert [s["k_star"] for s in cli["splits"]] == [s["k_star"] for s in direct.splits]
    assert cli["summary"]["mean_r2_test_topk"] == pytest.approx(direct.summary["mean_r2_test_topk"], abs=0)
    assert table.loc[0, "mean_r2_test_topk"] == pytest.approx(direct.summary["mean_r2_test_topk"], abs=0)


def test_a_saliency_failure_is_recorded_the_same_way(tiny_set, monkeypatch):
    def broken(*args, **kwargs):
        raise DataError("no maps in that folder")

    monkeypatch.setattr(compute, "saliency_maps", broken)
    maps, why = saliency_for(tiny_set, "some_folder")
    assert maps is None and why == "Could not compute the some_folder saliency maps: no maps in that folder"
    assert saliency_for(tiny_set, "") == (None, "")


def test_a_bug_in_a_provider_is_named_not_quoted(tiny_set, monkeypatch):
    def buggy(*args, **kwargs):
        raise KeyError("/srv/private/path")

    monkeypatch.setattr(compute, "saliency_maps", buggy)
    maps, why = saliency_for(tiny_set, "x")
    assert maps is None and "unexpected KeyError" in why and "/srv/private" not in why


def test_the_memo_is_safe_under_threads():
    """Readers reorder the LRU under the lock: many threads reading and writing never see a KeyError."""
    memo = Memo({"scorer": 3})
    errors = []

    def hammer(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(20000):
                key = int(rng.integers(6))
                if memo.get("scorer", key) is None:
                    memo.put("scorer", key, key)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(memo.get("scorer", k) in (None, k) for k in range(6))



def test_a_data_set_named_by_a_string_is_a_setting(tmp_path):
    """compute_result / precompute take a catalog name or folder as dataset= (the command line's path)."""
    from aisviz.pipeline.compute import settings_for

    folder = _write_folder(make_tiny_set(n=8, size=32, seed=1), tmp_path / "set")
    entry, result = precompute(tmp_path / "bundles", dataset=str(folder), n_folds=2, n_seeds=1, k_step=512,
                               provider=None, progress=False)
    assert result.settings.dataset == str(folder) and result.saliency is None
    assert entry.settings["dataset"] == folder.name   # bundles name the set, never a server path
    assert settings_for(None, make_tiny_set(n=4, size=16), n_seeds=3).n_seeds == 3
