"""Voila with the limits a shared server needs; `aisviz serve` runs it as
`python -m aisviz.server.voila_server NOTEBOOK [Voila options]`.

What it adds to Voila 0.5.13 (each answers a way one visitor could hurt everyone else):
- kernel websockets must ask for the `v1.kernel.websocket.jupyter.org` subprotocol. With the legacy
  framing, Voila's `read_header_from_binary_message` reads the first 8 bytes of a legacy binary message
  as a count of offsets and loops for minutes while memory grows: the whole server freezes. Refused
  with HTTP 400 before the websocket opens (every browser running Voila's own page asks for v1);
- a cap on live kernels (`--AisvizVoila.max_kernels`): past it a new visitor gets a plain
  "server full" page (HTTP 503) and no kernel is started. Preheated kernels waiting in the pool do not
  count: they are handed to the next visitor;
- the tab-close shutdown beacon works: Voila's page sends it without the `_xsrf` token, so stock Voila
  answers 403 and a closed tab's kernel lives until culled. The beacon still must come from this
  server's origin, and it names a kernel id (random, known only to the page that owns the kernel);
- the port: `--Voila.port_retries=0` is set by serve(), so Voila never moves silently to another port;
- plotly's widget code served as one file (PLOTLY_ROUTE, revalidated by its ETag), which the page loads
  from its head: see aisviz.server.voila_template (16 MB of websocket traffic per dashboard page
  before, 0.7 MB after);
- behind JupyterHub (serve(hub_auth=True)): visitors log in through the hub (JupyterHub's identity
  provider and authorizer), and the OAuth callback lives under the service's URL prefix.
"""
from __future__ import annotations

import html
from typing import cast

from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Int, Unicode
from voila.app import Voila
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from aisviz.server.voila_template import PLOTLY_ROUTE

KERNEL_WS_PROTOCOL = "v1.kernel.websocket.jupyter.org"

FULL_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Server full</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Server full</h1>
<p>{message}</p>
<p>Please try again in a few minutes. Closing the tab of an earlier visit frees its place.</p>
</body></html>
"""


def offered_subprotocols(request) -> list[str]:
    return [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


class V1OnlyKernelWebsocketHandler(VoilaKernelWebsocketHandler):
    """Voila's kernel websocket, refused (HTTP 400) unless the client asks for the v1 subprotocol."""

    async def get(self, *args, **kwargs):
        if KERNEL_WS_PROTOCOL not in offered_subprotocols(self.request):
            self.log.warning("refused a kernel websocket without the %s subprotocol (legacy framing)",
                             KERNEL_WS_PROTOCOL)
            # a plain 400 (Jupyter's error template needs settings Voila does not have)
            self.set_status(400)
            self.finish(f"kernel websockets must use the {KERNEL_WS_PROTOCOL} subprotocol")
            return None
        return await super().get(*args, **kwargs)


class BeaconShutdownHandler(VoilaShutdownKernelHandler):
    """Voila's tab-close shutdown, accepted without the `_xsrf` token (the beacon cannot send it) but
    only from this server's origin."""

    def check_xsrf_cookie(self):
        if not hasattr(self, "_jupyter_current_user"):
            return          # called while authenticating (JupyterHub's cookie check): checked again later
        if not self.check_origin():
            raise web.HTTPError(404)


def busy_kernels(kernel_manager) -> int:
    """Kernels serving a visitor: every kernel minus those preheated and still waiting in the pool."""
    ids = set(kernel_manager.list_kernel_ids())
    waiting, pending = set(), 0
    for pool in getattr(kernel_manager, "_pools", {}).values():
        for task in pool:
            if task.done() and not task.cancelled() and task.exception() is None:
                waiting.add(task.result().get("kernel_id"))
            else:
                pending += 1
    return max(0, len(ids - waiting) - pending)


class CappedVoilaHandler(TornadoVoilaHandler):
    """The page handler: serves the notebook unless max_kernels kernels are already busy."""

    async def get(self, path=None):
        cap = self.settings.get("aisviz_max_kernels", 0)
        if cap and busy_kernels(self.kernel_manager) >= cap:
            self.log.warning("server full: %d kernels busy (cap %d); a visitor got the 'server full' page",
                             busy_kernels(self.kernel_manager), cap)
            self.set_status(503)
            self.set_header("Retry-After", "120")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            message = self.settings.get("aisviz_full_message") or (
                "This dashboard already has as many visitors as the server can hold.")
            self.finish(FULL_PAGE.format(message=html.escape(message)))
            return
        page = super().get(path)  # tornado's @authenticated declares the coroutine as optionally awaitable
        if page is not None:
            await page


REPLACEMENTS = {VoilaKernelWebsocketHandler: V1OnlyKernelWebsocketHandler,
                VoilaShutdownKernelHandler: BeaconShutdownHandler,
                TornadoVoilaHandler: CappedVoilaHandler}


class PlotlyBundleHandler(web.StaticFileHandler):
    """plotly's FigureWidget bundle (only that file). Its URL has no version, so browsers revalidate it
    (ETag: a 304 unless plotly changed) instead of keeping an old copy after an upgrade."""

    @classmethod
    def get_absolute_path(cls, root, path):
        return str(plotly_bundle())

    def validate_absolute_path(self, root, absolute_path):
        return absolute_path

    def set_extra_headers(self, path):
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")


def plotly_bundle():
    """The file plotly's FigureWidget loads in the browser (its anywidget ES module)."""
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("plotly")
    assert spec is not None and spec.origin is not None, "plotly is a dependency of the server"
    return Path(spec.origin).parent / "package_data" / "widgetbundle.js"


class AisvizVoila(Voila):
    """Voila with the handlers above in place of its own."""

    max_kernels = Int(0, config=True, help="most kernels serving visitors at once (0 = no cap)")
    full_message = Unicode("", config=True, help="text of the 'server full' page")

    def init_settings(self):
        settings = cast(dict, super().init_settings())  # Voila annotates it with the traitlet Dict
        settings["aisviz_max_kernels"] = max(0, int(self.max_kernels))
        settings["aisviz_full_message"] = self.full_message
        return settings

    def init_handlers(self):
        # Voila adds the identity provider's handlers (/login, /logout, JupyterHub's /oauth_callback) without
        # the base URL; behind JupyterHub they must live under it (/services/aisviz/oauth_callback).
        identity_paths = {spec[0] for spec in self.identity_provider.get_handlers()}
        handlers = []
        for spec in cast(list, super().init_handlers()):  # annotated with the traitlet List
            if len(spec) >= 2 and spec[1] in REPLACEMENTS:
                spec = (spec[0], REPLACEMENTS[spec[1]], *spec[2:])
            if spec[0] in identity_paths and self.base_url != "/":
                spec = (url_path_join(self.base_url, spec[0]), *spec[1:])
            handlers.append(spec)
        handlers.insert(0, (url_path_join(self.base_url, PLOTLY_ROUTE) + "()", PlotlyBundleHandler, {"path": "/"}))
        return handlers


main = AisvizVoila.launch_instance

if __name__ == "__main__":
    main()
