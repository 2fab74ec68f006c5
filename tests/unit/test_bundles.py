"""Result bundles: what a viewer reads equals a fresh computation; damaged, foreign or newer bundles give a
one-line error naming the file and the fix; arrays are read-only memory maps; reading imports no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_tiny_set


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A result computed now on a small set with the real offline network, and a bundle written from it."""
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=14, size=48, seed=5)
        result = compute_result(dataset=ds, provider="center_bias", n_folds=3, n_seeds=2, k_step=128, progress=False)
    root = tmp_path_factory.mktemp("bundle")
    entry = write_bundle(result, root)
    return result, root, entry


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_round_trip_equals_the_fresh_computation(fresh):
    from aisviz.pipeline.bundles import open_catalog

    result, root, entry = fresh
    catalog = open_catalog(root, verify=True)
    assert [e.id for e in catalog.entries] == [entry.id]
    loaded = catalog.load(entry.id)
    for name in ("human", "ais", "r2_without", "image_ais", "r_orig", "activations", "k_values", "mds"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(result, name), err_msg=name)
        assert getattr(loaded, name).dtype == getattr(result, name).dtype, name
    for name in result.curves:
        np.testing.assert_array_equal(loaded.curves[name], result.curves[name])
    for a, b in zip(loaded.images, result.images, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.saliency, result.saliency, strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.settings == result.settings
    assert loaded.image_names == result.image_names and loaded.map_names == result.map_names
    assert loaded.r2_all == result.r2_all and loaded.k_step == result.k_step
    assert json.dumps(loaded.summary, sort_keys=True) == json.dumps(
        json.loads(json.dumps(result.summary, default=float)), sort_keys=True)
    assert [s["k_star"] for s in loaded.splits] == [s["k_star"] for s in result.splits]
    assert loaded.image_sizes == tuple(tuple(s) for s in result.image_sizes)
    assert loaded.source == "bundle"
    # derived views agree too (what the panels show)
    from aisviz.pipeline.derive import heatmap, readout

    np.testing.assert_allclose(heatmap(loaded, 3, 100), heatmap(result, 3, 100))
    assert readout(loaded, 256) == readout(result, 256)


def test_arrays_are_read_only_memory_maps(fresh):
    from aisviz.pipeline.bundles import open_catalog

    _, root, entry = fresh
    loaded = open_catalog(root).load(entry.id)
    for arr in (loaded.activations, loaded.image_ais, loaded.images[0]):
        base = arr
        while not isinstance(base, np.memmap) and getattr(base, "base", None) is not None:
            base = base.base
        assert isinstance(base, np.memmap)
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[(0,) * arr.ndim] = 1


def test_several_settings_and_replacing_one(fresh, tmp_path):
    from dataclasses import replace

    from aisviz.pipeline.bundles import open_catalog, write_bundle

    result, root, entry = fresh
    root = _copy(root, tmp_path / "b")
    other = replace(result, settings=replace(result.settings, provider="other"), saliency=None,
                    saliency_provider="", saliency_error="no maps")
    second = write_bundle(other, root, pngs=False)
    again = write_bundle(result, root, pngs=False)          # same settings: replaces, no duplicate
    catalog = open_catalog(root, verify=True)
    assert again.id == entry.id and second.id != entry.id
    assert sorted(e.id for e in catalog.entries) == sorted([entry.id, second.id])
    assert catalog.load(second.id).saliency is None
    assert not list(root.glob(".*"))                         # no temporary or old folders left


def test_pngs_for_people_and_static_figures(fresh):
    from PIL import Image

    result, root, entry = fresh
    folder = root / entry.id
    assert len(list((folder / "heatmaps").glob("*.png"))) == result.n_images
    im = Image.open(folder / "images" / "0000.png")
    assert im.size == (result.images[0].shape[1], result.images[0].shape[0])
    assert Image.open(folder / "thumbnails.png").size[0] > 64


def test_damaged_array_is_named(fresh, tmp_path):
    from aisviz.pipeline.bundles import BundleError, open_catalog

    _, root, entry = fresh
    root = _copy(root, tmp_path / "b")
    path = root / entry.id / "arrays" / "image_ais.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF                                         # same size, one byte changed
    path.write_bytes(bytes(data))
    open_catalog(root)                                       # sizes still agree: the cheap check passes
    with pytest.raises(BundleError, match=rf"{entry.id}/arrays/image_ais.npy is damaged \(its checksum"):
        open_catalog(root, verify=True)
    path.write_bytes(bytes(data[:-100]))                     # truncated: caught by every opening
    with pytest.raises(BundleError, match=r"arrays/image_ais.npy is damaged \(\d+ bytes, expected"):
        open_catalog(root)


def test_damaged_or_foreign_manifests(fresh, tmp_path):
    from aisviz.pipeline.bundles import BundleError, open_catalog

    _, root, entry = fresh
    root = _copy(root, tmp_path / "b")
    manifest = root / entry.id / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"r2_all"', '"r2_al"'))
    with pytest.raises(BundleError, match="manifest.json is damaged \\(its checksum differs from the index\\)"):
        open_catalog(root)
    (root / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="bundle.json is damaged"):
        open_catalog(root)
    (root / "bundle.json").write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(BundleError, match="is not an aisviz result bundle"):
        open_catalog(root)
    (root / "bundle.json").write_text(json.dumps({"format": "aisviz-bundle", "version": 99, "settings": []}))
    with pytest.raises(BundleError, match="version 99, written by a newer aisviz.*upgrade"):
        open_catalog(root)
    with pytest.raises(BundleError, match="is not a result bundle \\(bundle.json is missing\\)"):
        open_catalog(tmp_path)
    with pytest.raises(BundleError, match="is not a folder"):
        open_catalog(tmp_path / "nowhere")


def test_errors_are_one_line(fresh, tmp_path):
    from aisviz.pipeline.bundles import BundleError, open_catalog

    _, root, entry = fresh
    root = _copy(root, tmp_path / "b")
    (root / entry.id / "arrays" / "ais.npy").unlink()
    with pytest.raises(BundleError) as info:
        open_catalog(root)
    assert "\n" not in str(info.value) and "precompute" in str(info.value)


def test_reading_a_bundle_imports_no_torch(fresh):
    _, root, entry = fresh
    code = ("import sys; from aisviz.pipeline.bundles import open_catalog; "
            f"r = open_catalog({str(root)!r}, verify=True).load({entry.id!r}); "
            "from aisviz.pipeline.derive import heatmap, readout; heatmap(r, 0, 10); readout(r, 10); "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_folder_data_set_paths_do_not_reach_the_bundle(tmp_path):
    from aisviz.pipeline.bundles import public_settings, setting_label

    s = public_settings({"dataset": "/srv/private/sets/animals", "model": "m", "provider": ""}, "animals")
    assert s["dataset"] == "animals"
    assert "/srv" not in setting_label(s, "animals")


def test_interrupted_write_leaves_the_old_bundle(fresh, tmp_path, monkeypatch):
    from dataclasses import replace

    import aisviz.pipeline.bundles as bundles

    result, root, entry = fresh
    root = _copy(root, tmp_path / "b")
    before = (root / "bundle.json").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundles, "_write_pngs", boom)
    with pytest.raises(KeyboardInterrupt):
        bundles.write_bundle(replace(result, settings=replace(result.settings, provider="x")), root)
    assert (root / "bundle.json").read_bytes() == before
    assert not list(root.glob(".*.tmp"))
    bundles.open_catalog(root, verify=True)

