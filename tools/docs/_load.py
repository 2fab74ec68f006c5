"""Import what targets.py names, with an error that says which name to fix when a module has moved."""
from __future__ import annotations

import importlib


def obj(spec: str):
    """The object named "module:attribute" (or the module, for "module").

    Parameters
    ----------
    spec : str
        "package.module:name" or "package.module".

    Returns
    -------
    object
        The module, or its attribute.
    """
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
        return getattr(mod, attr) if attr else mod
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"docs: cannot load {spec!r} ({exc}); update tools/docs/targets.py to where it "
                           "lives now") from exc
