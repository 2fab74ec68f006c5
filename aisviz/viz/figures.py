"""Publishable static figures (matplotlib): the held-out alignment curve, the per-map AIS chart and the
labelled image | AIS heatmap | saliency panel with colour bars. Pure functions from arrays to a
matplotlib Figure (object API, no pyplot state, so safe off the main thread); `figure_bytes` writes
PNG or SVG. The dashboard's downloads, the CLI's panels and notebooks use them.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from aisviz.core.heatmaps import colormap, overlay, scale_note
from aisviz.errors import UsageError

if TYPE_CHECKING:  # matplotlib and PIL are imported when a figure is drawn
    from matplotlib.figure import Figure
    from PIL.Image import Image as PILImage

FORMATS = ("png", "svg")
TRAIN_COLOUR, TEST_COLOUR, RANDOM_COLOUR = "#1f77b4", "#d62728", "#7f7f7f"
TOPK_COLOUR, OTHER_COLOUR = "#d62728", "#9aa5b1"
HEATMAP_FIGSIZE = (4.6, 4.3)    # inches: heatmap_figure's


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_bytes(fig, fmt: str = "png", dpi: int = 150, png_compression: int = 6) -> bytes:
    """The figure as PNG or SVG bytes. SVG text stays text (<text> elements, not paths), so labels can be
    edited in a vector editor. png_compression: zlib's level (1 = fastest: a third of the time of 6, the
    default, for files about a fifth larger)."""
    import matplotlib

    if fmt not in FORMATS:
        raise UsageError(f"figure format must be one of {FORMATS}, not {fmt!r}.")
    buf = io.BytesIO()
    extra = {"pil_kwargs": {"compress_level": png_compression}} if fmt == "png" else {}
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=dpi, **extra)
    return buf.getvalue()


def curve_figure(k_values: npt.ArrayLike, stats: dict, summary: dict, k: int | None = None,
                 title: str = "") -> Figure:
    """Train and test R² against k (top-k maps by training AIS), mean ± SD over splits; k random maps
    (test); the all-maps levels as dotted lines, in the legend; mean k*; the current k."""
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()
    x = np.asarray(k_values)
    rows = (("test_random", RANDOM_COLOUR, "test, k random maps", ":"),
            ("train_topk", TRAIN_COLOUR, "train, top-k maps by training AIS", "-"),
            ("test_topk", TEST_COLOUR, "test, top-k maps by training AIS", "-"))
    for key, colour, label, style in rows:
        m, sd = stats[key]["mean"], stats[key]["sd"]
        ax.fill_between(x, m - sd, m + sd, color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, m, style, color=colour, label=label, linewidth=1.8)
    ax.axhline(summary["mean_r2_train_all"], color=TRAIN_COLOUR, linestyle=(0, (1, 2)), linewidth=1.2,
               label=f"train, all maps ({summary['mean_r2_train_all']:.3f})")
    ax.axhline(summary["mean_r2_test_all"], color=TEST_COLOUR, linestyle=(0, (1, 2)), linewidth=1.2,
               label=f"test, all maps ({summary['mean_r2_test_all']:.3f})")
    ax.axvline(summary["mean_k_star"], color="black", linestyle="--", linewidth=1,
               label=f"mean k* = {summary['mean_k_star']:.0f} (argmax of train R²)")
    if k is not None:
        i = int(np.argmin(np.abs(x - k)))
        ax.plot([x[i]], [stats["test_topk"]["mean"][i]], "D", color=TEST_COLOUR, markeredgecolor="black",
                label=f"k = {x[i]}: test R² {stats['test_topk']['mean'][i]:.3f}")
    ax.set_xlabel("k (maps kept, ranked by training AIS)")
    ax.set_ylabel("alignment R² (mean ± SD over splits)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, loc="lower right", framealpha=0.9)
    ax.grid(alpha=0.25)
    return fig


def bars_figure(ais: npt.ArrayLike, k: int, title: str = "") -> Figure:
    """Data-set AIS of every map, sorted from the highest; the top-k maps in red, the rest grey, with a
    legend and the zero line (AIS 0 = removing the map does not change the alignment)."""
    from matplotlib.patches import Patch

    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot()
    a = np.sort(np.asarray(ais, dtype=np.float64))[::-1]
    n = len(a)
    colours = [TOPK_COLOUR] * int(k) + [OTHER_COLOUR] * (n - int(k))
    ax.bar(np.arange(1, n + 1), a, width=1.0, color=colours, linewidth=0)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("rank by data-set AIS (1 = largest drop in alignment when removed)")
    ax.set_ylabel("AIS = R²(all) − R²(without the map)")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=[Patch(color=TOPK_COLOUR, label=f"top {int(k)} maps (kept at k = {int(k)})"),
                       Patch(color=OTHER_COLOUR, label="other maps")], fontsize=8, loc="upper right")
    ax.set_xlim(0, n + 1)
    return fig


def wrap_to_width(text: str, width_pt: float, fontsize: float) -> str:
    """Break text at spaces into lines no wider than width_pt points at fontsize (matplotlib's default font,
    measured, not guessed), so that a footnote or title is never clipped by the figure's edges.

    Parameters
    ----------
    text : one line of text (existing line breaks are kept).
    width_pt : the widest a line may be, in points.
    fontsize : font size in points.

    Returns
    -------
    The text with line breaks.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font, measure = FontProperties(size=fontsize), TextToPath()

    def fits(s: str) -> bool:
        return measure.get_text_width_height_descent(s, font, ismath=False)[0] <= width_pt

    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if fits(f"{line} {word}" if line else word):
                line = f"{line} {word}" if line else word
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and not fits(word):  # a word wider than a line (a long file name): cut it
                cut = len(word) - 1
                while cut > 1 and not fits(word[:cut]):
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return "\n".join(lines)


