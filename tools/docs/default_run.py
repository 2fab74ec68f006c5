"""The default set computed once for the documentation: the command line's own outputs, cached.

The method's figures and the output-field reference come from these runs of `aisviz` (the commands a reader
can repeat). They are cached in .docs-cache/ under a key of the commands and the package's code (docstrings and
comments left out), so the site rebuilds quickly until the code changes.
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".docs-cache" / "default-set"
log = logging.getLogger("mkdocs.plugins.aisviz")

# name -> the `aisviz` arguments ({out} is the run's folder); stdout (--json) goes to <name>.json.
COMMANDS = {
    "validate": ["validate", "--json", "--quiet", "--csv", "{out}/validate"],
    "score": ["score", "--json", "--quiet", "--csv", "{out}/score"],
    "saliency": ["saliency", "--json", "--quiet", "--csv", "{out}/saliency", "--out", "{out}/panels"],
}


def command_line(name: str) -> str:
    """The command as a reader would type it (without the cache's folders).

    Parameters
    ----------
    name : str
        A key of COMMANDS.

    Returns
    -------
    str
        E.g. "aisviz validate --json --csv DIR".
    """
    return "aisviz " + " ".join(a.replace("{out}/", "").upper() if "{out}" in a else a
                                for a in COMMANDS[name] if a != "--quiet")


def _code(path: Path) -> bytes:
    """A module's code without its docstrings and comments, so that editing prose keeps the cache."""
    tree = ast.parse(path.read_bytes())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def _key() -> str:
    digest = hashlib.sha256(json.dumps(COMMANDS, sort_keys=True).encode())
    for path in sorted((ROOT / "aisviz").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + _code(path))
    return digest.hexdigest()[:16]


def default_run() -> Path:
    """The folder holding every COMMANDS output for the current source, computing it when not cached.

    Returns
    -------
    Path
        The folder: <name>.json for each command, plus the --csv and --out folders.

    Raises
    ------
    RuntimeError
        When a command fails (its stderr is included).
    """
    done = CACHE / _key()
    if (done / "complete").is_file():
        return done
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".tmp-"))
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's package first
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    try:
        for name, args in COMMANDS.items():
            log.info("aisviz docs: running `%s` on the default set (cached afterwards)", command_line(name))
            argv = [sys.executable, "-m", "aisviz", *(a.replace("{out}", str(work)) for a in args)]
            proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"docs: `{command_line(name)}` failed ({proc.returncode}): {proc.stderr[-2000:]}")
            (work / f"{name}.json").write_text(proc.stdout, encoding="utf-8")
        (work / "complete").write_text("ok\n")
        for old in CACHE.iterdir():  # keep one run: the current source's
            if old != work and not old.name.startswith(".tmp-"):
                shutil.rmtree(old, ignore_errors=True)
        if not done.exists():  # another build may have finished the same run first
            work.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done
