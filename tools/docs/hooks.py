"""MkDocs hooks (mkdocs.yml `hooks:`): add the generated reference pages, the method's figures and the browser
tests' screenshots to the site, and typeset formulas as MathML. Nothing is written into docs/: generated files
exist only in the build."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (HERE, ROOT):  # the generators beside this file; the package of this checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import cli_reference  # noqa: E402
import fields_reference  # noqa: E402
import method_figures  # noqa: E402
import reference_pages  # noqa: E402
from default_run import default_run  # noqa: E402
from latex2mathml.converter import convert  # noqa: E402

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SHOT = re.compile(r"<!--\s*screenshot:\s*(\S+)\s*\|\s*(.+?)\s*-->")
DEFAULT_SET = re.compile(r"<!--\s*default-set:\s*(\w+)(?:\s+(\S+))?(?:\s*\|\s*(.+?))?\s*-->")
DISPLAY_MATH = re.compile(r"^\$\$\n(.+?)\n\$\$$", re.S | re.M)
INLINE_MATH = re.compile(r"(?<![\\$\w])\$([^$\n]+?)\$(?![\w$])")
_snippets: dict[str, str] = {}
_panels: list[str] = []


def on_files(files: Files, config) -> Files:
    """Add every generated page and image to the build.

    Parameters
    ----------
    files : Files
        The files MkDocs found in docs/.
    config : MkDocsConfig
        The site's configuration.

    Returns
    -------
    Files
        The same collection with the generated files added.
    """
    run = default_run()
    pages = {"reference/cli.md": cli_reference.render(), **reference_pages.render_all(),
             "reference/fields.md": fields_reference.render(run)}
    for uri, text in pages.items():
        files.append(File.generated(config, uri, content=text))
    figures = {"curve.png": method_figures.curve_png(run), "ais_bars.png": method_figures.bars_png(run),
               "kstar.png": method_figures.kstar_png(run)}
    for name, png in figures.items():
        files.append(File.generated(config, f"method/{name}", content=png))
    _panels.clear()
    for i, panel in enumerate(method_figures.panel_files(run)):
        _panels.append(f"method/panel-{i}.png")
        files.append(File.generated(config, _panels[-1], abs_src_path=str(panel)))
    _snippets.clear()
    _snippets.update(method_figures.snippets(run))
    for shot in sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []:
        files.append(File.generated(config, f"assets/screenshots/{shot.name}", abs_src_path=str(shot)))
    return files


def _figure(uri: str, caption: str, depth: int) -> str:
    return f"![{caption}]({'../' * depth}{uri})\n\n*{caption}*\n"


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Fill the markers: `<!-- screenshot: NAME | caption -->` (the browser tests' screenshot, or a note saying how
    to make it when this build has none: screenshots are test artefacts, not committed), `<!-- default-set: ... -->`
    (the method's figures and numbers); on pages with `math: true` in their front matter, $$…$$ and $…$ formulas
    become MathML (no script, no network).

    Parameters
    ----------
    markdown : str
        The page's Markdown.
    page : Page
        The page.
    config : MkDocsConfig
        The site's configuration.
    files : Files
        Every file of the build.

    Returns
    -------
    str
        The Markdown with the markers filled.
    """
    depth = page.file.src_uri.count("/")

    def screenshot(match: re.Match) -> str:
        name, caption = match.group(1), match.group(2)
        if files.get_file_from_path(f"assets/screenshots/{name}.png") is None:
            return (f'!!! note "Screenshot not in this build: {caption}"\n    Run the browser tests '
                    "(`pytest tests/browser/test_browser.py`) before `make docs` to include it.\n")
        return _figure(f"assets/screenshots/{name}.png", caption, depth)

    def default_set(match: re.Match) -> str:
        kind, name, caption = match.groups()
        if kind == "figure":
            return _figure(f"method/{name}", caption, depth)
        if kind == "panels":
            images = "\n".join(f"![{caption}]({'../' * depth}{uri})" for uri in _panels)
            return f"{images}\n\n*{caption}*\n"
        return _snippets[kind]

    markdown = DEFAULT_SET.sub(default_set, SHOT.sub(screenshot, markdown))
    if page.meta.get("math"):
        markdown = DISPLAY_MATH.sub(lambda m: convert(m.group(1), display="block"), markdown)
        markdown = INLINE_MATH.sub(lambda m: convert(m.group(1)), markdown)
    return markdown
