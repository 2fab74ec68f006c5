"""What the served page is told to fetch early, and which of its files a browser may keep.

Voila's page fetches its scripts in waves, each only once the scripts of the one before have run: voila.js,
its chunks, the front-end extensions' remoteEntry files, their chunks, and (kernel connected) more chunks.
The remoteEntry files are known when the page is rendered (Voila's page_config lists the extensions it
loads), so the aisviz template names them in `<link rel="preload">` links: one wave fewer.

Preloading every script the page fetches (recorded as pages fetched them) was measured and not kept: on the
busy 2-core machine the page is bound by its main thread (plotly's module, Voila's and the widget managers'
code), not by the waves (0.2 s of network waits in a 5 s preheated open), and 95 preloads at once competed
for the cores with it (docs/performance.md, "Page open, broken down").

The extensions' files named by their content's hash are served as immutable (Voila marks every file of
/voila/labextensions/ "no-cache": a returning browser asked again for each, a 304 apiece).
"""
from __future__ import annotations

import re

# a file named with its content's hash ("remoteEntry.c8c9eed2cdefdeac.js", "2.3dbf81c0.js"); JupyterLab's
# federated runtime also asks for "7.2a0ce575775f5aad.js?v=2a0ce575775f5aad"
CONTENT_HASHED = re.compile(r"\.[0-9a-f]{8,}\.js$")


def content_hashed(path: str, query: dict) -> bool:
    """True for a script whose URL changes whenever its content does: a browser may keep it for good."""
    return bool(CONTENT_HASHED.search(path)) or bool(query.get("v"))


def remote_entries(page_config: dict) -> list[str]:
    """The federated extensions' remoteEntry files that Voila's page loads (URL paths below the base URL)."""
    return [f"voila/labextensions/{ext['name']}/{ext['load']}"
            for ext in page_config.get("federated_extensions", []) if ext.get("name") and ext.get("load")]


def preload_urls(base_url: str, page_config: dict) -> list[str]:
    """Absolute URL paths the page's head preloads."""
    base = base_url.rstrip("/") + "/"
    return [base + url for url in remote_entries(page_config)]
