"""aisviz.server.page_assets: the scripts a page will fetch, recorded as served and named in later pages' heads."""
from __future__ import annotations

import json

from aisviz.server.page_assets import PageAssets, content_hashed, fingerprint, remote_entries

CHUNK = "voila/static/5764.voila.js"
EXT_CHUNK = "voila/labextensions/@jupyter-widgets/jupyterlab-manager/static/7.2a0ce575775f5aad.js?v=2a0ce575775f5aad"


def _assets(tmp_path, key="k1", installed=None):
    installed = {CHUNK, EXT_CHUNK.split("?")[0]} if installed is None else installed
    return PageAssets(tmp_path / "page-assets.json", key, lambda url: url in installed)


def test_scripts_served_after_a_page_are_kept_in_order_and_named_by_a_later_server(tmp_path):
    assets = _assets(tmp_path)
    assets.served("10.0.0.1", CHUNK)                  # no page sent to that address yet: not recorded
    assert assets.scripts == {}
    assets.page_sent("10.0.0.1")
    assets.served("10.0.0.1", EXT_CHUNK)
    assets.served("10.0.0.1", CHUNK)
    assets.served("10.0.0.1", "voila/api/shutdown/x.js")   # not a script folder: not recorded
    assert assets.preloads("/hub/aisviz/", ["voila/labextensions/a/static/remoteEntry.1234abcd.js", CHUNK]) == [
        "/hub/aisviz/voila/labextensions/a/static/remoteEntry.1234abcd.js", f"/hub/aisviz/{CHUNK}",
        f"/hub/aisviz/{EXT_CHUNK}"]
    assert list(_assets(tmp_path).scripts) == [EXT_CHUNK, CHUNK]       # a restarted server knows them


def test_a_new_front_end_or_a_removed_file_drops_the_recorded_names(tmp_path):
    assets = _assets(tmp_path)
    assets.page_sent("a")
    assets.served("a", CHUNK)
    assets.served("a", EXT_CHUNK)
    assert _assets(tmp_path, key="k2").scripts == {}                           # another Voila or extension
    assert list(_assets(tmp_path, installed={CHUNK}).scripts) == [CHUNK]       # a file gone after an upgrade
    (tmp_path / "page-assets.json").write_text("{not json")
    assert _assets(tmp_path).scripts == {}


def test_only_urls_that_change_with_their_content_are_cached_for_good():
    assert content_hashed("/voila/labextensions/x/static/remoteEntry.c8c9eed2cdefdeac.js", {})
    assert content_hashed("/voila/labextensions/anywidget/static/2.3dbf81c0.js", {})
    assert content_hashed("/voila/labextensions/x/static/7.js", {"v": [b"2a0ce575775f5aad"]})
    assert not content_hashed("/voila/labextensions/x/static/style.js", {})
    assert not content_hashed("/voila/labextensions/x/package.json", {})


def test_the_fingerprint_changes_with_an_extension_build_and_the_remote_entries_come_from_page_config():
    ext = {"name": "anywidget", "version": "0.11.0", "jupyterlab": {"_build": {"load": "static/remoteEntry.aa.js"}}}
    rebuilt = json.loads(json.dumps(ext))
    rebuilt["jupyterlab"]["_build"]["load"] = "static/remoteEntry.bb.js"
    assert fingerprint("0.5.13", [ext]) != fingerprint("0.5.13", [rebuilt]) != fingerprint("0.6.0", [rebuilt])
    config = {"federated_extensions": [{"name": "anywidget", "load": "static/remoteEntry.aa.js"}, {"name": "x"}]}
    assert remote_entries(config) == ["voila/labextensions/anywidget/static/remoteEntry.aa.js"]


def test_a_script_is_recorded_under_one_name_only():
    """A visitor cannot make later pages preload one file many times (other queries, spellings of the path)."""
    from aisviz.server.page_assets import script_url

    assert script_url(CHUNK) and script_url(EXT_CHUNK)
    assert script_url("voila/labextensions/anywidget/static/2.3dbf81c0.js")
    for other in (CHUNK + "?v=1234abcd", CHUNK + "?x=1", EXT_CHUNK.replace("?v=2a0c", "?v=ffff"),
                  "voila/static//5764.voila.js", "voila/static/./5764.voila.js", "voila/static/../x.js",
                  "voila/static/index.css", "api/kernels/x.js"):
        assert not script_url(other), other
