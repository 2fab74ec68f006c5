"""The dashboard's session: result caches and a job runner, with no widget imports.

`Session.request(settings)` either answers from memory at once or queues a job on one worker thread.
The newest request wins: a running job that has been superseded stops at its next progress report
(within a chunk of maps, a chunk of k values or a saliency map), and what it finished stays cached.
The listener's callbacks (`progress`, `finished`, `failed`) are called on the worker thread; the
Dashboard hands them to the kernel's main thread before touching any widget.

Results can come from another source than computing: pass `compute=` (settings, report) -> result, or
`Session.add(settings, result)` to put a finished Result in memory (a read-only viewer).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from aisviz.errors import UsageError
from aisviz.models.networks import list_layers
from aisviz.pipeline.compute import Memo, checked_dataset, result_for
from aisviz.pipeline.settings import Settings

log = logging.getLogger("aisviz.app")

RESULTS_IN_MEMORY = 3        # fitted scorers and results (the big objects) kept in memory

# The job's stages and the share of the progress bar each gets (measured shares of a cold run of the
# default set on 2 CPU cores, rounded).
STAGES = {"data": (0.0, 0.03), "network": (0.03, 0.07), "features": (0.07, 0.40), "validation": (0.40, 0.88),
          "saliency": (0.88, 0.96), "views": (0.96, 1.0)}


class Superseded(Exception):
    """A newer request replaced the running job."""


class Session:
    """Caches and the job runner. listener: an object with progress(job, stage, fraction, text),
    finished(job, result) and failed(job, exc) (job = the request's number). run_async=False computes in
    the calling thread (tests, scripts)."""

    def __init__(self, listener, run_async: bool = True, compute=None, given: dict | None = None,
                 keep_results: bool = True):
        self.listener = listener
        self.run_async = run_async
        self.compute = compute or self._compute
        self.keep_results = keep_results         # read and write the disk cache of results (result_cache)
        self.given = dict(given or {})          # dataset key -> ComparisonSet passed in by the caller
        self.data_roots: list[Path] = []         # data roots added in this dashboard, searched first
        self.layers: dict = {}                   # model -> list_layers rows (plain dicts)
        self._lock = threading.Lock()
        self._job = 0                            # number of the newest request
        self._pending = None                     # (job, settings, clicked_at) waiting for the worker
        self._running = None                     # job number the worker is on
        self._worker: threading.Thread | None = None
        self.memo = Memo({"scorer": RESULTS_IN_MEMORY, "result": RESULTS_IN_MEMORY})
        self._alias: dict = {}                   # requested Settings -> resolved Settings

    # -- requests

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._pending is not None or self._running is not None

    def cached(self, settings: Settings):
        with self._lock:
            key = self._alias.get(settings, settings)
        return self.memo.get("result", key)

    def add(self, settings: Settings, result) -> None:
        """Keep a finished result in memory under the settings that ask for it (and its own)."""
        self.memo.put("result", result.settings, result)
        with self._lock:
            self._alias[settings] = result.settings
            self._alias[result.settings] = result.settings

    def request(self, settings: Settings, clicked_at: float | None = None) -> int:
        """Ask for the result of these settings; returns the request's job number. A result in memory is
        delivered at once (listener.finished, in this thread); otherwise a job is queued."""
        if settings.dataset is None:
            raise UsageError("no data set is selected. Pick one in the list, or type a folder under 'data path'.")
        clicked_at = time.perf_counter() if clicked_at is None else clicked_at
        with self._lock:
            self._job += 1
            job = self._job
            self._pending = None
        log.info("dashboard: request %d %s", job, settings)
        res = self.cached(settings)
        if res is not None:
            self.listener.finished(job, res)
            return job
        if not self.run_async:
            self._run(job, settings, clicked_at)
            return job
        with self._lock:
            self._pending = (job, settings, clicked_at)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="aisviz-dashboard-job", daemon=True)
                self._worker.start()
        return job

    def current(self, job: int) -> bool:
        return job == self._job

    def wait(self, timeout: float = 600) -> bool:
        """Block until no job is running or queued. True when idle."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._lock:
                worker = self._worker
                idle = self._pending is None and self._running is None
            if idle:
                return True
            if worker is not None:
                worker.join(timeout=min(0.1, max(0.0, end - time.perf_counter())))
            else:
                time.sleep(0.02)
        return False

    def _work(self):
        while True:
            with self._lock:
                if self._pending is None:
                    self._worker = None
                    return
                job, settings, clicked_at = self._pending
                self._pending = None
            self._run(job, settings, clicked_at)

    def _run(self, job: int, settings: Settings, clicked_at: float):
        with self._lock:
            self._running = job

        def report(stage: str, fraction: float, text: str):
            if job != self._job:
                raise Superseded()
            lo, hi = STAGES[stage]
            self.listener.progress(job, stage, lo + (hi - lo) * min(max(fraction, 0.0), 1.0), text)

        try:
            result = self.compute(settings, report, clicked_at)
        except Superseded:
            log.info("dashboard: request %d was replaced by a newer one", job)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user once, through the listener
            log.error("dashboard: request %d failed", job, exc_info=True)
            if job == self._job:
                self.listener.failed(job, exc)
        else:
            self.add(settings, result)
            if job == self._job:
                self.listener.finished(job, result)
        finally:  # after the listener heard the outcome, so that wait() returns with it delivered
            with self._lock:
                self._running = None

    # -- computing

    def _compute(self, s: Settings, report, clicked_at: float):
        """The result from the disk cache (another tab, kernel or server computed it) or from the pipeline."""
        report("data", 0.0, "loading the data set")
        dataset = self.dataset(s.dataset)
        result, computation = result_for(s, dataset, keep_results=self.keep_results, report=report, memo=self.memo,
                                         started_at=clicked_at)
        if computation is not None and s.model not in self.layers:
            self.layers[s.model] = list_layers(computation.network)
        return result

    def dataset(self, key: str):
        """The data set under key: one passed in, or loaded (and kept)."""
        if key in self.given:
            return self.given[key]
        return self.memo.get_or_make("dataset", key, lambda: checked_dataset(key, self.data_roots))

    def keep_dataset(self, key: str, dataset) -> None:
        self.memo.put("dataset", key, dataset)
