"""Plotly figure builders for the dashboard and notebooks: pure functions, no widgets.

Every builder takes arrays that were already computed (aisviz.pipeline, aisviz.core) and returns a
plotly ``go.Figure`` (wrap it in ``go.FigureWidget`` to make it live). The small helpers that turn
results into what is shown (curve means, the read-out at one k, MDS coordinates, a contact sheet of
thumbnails) are here too, so that the notebooks, the app and the tests read the same numbers.

plotly is an optional dependency (``pip install 'aisviz[app]'``); it is imported when a builder runs.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from aisviz.core.curves import curve_stats, nearest_k_index

if TYPE_CHECKING:  # plotly, pandas and PIL are imported when a figure is drawn
    import pandas as pd
    import plotly.graph_objects as go
    from PIL.Image import Image as PILImage

TOPK_COLOUR = "#d62728"
OTHER_COLOUR = "#9aa5b1"
TRAIN_COLOUR = "#1f77b4"
TEST_COLOUR = "#d62728"
RANDOM_COLOUR = "#7f7f7f"
# Transparent backgrounds: the page's theme (JupyterLab light or dark) shows through; the dashboard's CSS
# recolours text and grid lines in dark themes.
THEMELESS = {"template": "plotly_white", "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
             "autosize": True}


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("aisviz's figures need plotly: pip install 'plotly>=6' "
                          "(or pip install 'aisviz[app]' for the whole dashboard).") from None
    return go


# ---------------------------------------------------------------------------------------------
# Held-out alignment curve


def _band(go, x, mean, sd, colour, name, group, opacity=0.18):
    upper, lower = mean + sd, mean - sd
    return [
        go.Scatter(x=x, y=upper, mode="lines", line={"width": 0}, hoverinfo="skip", showlegend=False,
                   legendgroup=group, name=f"{name} +SD"),
        go.Scatter(x=x, y=lower, mode="lines", line={"width": 0}, fill="tonexty", fillcolor=_rgba(colour, opacity),
                   hoverinfo="skip", showlegend=False, legendgroup=group, name=f"{name} -SD"),
    ]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


MARKER_TEST = "current k (test)"
MARKER_TRAIN = "current k (train)"


def alignment_curve(k_values: npt.ArrayLike, curves: dict, summary: dict, k: int | None = None, title: str = "",
                    height: int = 420) -> go.Figure:
    """Train and test R² against k (top-k maps by training AIS): mean line and ±1 SD band over splits;
    the random-k-maps baseline (test) as a band; the all-maps level (mean test and train R²) as dotted
    lines; mean k* as a dashed vertical line; markers at the current k (traces named MARKER_TEST and
    MARKER_TRAIN, so a live figure can move them)."""
    go = _go()
    x = np.asarray(k_values)
    st = curve_stats(curves)
    traces = []
    traces += _band(go, x, st["test_random"]["mean"], st["test_random"]["sd"], RANDOM_COLOUR, "random", "random",
                    opacity=0.22)
    traces.append(go.Scatter(x=x, y=st["test_random"]["mean"], mode="lines", legendgroup="random",
                             line={"color": RANDOM_COLOUR, "width": 1.5, "dash": "dot"},
                             name="test, k random maps",
                             hovertemplate="k=%{x}<br>test R² random maps %{y:.4f}<extra></extra>"))
    for key, colour, label in (("train_topk", TRAIN_COLOUR, "train"), ("test_topk", TEST_COLOUR, "test")):
        traces += _band(go, x, st[key]["mean"], st[key]["sd"], colour, label, label)
        traces.append(go.Scatter(x=x, y=st[key]["mean"], mode="lines", legendgroup=label,
                                 line={"color": colour, "width": 2}, name=f"{label}, top-k maps by AIS",
                                 hovertemplate=f"k=%{{x}}<br>{label} R² top-k %{{y:.4f}}<extra></extra>"))
    ends = [x[0], x[-1]]
    for key, colour, label in (("mean_r2_train_all", TRAIN_COLOUR, "train"), ("mean_r2_test_all", TEST_COLOUR, "test")):
        traces.append(go.Scatter(x=ends, y=[summary[key]] * 2, mode="lines", name=f"{label}, all maps",
                                 line={"color": colour, "width": 1.5, "dash": "dot"},
                                 hovertemplate=f"{label} R² all maps %{{y:.4f}}<extra></extra>"))
    traces.append(go.Scatter(x=[summary["mean_k_star"]] * 2, y=[_lowest(st, summary), _highest(st, summary)],
                             mode="lines", name=f"mean k* = {summary['mean_k_star']:.0f} (best train R²)",
                             line={"color": "#444", "width": 1, "dash": "dash"}, hoverinfo="skip"))
    i = nearest_k_index(x, x[-1] if k is None else k)
    for key, colour, name in (("train_topk", TRAIN_COLOUR, MARKER_TRAIN), ("test_topk", TEST_COLOUR, MARKER_TEST)):
        traces.append(go.Scatter(x=[x[i]], y=[st[key]["mean"][i]], mode="markers", name=name,
                                 marker={"color": colour, "size": 13, "symbol": "diamond",
                                         "line": {"color": "black", "width": 1.5}},
                                 hovertemplate=f"{name}: k=%{{x}}, R² %{{y:.4f}}<extra></extra>"))
    layout = dict(title=title or None, height=height, margin={"l": 60, "r": 10, "t": 40 if title else 10, "b": 40},
                  xaxis={"title": "k (maps kept, ranked by training AIS)"},
                  yaxis={"title": "alignment R² (mean ± SD over splits)"}, hovermode="closest",
                  legend={"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0, "font": {"size": 11}},
                  **THEMELESS)
    return go.Figure(data=traces, layout=layout)


def _lowest(st, summary) -> float:
    lows = [np.nanmin(st[key]["mean"] - st[key]["sd"]) for key in ("train_topk", "test_topk", "test_random")]
    return float(min(lows + [summary["mean_r2_test_all"]]))


def _highest(st, summary) -> float:
    highs = [np.nanmax(st[key]["mean"] + st[key]["sd"]) for key in ("train_topk", "test_topk", "test_random")]
    return float(max(highs + [summary["mean_r2_train_all"]]))


# ---------------------------------------------------------------------------------------------
# Per-map AIS


def ais_bars(ais: npt.ArrayLike, k: int | None = None, map_names: Sequence[str] | None = None, title: str = "",
             height: int = 360) -> go.Figure:
    """Data-set AIS of every map, sorted from the highest (rank 1); the top-k maps in red, the rest grey.
    One bar trace; its marker.color (see topk_colours) is what a live figure changes as k moves."""
    go = _go()
    ais = np.asarray(ais, dtype=np.float64)
    order = np.argsort(-ais, kind="stable")
    names = list(map_names) if map_names is not None else [f"map {j}" for j in range(len(ais))]
    k = len(ais) if k is None else k
    bar = go.Bar(x=np.arange(1, len(ais) + 1), y=ais[order], marker={"color": topk_colours(len(ais), k),
                                                                      "line": {"width": 0}},
                 customdata=[names[j] for j in order], name="AIS", showlegend=False,
                 hovertemplate="rank %{x}: %{customdata}<br>AIS %{y:.3g}<extra></extra>")
    # Legend entries only: the one bar trace carries both colours, so that a move of k changes one property.
    keys = [go.Bar(x=[None], y=[None], marker={"color": colour}, name=name, showlegend=True, hoverinfo="skip")
            for colour, name in ((TOPK_COLOUR, "top-k maps (kept at the slider's k)"), (OTHER_COLOUR, "other maps"))]
    layout = dict(title=title or None, height=height, bargap=0,
                  margin={"l": 60, "r": 10, "t": 40 if title else 10, "b": 40},
                  xaxis={"title": "rank by data-set AIS (1 = largest drop in alignment when removed)"},
                  yaxis={"title": "AIS = R²(all) − R²(without the map)", "zeroline": True,
                         "zerolinecolor": "#888"},
                  legend={"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0, "font": {"size": 11}},
                  barmode="overlay", **THEMELESS)
    return go.Figure(data=[bar, *keys], layout=layout)


def topk_colours(n_maps: int, k: int) -> list[str]:
    """Bar colours in rank order: the first k red, the others grey."""
    k = int(min(max(k, 0), n_maps))
    return [TOPK_COLOUR] * k + [OTHER_COLOUR] * (n_maps - k)


# ---------------------------------------------------------------------------------------------
# Images: classical MDS of the human similarities, and thumbnails


def png_bytes(image: PILImage, size: int | None = None, compress_level: int = 6) -> bytes:
    """PNG bytes of a PIL image, optionally resized (aspect kept) so that its longer side is `size`.
    compress_level 1 encodes several times faster (bigger files): for images re-rendered on hover.
    An RGBA image keeps its transparency; anything else is written as RGB."""
    im = image if image.mode == "RGBA" else image.convert("RGB")
    if size is not None:
        im = im.copy()
        im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def mds_scatter(coords: np.ndarray, image_names: Sequence[str], thumbnails: Sequence[bytes] | None = None,
                hover_text: Sequence[str] | None = None, title: str = "", height: int = 520,
                thumb_fraction: float = 0.07) -> go.Figure:
    """Images placed by MDS of the human similarities (near = judged similar). thumbnails: optional PNG
    bytes per image, drawn centred on each point as layout images; the markers stay on top, nearly
    transparent, so that hover and click work on the whole thumbnail. customdata = image index."""
    go = _go()
    xy = np.asarray(coords, dtype=np.float64)
    names = list(image_names)
    span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-9))
    size = thumb_fraction * span
    text = hover_text if hover_text is not None else names
    scatter = go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=np.arange(len(names)), text=text, name="images",
        marker={"size": 14 if thumbnails is not None else 10, "color": "rgba(31,119,180,0.05)" if thumbnails
                is not None else TRAIN_COLOUR, "line": {"width": 1, "color": "rgba(31,119,180,0.5)"}},
        hovertemplate="%{text}<extra></extra>")
    images = []
    if thumbnails is not None:
        images = [dict(source=data_uri(t), x=x, y=y, xref="x", yref="y", sizex=size, sizey=size,
                       xanchor="center", yanchor="middle", layer="below", sizing="contain")
                  for t, (x, y) in zip(thumbnails, xy, strict=True)]
    pad = 0.6 * size
    layout = dict(title=title or None, height=height, images=images, showlegend=False, **THEMELESS,
                  margin={"l": 40, "r": 20, "t": 40 if title else 20, "b": 40}, hovermode="closest",
                  xaxis={"title": "MDS 1 of the human similarities", "zeroline": False,
                         "range": [xy[:, 0].min() - pad, xy[:, 0].max() + pad]},
                  yaxis={"title": "MDS 2", "zeroline": False, "scaleanchor": "x",
                         "range": [xy[:, 1].min() - pad, xy[:, 1].max() + pad]})
    return go.Figure(data=[scatter], layout=layout)


def contact_sheet(images, cell: int = 64, columns: int | None = None, gap: int = 2, labels=None,
                  background: str | None = "white"):
    """A grid of thumbnails (one PIL image): cell x cell px each, `columns` per row (default: about
    square), `gap` px apart on `background` (None: transparent, an RGBA sheet that shows the page's own
    background, e.g. a dark theme's, in the gaps and empty cells). Returns (sheet, layout) with layout =
    {"cell", "gap", "columns", "rows", "n"}; cell_at(layout, x, y) maps a pixel of the sheet back to an
    image index."""
    from PIL import Image

    n = len(images)
    columns = columns or max(1, int(np.ceil(np.sqrt(n * 1.6))))
    rows = int(np.ceil(n / columns))
    pitch = cell + gap
    size = (columns * pitch - gap, rows * pitch - gap)
    sheet = Image.new("RGB", size, background) if background else Image.new("RGBA", size, (0, 0, 0, 0))
    for i, im in enumerate(images):
        t = im.convert("RGB").copy()
        t.thumbnail((cell, cell))
        r, c = divmod(i, columns)
        sheet.paste(t, (c * pitch + (cell - t.width) // 2, r * pitch + (cell - t.height) // 2))
    return sheet, {"cell": cell, "gap": gap, "columns": columns, "rows": rows, "n": n}


def cell_at(layout: dict, x: float, y: float) -> int | None:
    """Image index under pixel (x, y) of a contact sheet (natural pixels; a gap counts with the cell to
    its left and above), or None outside the cells."""
    pitch = layout["cell"] + layout["gap"]
    if x < 0 or y < 0:
        return None
    c, r = int(x // pitch), int(y // pitch)
    if c >= layout["columns"] or r >= layout["rows"]:
        return None
    i = r * layout["columns"] + c
    return i if i < layout["n"] else None


def cell_centre(layout: dict, i: int) -> tuple[float, float]:
    """Centre (x, y) in natural pixels of image i's cell in a contact sheet."""
    r, c = divmod(i, layout["columns"])
    pitch = layout["cell"] + layout["gap"]
    return c * pitch + layout["cell"] / 2, r * pitch + layout["cell"] / 2


# ---------------------------------------------------------------------------------------------
# Layer comparison (sweep results)

CEILING_COLOUR = "#2ca02c"


def layer_comparison(layers: pd.DataFrame, title: str = "", height: int = 420) -> go.Figure:
    """Alignment along network depth for one (data set, network).

    Top panel, group-level R² (the network against the mean human matrix): test R² with all maps, with the
    top-k* maps by training AIS and with k* random maps (mean ± SD over splits as error bars), and R² with all
    maps on all pairs. Where the set has per-subject matrices, a second panel below with its own axis,
    subject-level R² (the mean over subjects of R² against each subject's matrix, on the test pairs): the
    noise-ceiling band (lower to upper bound) and the network's subject-level R² with the top-k* and with all
    maps, the numbers the ceiling bounds. The ceiling is never drawn against group-level R², which is higher
    (the mean matrix averages out individual noise). `layers`: aisviz.sweep.layer_table. Each point carries
    its layer name as customdata, so a click can open that layer.

    Parameters
    ----------
    layers : pandas DataFrame from aisviz.sweep.layer_table.
    title : figure title ("" for none).
    height : figure height in px (the subject-level panel adds 60 %).

    Returns
    -------
    plotly Figure.
    """
    go = _go()
    from plotly.subplots import make_subplots

    x = list(layers["layer"])
    subjects = "ceiling_lower" in layers and layers["ceiling_lower"].notna().any()
    fig = make_subplots(rows=2 if subjects else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.55, 0.45] if subjects else None)
    for key, colour, label, dash in (("random", RANDOM_COLOUR, "test, k* random maps", "dot"),
                                     ("all", TRAIN_COLOUR, "test, all maps", "solid"),
                                     ("topk", TEST_COLOUR, "test, top-k* maps by AIS", "solid")):
        fig.add_trace(go.Scatter(
            x=x, y=layers[f"mean_r2_test_{key}"], mode="lines+markers", name=label, customdata=x,
            error_y={"type": "data", "array": layers[f"sd_r2_test_{key}"], "visible": True, "thickness": 1},
            line={"color": colour, "dash": dash, "width": 2}, marker={"size": 8},
            hovertemplate=f"%{{x}}<br>{label}: group-level R² %{{y:.4f}} (mean ± SD over splits)<extra></extra>"),
            row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=layers["r2_all"], mode="markers", name="all maps, all pairs", customdata=x,
                             marker={"color": "black", "symbol": "x", "size": 8},
                             hovertemplate="%{x}<br>group-level R² all maps, all pairs %{y:.4f}<extra></extra>"),
                  row=1, col=1)
    fig.update_yaxes(title_text="group-level R²<br>(mean human matrix)", row=1, col=1)
    if subjects:
        fig.add_trace(go.Scatter(x=x, y=layers["ceiling_upper"], mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip", name="noise ceiling upper"), row=2, col=1)
        fig.add_trace(go.Scatter(x=x, y=layers["ceiling_lower"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=_rgba(CEILING_COLOUR, 0.2),
                                 name="noise ceiling (subject-level R², test pairs)",
                                 hovertemplate="%{x}<br>noise ceiling lower bound (subject-level R²) %{y:.4f}"
                                               "<extra></extra>"), row=2, col=1)
        for key, dash, label in (("topk", "solid", "subject-level test R², top-k* maps"),
                                 ("all", "dot", "subject-level test R², all maps")):
            fig.add_trace(go.Scatter(x=x, y=layers[f"subject_r2_test_{key}"], mode="lines+markers", customdata=x,
                                     line={"color": CEILING_COLOUR, "dash": dash}, name=label,
                                     hovertemplate=f"%{{x}}<br>{label} %{{y:.4f}} (mean over subjects and "
                                                   "splits)<extra></extra>"), row=2, col=1)
        fig.update_yaxes(title_text="subject-level R²<br>(mean over subjects)", row=2, col=1)
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text="perturbed layer (network depth →)", row=2 if subjects else 1, col=1)
    fig.update_layout(title=title or None, height=int(height * (1.6 if subjects else 1)),
                      margin={"l": 70, "r": 20, "t": 50 if title else 30, "b": 90}, hovermode="closest",
                      template="plotly_white", legend={"orientation": "h", "y": -0.25 if subjects else -0.35})
    return fig


GRID_WIDTH = 420             # px available to the thumbnail grid


def grid_geometry(n_images: int, cell: int | None = None) -> dict:
    """Cell size (px), gap and columns of the thumbnail grid for n images (see plots.contact_sheet)."""
    cell = cell or (56 if n_images <= 64 else 40)
    gap = 2
    return {"cell": cell, "gap": gap, "columns": max(1, min(n_images, GRID_WIDTH // (cell + gap)))}
