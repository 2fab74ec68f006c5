"""Saliency providers, folder maps, their errors, and the on-disk cache."""
import socket
import sys
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from aisviz.core.comparison import ComparisonSet
from aisviz.saliency.providers import (
    CenterBias,
    DeepGazeIIE,
    FolderMaps,
    SaliencyError,
    SaliencyProvider,
    cache_dir,
    get_provider,
    saliency_maps,
)


def blob_image(w=240, h=200, cx=170, cy=60, r=12):
    """Mid-grey with faint texture and one bright disk centred at (cx, cy)."""
    rng = np.random.default_rng(0)
    a = 120 + rng.normal(0, 3, (h, w))
    yy, xx = np.mgrid[:h, :w]
    a[(yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2] = 255
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB")


def tiny_set(n=4, size=(30, 20)):
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]
    sim = rng.uniform(0, 1, (n, n))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1)
    return ComparisonSet(name="tiny", image_names=tuple(f"im{i}.png" for i in range(n)), similarity=sim,
                         images=tuple(images))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("name", ["spectral_residual", "fine_grained"])
def test_contrast_baselines_peak_at_a_bright_blob(name):
    m = get_provider(name)(blob_image())
    y, x = np.unravel_index(m.argmax(), m.shape)
    assert np.hypot(x - 170, y - 60) < 12 + 10


@pytest.mark.parametrize("name", ["spectral_residual", "fine_grained", "center_bias"])
def test_providers_return_non_negative_maps_at_image_size(name):
    p = get_provider(name)
    m = p(blob_image(w=97, h=61))
    assert m.shape == (61, 97) and m.dtype == np.float32 and (m >= 0).all() and m.max() > 0
    assert p.kind == "classic baseline" and "not a fixation model" in p.label


def test_center_bias_is_an_isotropic_gaussian_at_the_centre():
    m = CenterBias(0.25)(Image.new("RGB", (41, 21)))
    assert np.unravel_index(m.argmax(), m.shape) == (10, 20) and m.max() == pytest.approx(1)
    sigma = 0.25 * 21
    assert m[10, 20 + 5] == pytest.approx(np.exp(-25 / (2 * sigma ** 2)), rel=1e-5)
    assert m[10 + 5, 20] == pytest.approx(m[10, 20 + 5], rel=1e-5)  # isotropic in pixels
    with pytest.raises(SaliencyError, match="positive"):
        CenterBias(0)


def test_unknown_provider_suggests_close_names():
    with pytest.raises(SaliencyError, match="spectral_residual") as err:
        get_provider("spectral_resid")
    assert "Did you mean" in str(err.value) and "folder" in str(err.value)


def test_missing_opencv_contrib_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(SaliencyError, match="pip install opencv-contrib-python-headless"):
        get_provider("spectral_residual")(blob_image())


# ---------------------------------------------------------------------------------------------
# Maps from a folder


def test_folder_maps_match_image_stems(tmp_path, home):
    ds = tiny_set(3)
    np.save(tmp_path / "im0.npy", np.ones((20, 30)))
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(tmp_path / "im1.png")
    Image.fromarray(np.full((20, 30, 3), 9, np.uint8)).save(tmp_path / "im2.jpg")  # grey stored as RGB
    maps = saliency_maps(ds, str(tmp_path))
    assert [m[0, 0] for m in maps] == [1, 7, 9]
    assert not cache_dir().exists()  # maps read from files are not cached again


def test_folder_maps_list_missing_images(tmp_path):
    np.save(tmp_path / "im0.npy", np.ones((20, 30)))
    with pytest.raises(SaliencyError, match=r"3 of 4 images have no saliency map.*im1\.png.*im3\.png"):
        saliency_maps(tiny_set(4), tmp_path)


def test_folder_map_of_wrong_size_needs_resize(tmp_path):
    ds = tiny_set(3)
    for i in range(3):
        np.save(tmp_path / f"im{i}.npy", np.arange(60.0).reshape(6, 10))
    with pytest.raises(SaliencyError, match=r"10x6 .* image is 30x20.*resize=True"):
        saliency_maps(ds, tmp_path)
    maps = saliency_maps(ds, FolderMaps(tmp_path, resize=True))
    assert maps[0].shape == (20, 30) and (maps[0] >= 0).all()


