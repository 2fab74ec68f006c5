"""The page fetches the extensions' remoteEntry files through the preload links in its head (issue 19:
aisviz.server.page_assets), once each, in a real browser: a Voila server of aisviz.server.voila_server with a
one-widget notebook (light kernels) and headless Chromium. Fetched outside a preload they are a wave of
their own (once voila.js and its chunks have run); fetched twice, the preload was of no use."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from dashboard_pages import CHROMIUM, CHROMIUM_ARGS, ROOT, new_page, server_process
from serve_helpers import free_port, write_tiny_notebook

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
              pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                     for m in ("voila", "playwright")), reason="needs the app and test extras")]

SCRIPTS_JS = r"""() => performance.getEntriesByType('resource')
    .filter(r => /\/voila\/(static|labextensions)\/.*\.js(\?|$)/.test(r.name))
    .map(r => [r.name.replace(location.origin, ''), r.initiatorType])"""


def _open(browser, port: int) -> tuple[list, list]:
    """The page's scripts of Voila and its extensions ([url, initiator]) and its console errors."""
    page = new_page(browser, port)
    try:
        page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        page.wait_for_selector("img.tiny-image", state="attached", timeout=120_000)
        page.wait_for_timeout(500)
        return page.evaluate(SCRIPTS_JS), list(page.errors) + list(page.outside)
    finally:
        page.context.close()


def test_the_remote_entries_come_through_their_preloads_once(tmp_path):
    from playwright.sync_api import sync_playwright

    from aisviz.server.serve import voila_command
    from aisviz.server.voila_template import voila_environment

    port = free_port()
    env = voila_environment(dict(os.environ, AISVIZ_HOME=str(tmp_path / "home")))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with server_process(voila_command(port=port, notebook=write_tiny_notebook(tmp_path)), env,
                        tmp_path / "voila.log", port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        scripts, problems = _open(browser, port)
        browser.close()
    assert problems == []
    urls = [url for url, _ in scripts]
    assert len(urls) >= 20 and sorted(urls) == sorted(set(urls)), "a script fetched twice"
    entries = [(url, how) for url, how in scripts if "/labextensions/" in url and "/remoteEntry." in url]
    assert len(entries) >= 3 and [e for e in entries if e[1] != "link"] == []
