"""The scripts a dashboard page will fetch, named in its head so that the browser fetches them at once.

Voila's page fetches about 90 scripts in waves, each only once the scripts of the one before have run:
voila.js, its chunks, the widget extensions' remoteEntry files, their chunks, and (kernel connected) more
chunks. Meanwhile the browser's network is mostly idle: while plotly's module evaluates (1-3 s on a busy
2-core machine) and, on a page whose kernel still runs the notebook, until the HTML ends (seconds). With
`<link rel="preload">` for each script in the head (aisviz template), every wave finds its files fetched.

Which scripts: the federated extensions' remoteEntry files (Voila's page_config names them), and every
script of Voila's static folder or of an extension's that a page of this server, or of an earlier server
with the same front end installed, fetched. They are recorded as they are served (only for an address that
was sent a page within PAGE_WINDOW seconds, each file under one name, at most MAX_ASSETS) and kept in
<AISVIZ_HOME>/app/page-assets.json under a fingerprint of the installed front end (Voila's version, the
extensions' versions and remoteEntry file names, which change with every build of an extension): an
upgrade starts a fresh list, and a name whose file is gone is dropped when the list is read. A hand-written
list would go stale with any upgrade, and Voila's webpack chunk graph cannot be read from Python. The
first page after an upgrade fetches in waves.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable, Iterable

PAGE_WINDOW = 120.0   # seconds after a page is sent during which its address's script requests are recorded
MAX_ASSETS = 400      # scripts recorded at most (Voila 0.5 with the widget extensions: about 90 per page)
SAVE_DELAY = 2.0      # seconds from a newly recorded script to writing the list (one write per page's burst)
# a script of Voila's or of an extension's, spelt once: no "..", "//" or "/./", and a query only as JupyterLab's
# runtime writes it (v= the hash in the file's name), so one file cannot be recorded under many names
SCRIPT_URL = re.compile(r"^voila/(?:static|labextensions)/(?:[\w@.+-]+/)*[\w@+-][\w@.+-]*\.js(?:\?v=([0-9a-f]{8,}))?$")
# a file named with its content's hash ("remoteEntry.c8c9eed2cdefdeac.js", "2.3dbf81c0.js"), or a request
# that carries it (JupyterLab's federated runtime asks for "7.2a0ce575775f5aad.js?v=2a0ce575775f5aad")
CONTENT_HASHED = re.compile(r"\.[0-9a-f]{8,}\.js$")


def script_url(url: str) -> bool:
    """True for a URL (relative to the base URL) that may be recorded (see SCRIPT_URL)."""
    m = SCRIPT_URL.match(url)
    if m is None or "/./" in url or "/../" in url:
        return False
    return m.group(1) is None or f".{m.group(1)}." in url.split("?")[0]


def content_hashed(path: str, query: dict) -> bool:
    """True for a script whose URL changes whenever its content does: a browser may keep it for good."""
    return bool(CONTENT_HASHED.search(path)) or bool(query.get("v"))


def fingerprint(voila_version: str, federated_extensions: Iterable[dict]) -> str:
    """What the recorded list is valid for: Voila's version and the installed extensions' names, versions and
    remoteEntry files (jupyterlab_server's get_federated_extensions() values)."""
    entries = sorted(f"{ext.get('name')} {ext.get('version')} "
                     f"{(ext.get('jupyterlab') or {}).get('_build', {}).get('load')}" for ext in federated_extensions)
    return "; ".join([f"voila {voila_version}", *entries])


class PageAssets:
    """The scripts pages of this server fetch (relative to the base URL, in the order first fetched)."""

    def __init__(self, path: Path | None, key: str, exists: Callable[[str], bool],
                 schedule: Callable[[float, Callable[[], None]], object] | None = None):
        """path: where the list is kept (None: not kept); key: fingerprint(); exists(relative url): whether
        that file is installed; schedule(delay, fn): runs fn later (the server's event loop; None: at once)."""
        self.path, self.key, self.exists, self.schedule = path, key, exists, schedule
        self.scripts: dict[str, None] = {}      # an ordered set
        self._pages: dict[str, float] = {}      # address -> when it was last sent a page
        self._save_pending = False
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return                               # unreadable: learnt again
        if not isinstance(stored, dict) or stored.get("key") != self.key:
            return                               # another front end installed: learnt again
        for url in stored.get("scripts", [])[:MAX_ASSETS]:
            if isinstance(url, str) and script_url(url) and self.exists(url.split("?")[0]):
                self.scripts[url] = None

    def page_sent(self, address: str) -> None:
        """A page went to this address: its script requests in the next PAGE_WINDOW seconds are recorded."""
        now = time.monotonic()
        self._pages = {a: t for a, t in self._pages.items() if now - t < PAGE_WINDOW}
        self._pages[address] = now

    def served(self, address: str, url: str) -> None:
        """A script (url relative to the base URL, with its query) was served to address (200 or 304)."""
        sent = self._pages.get(address)
        if sent is None or time.monotonic() - sent >= PAGE_WINDOW or url in self.scripts:
            return
        if not script_url(url) or len(self.scripts) >= MAX_ASSETS:
            return
        self.scripts[url] = None
        if self.path is not None and not self._save_pending:
            self._save_pending = True
            if self.schedule is None:
                self._save()
            else:
                self.schedule(SAVE_DELAY, self._save)

    def _save(self) -> None:
        from aisviz.io.storage import atomic_write_text

        self._save_pending = False
        if self.path is None:
            return
        try:
            atomic_write_text(self.path, json.dumps({"key": self.key, "scripts": list(self.scripts)}, indent=0))
        except OSError:
            pass                                 # a read-only home: pages still get this server's list

    def preloads(self, base_url: str, remote_entries: Iterable[str] = ()) -> list[str]:
        """Absolute URL paths to preload: the remoteEntry files (relative urls), then the recorded scripts."""
        base = base_url.rstrip("/") + "/"
        return [base + url for url in dict.fromkeys([*remote_entries, *self.scripts])]


def remote_entries(page_config: dict) -> list[str]:
    """The federated extensions' remoteEntry files that Voila's page loads (relative to the base URL)."""
    return [f"voila/labextensions/{ext['name']}/{ext['load']}"
            for ext in page_config.get("federated_extensions", []) if ext.get("name") and ext.get("load")]
