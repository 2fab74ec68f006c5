"""Strict JSON for every `--json` output: NaN and infinities become null (and are counted), numpy and
pandas scalars become plain numbers, paths become strings. Python's json module would otherwise write
`NaN` and `Infinity`, which no other JSON reader accepts."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def strict(obj: Any) -> tuple[object, int]:
    """(a copy of obj that json.dumps(allow_nan=False) accepts, how many non-finite numbers became null)."""
    count = 0

    def walk(x):
        nonlocal count
        if isinstance(x, dict):
            return {str(k): walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, np.ndarray):
            return walk(x.tolist())
        if isinstance(x, (bool, np.bool_)):
            return bool(x)
        if isinstance(x, (int, np.integer)):
            return int(x)
        if isinstance(x, (float, np.floating)):
            if math.isfinite(x):
                return float(x)
            count += 1
            return None
        if isinstance(x, Path):
            return str(x)
        if x is None or isinstance(x, str):
            return x
        if hasattr(x, "item"):  # other numpy / torch scalars
            return walk(x.item())
        return str(x)

    return walk(obj), count


def dumps(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON text of obj. A dict gets "nonfinite_as_null": the number of NaN/inf values written as null."""
    clean, count = strict(obj)
    if isinstance(clean, dict):
        clean["nonfinite_as_null"] = count
    return json.dumps(clean, indent=indent, allow_nan=False)
