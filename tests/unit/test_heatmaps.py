"""Heatmap display modes: "paper" equals an independent re-implementation of the authors' display on real
images; the default mode clips at 0 with viridis; colormaps are matplotlib's; labelled figures."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aisviz.core.heatmaps import colourbar_png, display_values, overlay


def _authors_display(image: Image.Image, heatmap: np.ndarray) -> np.ndarray:
    """The authors' display written out independently: float32 bilinear resize, /max without clipping,
    square, matplotlib jet (its 256-entry table, looked up by hand), 0.6 image + 0.4 heatmap, uint8."""
    import matplotlib

    w, h = image.size
    big = np.asarray(Image.fromarray(heatmap.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
    v = (big.astype(np.float64) / big.max()) ** 2
    table = matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3]
    idx = np.clip((v * 256).astype(int), 0, 255)   # matplotlib's lookup: floor(v * N), top clamped
    colour = table[idx] * 255
    return (0.6 * np.asarray(image, dtype=np.float64) + 0.4 * colour).astype(np.uint8)


def _signed_heatmap(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(0.2, 1.0, (7, 7))


def test_paper_mode_equals_the_authors_display_on_generated_images():
    rng = np.random.default_rng(1)
    for seed, size in ((0, (64, 48)), (1, (31, 77)), (2, (224, 224))):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        heat = _signed_heatmap(seed)
        np.testing.assert_array_equal(np.asarray(overlay(image, heat, "paper")), _authors_display(image, heat))


@pytest.mark.realdata
def test_paper_mode_equals_the_authors_display_on_peterson_images(real_data_root):
    from aisviz.io.catalog import load_dataset

    ds = load_dataset("peterson_animals")
    for i in (0, 37, 119):
        image = ds.load_image(i)
        heat = _signed_heatmap(i)
        np.testing.assert_array_equal(np.asarray(overlay(image, heat, "paper")), _authors_display(image, heat))


def test_paper_mode_squares_negative_values_and_default_clips_them():
    heat = np.array([[-2.0, 0.0], [0.5, 1.0]])
    paper = display_values(heat, (2, 2), "paper")
    default = display_values(heat, (2, 2), "default")
    assert paper[0, 0] == pytest.approx(4.0) and default[0, 0] == 0.0
    assert default[1, 0] == pytest.approx(0.5) and paper[1, 0] == pytest.approx(0.25)


def test_default_mode_uses_matplotlib_viridis_half_and_half():
    import matplotlib

    image = Image.new("RGB", (2, 1), (200, 10, 90))
    heat = np.array([[0.0, 1.0]])
    out = np.asarray(overlay(image, heat, "default")).astype(float)
    viridis = matplotlib.colormaps["viridis"]([0.0, 1.0])[:, :3] * 255
    expected = (0.5 * np.array([200, 10, 90]) + 0.5 * viridis).astype(np.uint8)
    np.testing.assert_array_equal(out, expected[None])


def test_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="display mode must be one of"):
        overlay(Image.new("RGB", (4, 4)), np.ones((2, 2)), "jet")


def test_colour_bar_runs_from_the_top_colour_down():
    import io

    import matplotlib

    bar = np.asarray(Image.open(io.BytesIO(colourbar_png("default", height=50))))
    top = (np.asarray(matplotlib.colormaps["viridis"](1.0)[:3]) * 255).round()
    np.testing.assert_array_equal(bar[0, 0], top)
    assert bar.shape[:2] == (50, 14)


def test_labelled_figures_render_png_and_svg():
    from aisviz.viz.figures import figure_bytes, heatmap_figure, panel_figure

    image = Image.new("RGB", (40, 30), (120, 120, 120))
    fig = panel_figure(image, _signed_heatmap(0), np.ones((30, 40)), "paper", title="one image")
    svg = figure_bytes(fig, "svg").decode()
    assert "one image" in svg and "AIS heatmap" in svg and "(value / max)²" in svg
    assert figure_bytes(heatmap_figure(image, _signed_heatmap(1)), "png")[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="figure format"):
        figure_bytes(fig, "jpg")



@pytest.mark.slow
def test_cli_heatmaps_and_saliency_take_the_display_mode(tmp_path, tiny_set):
    from aisviz.cli.main import main

    root = tmp_path / "myset"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny_set.image_names, tiny_set.images, strict=True):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny_set.similarity)
    pngs = {}
    for mode in ("default", "paper"):
        out = tmp_path / mode
        assert main(["heatmaps", "--dataset", str(root), "--out", str(out / "h"), "--display", mode, "--quiet"]) == 0
        assert main(["saliency", "--dataset", str(root), "--saliency", "center_bias", "--out", str(out / "s"),
                     "--display", mode, "--quiet"]) == 0
        pngs[mode] = (np.asarray(Image.open(out / "h" / "img00_ais.png")), len(list((out / "s").rglob("*.png"))))
    assert pngs["default"][1] == pngs["paper"][1] == 12
    assert pngs["default"][0].shape == pngs["paper"][0].shape
    assert not np.array_equal(pngs["default"][0], pngs["paper"][0])
