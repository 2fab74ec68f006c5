"""The pipeline: Settings -> data set, network, fitted scores, held-out validation, saliency maps -> Result.

Every entry point computes through here: the command line (`validate`, `demo`), the dashboard's session,
`precompute` (into a result bundle, aisviz.pipeline.bundles) and `sweep` (one cell per layer). The steps are
written once:

1. data: the set named by `settings.dataset` (or the ComparisonSet passed in);
2. network: `settings.model` with `settings.weights`; the layer and read-out are resolved to their names;
3. features: AlignmentImportance (activations, leave-one-map-out AIS, image AIS);
4. validation: the paper's held-out test (n_folds x the paper's seeds; the automatic k step when 0);
5. saliency: the provider's maps. A provider that fails (no internet, a missing package, a bad folder) leaves
   the maps out and records why in plain words, so the AIS results are never lost to it; the details go to
   the log (logger "aisviz.pipeline");
6. views: the Result (numpy and plain Python; what bundles store and every view draws).

`report(stage, fraction, text)` is called as each stage starts and as it progresses (fraction in [0, 1] within
the stage); an exception it raises stops the computation there (the dashboard cancels superseded work so).
A `Memo` keeps intermediate objects between calls (the dashboard reuses a fitted scorer across k steps).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TypeVar

from aisviz.config import paper_seeds
from aisviz.core.comparison import ComparisonSet
from aisviz.errors import UsageError, describe
from aisviz.io.catalog import load_dataset
from aisviz.io.storage import prepare_output_dir
from aisviz.models.networks import Network, load_network
from aisviz.pipeline.bundles import check_output, write_bundle
from aisviz.pipeline.result import Result, build_result
from aisviz.pipeline.result_cache import load_result, store_result
from aisviz.pipeline.settings import Settings, auto_k_step
from aisviz.saliency.providers import saliency_maps

if TYPE_CHECKING:
    import numpy as np

    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation

log = logging.getLogger("aisviz.pipeline")
T = TypeVar("T")

Report = Callable[[str, float, str], None]
STAGES = ("data", "network", "features", "validation", "saliency", "views")
# The features stage's share that extracting the activations takes (the rest: leave-one-map-out AIS): 19 s of
# 28 s in a cold `aisviz precompute` of the default set on 2 busy CPU cores (2026-12-03).
EXTRACTION_SHARE = 0.67


def _silent(stage: str, fraction: float, text: str) -> None:
    """A report that shows nothing."""


class Memo:
    """Bounded, thread-safe caches of the pipeline's intermediate objects, one per kind.

    Every read and write holds the lock (readers reorder the LRU too); the work of making a missing value
    runs outside it, so one slow fit does not block the others' reads.
    """

    SIZES = {"dataset": 6, "network": 2, "scorer": 3, "validation": 16, "saliency": 4}

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        self._sizes = {**self.SIZES, **(sizes or {})}
        self._lock = threading.Lock()
        self._caches: dict[str, OrderedDict[Hashable, Any]] = {kind: OrderedDict() for kind in self._sizes}

    def get(self, kind: str, key: Hashable) -> Any:
        """The value kept under (kind, key), or None; a hit becomes the most recently used."""
        with self._lock:
            cache = self._caches[kind]
            if key not in cache:
                return None
            cache.move_to_end(key)
            return cache[key]

    def put(self, kind: str, key: Hashable, value: Any) -> Any:
        """Keep value under (kind, key), dropping the least recently used past the kind's size."""
        with self._lock:
            cache = self._caches[kind]
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > self._sizes[kind]:
                cache.popitem(last=False)
        return value

    def get_or_make(self, kind: str, key: Hashable, make: Callable[[], T]) -> T:
        """The kept value, or make() kept and returned."""
        value = self.get(kind, key)
        return value if value is not None else self.put(kind, key, make())


@dataclass(frozen=True)
class Computation:
    """What the pipeline made: the Result and the fitted objects behind it (for callers that need more than
    the Result: the sweep's noise ceiling, the command line's tables)."""

    result: Result
    settings: Settings
    dataset: ComparisonSet
    network: Network
    scorer: AlignmentImportance
    validation: TopKValidation


def saliency_for(dataset: ComparisonSet, provider: str, *, use_cache: bool = True,
                 progress: bool = False) -> tuple[list[np.ndarray] | None, str]:
    """The provider's saliency maps, or (None, why in plain words) when it fails: the one failure policy.

    Parameters
    ----------
    dataset : the images.
    provider : a saliency provider name or folder ("" for none).
    use_cache, progress : as for aisviz.saliency.providers.saliency_maps.

    Returns
    -------
    (maps, "") on success, (None, "") for no provider, (None, message) on failure.
    """
    if not provider:
        return None, ""
    try:
        return saliency_maps(dataset, provider, use_cache=use_cache, progress=progress), ""
    except Exception as exc:  # noqa: BLE001 - a saliency failure must not hide the AIS results
        log.error("saliency maps of %s failed", provider, exc_info=True)
        return None, describe(f"compute the {provider} saliency maps", exc)


