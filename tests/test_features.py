"""Feature extraction and its content-keyed cache: hits, misses, and broken cache files."""
import os

import numpy as np
import pytest

from aisviz.features import cache_dir, cache_key, extract_activations
from aisviz.models import load_network


@pytest.fixture(scope="module")
def lite():
    return load_network("efficientnet_lite0")


def test_cache_hit_returns_identical_activations(tiny_set, lite):
    first = extract_activations(tiny_set, lite, "_head_act", progress=False)
    files = list(cache_dir().glob("*.npz"))
    assert len(files) == 1 and first[0].shape == (1280, 7, 7) and first[0].dtype == np.float32
    mtime = files[0].stat().st_mtime_ns
    again = extract_activations(tiny_set, lite, "_head_act", progress=False)
    assert files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_key_covers_content_and_settings(tiny_set, lite):
    from conftest import make_tiny_set

    other = make_tiny_set(seed=1)
    assert cache_key(tiny_set, lite, "_head_act") != cache_key(other, lite, "_head_act")
    assert cache_key(tiny_set, lite, "_head_act") != cache_key(tiny_set, lite, "_bn1")


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_broken_cache_file_is_recomputed(tiny_set, lite, damage):
    good = extract_activations(tiny_set, lite, "_head_act", progress=False)
    path = next(cache_dir().glob("*.npz"))
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        np.savez(path, something=np.arange(3))
    with pytest.warns(UserWarning, match="recomputing"):
        again = extract_activations(tiny_set, lite, "_head_act", progress=False)
    np.testing.assert_allclose(again[3], good[3], rtol=1e-5, atol=1e-6)
    assert not [f for f in os.listdir(cache_dir()) if f.endswith(".tmp")]


def test_tiny_images_are_refused_with_a_fix(lite):
    from conftest import make_tiny_set

    small = make_tiny_set(n=4, size=20)
    with pytest.raises(ValueError, match="too small.*at least 32 px"):
        extract_activations(small, lite, "_head_act", progress=False)
