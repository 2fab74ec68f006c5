"""Fair kernel admission for `aisviz serve`: who may start a kernel, and whose kernel is whose.

Each page load starts a kernel (a viewer kernel: the figure measured in viewer_memory.json; a researcher kernel
1.3-1.4 GB), so page loads are what one visitor could use to lock everyone else out. The server
(aisviz.server.voila_server) asks an `Admission` before it renders a page:
- a cap on the kernels serving visitors, all together (503 "server full" past it);
- per client (a hub user under --hub-auth, else an address): at most `per_client` kernels and `pages_per_minute`
  page loads (429 "too many" past either);
- a kernel whose page has not connected its websocket `claim_timeout` seconds after the page was sent is
  reclaimed (a plain GET, a script, a tab closed while loading), so unclaimed kernels live seconds, not until
  the idle cull;
- the owner of each kernel, for the routes that reach a kernel by its id (hub mode: only its owner may).
This module keeps the books; the server's handlers act on them.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The admission limits (0 = no limit)."""

    max_kernels: int = 0
    per_client: int = 0
    pages_per_minute: int = 0
    claim_timeout: float = 45.0


@dataclass(frozen=True)
class Refusal:
    """Why a page was refused: the HTTP status and a plain sentence for the visitor."""

    status: int
    title: str
    message: str


class Admission:
    """The books of one server: kernel owners, reservations of pages being rendered, recent page loads, and
    which kernels a page has connected to. Runs on the server's event loop (no locks needed)."""

    def __init__(self, limits: Limits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self.owners: dict[str, str] = {}           # kernel id -> client
        self.claimed: set[str] = set()
        self.rendering: Counter = Counter()         # client -> pages being rendered (kernel not yet known)
        self.pages: dict[str, deque] = {}           # client -> times of its recent admitted page loads

    def prune(self, live_ids) -> None:
        """Forget kernels that no longer run."""
        live = set(live_ids)
        for kernel_id in [k for k in self.owners if k not in live]:
            self.forget(kernel_id)

    def kernels_of(self, client: str) -> int:
        """Kernels the client holds, counting pages still being rendered."""
        return sum(owner == client for owner in self.owners.values()) + self.rendering[client]

    def admit(self, client: str, busy: int) -> Refusal | None:
        """Admit a page load of this client (and reserve its kernel: call `rendered` when the page is done), or
        say why not. busy: the kernels serving visitors now (not counting pages being rendered)."""
        limits, now = self.limits, self.clock()
        recent = self.pages.setdefault(client, deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if limits.pages_per_minute and len(recent) >= limits.pages_per_minute:
            return Refusal(429, "Too many page loads", f"You opened this dashboard {len(recent)} times in the last "
                           "minute, the most this server allows. Please wait a minute, then reload.")
        if limits.per_client and self.kernels_of(client) >= limits.per_client:
            return Refusal(429, "Too many open dashboards", f"You already have {self.kernels_of(client)} dashboards "
                           "open, the most this server allows one visitor. Close a tab of an earlier visit, wait a "
                           "minute, then reload.")
        if limits.max_kernels and busy + sum(self.rendering.values()) >= limits.max_kernels:
            return Refusal(503, "Server full", "This dashboard already has as many visitors as the server can "
                           "hold. Please try again in a few minutes. Closing the tab of an earlier visit frees "
                           "its place.")
        recent.append(now)
        self.rendering[client] += 1
        return None

    def started(self, kernel_id: str, client: str) -> None:
        """A kernel was started (or taken from the pool) for a page of this client."""
        self.owners[kernel_id] = client
        if self.rendering[client] > 0:
            self.rendering[client] -= 1

    def rendered(self, client: str, started: int) -> None:
        """A page of this client is done; started: how many kernels it started (its reservation, if unused, ends)."""
        if not started and self.rendering[client] > 0:
            self.rendering[client] -= 1
        if not self.rendering[client]:
            del self.rendering[client]
        if client in self.pages and not self.pages[client]:
            del self.pages[client]

    def claim(self, kernel_id: str) -> None:
        """A page connected its websocket to this kernel."""
        self.claimed.add(kernel_id)

    def unclaimed(self, kernel_id: str) -> bool:
        """True when the kernel is known and no page ever connected to it."""
        return kernel_id in self.owners and kernel_id not in self.claimed

    def owner(self, kernel_id: str) -> str | None:
        """The client a kernel was started for (None: not started for a page, e.g. still in the pool)."""
        return self.owners.get(kernel_id)

    def forget(self, kernel_id: str) -> None:
        """The kernel has ended."""
        self.owners.pop(kernel_id, None)
        self.claimed.discard(kernel_id)
