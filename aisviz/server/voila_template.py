"""The dashboard's Voila template ("aisviz") and the page's one shared asset.

The template is Voila's lab template minus its Font Awesome CDN stylesheets, so that the served page
requests nothing outside its own server, plus a script that loads plotly's widget code (below). Voila
finds it on JUPYTER_PATH.

plotly's FigureWidget otherwise carries the whole 5 MB plotly.js bundle in its state, over the kernel
websocket, for every figure of every page. Under `aisviz serve`, kernels (AISVIZ_SHARED_ASSETS=1) point
their FigureWidgets at one file that the server serves (PLOTLY_ROUTE), and the page loads and runs that
module as soon as its head is read. anywidget gives a widget's code 2 s from the widget's creation to load
and initialise, then fails it for good ("[anywidget] Failed to initialize model"): a busy browser that
only began to fetch and compile 5 MB then missed it (8 pages opened at once on 2 busy cores: 5 of them
lost their charts; with the early load, none).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

TEMPLATE = "aisviz"
DATA_DIR = Path(__file__).resolve().parent / "jupyter_data"
PLOTLY_ROUTE = "aisviz/static/plotly-widget.js"   # below the base URL; index.html.j2 loads this path from its head
PLOTLY_STUB = """const url = new URL({path!r}, window.location.origin).href;
const mod = await import(url);
export default mod.default;
"""


def skip_iri_grammar() -> None:
    """A served kernel validates no notebook: keep jsonschema from importing its optional IRI checker
    (plotly.basewidget -> plotly.io -> nbformat -> jsonschema -> rfc3987_syntax), which builds lark grammars
    for 1.5 s of the page's open (measured on 2 busy cores). jsonschema skips the "iri" formats without it."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]  # None: `import` raises ImportError


def share_plotly_bundle() -> bool:
    """In a kernel started by `aisviz serve` (AISVIZ_SHARED_ASSETS=1), make plotly FigureWidgets load
    plotly's widget code from the server's file (the one the page loads from its head). Elsewhere (JupyterLab)
    nothing changes. True when the bundle is shared."""
    if os.environ.get("AISVIZ_SHARED_ASSETS") != "1":
        return False
    skip_iri_grammar()
    from plotly.basewidget import BaseFigureWidget

    base = os.environ.get("VOILA_BASE_URL") or "/"
    # anywidget takes the module as source text or as a path; plotly declares only Path
    BaseFigureWidget._esm = PLOTLY_STUB.format(  # pyright: ignore[reportAttributeAccessIssue]
        path=f"{base.rstrip('/')}/{PLOTLY_ROUTE}")
    return True


def voila_environment(env: dict | None = None) -> dict:
    """A copy of env (default: os.environ) for a Voila server of aisviz pages: the template's folder first on
    JUPYTER_PATH, and its kernels' FigureWidgets pointed at the plotly file the template's page loads early
    (AISVIZ_SHARED_ASSETS=1). The two go together: without the early load, a busy browser fails charts."""
    env = dict(os.environ if env is None else env)
    rest = env.get("JUPYTER_PATH", "")
    env["JUPYTER_PATH"] = os.pathsep.join([str(DATA_DIR)] + ([rest] if rest else []))
    env["AISVIZ_SHARED_ASSETS"] = "1"
    return env