def fit_importance(settings: Settings, dataset: ComparisonSet, network: Network, *, report: Report = _silent,
                   device: str = "auto", use_cache: bool = True, progress: bool = False) -> AlignmentImportance:
    """Step 3: the fitted AlignmentImportance for settings (layer and read-out resolved or None = default)."""
    from aisviz.pipeline.importance import AlignmentImportance  # torch loads here, when work is asked for

    what = f"features and leave-one-map-out AIS: {dataset.n_images} images, {settings.layer} → {settings.readout}"
    report("features", 0.0, what)

    def on_fit(p: Any) -> None:  # the stage's first part counts images extracted, the rest chunks of maps
        if p.stage == "activations":
            report("features", EXTRACTION_SHARE * p.done / p.total,
                   f"activations of {settings.layer}: image {p.done} of {p.total}")
        else:
            report("features", EXTRACTION_SHARE + (1 - EXTRACTION_SHARE) * p.done / p.total,
                   f"{what} (chunk {p.done} of {p.total})")

    scorer = AlignmentImportance(model=settings.model, layer=settings.layer, readout=settings.readout,
                                 weights=settings.weights, similarity=settings.similarity, measure=settings.measure,
                                 dtype=settings.dtype, device=device, use_cache=use_cache, progress=progress)
    return scorer.fit(dataset, network=network, callback=on_fit)


def validate(settings: Settings, scorer: AlignmentImportance, *, report: Report = _silent,
             progress: bool = False) -> TopKValidation:
    """Step 4: the paper's held-out validation of a fitted scorer (k step 0 = the automatic step)."""
    from aisviz.pipeline.importance import TopKValidation

    k_step = settings.k_step or auto_k_step(len(scorer.ais_), scorer.engine_.reruns_tail)
    seeds = paper_seeds(settings.n_seeds)

    def on_split(p: Any) -> None:
        report("validation", p.done / p.total, f"held-out validation: split {min(int(p.done) + 1, p.total)} of "
               f"{p.total} ({settings.n_folds} folds × {len(seeds)} seeds), k step {k_step}")

    report("validation", 0.0, "held-out validation")
    return TopKValidation(n_folds=settings.n_folds, seeds=seeds, k_step=k_step, n_random=settings.n_random,
                          progress=progress).fit(scorer, callback=on_split)


def run_pipeline(settings: Settings, *, dataset: ComparisonSet | None = None, network: Network | None = None,
                 report: Report = _silent, memo: Memo | None = None, device: str = "auto", use_cache: bool = True,
                 progress: bool = False, started_at: float | None = None) -> Computation:
    """Run every step for settings and keep the fitted objects (see the module docstring).

    Parameters
    ----------
    settings : what to compute (Settings: data set, network, layers, validation, saliency provider).
    dataset : the ComparisonSet to use instead of loading settings.dataset (its name is then the key).
    network : a loaded Network to use instead of loading settings.model.
    report : progress callback (stage, fraction, text); an exception it raises stops the work.
    memo : caches of intermediate objects to read and fill (None: compute everything).
    device : "auto", "cpu", "cuda[:N]" or "mps" (where tensors run; not part of the result's settings).
    use_cache : read and write the feature and saliency caches on disk.
    progress : show tqdm progress bars.
    started_at : time.perf_counter() of the request (the Result's `seconds` count from it).

    Returns
    -------
    The Computation: the Result, the resolved settings and the fitted objects.
    """
    started_at = time.perf_counter() if started_at is None else started_at
    memo = memo or Memo()
    report("data", 0.0, "loading the data set")
    if dataset is None:
        dataset = memo.get_or_make("dataset", settings.dataset, lambda: checked_dataset(settings.dataset))
    report("network", 0.0, f"loading {settings.model}")
    net = network or memo.get_or_make("network", (settings.model, settings.weights),
                                      lambda: load_network(settings.model, weights=settings.weights))
    li, ri = net.resolve_layers(settings.layer, settings.readout)
    resolved = replace(settings, layer=net.stage_names[li], readout=net.stage_names[ri])
    scorer = memo.get_or_make("scorer", resolved.scorer_key(), lambda: fit_importance(
        resolved, dataset, net, report=report, device=device, use_cache=use_cache, progress=progress))
    k_step = settings.k_step or auto_k_step(len(scorer.ais_), scorer.engine_.reruns_tail)
    validation = memo.get_or_make("validation", resolved.validation_key(k_step),
                                  lambda: validate(resolved, scorer, report=report, progress=progress))
    report("saliency", 0.0, f"saliency maps ({settings.provider})")
    saliency, saliency_error = memo.get("saliency", (settings.dataset, settings.provider)), ""
    if saliency is None:
        saliency, saliency_error = saliency_for(dataset, settings.provider, use_cache=use_cache, progress=progress)
        if saliency is not None:
            memo.put("saliency", (settings.dataset, settings.provider), saliency)
    report("views", 0.0, "preparing the views")
    result = build_result(scorer, validation, dataset, saliency, resolved, saliency_provider=settings.provider,
                          saliency_error=saliency_error, seconds=time.perf_counter() - started_at)
    return Computation(result, resolved, dataset, net, scorer, validation)


