"""The documentation site: the strict, offline build of `make docs`, and what its generated pages must hold.

One build (module fixture) into a temporary folder, the way `make docs` runs it: `mkdocs build --strict`, where a
warning, a broken internal link or an unresolved cross-reference fails the build. The first build of a checkout
also computes the default set for the method's figures (cached in .docs-cache/), hence slow.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_ASSET = re.compile(r"""<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
                            r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I)

pytestmark = pytest.mark.slow


def _subcommands() -> list[str]:
    """The subcommands `aisviz --help` lists (through the command, so the test does not depend on module paths)."""
    out = subprocess.run([sys.executable, "-m", "aisviz", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    listed = out.split("COMMAND", 2)[-1]
    names = re.findall(r"^ {4}([a-z][a-z_-]+)\s", listed, re.M)
    assert len(names) >= 10, out  # the parsing itself must have worked
    return names


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def test_every_page_of_the_nav_is_built(site):
    for page in ("index", "getting-started", "method", "performance", "architecture", "tutorials/index",
                 "tutorials/notebooks/01_quickstart", "howto/own-data", "howto/sweeps", "howto/teaching",
                 "reference/cli", "reference/fields", "reference/exit-codes", "reference/environment",
                 "reference/bundle-format", "reference/api/ais"):
        assert (site / f"{page}.html").is_file(), page


def test_cli_reference_has_every_subcommand_and_flag(site):
    html = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for name in _subcommands():
        assert f'id="{name}"' in html, f"no section for `aisviz {name}`"
    for flag in ("--json", "--csv", "--k-step", "--n-random", "--pool-size", "--scheduler", "--display"):
        assert flag in html, flag


def test_generated_references_hold_the_code_s_names(site):
    fields = (site / "reference" / "fields.html").read_text(encoding="utf-8")
    for column in ("mean_r2_test_topk", "ceiling_fraction_topk", "k_star", "r2_test_random", "rr_5",
                   "nonfinite_as_null"):
        assert column in fields, column
    assert "AISVIZ_HOME" in (site / "reference" / "environment.html").read_text(encoding="utf-8")
    codes = (site / "reference" / "exit-codes.html").read_text(encoding="utf-8")
    assert "EnvironmentProblem" in codes and "130 interrupted" in codes
    assert "manifest.json" in (site / "reference" / "bundle-format.html").read_text(encoding="utf-8")
    assert "AlignmentImportance" in (site / "reference" / "api" / "ais.html").read_text(encoding="utf-8")


def test_method_page_has_its_figures_and_formulas(site):
    html = (site / "method.html").read_text(encoding="utf-8")
    for figure in ("curve.png", "ais_bars.png", "kstar.png", "panel-0.png"):
        assert f'src="method/{figure}"' in html, figure
        assert (site / "method" / figure).stat().st_size > 5000, figure
    assert html.count("<math") >= 8  # formulas typeset as MathML, no script
    assert "k* random maps" in html  # the default set's numbers, filled in at build time


def test_site_reads_offline(site):
    """No page or stylesheet loads anything from another host (fonts, scripts, MathJax, images)."""
    offenders = []
    for path in sorted(site.rglob("*")):
        if path.suffix in (".html", ".css") and path.is_file():
            for match in EXTERNAL_ASSET.finditer(path.read_text(encoding="utf-8", errors="replace")):
                offenders.append(f"{path.relative_to(site)}: {match.group(0)[:120]}")
    assert not offenders, "\n".join(offenders[:20])
