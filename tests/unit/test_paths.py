"""Paths to test files named in the project's own scripts, code and docs exist (the test tree was regrouped
once and a GPU check script kept pointing at the old places, so a lent GPU would have run no tests)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = ("*.py", "*.sh", "*.md", "*.yml", "*.toml", "Makefile")
NAMED = re.compile(r"\btests/[a-z0-9_/]+\.py\b")  # lower case: CONTRIBUTING.md names a placeholder


def _project_files():
    for folder in ("aisviz", "benchmarks", "tools", "docs", "tests", "notebooks", ".ci", "deploy"):
        for pattern in TEXT:
            yield from (p for p in (ROOT / folder).rglob(pattern) if "node_modules" not in p.parts)
    yield from (ROOT / name for name in ("README.md", "CONTRIBUTING.md", "Makefile", "pyproject.toml"))


def test_every_test_file_named_in_the_project_exists():
    missing = sorted({f"{path.relative_to(ROOT)}: {name}" for path in _project_files() if path.is_file()
                      for name in NAMED.findall(path.read_text(errors="replace")) if not (ROOT / name).exists()})
    assert not missing, "test files named but absent (moved or renamed?):\n" + "\n".join(missing)
