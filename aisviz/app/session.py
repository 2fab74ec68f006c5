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
from collections import OrderedDict
from dataclasses import replace

from aisviz.app.html import plain_message
from aisviz.config import paper_seeds
from aisviz.io.catalog import load_dataset
from aisviz.models.networks import list_layers, load_network
from aisviz.pipeline.result import build_result
from aisviz.pipeline.settings import Settings, auto_k_step
from aisviz.saliency.providers import saliency_maps

log = logging.getLogger("aisviz.app")

RESULTS_IN_MEMORY = 3        # fitted scorers and results (the big objects) kept in memory

# The job's stages and the share of the progress bar each gets (measured shares of a cold run of the
# default set on 2 CPU cores, rounded).
STAGES = {"data": (0.0, 0.03), "network": (0.03, 0.07), "features": (0.07, 0.40), "validation": (0.40, 0.88),
          "saliency": (0.88, 0.96), "views": (0.96, 1.0)}


class Superseded(Exception):
    """A newer request replaced the running job."""


class LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class Session:
    """Caches and the job runner. listener: an object with progress(job, stage, fraction, text),
    finished(job, result) and failed(job, exc) (job = the request's number). run_async=False computes in
    the calling thread (tests, scripts)."""

    def __init__(self, listener, run_async: bool = True, compute=None, given: dict | None = None):
        self.listener = listener
        self.run_async = run_async
        self.compute = compute or self._compute
        self.given = dict(given or {})          # dataset key -> ComparisonSet passed in by the caller
        self.layers: dict = {}                   # model -> list_layers rows (plain dicts)
        self._lock = threading.Lock()
        self._job = 0                            # number of the newest request
        self._pending = None                     # (job, settings, clicked_at) waiting for the worker
        self._running = None                     # job number the worker is on
        self._worker: threading.Thread | None = None
        self._datasets = LRU(6)
        self._networks = LRU(2)
        self._scorers = LRU(RESULTS_IN_MEMORY)
        self._validations = LRU(16)
        self._saliency = LRU(4)
        self._results = LRU(RESULTS_IN_MEMORY)
        self._alias: dict = {}                   # requested Settings -> resolved Settings

    # -- requests

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._pending is not None or self._running is not None

    def cached(self, settings: Settings):
        with self._lock:
            return self._results.get_(self._alias.get(settings, settings))

    def add(self, settings: Settings, result) -> None:
        """Keep a finished result in memory under the settings that ask for it (and its own)."""
        with self._lock:
            self._results.put(result.settings, result)
            self._alias[settings] = result.settings
            self._alias[result.settings] = result.settings

    def request(self, settings: Settings, clicked_at: float | None = None) -> int:
        """Ask for the result of these settings; returns the request's job number. A result in memory is
        delivered at once (listener.finished, in this thread); otherwise a job is queued."""
        if settings.dataset is None:
            raise ValueError("no data set is selected. Pick one in the list, or type a folder under 'data path'.")
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
        from aisviz.pipeline.importance import AlignmentImportance, TopKValidation  # torch loads here, on the worker

        report("data", 0.0, "loading the data set")
        dataset = self.dataset(s.dataset)
        report("network", 0.0, f"loading {s.model}")
        net = self._network(s.model, s.weights)
        li, ri = net.resolve_layers(s.layer, s.readout)
        resolved = replace(s, layer=net.stage_names[li], readout=net.stage_names[ri])
        if s.model not in self.layers:

            self.layers[s.model] = list_layers(net)
        scorer = self._scorers.get_(resolved.scorer_key())
        if scorer is None:
            what = (f"features and leave-one-map-out AIS: {dataset.n_images} images, "
                    f"{resolved.layer} → {resolved.readout}")
            report("features", 0.0, what)
            scorer = AlignmentImportance(model=s.model, layer=resolved.layer, readout=resolved.readout,
                                         similarity=s.similarity, measure=s.measure, weights=s.weights,
                                         progress=False).fit(
                dataset, network=net, callback=lambda p: report("features", p.done / p.total,
                                                                f"{what} (chunk {p.done} of {p.total})"))
            with self._lock:
                self._scorers.put(resolved.scorer_key(), scorer)
        k_step = s.k_step or auto_k_step(len(scorer.ais_), scorer.engine_.reruns_tail)
        vkey = resolved.validation_key(k_step)
        validation = self._validations.get_(vkey)
        if validation is None:
            seeds = paper_seeds(s.n_seeds)

            def on_split(p):
                report("validation", p.done / p.total, f"held-out validation: split {min(int(p.done) + 1, p.total)} "
                       f"of {p.total} ({s.n_folds} folds × {len(seeds)} seeds), k step {k_step}")

            report("validation", 0.0, "held-out validation")
            validation = TopKValidation(n_folds=s.n_folds, seeds=seeds, k_step=k_step, n_random=s.n_random,
                                        progress=False).fit(scorer, callback=on_split)
            with self._lock:
                self._validations.put(vkey, validation)
        report("saliency", 0.0, f"saliency maps ({s.provider})")
        saliency, sal_error = self._saliency_maps(s.dataset, dataset, s.provider)
        report("views", 0.0, "preparing the views")
        return build_result(scorer, validation, dataset, saliency, resolved, saliency_provider=s.provider,
                            saliency_error=sal_error, seconds=time.perf_counter() - clicked_at)

    def dataset(self, key: str):
        if key in self.given:
            return self.given[key]
        ds = self._datasets.get_(key)
        if ds is None:

            ds = load_dataset(key)
            ds.load_image(0)  # fail now, in plain words, if the images are missing or unreadable
            with self._lock:
                self._datasets.put(key, ds)
        return ds

    def keep_dataset(self, key: str, dataset) -> None:
        with self._lock:
            self._datasets.put(key, dataset)

    def _network(self, model: str, weights: str):
        net = self._networks.get_((model, weights))
        if net is None:

            net = load_network(model, weights=weights)
            with self._lock:
                self._networks.put((model, weights), net)
        return net

    def _saliency_maps(self, key: str, dataset, provider: str):
        """The provider's maps, or (None, the reason in plain words): a saliency failure must not hide the
        AIS results; the reason is shown once, with the result."""
        maps = self._saliency.get_((key, provider))
        if maps is not None:
            return maps, ""

        try:
            maps = saliency_maps(dataset, provider)
        except Exception as exc:  # noqa: BLE001
            log.error("dashboard: saliency maps failed", exc_info=True)
            return None, plain_message(f"compute the {provider} saliency maps", exc)
        with self._lock:
            self._saliency.put((key, provider), maps)
        return maps, ""
