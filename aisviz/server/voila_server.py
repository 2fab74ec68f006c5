"""Voila with the limits a shared server needs; `aisviz serve` runs it as
`python -m aisviz.server.voila_server NOTEBOOK [Voila options]`.

What it adds to Voila 0.5.13 (each answers a way one visitor could hurt everyone else):
- kernel websockets must ask for the `v1.kernel.websocket.jupyter.org` subprotocol. With the legacy
  framing, Voila's `read_header_from_binary_message` reads the first 8 bytes of a legacy binary message
  as a count of offsets and loops for minutes while memory grows: the whole server freezes. Refused
  with HTTP 400 before the websocket opens (every browser running Voila's own page asks for v1);
- every incoming kernel-websocket frame is checked (aisviz.server.frames.frame_problem) before jupyter_server's
  `deserialize_msg_from_ws_v1` parses it: that function trusts the frame's offset count, and one 24-byte
  frame froze the whole server. A malformed frame closes that connection only; tornado's
  `websocket_max_message_size` is set to `--AisvizVoila.max_message_bytes`;
- fair admission (aisviz.server.admission): a cap on kernels serving visitors (`--AisvizVoila.max_kernels`; preheated
  kernels waiting in the pool do not count), kernels and page loads per visitor (`kernels_per_client`,
  `pages_per_minute`; a visitor is a hub user with `limit_by=user`, else an address). Past a limit the visitor
  gets a plain page (429, or 503 "server full") and no kernel is started. A kernel whose page does not connect
  its websocket within `claim_timeout` seconds is shut down (plain GETs cannot hold kernels);
- with `limit_by=user` (hub mode) a kernel is reachable only by the user it was started for: its websocket,
  /api/kernels/<id> and the shutdown beacon answer 404 to anyone else;
- the tab-close shutdown beacon works: Voila's page sends it without the `_xsrf` token, so stock Voila
  answers 403 and a closed tab's kernel lives until culled. The beacon still must come from this
  server's origin, and it names a kernel id (random, known only to the page that owns the kernel);
- the port: `--Voila.port_retries=0` is set by serve(), so Voila never moves silently to another port;
- plotly's widget code served as one file (PLOTLY_ROUTE, revalidated by its ETag), which the page loads
  from its head: see aisviz.server.voila_template (16 MB of websocket traffic per dashboard page
  before, 0.7 MB after);
- the page preloads the front-end extensions' remoteEntry files from its head (one wave of script fetches
  fewer), and their content-hashed files are cached for good (Voila has browsers revalidate every one on every
  page): aisviz.server.page_assets;
- behind JupyterHub (serve(hub_auth=True)): visitors log in through the hub (JupyterHub's identity
  provider and authorizer), and the OAuth callback lives under the service's URL prefix.
"""
from __future__ import annotations

import html
from typing import Any, cast

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import FileFindHandler
from jupyter_server.services.kernels.handlers import KernelHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop
from traitlets import Enum, Float, Int, Unicode
from voila.app import Voila
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from aisviz.server.admission import Admission, Limits
from aisviz.server.frames import MAX_FRAME_BYTES, frame_problem
from aisviz.server.page_assets import content_hashed, preload_urls
from aisviz.server.voila_template import PLOTLY_ROUTE

KERNEL_WS_PROTOCOL = "v1.kernel.websocket.jupyter.org"

