"""A static site of result bundles: `aisviz site --bundles DIR --out SITE` (and `write(bundles, out)`).

The site shows what the shared viewer shows, for every bundled setting (a menu per setting, as the viewer):
the held-out curve with the top-k slider and its read-out, the per-map AIS with the top k highlighted, the
image grid and the MDS map, and image | AIS heatmap | saliency in both display modes with the per-image
metrics. It needs no Python at view time: it opens from file:// and from any static web server, offline.

Layout of SITE:

    index.html                 the page (aisviz/site/assets/index.html)
    assets/site.js, site.css   its code and styles (aisviz/site/assets)
    assets/plotly.min.js       copied from the installed plotly package (no CDN)
    data/index.js              window.AISVIZ_DATA: the settings with their menus, versions and dates
    data/<id>.js               one setting: figures, read-out table, per-map table, thumbnails, text blocks
    data/<id>/c<NN>.js         CHUNK images each: the image, its AIS heatmap and saliency overlays in both
                               display modes (WebP data URIs at the panel's size, so that a canvas may
                               compose the panel PNG) and the metrics table; loaded on hover
    data/<id>/tables.js        the CSV tables, loaded on a download click
    aisviz-site.json           marks the folder as a site (a rewrite may replace it) and lists its settings

file:// forbids fetch, so every data file is a script that calls AISVIZ.put(name, value). --single-file
puts the same values into <script type="application/json"> elements of one HTML file instead (parsed only
when needed). Numbers are the bundle's, turned into what is shown by the dashboard's own functions
(curve_stats, image_metrics, the panels' HTML blocks); the browser only picks the value stored for a k.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from aisviz import __version__
from aisviz.core.heatmaps import DISPLAY_MODES, colourbar_png, overlay, scale_note
from aisviz.errors import EnvironmentProblem, UsageError
from aisviz.pipeline import derive
from aisviz.pipeline.bundles import BundleCatalog, open_catalog
from aisviz.pipeline.export import TABLES, settings_json
from aisviz.pipeline.settings import FACETS, facet_text
from aisviz.viz.plots import (
    MARKER_TEST,
    MARKER_TRAIN,
    OTHER_COLOUR,
    TOPK_COLOUR,
    ais_bars,
    alignment_curve,
    grid_geometry,
    mds_scatter,
)
from aisviz.viz.text import fmt, info_html, map_table_html, metrics_html, summary_html

ASSETS = Path(__file__).resolve().parent / "assets"
MARKER = "aisviz-site.json"
PANEL_SIZE = 200          # px of each detail image (the dashboard's DetailPanel)
CHUNK = 8                 # images per detail file
WEBP_QUALITY = 85
DIGITS = 6                # significant digits of the plotted arrays (the read-out keeps full precision)
# Keys of a noise ceiling in a result's summary (aisviz.sweep's column names), shown where present.
CEILING_KEYS = ("n_subjects", "ceiling_lower", "ceiling_upper", "subject_r2_test_topk", "subject_r2_test_all",
                "ceiling_fraction_topk")


@dataclass(frozen=True)
class SiteReport:
    """What write() wrote: the site folder (or HTML file), its size in bytes, files and settings."""

    path: Path
    bytes: int
    files: int
    settings: int


# ---------------------------------------------------------------------------------------------------
# values -> plain JSON


def _plain(x, digits: int | None = None):
    """JSON types; NaN and infinities become None (JSON has neither); floats rounded to `digits` significant
    digits when given."""
    if isinstance(x, dict):
        return {str(k): _plain(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, digits) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist(), digits)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return None
        return float(f"{x:.{digits}g}") if digits else x
    return x


def _json(value) -> str:
    # "</" escaped, so that the text can also sit inside a <script> element
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _webp(image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="WEBP", quality=WEBP_QUALITY, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _figure(fig) -> dict:
    """A plotly figure as {data, layout}, arrays rounded to what a chart shows."""
    d = fig.to_plotly_json()
    return {"data": _plain(d["data"], DIGITS), "layout": _plain(d["layout"], DIGITS)}


# ---------------------------------------------------------------------------------------------------
# one setting


def _computed(catalog: BundleCatalog, sid: str) -> dict:
    """When and by which aisviz version the setting was computed (the manifest's record; bundles written
    before it was recorded: the manifest file's time, said so)."""
    m = catalog.manifest(sid)
    if m.get("computed_at"):
        return {"date": str(m["computed_at"]), "version": str(m.get("aisviz_version", "not recorded")),
                "recorded": True}
    mtime = (catalog.root / sid / "manifest.json").stat().st_mtime
    return {"date": datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds"),
            "version": "not recorded", "recorded": False}


def _ceiling_html(r) -> str:
    """The noise ceiling stated in words, where the result's summary holds one ("" otherwise)."""

    c = {k: r.summary[k] for k in CEILING_KEYS if r.summary.get(k) is not None}
    if "ceiling_lower" not in c:
        return ""
    subjects = f"; {int(c['n_subjects'])} subjects" if "n_subjects" in c else ""
    reach = ""
    if "subject_r2_test_topk" in c:
        frac = f" ({fmt(c['ceiling_fraction_topk'], 2)} of the lower bound)" if "ceiling_fraction_topk" in c else ""
        reach = f" The top-k* maps reach a subject-level test R² of <b>{fmt(c['subject_r2_test_topk'])}</b>{frac}."
    return (f"<div class='aisviz-ceiling-inner' data-lower='{c['ceiling_lower']!r}'><small><b>Noise ceiling "
            f"(subject-level</b>: each person's R² with the group on the test pairs, mean over splits{subjects}): "
            f"lower bound <b>{fmt(c['ceiling_lower'])}</b>, upper bound {fmt(c.get('ceiling_upper'))}.{reach} "
            "Subject-level R² is not on the scale of the group-level curve above.</small></div>")


def _readout_table(r) -> dict:
    """What the read-out picks from at each evaluated k (derive.readout's fields, full precision)."""
    st, s = r.stats, r.summary
    table = {"k_values": _plain(r.k_values), "n_maps": r.n_maps, "k_step": int(r.k_step),
             "test_all": _plain(s["mean_r2_test_all"]), "test_all_sd": _plain(s["sd_r2_test_all"]),
             "n_splits": int(s["n_splits"])}
    for key in ("test_topk", "train_topk", "test_random"):
        table[key] = _plain(st[key]["mean"])
        table[f"{key}_sd"] = _plain(st[key]["sd"])
    return table


def _detail(r, i: int) -> dict:
    """Image i's panel: PNG-free WebP data URIs at PANEL_SIZE and the dashboard's metrics block."""

    small = r.image(i)
    small.thumbnail((PANEL_SIZE, PANEL_SIZE))
    heat = derive.heatmap(r, i)
    out = {"image": _webp(small)}
    for mode in DISPLAY_MODES:
        out[f"ais_{mode}"] = _webp(overlay(small, heat, mode))
        if r.saliency is not None:
            out[f"saliency_{mode}"] = _webp(overlay(small, r.saliency[i], mode))
    out["metrics_html"] = metrics_html(r, i, derive.image_metrics(r, i, heat))
    return out


def _tables(r) -> dict:
    """The dashboard's CSV tables and settings.json (what its results ZIP holds)."""

    out = {name: derive.result_dataframe(r, kind).to_csv(index=False) for name, kind in TABLES.items()}
    out["settings.json"] = json.dumps(settings_json(r), indent=2, default=str)
    return out


def _setting(catalog: BundleCatalog, entry) -> tuple[dict, dict]:
    """(the setting's data, {file name: value} of its detail chunks and tables)."""

    r = catalog.load(entry.id)
    k0 = derive.initial_k(r)
    curve = alignment_curve(r.k_values, r.curves, r.summary, k=k0, height=440)
    markers = [i for i, t in enumerate(curve.data) if getattr(t, "name", None) in (MARKER_TRAIN, MARKER_TEST)]
    mds = mds_scatter(r.mds, r.image_names, thumbnails=[b""] * r.n_images, height=420)
    cell = grid_geometry(r.n_images)["cell"]
    thumbs = []
    for i in range(r.n_images):
        t = r.image(i)
        t.thumbnail((cell, cell))
        thumbs.append(_webp(t))
    n_chunks = math.ceil(r.n_images / CHUNK)
    data = {
        "id": entry.id, "label": entry.label, "settings": _plain(entry.settings), "dataset_name": r.dataset_name,
        "model": r.settings.model, "layer": r.settings.layer, "n_images": r.n_images, "n_maps": r.n_maps,
        "image_names": list(r.image_names), "image_sizes": _plain(r.image_sizes),
        "saliency_provider": r.saliency_provider, "has_saliency": r.saliency is not None,
        "saliency_error": r.saliency_error, "r_orig": _plain(r.r_orig), "computed": _computed(catalog, entry.id),
        "k0": k0, "readout": _readout_table(r),
        "figures": {"curve": _figure(curve), "bars": _figure(ais_bars(r.ais, k0, r.map_names, height=400)),
                    "mds": _figure(mds)},
        "markers": markers, "colours": {"topk": TOPK_COLOUR, "other": OTHER_COLOUR},
        "html": {"info": info_html(r), "summary": summary_html(r), "maps": map_table_html(r),
                 "ceiling": _ceiling_html(r)},
        "cell": cell, "thumbs": thumbs, "chunk": CHUNK, "n_chunks": n_chunks,
    }
    files = {}
    for c in range(n_chunks):
        files[f"{entry.id}/c{c:02d}"] = {str(i): _detail(r, i)
                                        for i in range(c * CHUNK, min((c + 1) * CHUNK, r.n_images))}
    files[f"{entry.id}/tables"] = _tables(r)
    return data, files


def _index(catalog: BundleCatalog, settings: list[dict]) -> dict:
    """window.AISVIZ_DATA: the settings, the viewer's menus (one per facet; a menu with one value is fixed),
    the display modes' colour bars and notes, and who wrote the site when."""

    facets = []
    for field, label in FACETS:
        options, index = [], []
        for e in catalog.entries:
            text = facet_text(field, e.settings.get(field))
            if text not in options:
                options.append(text)
            index.append(options.index(text))
        facets.append({"field": field, "label": label, "options": options, "entry_option": index})
    return {"aisviz_version": __version__, "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "entries": [{"id": s["id"], "label": s["label"], "dataset_name": s["dataset_name"],
                         "n_images": s["n_images"], "computed": s["computed"]} for s in settings],
            "facets": facets,
            "bars": {m: _png(colourbar_png(m, height=PANEL_SIZE)) for m in DISPLAY_MODES},
            "scale_notes": {m: scale_note(m, "Both maps") for m in DISPLAY_MODES},
            "panel_size": PANEL_SIZE}


