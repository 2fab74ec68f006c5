"""aisviz.server.page_assets: what the served page preloads, and which of its files a browser may keep."""
from __future__ import annotations

from aisviz.server.page_assets import content_hashed, preload_urls


def test_only_urls_that_change_with_their_content_are_cached_for_good():
    assert content_hashed("/voila/labextensions/x/static/remoteEntry.c8c9eed2cdefdeac.js", {})
    assert content_hashed("/voila/labextensions/anywidget/static/2.3dbf81c0.js", {})
    assert content_hashed("/voila/labextensions/x/static/7.js", {"v": [b"2a0ce575775f5aad"]})
    assert not content_hashed("/voila/labextensions/x/static/style.js", {})
    assert not content_hashed("/voila/labextensions/x/package.json", {})


def test_the_preloads_are_the_remote_entries_of_the_extensions_the_page_loads():
    config = {"federated_extensions": [{"name": "anywidget", "load": "static/remoteEntry.aa.js"},
                                       {"name": "@jupyter-widgets/jupyterlab-manager",
                                        "load": "static/remoteEntry.bb.js"}, {"name": "no-load"}]}
    assert preload_urls("/services/aisviz/", config) == [
        "/services/aisviz/voila/labextensions/anywidget/static/remoteEntry.aa.js",
        "/services/aisviz/voila/labextensions/@jupyter-widgets/jupyterlab-manager/static/remoteEntry.bb.js"]
    assert preload_urls("/", {}) == []
