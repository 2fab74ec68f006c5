"""`aisviz precompute`: compute everything the dashboard shows for one setting and add it to a result
bundle (aisviz.bundles), so that viewers (`aisviz serve --shared --bundles DIR`) never compute.

The computation is the dashboard's own: AlignmentImportance on the data set, the paper's held-out
validation (5 folds x seeds 111...888, the dashboard's auto k step unless given), the saliency maps of
the chosen provider, turned into a DashboardResult by aisviz.dashboard.build_result.
"""
from __future__ import annotations

import time
from dataclasses import replace

from .dashboard.result import Settings, paper_seeds


def compute_result(dataset="synthetic", model: str = "efficientnet_lite0", layer: str | None = None,
                   readout: str | None = None, provider: str | None = "spectral_residual", n_folds: int = 5,
                   n_seeds: int = 8, k_step: int = 0, n_random: int = 1, weights: str = "pretrained",
                   similarity: str = "pearson", measure: str = "pearson", device: str = "auto",
                   progress: bool = True, use_cache: bool = True):
    """A DashboardResult for one setting. dataset: a catalog name, a folder or a ComparisonSet; provider:
    a saliency provider name, or None for no saliency maps. A provider that fails (e.g. no internet)
    leaves the maps out and records why, as the dashboard does."""
    from .ais import AlignmentImportance, TopKValidation
    from .app import auto_k_step
    from .catalog import load_dataset
    from .dashboard.result import build_result

    t0 = time.perf_counter()
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    scorer = AlignmentImportance(model=model, layer=layer, readout=readout, weights=weights, similarity=similarity,
                                 measure=measure, device=device, use_cache=use_cache, progress=progress).fit(ds)
    step = k_step or auto_k_step(len(scorer.ais_), scorer.engine_.reruns_tail)
    validation = TopKValidation(n_folds=n_folds, seeds=paper_seeds(n_seeds), k_step=step, n_random=n_random,
                                progress=progress).fit(scorer)
    saliency, error = None, ""
    if provider:
        from .saliency import saliency_maps

        try:
            saliency = saliency_maps(ds, provider, use_cache=use_cache, progress=progress)
        except (ValueError, ImportError, OSError) as exc:
            error = f"saliency maps of {provider} are missing: {exc}"
    settings = Settings(dataset=ds.name if not isinstance(dataset, str) else dataset, model=model, weights=weights,
                        layer=scorer.layer_, readout=scorer.readout_, similarity=similarity, measure=measure,
                        n_folds=n_folds, n_seeds=n_seeds, k_step=k_step, n_random=n_random,
                        provider=provider or "")
    result = build_result(scorer, validation, ds, saliency, settings, saliency_provider=provider or "",
                          saliency_error=error, seconds=time.perf_counter() - t0)
    # recorded so that a bundle can list the network's default layer first (aisviz.bundle_select)
    return replace(result, notes={**result.notes, "network_default_layer": scorer.network_.default_layer})


def precompute(out, pngs: bool = True, **options):
    """compute_result(**options) written into the bundle folder `out`; returns (entry, result). The bundle's
    index keeps the documented order of aisviz.bundle_select.entry_order_key, whatever the order of calls."""
    from .bundles import check_output, write_bundle

    check_output(out)                 # a foreign or damaged folder fails now, not after the computation
    result = compute_result(**options)
    default_layer = result.settings.layer == result.notes.get("network_default_layer")
    return write_bundle(result, out, pngs=pngs, default_layer=default_layer), result
