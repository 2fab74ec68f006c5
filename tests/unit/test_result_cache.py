"""Results persist across kernels: a second session (another tab, kernel or a restarted server) opens a result
computed before from the disk cache, checked like any bundle; a damaged entry is computed again."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SessionListener, make_tiny_set

from aisviz.app.session import Session
from aisviz.cli import main
from aisviz.errors import AisvizWarning
from aisviz.pipeline import compute as compute_module
from aisviz.pipeline.result_cache import cache_dir, result_key
from aisviz.pipeline.settings import Settings


def _open(settings, dataset):
    listener = SessionListener()
    Session(listener, run_async=False, given={settings.dataset: dataset}).request(settings)
    assert not listener.errors, listener.errors
    return listener.results[-1]


@pytest.mark.slow
def test_a_second_session_opens_the_result_from_disk(monkeypatch, capsys):
    dataset = make_tiny_set(n=12, size=48, seed=5)
    settings = Settings(dataset="tiny", n_folds=3, n_seeds=1, k_step=256, provider="center_bias")
    first = _open(settings, dataset)
    assert first.source == "computed"

    def no_computing(*args, **kwargs):
        raise AssertionError("the pipeline ran although the result was on disk")

    with monkeypatch.context() as m:
        m.setattr(compute_module, "run_pipeline", no_computing)
        second = _open(settings, dataset)
    assert second.source == "cache"
    np.testing.assert_array_equal(second.ais, first.ais)
    np.testing.assert_array_equal(second.curves["test_topk"], first.curves["test_topk"])
    np.testing.assert_array_equal(np.stack(second.saliency), np.stack(first.saliency))
    assert second.settings == first.settings

    other = make_tiny_set(n=12, size=48, seed=6)     # same name, other content: not the cached result
    assert _open(settings, other).source == "computed"

    (array,) = (cache_dir() / result_key(settings, dataset)).rglob("ais.npy")     # the first set's entry
    data = bytearray(array.read_bytes())
    data[-1] ^= 0xFF                                 # one flipped byte: the checksum no longer matches
    array.write_bytes(bytes(data))
    with pytest.warns(AisvizWarning, match="ignoring the cached result"):
        again = _open(settings, dataset)
    assert again.source == "computed"
    np.testing.assert_array_equal(again.ais, first.ais)

    assert main(["cache", "show", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["caches"]}
    assert rows["results"]["files"] > 0
    assert main(["cache", "clear", "--json"]) == 0
    capsys.readouterr()
    assert not [p for p in cache_dir().rglob("*")]
