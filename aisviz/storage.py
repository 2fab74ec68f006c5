"""Where aisviz keeps files, and how it writes them: atomically, so an interrupted run leaves no partial file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def aisviz_home() -> Path:
    """AISVIZ_HOME, or ~/.cache/aisviz: caches, downloads and logs live below it."""
    return Path(os.environ.get("AISVIZ_HOME") or Path.home() / ".cache" / "aisviz").expanduser()


def atomic_write(target: Path, write) -> Path:
    """Call write(binary file) on a temporary file beside target, then rename it onto target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def clear_files(folder: Path, pattern: str = "*.npz") -> int:
    """Delete the cache files matching pattern in folder; returns how many were removed."""
    removed = 0
    for f in Path(folder).glob(pattern):
        f.unlink(missing_ok=True)
        removed += 1
    return removed
