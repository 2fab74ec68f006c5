"""Reference pages generated from the code: exit codes, environment variables and the bundle format.

Each page is built from what the package declares (targets.py names where), so it changes when the code does.
Where the code has no description yet (environment variables are read in many places), the descriptions live
here and the build fails when they and the code disagree: a variable the code reads that is not described, or a
described one the code no longer reads.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

from _load import obj
from targets import BUNDLES_MODULE, ENV_SCAN, ERRORS_MODULE, EXIT_CODES_HELP, RESULT_MODULE

ROOT = Path(__file__).resolve().parents[2]

ENVIRONMENT = {
    "AISVIZ_HOME": "aisviz's own folder: the feature and saliency caches (`features/`, `saliency/`), downloaded "
                   "data sets (`data/`), logs (`logs/cli.log`, `logs/dashboard.log`) and the dashboard's sweep "
                   "folder (`sweeps/dashboard`). Default `~/.cache/aisviz`.",
    "AISVIZ_DATA": "folders searched for data sets before the project's `data/` and `$AISVIZ_HOME/data`, separated "
                   "by `:` (`;` on Windows).",
    "AISVIZ_BUNDLES": "the result-bundle folder a shared-mode viewer kernel, the hub's JupyterLab and the workshop "
                      "notebook read (`aisviz serve --shared --bundles DIR` sets it for its kernels).",
    "AISVIZ_APP_LOG": "the dashboard's log file (`aisviz serve` sets it to `$AISVIZ_HOME/logs/dashboard.log`); "
                      "unset in JupyterLab, where errors go to the kernel's stderr.",
    "AISVIZ_DEEPGAZE_CENTERBIAS": "path of DeepGaze IIE's centre-bias template (`centerbias_mit1003.npy`); "
                                  "without it the `deepgaze_iie` provider uses a uniform centre bias and says so.",
    "AISVIZ_SHARED_ASSETS": "internal: `aisviz serve` sets it to 1 in its kernels, which then load plotly's "
                            "widget code from the server once instead of inside every figure.",
    "AISVIZ_QUICK": "set to 1 by the notebook tests: the tutorials run a shortened version (fewer seeds, "
                    "coarser k).",
    "AISVIZ_HUB_STATE": "the demo hub (`make hub`): folder for its database, cookie secret, logs and demo homes "
                        "(default `.hub/`).",
    "AISVIZ_HUB_BUNDLES": "the demo hub: the bundles to share (default `<state>/bundles`).",
    "AISVIZ_HUB_PASSWORD": "the demo hub's shared password (required; `make hub` generates and prints one).",
    "AISVIZ_HUB_PORT": "the demo hub's port on 127.0.0.1 (default 8000).",
    "AISVIZ_HUB_SERVICE_PORT": "the port of the hub-managed dashboard service (default 10101).",
    "AISVIZ_HUB_MAX_KERNELS": "the demo hub: cap on the dashboard's kernels (default 60).",
    "AISVIZ_HUB_API_PORT": "the demo hub: the hub's own API port on 127.0.0.1 (default 8081).",
    "AISVIZ_HUB_PROXY_API_PORT": "the demo hub: the proxy's API port on 127.0.0.1 (default 8001).",
    "AISVIZ_ALLOW_PATHS": "internal: `aisviz serve` sets it for its kernels from `--allow-paths` (folders the "
                          "researcher dashboard's path box may open, `:`-separated; empty = the box is off).",
    "AISVIZ_DEFAULT_SETTING": "internal: `aisviz serve --shared --default SETTING` sets it for its kernels: the "
                              "bundled setting shared pages open on.",
    "AISVIZ_APP_LOG_BYTES": "the size at which the dashboard log rotates (default 5 MB; 3 old files are kept).",
}
# Read by libraries aisviz uses, and worth knowing.
OTHER_ENVIRONMENT = {
    "TORCH_HOME": "torch's cache: pretrained torchvision weights are looked up (and downloaded once) in "
                  "`$TORCH_HOME/hub/checkpoints/`; place a weights file there to run offline.",
    "CUDA_VISIBLE_DEVICES": "which GPUs torch sees; `--device auto` uses the first one it sees, if any.",
}
NAME = re.compile(r"\bAISVIZ_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
SCANNED = (".py", ".ipynb", ".md", ".html", ".j2", ".cfg", ".toml", ".yml")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def environment_usage() -> dict[str, list[str]]:
    """Every AISVIZ_* name in the scanned folders, with the files (relative to the repository) that mention it.

    Returns
    -------
    dict
        Variable name -> sorted list of files.
    """
    found: dict[str, set[str]] = {}
    for folder in ENV_SCAN:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in SCANNED or not path.is_file() or "node_modules" in path.parts:
                continue
            for name in NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return {name: sorted(files) for name, files in sorted(found.items())}


def environment_page() -> str:
    """The environment-variable page; fails when the code and the descriptions above disagree.

    Returns
    -------
    str
        The page.
    """
    used = environment_usage()
    missing, stale = sorted(set(used) - set(ENVIRONMENT)), sorted(set(ENVIRONMENT) - set(used))
    if missing or stale:
        raise RuntimeError(f"docs: environment variables out of step with the code: read but not described "
                           f"{missing}, described but not read {stale}; update ENVIRONMENT in {__file__}")
    lines = ["# Environment variables", "",
             "Every `AISVIZ_*` variable that the package, the notebooks or the deployment files read, found in "
             "the source when this site was built (the build fails when one is not described here).", "",
             "| variable | meaning | read in |", "|---|---|---|"]
    for name, files in used.items():
        lines.append(f"| `{name}` | {_cell(ENVIRONMENT[name])} | {', '.join(f'`{f}`' for f in files)} |")
    lines += ["", "Read by the libraries aisviz uses:", "", "| variable | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in OTHER_ENVIRONMENT.items()]
    return "\n".join(lines) + "\n"


def exit_codes_page() -> str:
    """The exit codes and error kinds, from the errors module (its docstring table and its classes).

    Returns
    -------
    str
        The page.
    """
    errors = obj(ERRORS_MODULE)
    doc = inspect.getdoc(errors)
    kinds = [(name, cls) for name, cls in vars(errors).items()
             if inspect.isclass(cls) and issubclass(cls, errors.AisvizError)]
    lines = ["# Exit codes and errors", "",
             f"From `{ERRORS_MODULE}` and the command line's help, when this site was built.", "",
             doc, "", "`aisviz --help` says it in one line:", "", f"> {_cell(obj(EXIT_CODES_HELP))}", "",
             "## Error kinds", "", "In Python every error is one of these (`ValueError`s and `OSError`s, so "
             "existing `except` clauses keep working); each message is one line naming the problem and the fix.",
             "", "| class | exit code | bases | meaning |", "|---|---|---|---|"]
    for name, cls in kinds:
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0]
        lines.append(f"| `{name}` | {cls.exit_code} | {bases} | {_cell(summary)} |")
    warning = errors.AisvizWarning
    lines += ["", f"Warnings: `{warning.__name__}` ({warning.__bases__[0].__name__}): "
              f"{_cell(inspect.getdoc(warning) or '')}", ""]
    return "\n".join(lines)


def _result_fields() -> dict[str, str]:
    """The field descriptions of the dashboard result's module docstring: `name   description` blocks."""
    doc = inspect.getdoc(obj(RESULT_MODULE)) or ""
    fields, current = {}, None
    block = doc.split("\n\n", 3)[-1] if "Fields of" in doc else doc
    for line in block.splitlines():
        match = re.match(r"^([a-z0-9_]+)\s{2,}(.*)$", line)
        if match:
            current = match.group(1)
            fields[current] = match.group(2)
        elif current and line.startswith(" "):
            fields[current] += " " + line.strip()
        elif line.strip() and current:
            current = None
    return fields


