"""The idle cull that never takes a kernel from a page being given it (`aisviz serve` sets it as Voila's
`VoilaConfiguration.multi_kernel_manager_class`).

Voila exempts kernels waiting in the preheated pool from the cull, but not a kernel just handed out: its
idle clock started when it was preheated, maybe long ago, and until the page's websocket connects it has
no connection. A cull pass in that window shut it down (seen: "Using pre-heated kernel: ce21b027", then
"Culling 'idle' kernel ... ce21b027 with 0 connections due to 1469 seconds"): the page showed raw widget
text and "Loading widget..." forever.

Here a kernel that has never had a connection is culled only `connect_grace` seconds (default 600, or the
idle timeout if longer) after a cull pass first saw it outside the pool, so a page has that long to
connect, however busy the server (a class arriving at once on 2 cores took more than 20 s); once
connected, jupyter-server's rules apply (with `cull_connected=False`, a kernel with an open tab is never
culled). A page that never connects (closed while loading) costs its kernel for that long.
"""
from __future__ import annotations

import time

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Int


class HandoutGraceKernelManager(AsyncMappingKernelManager):
    """AsyncMappingKernelManager whose idle cull gives a never-connected kernel connect_grace seconds from the
    first cull pass that sees it outside the pool (see the module docstring)."""

    connect_grace = Int(600, config=True, help="seconds a kernel handed to a page may wait for the page to "
                                               "connect before the idle cull may take it")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._pass = 0
        # kernel id -> (when a pass first saw it unconnected, the last pass that saw it)
        self._unconnected: dict[str, tuple[float, int]] = {}
        self._connected_once: set[str] = set()

    async def cull_kernels(self):
        """One cull pass (numbered, so that a kernel the pool hid from the last pass counts as new)."""
        self._pass += 1
        live = set(self._kernels)
        self._unconnected = {k: v for k, v in self._unconnected.items() if k in live}
        self._connected_once &= live
        return await super().cull_kernels()

    def notify_connect(self, kernel_id):
        """A page connected: from now on the kernel is culled by jupyter-server's rules (also when the page
        connects and leaves between two cull passes)."""
        self._connected_once.add(kernel_id)
        super().notify_connect(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id: str):
        """Skip a kernel no page has connected to yet, for connect_grace seconds; else cull as usual."""
        if kernel_id not in self._connected_once:
            now = time.monotonic()
            first_seen, last_pass = self._unconnected.get(kernel_id, (now, -1))
            if last_pass != self._pass - 1:      # not seen by the previous pass: new, or just out of the pool
                first_seen = now
            self._unconnected[kernel_id] = (first_seen, self._pass)
            if now - first_seen < max(self.connect_grace, self.cull_idle_timeout):
                return None
        return await super().cull_kernel_if_idle(kernel_id)