@pytest.mark.parametrize("bad, message", [
    (-np.ones((20, 30)), "negative values"),
    (np.full((20, 30), np.nan), "NaN"),
    (np.ones((3, 20, 30)), "must be 2-D"),
])
def test_folder_maps_reject_bad_values(tmp_path, bad, message):
    for i in range(3):
        np.save(tmp_path / f"im{i}.npy", bad)
    with pytest.raises(SaliencyError, match=message):
        saliency_maps(tiny_set(3), tmp_path)


def test_folder_maps_reject_colour_images_and_duplicates(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "im0.png")
    with pytest.raises(SaliencyError, match="colour image"):
        FolderMaps(tmp_path).compute(Image.new("RGB", (30, 20)), "im0.png")
    np.save(tmp_path / "im0.npy", np.ones((20, 30)))
    with pytest.raises(SaliencyError, match="two saliency maps for 'im0'"):
        FolderMaps(tmp_path)
    with pytest.raises(SaliencyError, match="does not exist"):
        FolderMaps(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# Cache


class Counting(SaliencyProvider):
    name = "counting"

    def __init__(self, value=1.0):
        self.calls, self.value = 0, value

    def compute(self, image, name=None):
        self.calls += 1
        return np.full(image.size[::-1], self.value)


def test_cache_reuses_maps_and_recomputes_a_corrupt_file(home):
    ds, p = tiny_set(3), Counting()
    first = saliency_maps(ds, p)
    assert p.calls == 3
    files = list(cache_dir().iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    again = saliency_maps(ds, p)
    assert p.calls == 3 and all(np.array_equal(a, b) for a, b in zip(first, again))
    files[0].write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable saliency cache"):
        saliency_maps(ds, p)
    assert p.calls == 6
    saliency_maps(ds, p, use_cache=False)
    assert p.calls == 9


def test_cache_key_changes_with_provider_settings(home):
    ds = tiny_set(3)
    a = saliency_maps(ds, CenterBias(0.2))
    b = saliency_maps(ds, CenterBias(0.4))
    assert not np.allclose(a[0], b[0]) and len(list(cache_dir().glob("*.npz"))) == 2


def test_a_providers_bad_output_is_caught(home):
    with pytest.raises(SaliencyError, match="from counting for 'im0.png' has negative"):
        saliency_maps(tiny_set(3), Counting(-1.0))


# ---------------------------------------------------------------------------------------------
# DeepGaze IIE (no download ever happens here)


def test_deepgaze_fails_fast_and_names_offline_alternatives(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached repository or weights
    p = get_provider("deepgaze_iie")
    start = time.monotonic()
    with pytest.raises(SaliencyError) as err:
        p(blob_image())
    assert time.monotonic() - start < 30
    assert "spectral_residual" in str(err.value) and "folder of maps" in str(err.value)


def test_deepgaze_centre_bias_is_a_normalised_log_density(tmp_path, monkeypatch):
    monkeypatch.delenv("AISVIZ_DEEPGAZE_CENTERBIAS", raising=False)
    uniform = DeepGazeIIE()
    assert "uniform" in uniform.note and "centerbias_mit1003.npy" in uniform.note
    cb = uniform.centerbias(20, 30)
    assert cb.shape == (20, 30) and np.exp(cb).sum() == pytest.approx(1) and np.ptp(cb) == 0
    template = np.log(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.save(tmp_path / "cb.npy", template)
    monkeypatch.setenv("AISVIZ_DEEPGAZE_CENTERBIAS", str(tmp_path / "cb.npy"))
    p = DeepGazeIIE()
    cb = p.centerbias(4, 6)
    assert np.exp(cb).sum() == pytest.approx(1)
    assert np.allclose(np.exp(cb[:2, :3]) * 10 * 6, 1) and np.allclose(np.exp(cb[2:, 3:]) * 10 * 6, 4)  # nearest
    assert p.cache_id != uniform.cache_id
    np.save(tmp_path / "bad.npy", np.ones(3))
    with pytest.raises(SaliencyError, match="2-D log density"):
        DeepGazeIIE(centerbias=tmp_path / "bad.npy")


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.realdata
def test_spectral_residual_on_peterson_animals(real_data_root, home):
    from aisviz.io.catalog import load_dataset

    ds = load_dataset("peterson_animals").subset([0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps = saliency_maps(ds, "spectral_residual")
    for i, m in enumerate(maps):
        w, h = ds.load_image(i).size
        assert m.shape == (h, w) and (m >= 0).all() and m.max() > 0
