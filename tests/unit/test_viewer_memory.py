"""The memory of a viewer kernel is one measured figure: aisviz/server/viewer_memory.json, written by
`benchmarks/bench_sessions.py --record`. `aisviz serve --help`, the README, the instructor guide and the
documentation quote that number, and no other figure for it."""
import re
from pathlib import Path

import pytest

from aisviz.cli.commands import main
from aisviz.server.viewer_memory import viewer_kernel_mb, viewer_memory

ROOT = Path(__file__).resolve().parents[2]
PLACES = ["README.md", "notebooks/INSTRUCTOR.md", "docs/performance.md", "docs/howto/sharing.md"]
QUOTE = re.compile(r"(\d+) MB per viewer kernel")
# a memory figure within a sentence of "viewer" (tables of dated benchmark runs excepted)
NEAR_VIEWER = re.compile(r"viewer[^.|]{0,120}?(\d[\d.]*(?:[–-]\d+)?)\s*(?:MB|GB)|(\d[\d.]*(?:[–-]\d+)?)\s*(?:MB|GB)"
                         r"[^.|]{0,40}?\bper viewer", re.I)


def test_the_figure_file_is_a_benchmark_record():
    record = viewer_memory()
    assert record["kernel_rss_mb"] == viewer_kernel_mb() > 0
    assert record["command"].startswith("python benchmarks/bench_sessions.py") and record["measured"]


@pytest.mark.parametrize("place", PLACES)
def test_every_document_quotes_the_measured_figure_and_no_other(place):
    mb = viewer_kernel_mb()
    text = (ROOT / place).read_text()
    prose = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))
    assert {int(q) for q in QUOTE.findall(prose)} == {mb}, f"{place} does not quote '{mb} MB per viewer kernel'"
    others = [m.group(0) for m in NEAR_VIEWER.finditer(prose) if (m.group(1) or m.group(2)) != str(mb)]
    assert not others, f"{place} quotes another viewer memory figure than {mb} MB: {others}"


def test_serve_help_quotes_the_measured_figure(capsys):
    assert main(["serve", "--help"]) == 0
    assert f"viewer kernels {viewer_kernel_mb()} MB" in " ".join(capsys.readouterr().out.split())