# ---------------------------------------------------------------------------------------------------
# writing


def _plotly_js() -> Path:
    try:
        import plotly
    except ImportError:
        raise EnvironmentProblem("aisviz site needs plotly (it copies plotly.js into the site): "
                                 "pip install 'aisviz[app]'.") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise EnvironmentProblem(f"this plotly has no {path.name} in its package data: reinstall plotly "
                                 "(pip install --force-reinstall plotly).")
    return path


def _check_target(out: Path, single_file: bool):
    """Refuse a target that is not ours to replace (before anything is computed)."""
    if single_file:
        if out.is_dir():
            raise UsageError(f"{out} is a folder: with --single-file give the HTML file to write, e.g. "
                             f"{out / 'aisviz.html'}.")
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file: give a folder for the site (or add --single-file for one HTML file).")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"{out} is a folder that holds other files (no {MARKER}): give a new or empty folder, "
                         "or a site written by `aisviz site` to replace it.")


def _page(scripts: str) -> str:
    return (ASSETS / "index.html").read_text(encoding="utf-8").replace("<!--SCRIPTS-->", scripts)


def _write_folder(tmp: Path, index: dict, parts: dict, plotly_js: Path):
    (tmp / "assets").mkdir()
    for name in ("site.js", "site.css"):
        shutil.copyfile(ASSETS / name, tmp / "assets" / name)
    shutil.copyfile(plotly_js, tmp / "assets" / "plotly.min.js")
    data = tmp / "data"
    data.mkdir()
    (data / "index.js").write_text(f"window.AISVIZ_DATA = {_json(index)};\n", encoding="utf-8")
    for name, value in parts.items():
        path = data / f"{name}.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"AISVIZ.put({_json(name)}, {_json(value)});\n", encoding="utf-8")
    scripts = ("<link rel='stylesheet' href='assets/site.css'>\n"
               "<script defer src='assets/plotly.min.js'></script>\n<script defer src='assets/site.js'></script>\n"
               "<script defer src='data/index.js'></script>")
    (tmp / "index.html").write_text(_page(scripts), encoding="utf-8")
    (tmp / MARKER).write_text(json.dumps({"aisviz_version": __version__, "written_at": index["written_at"],
                                          "settings": [e["id"] for e in index["entries"]]}, indent=1) + "\n",
                              encoding="utf-8")


