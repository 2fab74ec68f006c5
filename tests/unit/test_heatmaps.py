"""Heatmap display modes: "paper" equals an independent re-implementation of the authors' overlay_mask, pixel
for pixel, on real images and real EfficientNet-Lite0 heatmaps; the default mode clips at 0 with viridis;
colormaps are matplotlib's; labelled figures."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from aisviz.core.heatmaps import colourbar_png, display_values, overlay


def _authors_display(image: Image.Image, heatmap: np.ndarray) -> np.ndarray:
    """The authors' overlay_mask (ais_heatmap, viz_heatmap.py, alpha 0.6, jet) written out independently:
    OpenCV's bilinear resize of the float64 map to the image size, / max without clipping, squared, jet
    colours (matplotlib's 256-entry table, looked up by hand) cast to uint8, then 0.6 image + 0.4 colours
    cast to uint8."""
    import cv2
    import matplotlib

    big = cv2.resize(np.asarray(heatmap, dtype=np.float64), image.size, interpolation=cv2.INTER_LINEAR)
    v = (big / big.max()) ** 2
    table = matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3]
    idx = np.minimum((v * 256).astype(int), 255)   # matplotlib's lookup: floor(v * N); 1 and above: the top
    colour = (255 * table[idx]).astype(np.uint8)
    return (0.6 * np.asarray(image.convert("RGB")) + (1 - 0.6) * colour).astype(np.uint8)


def _signed_heatmap(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(0.2, 1.0, (7, 7))


def test_opencv_linear_equals_cv2_resize():
    """The numpy resize behind paper mode against OpenCV's own, up, down, by halves and odd ratios."""
    cv2 = pytest.importorskip("cv2")
    from aisviz.core.resize import opencv_linear

    rng = np.random.default_rng(3)
    for shape in ((7, 7), (14, 14), (2, 2), (13, 9), (28, 28), (56, 40), (112, 112)):
        for size in ((224, 224), (31, 77), (77, 31), (5, 3), (14, 14), (7, 7), (28, 20), (3, 200), (640, 480)):
            v = rng.normal(size=shape)
            want = cv2.resize(v, size, interpolation=cv2.INTER_LINEAR).reshape(size[1], size[0])
            np.testing.assert_allclose(opencv_linear(v, size), want, rtol=0, atol=1e-13, err_msg=f"{shape} {size}")


@pytest.fixture(scope="module")
def efficientnet_heatmaps():
    """Real AIS heatmaps: EfficientNet-Lite0 (offline weights) on 16 generated images, each image also
    stretched to a wide and a tall aspect ratio so that the resize is exercised off the square."""
    from aisviz.io.synthetic import make_default_set
    from aisviz.pipeline.comparisons import ais_heatmaps
    from aisviz.pipeline.importance import AlignmentImportance

    ds = make_default_set(n_images=16)
    heats = ais_heatmaps(AlignmentImportance(progress=False, use_cache=False).fit(ds))
    return [(image.resize(size), heat) for image, heat in zip(ds.images, heats)
            for size in (image.size, (301, 97), (83, 257))]


@pytest.mark.slow
def test_paper_mode_equals_the_authors_overlay_mask_on_efficientnet_heatmaps(efficientnet_heatmaps):
    pytest.importorskip("cv2")
    assert any(heat.min() < 0 < heat.max() for _, heat in efficientnet_heatmaps)  # signed maps are covered
    for image, heat in efficientnet_heatmaps:
        np.testing.assert_array_equal(np.asarray(overlay(image, heat, "paper")), _authors_display(image, heat),
                                      err_msg=f"image of size {image.size}")


def test_paper_mode_equals_the_authors_display_on_generated_images():
    pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for seed, size in ((0, (64, 48)), (1, (31, 77)), (2, (224, 224))):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        heat = _signed_heatmap(seed)
        np.testing.assert_array_equal(np.asarray(overlay(image, heat, "paper")), _authors_display(image, heat))


@pytest.mark.realdata
def test_paper_mode_equals_the_authors_display_on_peterson_images(real_data_root):
    pytest.importorskip("cv2")
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


def _texts_outside(fig) -> list[str]:
    """Every non-empty text of a drawn figure whose bounding box leaves the figure (matplotlib's renderer)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer, (w, h) = canvas.get_renderer(), fig.bbox.size
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip():
            box = t.get_window_extent(renderer)
            if box.x0 < 0 or box.y0 < 0 or box.x1 > w or box.y1 > h:
                out.append(t.get_text())
    return out


@pytest.mark.parametrize("mode", ["default", "paper"])
@pytest.mark.parametrize("size", [(224, 224), (640, 48), (48, 640), (12, 900)])
def test_figure_footnotes_wrap_and_stay_inside_the_figure(mode, size):
    """The footnote says what the colours mean (in paper mode: that negative values are drawn hot too); it is
    wrapped, whole, and inside the figure at any image aspect ratio, as are titles, even a long file name."""
    from aisviz.core.heatmaps import scale_note
    from aisviz.viz.figures import heatmap_figure, panel_figure

    image = Image.new("RGB", size, (120, 120, 120))
    name = "a-very-long-image-file-name-without-any-spaces-from-a-camera-0000123456789.png"
    for fig, note in ((heatmap_figure(image, _signed_heatmap(1), mode, name), scale_note(mode)),
                      (panel_figure(image, _signed_heatmap(0), np.ones(size[::-1]), mode, title=name),
                       scale_note(mode, "colours"))):
        assert _texts_outside(fig) == []
        assert fig._supxlabel.get_text().replace("\n", " ") == note
    cli_footnote = heatmap_figure(image, _signed_heatmap(1), mode, name)._supxlabel.get_text()
    assert ("\n" in cli_footnote) == (mode == "paper")  # the paper note is wider than the CLI's figure


@pytest.mark.slow
def test_cli_heatmaps_and_saliency_take_the_display_mode(tmp_path, tiny_set):
    from aisviz.cli.commands import main

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


@pytest.mark.parametrize("mode", ["default", "paper"])
def test_heatmap_pngs_drawn_once_match_a_figure_each(mode):
    """The demo's fast path (a background drawn once per image size and title line count, then only the overlay
    and the title redrawn) against the reference, a new heatmap_figure per image: the same pixels, through
    size changes, a return to an earlier size, titles of one and two lines, and more sizes than it keeps."""
    from aisviz.viz.figures import figure_bytes, heatmap_figure, heatmap_pngs

    y, x = np.mgrid[0:48, 0:64]
    smooth = [Image.fromarray(np.dstack([x * 3 + s, y * 4, 255 - x * 2]).astype(np.uint8)) for s in range(3)]
    crops = [Image.fromarray(np.asarray(smooth[0])[:rows]) for rows in (40, 36, 30, 24, 20)]
    images = smooth + crops + [smooth[1]]
    titles = ["short", "a much longer title that will certainly have to wrap onto a second line of the figure"]
    items = [(image, _signed_heatmap(i), f"image {i}: {titles[i % 2]}") for i, image in enumerate(images)]
    fast = list(heatmap_pngs(iter(items), mode))
    assert len(fast) == len(items)
    for png, (image, heat, title) in zip(fast, items):
        got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        want = np.asarray(Image.open(io.BytesIO(figure_bytes(heatmap_figure(image, heat, mode, title), dpi=100)))
                          .convert("RGB"))
        np.testing.assert_array_equal(got, want, err_msg=title)
    assert not np.array_equal(fast[0], fast[1])
