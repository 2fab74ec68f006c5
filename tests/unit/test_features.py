"""Feature extraction and its content-keyed cache: hits, misses, and broken cache files."""
import os

import numpy as np
import pytest

from aisviz.errors import AisvizWarning
from aisviz.models.features import cache_dir, cache_key, extract_activations
from aisviz.models.networks import load_network


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


def test_extraction_reports_images_done_per_batch_up_to_all_of_them(tiny_set, lite):
    counts = []
    extract_activations(tiny_set, lite, "_head_act", progress=False, batch_size=5,
                        callback=lambda done, total: counts.append((done, total)))
    n = tiny_set.n_images
    assert counts == [(0, n), (5, n), (10, n), (n, n)]  # 12 images of one size: batches of 5, 5 and 2
    cached = []
    extract_activations(tiny_set, lite, "_head_act", progress=False, callback=lambda *c: cached.append(c))
    assert cached == [(n, n)]  # read from the cache: done at once


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


def _rewrite_cache(path, change):
    """Rewrite a cache file with `change` applied to its arrays, keeping its key, names and a matching checksum
    (what a foreign or hand-edited file that still 'looks right' would hold)."""
    import json

    from aisviz.models.features import _digest

    with np.load(path) as z:
        meta, names = json.loads(str(z["meta"])), z["names"]
        acts = change([z[f"a{i}"] for i in range(len(names))])
    meta.update(channels=int(acts[0].shape[0]), sha256=_digest(acts))
    np.savez(path, meta=np.asarray(json.dumps(meta)), names=names, **{f"a{i}": a for i, a in enumerate(acts)})


@pytest.mark.parametrize("change,why", [
    (lambda acts: [a[:10] for a in acts], "differ from a fresh computation"),         # only 10 channels
    (lambda acts: [a * 0 + 1 for a in acts], "differ from a fresh computation"),      # other values
    (lambda acts: acts[:1] + [a[:10] for a in acts[1:]], "equal channels"),           # inconsistent shapes
])
def test_cache_file_that_holds_other_arrays_is_recomputed(tiny_set, lite, change, why):
    good = extract_activations(tiny_set, lite, "_head_act", progress=False)
    path = next(cache_dir().glob("*.npz"))
    _rewrite_cache(path, change)
    with pytest.warns(AisvizWarning, match=why):
        again = extract_activations(tiny_set, lite, "_head_act", progress=False)
    assert again[5].shape == (1280, 7, 7)
    np.testing.assert_allclose(again[5], good[5], rtol=1e-5, atol=1e-6)


def test_cache_file_with_values_changed_after_writing_is_recomputed(tiny_set, lite):
    import json

    extract_activations(tiny_set, lite, "_head_act", progress=False)
    path = next(cache_dir().glob("*.npz"))
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["a3"] = data["a3"] + 1  # the checksum in meta no longer matches
    assert json.loads(str(data["meta"]))["channels"] == 1280
    np.savez(path, **data)
    with pytest.warns(AisvizWarning, match="differ from the ones it was written with"):
        extract_activations(tiny_set, lite, "_head_act", progress=False)


def test_long_side_is_capped_and_normal_images_keep_the_paper_resize(lite):
    from aisviz.models.networks import input_size

    assert input_size(640, 480, lite) == (299, 224)     # the paper's resize: short side 224, aspect kept
    assert input_size(120, 120, lite) == (224, 224)
    assert input_size(896, 224, lite) == (896, 224)     # 4:1, still exact
    assert input_size(300, 2000, lite) == (134, 896)    # long side capped at 4 x 224, aspect kept
    assert input_size(40, 40000, lite)[1] == 896


def test_extreme_aspect_ratio_is_refused_before_any_memory_is_spent(lite):
    from PIL import Image

    from aisviz.core.comparison import ComparisonSet
    from aisviz.errors import DataError

    rng = np.random.default_rng(0)
    s = rng.random((4, 4))
    s = (s + s.T) / 2
    images = [Image.new("RGB", (64, 64), (k * 40, 0, 0)) for k in range(3)] + [Image.new("RGB", (40, 40000))]
    ds = ComparisonSet(name="strip", image_names=tuple("abcd"), similarity=s, images=tuple(images))
    with pytest.raises(DataError, match=r"'d' is 40x40000 px.*1000:1.*capped at 896 px.*Crop it to at most 28:1"):
        extract_activations(ds, lite, "_head_act", progress=False, use_cache=False)


def test_extraction_holds_one_batch_of_inputs_not_the_whole_set(tmp_path, lite):
    """Preprocessed inputs (float32, 3 x 224 x 224 per image here) are made one batch at a time."""
    import tracemalloc

    from PIL import Image

    from aisviz.io.folders import load_folder

    n, root = 24, tmp_path / "many"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / "images" / f"{i:03d}.png")
    s = rng.random((n, n))
    np.save(root / "similarity.npy", (s + s.T) / 2)
    ds = load_folder(root)
    one_input = 3 * 224 * 224 * 4
    tracemalloc.start()
    try:
        acts = extract_activations(ds, lite, "_head_act", progress=False, use_cache=False, batch_size=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(acts) == n and acts[-1].shape == (1280, 7, 7)
    assert peak < 10 * one_input, f"peak {peak / 1e6:.1f} MB: inputs of the whole set ({n * one_input / 1e6:.0f} MB)?"