def _single_html(index: dict, parts: dict, plotly_js: Path) -> str:
    inline = [f"<style>\n{(ASSETS / 'site.css').read_text(encoding='utf-8')}\n</style>",
              f"<script>{plotly_js.read_text(encoding='utf-8')}</script>",
              f"<script>{(ASSETS / 'site.js').read_text(encoding='utf-8')}</script>",
              f"<script>window.AISVIZ_DATA = {_json(index)};</script>"]
    inline += [f"<script type='application/json' id='aisviz:{name}'>{_json(value)}</script>"
               for name, value in parts.items()]
    return _page("\n".join(inline))


def _replace(tmp: Path, out: Path):
    """Rename tmp onto out; an old site at out is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def write(bundles, out, single_file: bool = False) -> SiteReport:
    """Write a static site of result bundles.

    Parameters
    ----------
    bundles : str, Path or BundleCatalog
        The bundle folder written by `aisviz precompute` (checked, every checksum included).
    out : str or Path
        The site folder (created or replaced when it holds a site), or with single_file the HTML file.
    single_file : bool
        Write one HTML file with everything inlined (for e-mail or supplementary material).

    Returns
    -------
    SiteReport
        Where the site is, its size in bytes and files, and how many settings it shows.

    Raises BundleError (exit code 3) for a damaged or foreign bundle and UsageError (2) for a target that is
    not a site; nothing is written then. Writing is atomic: the site is built in a temporary folder beside
    out and renamed into place.
    """
    catalog = bundles if isinstance(bundles, BundleCatalog) else open_catalog(bundles, verify=True)
    out = Path(out).expanduser().absolute()
    _check_target(out, single_file)
    plotly_js = _plotly_js()
    settings, parts = [], {}
    for entry in catalog.entries:
        data, files = _setting(catalog, entry)
        settings.append(data)
        parts[entry.id] = data
        parts.update(files)
    index = _index(catalog, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        if single_file:
            page = tmp / "page.html"
            page.write_text(_single_html(index, parts, plotly_js), encoding="utf-8")
            os.chmod(page, 0o644)
            _replace(page, out)
        else:
            _write_folder(tmp, index, parts, plotly_js)
            os.chmod(tmp, 0o755)
            _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = [out] if single_file else [p for p in out.rglob("*") if p.is_file()]
    return SiteReport(path=out, bytes=sum(p.stat().st_size for p in files), files=len(files),
                      settings=len(settings))
