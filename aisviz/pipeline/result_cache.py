"""Results kept on disk across kernels, tabs and server restarts (AISVIZ_HOME/results).

A computed Result is stored as a one-setting result bundle (aisviz.pipeline.bundles: atomic writes, arrays opened
memory-mapped read-only) in a folder named by a key over the requested settings, the data set's content (image
bytes, names and matrix: ComparisonSet.content_hash), the aisviz version and this cache's format. A cached result
is used only if it passes what any bundle must (the schema and every checksum); otherwise it is ignored with a
warning and computed again. A cache that cannot be written costs only the caching (a warning).
`aisviz cache show` and `aisviz cache clear` cover it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

from aisviz import __version__
from aisviz.config import aisviz_home
from aisviz.core.comparison import ComparisonSet
from aisviz.errors import AisvizWarning, EnvironmentProblem
from aisviz.pipeline.bundle_schema import BundleError
from aisviz.pipeline.bundles import open_catalog, write_bundle
from aisviz.pipeline.result import Result
from aisviz.pipeline.settings import Settings

FORMAT = 1   # bump when what a cached result holds changes


def cache_dir() -> Path:
    """The folder of cached results: AISVIZ_HOME/results."""
    return aisviz_home() / "results"


def result_key(settings: Settings, dataset: ComparisonSet) -> str:
    """The cache key of the result of `settings` on `dataset` (its content, not its name or path)."""
    payload = {"settings": settings.to_dict(), "data": dataset.content_hash(), "aisviz": __version__,
               "format": FORMAT}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def load_result(settings: Settings, dataset: ComparisonSet) -> Result | None:
    """The cached Result of settings on dataset, or None (not cached, or failing its checks: warned).

    Parameters
    ----------
    settings : the settings as requested (layer and read-out None = the network's defaults).
    dataset : the data set they name.

    Returns
    -------
    The Result (source "cache"), or None.
    """
    folder = cache_dir() / result_key(settings, dataset)
    if not (folder / "bundle.json").is_file():
        return None
    try:
        catalog = open_catalog(folder, verify=True)
        (entry,) = catalog.entries
        return replace(catalog.load(entry.id), source="cache")
    except (BundleError, OSError, ValueError) as exc:
        warnings.warn(f"ignoring the cached result {folder} ({' '.join(str(exc).split())}); computing it again",
                      AisvizWarning, stacklevel=2)
        return None


def store_result(settings: Settings, dataset: ComparisonSet, result: Result) -> Path | None:
    """Keep result under the key of (settings, dataset); returns its folder, or None when it cannot be written
    (warned: the result itself is not affected)."""
    folder = cache_dir() / result_key(settings, dataset)
    try:
        if folder.exists():  # a damaged entry that failed its checks: replaced whole
            shutil.rmtree(folder)
        write_bundle(result, folder, pngs=False)
    except (OSError, EnvironmentProblem) as exc:
        warnings.warn(f"could not keep the result in {folder} ({' '.join(str(exc).split())}); it is shown but will "
                      "be computed again next time", AisvizWarning, stacklevel=2)
        return None
    return folder
