"""Small display points: the dashboard's thumbnail grid shows the page's own background in its gaps and
empty cells, so a dark theme gets no white gutters or white empty cell (on main the sheet was drawn on
white); SVG exports keep their labels as text."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def test_the_grid_sheet_is_transparent_between_thumbnails():
    from aisviz.viz.plots import contact_sheet, grid_geometry, png_bytes

    images = [Image.new("RGB", (30, 20), (200, 40, 40)) for _ in range(5)]
    geo = grid_geometry(len(images))
    sheet, layout = contact_sheet(images, cell=geo["cell"], columns=3, gap=geo["gap"], background=None)
    pixels = np.asarray(Image.open(io.BytesIO(png_bytes(sheet))))     # as the browser receives it
    assert pixels.shape[2] == 4
    pitch = layout["cell"] + layout["gap"]
    centre = layout["cell"] // 2
    assert pixels[centre, centre, 3] == 255                           # a thumbnail: opaque
    assert pixels[centre, layout["cell"], 3] == 0                     # the gap after the first column
    assert pixels[pitch + centre, 2 * pitch + centre, 3] == 0         # the empty sixth cell
    white, _ = contact_sheet(images, cell=geo["cell"], columns=3)     # static sheets (bundles) stay on white
    assert white.mode == "RGB" and white.getpixel((layout["cell"], centre)) == (255, 255, 255)


def test_svg_exports_keep_their_labels_as_text():
    from aisviz.viz.figures import bars_figure, figure_bytes

    svg = figure_bytes(bars_figure(np.linspace(-0.01, 0.02, 40), 5, title="AIS per map"), "svg").decode()
    assert "<text" in svg and "AIS per map" in svg            # on main: glyph paths, the title not findable
