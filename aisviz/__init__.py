"""aisviz: Alignment Importance Scores and heatmaps (Truong, Pesenti & Hasson, 2024/2025).

Which feature maps of a CNN layer make the network's image similarities match human similarity
judgments, and where in each image those features live. Heavy modules (torch) load on first use.
"""
__version__ = "0.1.0"

_LAZY = {
    "AlignmentImportance": "ais", "TopKValidation": "ais", "alignment": "ais", "kfold_splits": "ais",
    "ComparisonSet": "datasets", "DataError": "datasets", "load_folder": "datasets",
    "load_dataset": "catalog", "list_datasets": "catalog", "download": "catalog",
    "load_network": "models", "list_models": "models", "list_layers": "models", "ModelError": "models",
    "ais_heatmap": "heatmaps", "overlay": "heatmaps",
    "sweep": "sweep", "noise_ceiling": "ceiling",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'aisviz' has no attribute {name!r}")


__all__ = list(_LAZY)