def result_for(settings: Settings, dataset: ComparisonSet, *, keep_results: bool = True,
               **pipeline: Any) -> tuple[Result, Computation | None]:
    """The Result of settings on dataset, from the disk cache of results when another command, tab, kernel or
    server computed it (aisviz.pipeline.result_cache; no torch is imported then), else from run_pipeline, and
    then kept there.

    Parameters
    ----------
    settings : as requested (layer and read-out None = the network's defaults): the cache's key with the data.
    dataset : the data set settings.dataset names.
    keep_results : read and write the cache of results (False: always compute, keep nothing).
    pipeline : run_pipeline's keyword arguments (report, memo, device, use_cache, progress, started_at, network).

    Returns
    -------
    (the Result, the Computation when it was computed here, else None).
    """
    started_at = pipeline.pop("started_at", None) or time.perf_counter()
    if keep_results:
        cached = load_result(settings, dataset)
        if cached is not None:
            return replace(cached, seconds=time.perf_counter() - started_at), None
    computation = run_pipeline(settings, dataset=dataset, started_at=started_at, **pipeline)
    if keep_results:
        store_result(settings, dataset, computation.result)
    return computation.result, computation


def checked_dataset(key: str, extra_roots: Sequence[Path] = ()) -> ComparisonSet:
    """The data set named key (a catalog name or folder; catalog sets looked for in extra_roots first), its first
    image decoded as a check."""
    dataset = load_dataset(key, extra_roots)
    dataset.load_image(0)  # fail now, in plain words, if the images are missing or unreadable
    return dataset


def settings_for(settings: Settings | None = None, given: ComparisonSet | None = None,
                 **fields: Any) -> Settings:
    """Settings from a base (default: the paper's defaults) with fields replaced; a ComparisonSet passed in
    names the data set."""
    base = settings or Settings()
    if given is not None:
        fields.setdefault("dataset", given.name)
    if fields.get("provider", "") is None:
        fields["provider"] = ""
    return replace(base, **fields)


def compute_result(settings: Settings | None = None, *, dataset: ComparisonSet | str | Path | None = None,
                   report: Report = _silent, memo: Memo | None = None, device: str = "auto", use_cache: bool = True,
                   progress: bool = False, **fields: Any) -> Result:
    """The Result for one setting: `run_pipeline(...).result`.

    Parameters
    ----------
    settings : the base Settings (default: the paper's choices on the generated set).
    dataset : a ComparisonSet to use instead of loading settings.dataset, or a catalog name or folder.
    report, memo, device, use_cache, progress : as for run_pipeline.
    fields : Settings fields to replace (model=..., layer=..., n_seeds=..., provider=None for no saliency).

    Returns
    -------
    The Result.
    """
    if settings is not None and not isinstance(settings, Settings):
        raise UsageError(f"compute_result takes Settings first, not a {type(settings).__name__}: pass a data set "
                         "as compute_result(dataset=...).")
    if isinstance(dataset, (str, Path)):  # a catalog name or folder: a setting, loaded by the pipeline
        fields["dataset"], dataset = str(dataset), None
    return run_pipeline(settings_for(settings, dataset, **fields), dataset=dataset, report=report, memo=memo,
                        device=device, use_cache=use_cache, progress=progress).result


def precompute(out: str | Path, settings: Settings | None = None, *, dataset: ComparisonSet | str | Path | None = None,
               pngs: bool = True, device: str = "auto", use_cache: bool = True, progress: bool = True,
               **fields: Any) -> tuple[Any, Result]:
    """compute_result(...) added to the bundle folder `out`.

    Parameters
    ----------
    out : the bundle folder (created, or an existing bundle to add to).
    settings, dataset, device, use_cache, progress, fields : as for compute_result.
    pngs : also write PNGs of the images and heatmaps (for people and static figures).

    Returns
    -------
    (the bundle's index entry, the Result). The bundle's index keeps the documented order of
    aisviz.pipeline.bundle_select.entry_order_key, whatever the order of calls.
    """
    check_output(out)  # a foreign or damaged folder fails now, not after the computation
    prepare_output_dir(out, "--out")  # and so does a folder that cannot be written (exit code 4)
    if isinstance(dataset, (str, Path)):
        fields["dataset"], dataset = str(dataset), None
    computation = run_pipeline(settings_for(settings, dataset, **fields), dataset=dataset, device=device,
                               use_cache=use_cache, progress=progress)
    # the bundle lists the network's default layer first (aisviz.pipeline.bundle_select)
    default_layer = computation.settings.layer == computation.network.default_layer
    return write_bundle(computation.result, out, pngs=pngs, default_layer=default_layer), computation.result
