"""Where aisviz keeps its files, and the paper's fixed choices that every layer shares.

Environment variables (all optional):
- AISVIZ_HOME: caches, downloads, logs and app files live below it (default ~/.cache/aisviz);
- AISVIZ_DATA: extra data-set folders, separated by ':' (searched before data/ and AISVIZ_HOME/data);
- AISVIZ_ALLOW_PATHS: set by `aisviz serve`: the folders the researcher dashboard's path box may open
  (separated by ':'; empty = the box is off).
"""
from __future__ import annotations

import os
from pathlib import Path

from aisviz.errors import UsageError

ENV_ALLOW_PATHS = "AISVIZ_ALLOW_PATHS"
PAPER_SEEDS = (111, 222, 333, 444, 555, 666, 777, 888)   # the paper's 8 repeats of 5-fold cross-validation


def paper_seeds(n: int) -> tuple[int, ...]:
    """The paper's seeds 111, 222, ..., continued the same way past 8.

    Parameters
    ----------
    n : how many seeds (repeats of the k-fold split), at least 1.

    Returns
    -------
    The first n seeds, 111 * (i + 1).
    """
    if n < 1:
        raise UsageError(f"the number of seeds must be at least 1, not {n}.")
    return tuple(111 * (i + 1) for i in range(n))


def aisviz_home() -> Path:
    """The folder below which caches, downloads and logs live: AISVIZ_HOME, or ~/.cache/aisviz."""
    return Path(os.environ.get("AISVIZ_HOME") or Path.home() / ".cache" / "aisviz").expanduser()
