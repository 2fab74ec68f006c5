"""The dashboard's Voila template ("aisviz"): Voila's lab template minus its Font Awesome CDN stylesheets,
so that the served page requests nothing outside its own server. Voila finds it on JUPYTER_PATH."""
from __future__ import annotations

import os
from pathlib import Path

TEMPLATE = "aisviz"
DATA_DIR = Path(__file__).resolve().parent / "jupyter_data"


def voila_environment(env: dict | None = None) -> dict:
    """A copy of env (default: os.environ) with the template's folder first on JUPYTER_PATH."""
    env = dict(os.environ if env is None else env)
    rest = env.get("JUPYTER_PATH", "")
    env["JUPYTER_PATH"] = os.pathsep.join([str(DATA_DIR)] + ([rest] if rest else []))
    return env