REFUSED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>{title}</h1>
<p>{message}</p>
</body></html>
"""


def offered_subprotocols(request) -> list[str]:
    return [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


def client_key(handler) -> str:
    """Who a request comes from, for the per-client limits and kernel ownership: the hub user under
    --hub-auth (behind the hub's proxy every visitor has the same address), else the remote address."""
    if handler.settings.get("aisviz_limit_by") == "user":
        user = handler.current_user
        name = getattr(user, "username", None) or getattr(user, "name", None)
        if name:
            return f"user {name}"
    return f"address {handler.request.remote_ip}"


def admission(handler) -> Admission:
    """The server's Admission (see aisviz.server.admission)."""
    return handler.settings["aisviz_admission"]


def check_owner(handler, kernel_id: str) -> None:
    """404 (as for a kernel that does not exist) when the server checks ownership (hub mode) and the kernel was
    not started for this visitor."""
    if handler.settings.get("aisviz_limit_by") != "user" or handler.current_user is None:
        return          # not logged in: the handler's own authentication refuses
    if admission(handler).owner(kernel_id) != client_key(handler):
        handler.log.warning("refused %s access to a kernel that is not theirs", client_key(handler))
        raise web.HTTPError(404)


class GuardedKernelWebsocketHandler(VoilaKernelWebsocketHandler):
    """Voila's kernel websocket, refused (HTTP 400) unless the client asks for the v1 subprotocol, opened only
    by the kernel's owner (hub mode), and with every incoming frame checked by aisviz.server.frames.frame_problem
    before jupyter_server's deserialize_msg_from_ws_v1 parses it: a malformed frame closes that connection."""

    async def get(self, *args, **kwargs):
        if KERNEL_WS_PROTOCOL not in offered_subprotocols(self.request):
            self.log.warning("refused a kernel websocket without the %s subprotocol (legacy framing)",
                             KERNEL_WS_PROTOCOL)
            # a plain 400 (Jupyter's error template needs settings Voila does not have)
            self.set_status(400)
            self.finish(f"kernel websockets must use the {KERNEL_WS_PROTOCOL} subprotocol")
            return None
        kernel_id = kwargs.get("kernel_id", args[0] if args else "")
        check_owner(self, kernel_id)
        admission(self).claim(kernel_id)
        return await super().get(*args, **kwargs)

    def on_message(self, message):
        problem = frame_problem(message, self.max_message_size)
        if problem is not None:
            self.log.warning("closed a kernel websocket of %s: a malformed frame (%s)", client_key(self), problem)
            self.close(1008, "malformed kernel message")
            return None
        return super().on_message(message)


async def awaited(result: Any) -> Any:
    """The value of a handler method of jupyter_server or tornado: a coroutine (awaited) or None. Their
    @authenticated decorators declare it optionally awaitable."""
    return await result if result is not None else None


class OwnedKernelHandler(KernelHandler):
    """jupyter_server's /api/kernels/<id> (model, shutdown), for the kernel's owner only (hub mode)."""

    async def get(self, kernel_id):
        check_owner(self, kernel_id)
        return await awaited(super().get(kernel_id))

    async def delete(self, kernel_id):
        check_owner(self, kernel_id)
        return await awaited(super().delete(kernel_id))


class BeaconShutdownHandler(VoilaShutdownKernelHandler):
    """Voila's tab-close shutdown, accepted without the `_xsrf` token (the beacon cannot send it) but
    only from this server's origin, and (hub mode) from the kernel's owner."""

    def check_xsrf_cookie(self):
        if not hasattr(self, "_jupyter_current_user"):
            return          # called while authenticating (JupyterHub's cookie check): checked again later
        if not self.check_origin():
            raise web.HTTPError(404)

    async def post(self, kernel_id):
        check_owner(self, kernel_id)
        return await awaited(super().post(kernel_id))


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


class _PageKernels:
    """The kernel manager as one page request sees it: tells the Admission which kernel was started (or taken
    from the pool) for this page. Everything else goes to the real kernel manager."""

    def __init__(self, kernel_manager, on_start):
        self._km = kernel_manager
        self._on_start = on_start
        self.kernel_ids: list[str] = []

    def __getattr__(self, name):
        return getattr(self._km, name)

    def _record(self, kernel_id: str) -> None:
        self.kernel_ids.append(kernel_id)
        self._on_start(kernel_id)

    async def start_kernel(self, *args, **kwargs):
        kernel_id = await ensure_async(self._km.start_kernel(*args, **kwargs))
        self._record(kernel_id)
        return kernel_id

    async def get_rendered_notebook(self, *args, **kwargs):
        render_task, rendered_cache, kernel_id = await self._km.get_rendered_notebook(*args, **kwargs)
        self._record(kernel_id)
        return render_task, rendered_cache, kernel_id


class AdmittedVoilaHandler(TornadoVoilaHandler):
    """The page handler: renders the notebook (and starts its kernel) only when the Admission lets this visitor
    in, else a plain page (429 or 503) and no kernel. A kernel whose websocket does not connect within the
    claim timeout after its page is sent is shut down."""

    _page_kernels = None

    @property
    def kernel_manager(self):
        return self._page_kernels or self.settings["kernel_manager"]

    async def get(self, path=None):
        if self.current_user is None:          # the login redirect (hub mode) before any bookkeeping
            return await awaited(super().get(path))
        books, km = admission(self), self.settings["kernel_manager"]
        client = client_key(self)
        books.prune(km.list_kernel_ids())
        refusal = books.admit(client, busy_kernels(km))
        if refusal is not None:
            self.log.warning("refused a page to %s: %s (HTTP %d)", client, refusal.title, refusal.status)
            self.set_status(refusal.status)
            self.set_header("Retry-After", "60" if refusal.status == 429 else "120")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            message = (self.settings.get("aisviz_full_message") or refusal.message) if refusal.status == 503 \
                else refusal.message
            self.finish(REFUSED_PAGE.format(title=html.escape(refusal.title), message=html.escape(message)))
            return None
        self._page_kernels = _PageKernels(km, lambda kernel_id: books.started(kernel_id, client))
        try:
            return await awaited(super().get(path))
        finally:
            started = self._page_kernels.kernel_ids
            books.rendered(client, len(started))
            for kernel_id in started:
                IOLoop.current().call_later(books.limits.claim_timeout, reclaim_if_unclaimed, km, books,
                                            kernel_id, self.log)


async def reclaim_if_unclaimed(kernel_manager, books: Admission, kernel_id: str, log) -> None:
    """Shut the kernel down when no page has connected to it (its page was a plain GET, or was closed early)."""
    if not books.unclaimed(kernel_id) or kernel_id not in kernel_manager.list_kernel_ids():
        return
    log.warning("reclaimed kernel %s: its page (%s) did not connect within %.0f s", kernel_id,
                books.owner(kernel_id), books.limits.claim_timeout)
    books.forget(kernel_id)
    await ensure_async(kernel_manager.shutdown_kernel(kernel_id))


class LabextensionHandler(FileFindHandler):
    """The front-end extensions' files (/voila/labextensions/), those named by their content's hash cached for
    good. Voila marks every one "no-cache": a returning browser asked again for each (a 304 apiece, some 20
    per page)."""

    def set_headers(self):
        super().set_headers()
        if content_hashed(self.request.path, self.request.arguments):
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")


def preload_page_config(page_config: dict, base_url: str, **_) -> dict:
    """Voila's page_config_hook: the scripts the template's head preloads (aisviz.server.page_assets)."""
    page_config["aisvizPreload"] = preload_urls(page_config.get("baseUrl") or base_url, page_config)
    return page_config


REPLACEMENTS = {VoilaKernelWebsocketHandler: GuardedKernelWebsocketHandler,
                VoilaShutdownKernelHandler: BeaconShutdownHandler,
                KernelHandler: OwnedKernelHandler,
                TornadoVoilaHandler: AdmittedVoilaHandler,
                FileFindHandler: LabextensionHandler}


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
    kernels_per_client = Int(0, config=True, help="most kernels one visitor may hold (0 = no limit)")
    pages_per_minute = Int(0, config=True, help="most page loads per visitor and minute (0 = no limit)")
    claim_timeout = Float(45.0, config=True, help="seconds after its page is sent within which a kernel's "
                          "websocket must connect, else the kernel is shut down")
    limit_by = Enum(["address", "user"], "address", config=True,
                    help="what a visitor is for the limits: their address, or (behind JupyterHub) their hub user, "
                         "who then also owns their kernels")
    max_message_bytes = Int(MAX_FRAME_BYTES, config=True, help="largest kernel-websocket message accepted")
    full_message = Unicode("", config=True, help="text of the 'server full' page")

    def init_settings(self):
        own_hook = self.voila_configuration.page_config_hook
        self.voila_configuration.page_config_hook = preload_page_config if own_hook is None else \
            (lambda page_config, **kw: preload_page_config(own_hook(page_config, **kw), **kw))
        settings = cast(dict, super().init_settings())  # Voila annotates it with the traitlet Dict
        settings["aisviz_admission"] = Admission(Limits(
            max_kernels=max(0, int(self.max_kernels)), per_client=max(0, int(self.kernels_per_client)),
            pages_per_minute=max(0, int(self.pages_per_minute)), claim_timeout=max(1.0, float(self.claim_timeout))))
        settings["aisviz_limit_by"] = self.limit_by
        settings["aisviz_full_message"] = self.full_message
        # tornado closes a websocket whose message is larger (frame_problem checks it again)
        settings["websocket_max_message_size"] = max(1024, int(self.max_message_bytes))
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