def _footnote(fig, text: str, fontsize: float):
    """A wrapped footnote under the figure, inside its edges; as supxlabel, constrained layout keeps room."""
    fig.supxlabel(wrap_to_width(text, 0.94 * 72 * fig.get_figwidth(), fontsize), fontsize=fontsize)


def _colourbar(fig, ax, mode: str, label: str):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=colormap(mode)), ax=ax, fraction=0.046, pad=0.02)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)


def panel_figure(image: PILImage, heatmap: np.ndarray, saliency: np.ndarray | None = None,
                 mode: str = "default", title: str = "", heatmap_title: str = "AIS heatmap (all maps)",
                 saliency_title: str = "saliency") -> Figure:
    """Labelled image | AIS heatmap overlay | saliency overlay (saliency None: two panels), each overlay
    with a colour bar stating its scale in this display mode."""
    panels = 3 if saliency is not None else 2
    fig = _figure(3.3 * panels + 0.6, 3.9)
    axes = fig.subplots(1, panels)
    label = "(value / max)²" if mode == "paper" else "value / max (clipped at 0)"
    axes[0].imshow(np.asarray(image.convert("RGB")))
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(np.asarray(overlay(image, heatmap, mode)))
    axes[1].set_title(heatmap_title, fontsize=9)
    _colourbar(fig, axes[1], mode, label)
    if saliency is not None:
        axes[2].imshow(np.asarray(overlay(image, saliency, mode)))
        axes[2].set_title(saliency_title, fontsize=9)
        _colourbar(fig, axes[2], mode, label)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(wrap_to_width(title, 0.94 * 72 * fig.get_figwidth(), 10), fontsize=10)
    _footnote(fig, scale_note(mode, "colours"), 7)
    return fig


def heatmap_figure(image: PILImage, heatmap: np.ndarray, mode: str = "default", title: str = "") -> Figure:
    """One labelled AIS heatmap overlay with its colour bar (the CLI's `heatmaps` images)."""
    return _heatmap_parts(image, heatmap, mode, title)[0]


def _heatmap_parts(image: PILImage, heatmap: np.ndarray, mode: str, title: str):
    """heatmap_figure, its overlay's AxesImage and its title's Text."""
    fig = _figure(*HEATMAP_FIGSIZE)
    ax = fig.add_subplot()
    picture = ax.imshow(np.asarray(overlay(image, heatmap, mode)))
    ax.set_xticks([])
    ax.set_yticks([])
    # A figure title, not the axes': a narrow image's axes sits beside the colour bar, and its title would overhang
    caption = fig.suptitle(wrap_to_width(title, 0.94 * 72 * fig.get_figwidth(), 9), fontsize=9)
    _colourbar(fig, ax, mode, "(value / max)²" if mode == "paper" else "value / max (clipped at 0)")
    _footnote(fig, scale_note(mode), 7)
    return fig, picture, caption


def heatmap_pngs(overlays: Iterable[tuple[PILImage, np.ndarray, str]], mode: str = "default",
                 dpi: int = 100) -> Iterator[bytes]:
    """PNG bytes of heatmap_figure for each (image, heatmap, title) (the `demo` and `heatmaps` commands' main
    wait once a result is cached). One figure is laid out per image size and title line count; everything but
    the overlay and the title is drawn once, and each image only redraws those two on a copy of that
    background (blitting), while the previous image is PNG-encoded (zlib's fastest level) on another thread."""
    drawn: dict[tuple, tuple] = {}     # (image size, title lines) -> (figure, canvas, background, moving)
    with ThreadPoolExecutor(1) as encoder:   # PNG encoding releases the GIL: it overlaps the next drawing
        pending = None
        for image, heatmap, title in overlays:
            text = wrap_to_width(title, 0.94 * 72 * HEATMAP_FIGSIZE[0], 9)    # as heatmap_figure wraps it
            key = (image.size, text.count("\n"))
            if key not in drawn:
                if len(drawn) == 4:               # a set of many sizes: keep memory bounded, the oldest goes
                    drawn.pop(next(iter(drawn)))
                drawn[key] = _heatmap_background(image, heatmap, mode, title, dpi)
            fig, canvas, background, moving = drawn[key]
            moving[0].set_data(np.asarray(overlay(image, heatmap, mode)))
            moving[-1].set_text(text)
            canvas.restore_region(background)
            for artist in moving:
                fig.draw_artist(artist)
            # RGB: the figure is opaque, and a third less to compress than RGBA
            pixels = np.array(canvas.buffer_rgba())[..., :3]
            if pending is not None:
                yield pending.result()
            pending = encoder.submit(_png, pixels, dpi)
        if pending is not None:
            yield pending.result()


def _heatmap_background(image: PILImage, heatmap: np.ndarray, mode: str, title: str, dpi: int):
    """heatmap_figure laid out once, on an Agg canvas, and its picture without the artists each image redraws
    (in a full draw's order: the frame lies over the overlay): (figure, canvas, background, those artists)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig, picture, caption = _heatmap_parts(image, heatmap, mode, title)
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()                      # the layout engine places everything once
    fig.set_layout_engine("none")
    moving = (picture, *fig.axes[0].spines.values(), caption)
    for artist in moving:
        artist.set_visible(False)
    canvas.draw()
    for artist in moving:
        artist.set_visible(True)
    return fig, canvas, canvas.copy_from_bbox(fig.bbox), moving


def _png(pixels: np.ndarray, dpi: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return buf.getvalue()
