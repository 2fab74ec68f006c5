"""The measured memory of one shared-mode viewer kernel: one figure for every place that quotes it.

`python benchmarks/bench_sessions.py --bundles DIR --n 3 --record` measures it (real Voila, real pages) and
writes viewer_memory.json next to this module; `aisviz serve --help` reads it from there, and the README, the
instructor guide and the documentation quote the same number (tests/unit/test_viewer_memory.py checks).
"""
from __future__ import annotations

import json
from pathlib import Path

FIGURE_FILE = Path(__file__).with_name("viewer_memory.json")


def viewer_memory() -> dict:
    """The benchmark's record: kernel_rss_mb (the quoted figure), kernel_pss_mb, viewers, measured, machine, ..."""
    return json.loads(FIGURE_FILE.read_text())


def viewer_kernel_mb() -> int:
    """Resident memory of one viewer kernel, in MB (2**20 bytes), as measured."""
    return int(viewer_memory()["kernel_rss_mb"])
