"""The researcher dashboard's limits, checked in the kernel: the browser's widgets have min and max too, but a
client can send any value (or change the widget's max first), so what starts a job is checked here.

- validation settings: folds, seeds, k step and random orders within MINIMA..MAXIMA; a data set of at most
  MAX_IMAGES images;
- the data-path box: `aisviz serve` sets AISVIZ_ALLOW_PATHS when the dashboard is served to others (a base URL,
  JupyterHub, or an address other than loopback): empty = the box is off; folders separated by os.pathsep =
  only folders under them open (`--allow-paths DIR`). A path outside them is refused with the same words
  whether it exists or not. Unset (a researcher's own 127.0.0.1 server): any folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from aisviz.config import ENV_ALLOW_PATHS
from aisviz.errors import DataError

MINIMA = {"n_folds": 2, "n_seeds": 1, "k_step": 0, "n_random": 1}
MAXIMA = {"n_folds": 50, "n_seeds": 50, "k_step": 10000, "n_random": 100}
LABELS = {"n_folds": "folds", "n_seeds": "seeds", "k_step": "k step", "n_random": "random orders"}
MAX_IMAGES = 2000        # the largest set measured (2.98 GB peak on 2 cores)
OUTSIDE = ("Refused: this server opens data folders only under the folders its operator allowed "
           "(aisviz serve --allow-paths). Choose a data set from the menu, or a folder under those.")
PATHS_OFF = ("Refused: this shared server does not open folders typed in. Choose a data set from the menu "
             "(the operator can allow folders with aisviz serve --allow-paths DIR).")


def check_settings(settings):
    """The settings, when every validation setting is within its limits; else DataError naming the first one
    outside (a plain sentence for the message area).

    Parameters
    ----------
    settings: a Settings (aisviz.pipeline.settings).

    Returns
    -------
    The same settings.
    """
    for field, low in MINIMA.items():
        value, high = getattr(settings, field), MAXIMA[field]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DataError(f"{LABELS[field]} must be a whole number from {low} to {high} on this server, not "
                            f"{str(value)[:20]}. Nothing was started.")
    return settings


def check_image_count(n_images: int) -> None:
    """DataError when a data set has more images than this server computes (MAX_IMAGES)."""
    if n_images > MAX_IMAGES:
        raise DataError(f"that data set has {n_images} images; this dashboard computes at most {MAX_IMAGES}. Use "
                        "`aisviz score` on the command line for larger sets.")


def allowed_roots() -> list[Path] | None:
    """The folders the path box may open under: None = any (unset), [] = none (the box is off)."""
    value = os.environ.get(ENV_ALLOW_PATHS)
    if value is None:
        return None
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def check_folder(text: str) -> Path:
    """The folder typed in the path box, when this server may open it; else DataError (OUTSIDE or PATHS_OFF,
    the same whether the folder exists or not).

    Parameters
    ----------
    text: what the visitor typed.

    Returns
    -------
    The path (resolved when the server restricts folders).
    """
    roots = allowed_roots()
    path = Path(text).expanduser()
    if roots is None:
        return path
    if not roots:
        raise DataError(PATHS_OFF)
    resolved = path.resolve() if path.is_absolute() else Path("/nonexistent-relative-path")
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise DataError(OUTSIDE)
    return resolved