def bundle_page() -> str:
    """The bundle format: the bundles module's docstring, its format constants and every stored field.

    Returns
    -------
    str
        The page.
    """
    bundles = obj(BUNDLES_MODULE)
    doc = inspect.getdoc(bundles) or ""
    head, _, rest = doc.partition("\n\n")
    described = _result_fields()
    lines = ["# Bundle format", "", f"From the docstring and constants of `{BUNDLES_MODULE}` when this site was "
             f"built: format `{bundles.FORMAT}`, version {bundles.VERSION}.", "", head, "", rest, "",
             "## Stored fields", "", f"Each setting's fields are those of the dashboard's result "
             f"(`{RESULT_MODULE}`); the descriptions below are that module's.", "",
             "| field | stored as | meaning |", "|---|---|---|"]
    stored = [(f, "`arrays/<field>.npy`") for f in bundles.ARRAY_FIELDS]
    stored += [(f, "flat `.npy` + shape table") for f in bundles.RAGGED_FIELDS]
    stored += [(f, "`manifest.json`") for f in bundles.JSON_FIELDS]
    for field, where in stored:
        lines.append(f"| `{field}` | {where} | {_cell(described.get(field, '(not described in the result module)'))} |")
    return "\n".join(lines) + "\n"


def render_all() -> dict[str, str]:
    """Every page of this module, by its path in the site.

    Returns
    -------
    dict
        Page path (as under docs/) -> Markdown.
    """
    return {"reference/exit-codes.md": exit_codes_page(), "reference/environment.md": environment_page(),
            "reference/bundle-format.md": bundle_page()}
