"""aisviz: Alignment Importance Scores and heatmaps (Truong, Pesenti & Hasson, 2024/2025).

Which feature maps of a CNN layer make the network's image similarities match human similarity
judgments, and where in each image those features live.

The package is layered; each layer imports only from the ones below it (checked by import-linter in
`make test`):

    cli | app        the command line; the dashboard and the shared viewer
    server           Voila serving
    pipeline         Settings -> compute_result -> Result; bundles, precompute, sweeps, exports
    viz              plotly and matplotlib figures (imports only core and the base modules)
    saliency         saliency providers
    models           networks and activation extraction
    io               data-set folders, catalog, storage, adapters
    core             alignment, engines, heatmaps, metrics, noise ceilings
    errors, config   exception kinds and exit codes; paths and the paper's fixed choices

The names below load on first use, so `import aisviz` imports no torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AlignmentImportance": "aisviz.pipeline.importance", "TopKValidation": "aisviz.pipeline.importance",
    "alignment": "aisviz.core.alignment", "kfold_splits": "aisviz.core.alignment",
    "ComparisonSet": "aisviz.core.comparison", "DataError": "aisviz.errors", "ModelError": "aisviz.errors",
    "load_folder": "aisviz.io.folders",
    "load_dataset": "aisviz.io.catalog", "list_datasets": "aisviz.io.catalog", "download": "aisviz.io.catalog",
    "from_rsatoolbox": "aisviz.io.interop", "from_dataframe": "aisviz.io.interop",
    "load_network": "aisviz.models.networks", "list_models": "aisviz.models.networks",
    "list_layers": "aisviz.models.networks", "activations_network": "aisviz.models.precomputed",
    "ais_heatmap": "aisviz.core.heatmaps", "overlay": "aisviz.core.heatmaps",
    "Settings": "aisviz.pipeline.settings", "Result": "aisviz.pipeline.result",
    "compute_result": "aisviz.pipeline.compute",
    "noise_ceiling": "aisviz.core.ceiling",
}


def __getattr__(name: str) -> Any:
    if name == "sweep":
        return importlib.import_module("aisviz.pipeline.sweeps").sweep_entry
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aisviz' has no attribute {name!r}")


__all__ = [*_LAZY, "sweep"]
