"""Every cache aisviz keeps under AISVIZ_HOME (~/.cache/aisviz), for `aisviz cache show` and `cache clear`."""
from __future__ import annotations

from pathlib import Path

from aisviz.config import aisviz_home
from aisviz.io.storage import clear_files, folder_usage, stale_temp_files
from aisviz.models import features, networks
from aisviz.pipeline import result_cache
from aisviz.saliency import providers as saliency


def caches() -> list[dict]:
    """name, path, what it holds, and the files `clear` deletes (a glob pattern). A module that adds a cache
    under AISVIZ_HOME adds its row here, so `cache show` and `cache clear` cover it."""

    return [
        {"name": "features", "path": features.cache_dir(), "pattern": "*.npz",
         "what": "network activations per data set, network and layer"},
        {"name": "saliency", "path": saliency.cache_dir(), "pattern": "*.npz",
         "what": "saliency maps per data set and provider"},
        {"name": "results", "path": result_cache.cache_dir(), "pattern": "*/**/*",
         "what": "dashboard results per setting and data content (result bundles)"},
        {"name": "catalog", "path": networks.catalog_dir(), "pattern": "*.json",
         "what": "the list of torchvision's networks, per torchvision version"},
    ]


def cache_report() -> list[dict]:
    """One row per cache: files and bytes; plus the stale temporary files anywhere under AISVIZ_HOME."""
    rows = []
    for c in caches():
        files, size = folder_usage(c["path"])
        rows.append({"name": c["name"], "path": str(c["path"]), "what": c["what"], "files": files, "bytes": size})
    stale = stale_temp_files(aisviz_home())
    rows.append({"name": "temp", "path": str(aisviz_home()), "what": "temporary files left by interrupted writes",
                 "files": len(stale), "bytes": sum(p.stat().st_size for p in stale)})
    return rows


def clear_caches() -> list[dict]:
    """Delete every cached file and every stale temporary file under AISVIZ_HOME (downloaded data sets and
    logs are kept). Returns one row per cache with the number of files removed."""
    rows = []
    for c in caches():
        rows.append({"name": c["name"], "path": str(c["path"]), "what": c["what"],
                     "removed": clear_files(c["path"], c["pattern"])})
    stale = stale_temp_files(aisviz_home())
    for p in stale:
        Path(p).unlink(missing_ok=True)
    rows.append({"name": "temp", "path": str(aisviz_home()), "what": "temporary files left by interrupted writes",
                 "removed": len(stale)})
    return rows
