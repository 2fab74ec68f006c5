"""The package's layers: imports point only downward (import-linter), function-level imports only defer torch,
and the parts that must stay light (the package, the command line's help, the viewer) import no torch."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aisviz"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
APP_EXTRA = ("ipywidgets", "anywidget", "plotly", "ipyevents", "voila", "jupyterlab")


def _run(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_the_layers_contract_holds():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_layers_contract_catches_an_upward_import(tmp_path):
    """The contract can fail: the same check on a copy where the core imports the dashboard is broken."""
    shutil.copytree(PACKAGE, tmp_path / "aisviz", symlinks=True)
    engine = tmp_path / "aisviz" / "core" / "checks.py"
    engine.write_text(engine.read_text() + "\n\ndef _upward():\n    from aisviz.app import dashboard  # noqa: F401\n")
    done = _lint(tmp_path)
    assert done.returncode != 0 and "broken" in done.stdout
    assert "aisviz.core.checks -> aisviz.app.dashboard" in done.stdout


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Top-level imports of every aisviz module (aisviz modules and 'torch'), and (module, imported) for every
    aisviz import made inside a function. Imports under `if TYPE_CHECKING:` never run: they are left out."""
    top_level, lazy = {}, []
    for path in PACKAGE.rglob("*.py"):
        name, tree = _module_name(path), ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        typing_only = {id(node) for block in tree.body if isinstance(block, ast.If)
                       and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                       for node in ast.walk(block)}
        top_level[name] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets = [m for m in targets if m.split(".")[0] in ("aisviz", "torch")]
            if id(node) in top or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                top_level[name] |= {"torch" if m.startswith("torch") else m for m in targets}
            else:
                lazy += [(name, m) for m in targets if m.startswith("aisviz")]
    return top_level, lazy


def _loads_torch(module: str, graph: dict[str, set[str]]) -> bool:
    """Whether importing module loads torch (through the top-level imports of aisviz modules)."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m == "torch":
            return True
        if m in seen or m not in graph:
            continue
        seen.add(m)
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]  # packages run first
        todo += list(graph[m]) + parents
    return False


def test_function_level_imports_only_defer_torch():
    """An import inside a function may only put off loading torch (so that `import aisviz`, `aisviz --help` and
    the viewer stay light); each module so imported must really load torch, or it belongs at the top."""
    graph, lazy = _import_graph()
    assert lazy, "expected the torch-bearing modules to be imported lazily somewhere"
    light = sorted({f"{where} imports {m}" for where, m in lazy if m in graph and not _loads_torch(m, graph)})
    assert not light, "imported inside functions but they load no torch (import them at the top):\n" + "\n".join(light)


@pytest.mark.parametrize("modules", [("aisviz",), ("aisviz.cli",), ("aisviz.app.viewer",),
                                     ("aisviz.pipeline.bundles",)])
def test_light_entry_points_import_no_torch(modules):
    done = _run(f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def _blocking(packages: tuple[str, ...]) -> str:
    """Python source that makes the given packages unimportable, as when an extra is not installed."""
    return ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {packages!r}:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
            "sys.meta_path.insert(0, Block())\n")


def test_precompute_and_sweep_need_no_app_extra():
    """Without the dashboard's packages, the command line's compute side still imports."""
    done = _run(_blocking(APP_EXTRA) + "import aisviz.cli.commands, aisviz.cli.share, aisviz.pipeline.compute, "
                "aisviz.pipeline.sweeps, aisviz.pipeline.bundles\nprint('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert _run(_blocking(APP_EXTRA) + "import aisviz.app").returncode != 0  # the blocker does block


@pytest.mark.slow
def test_precompute_runs_without_the_app_extra(tmp_path):
    """`aisviz precompute` end to end with the app extra unimportable: a real bundle comes out (exit 0)."""
    code = _blocking(APP_EXTRA) + (
        "import sys; from aisviz.cli import main\n"
        f"sys.exit(main(['precompute', '--out', {str(tmp_path / 'bundles')!r}, '--folds', '3', '--seeds', '1',"
        " '--k-step', '256', '--saliency', 'none', '--quiet']))")
    done = _run(code, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "bundles" / "bundle.json").is_file()
