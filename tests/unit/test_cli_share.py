"""`aisviz precompute` and `aisviz notebooks` from the command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, timeout=600):
    env = dict(os.environ, AISVIZ_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-m", "aisviz", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


@pytest.mark.slow
def test_precompute_writes_a_verified_bundle_of_the_default_set(tmp_path):
    out = _run(["precompute", "--out", "b", "--seeds", "1", "--folds", "3", "--k-step", "256", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "added synthetic · efficientnet_lite0 · _head_act → flatten · spectral_residual" in out.stdout
    assert "holds 1 setting(s), checksums verified" in out.stdout
    from aisviz.pipeline.bundles import open_catalog

    r = open_catalog(tmp_path / "b", verify=True).load(open_catalog(tmp_path / "b").entries[0].id)
    assert r.dataset_name == "synthetic" and r.n_maps == 1280 and len(r.splits) == 3
    assert r.relevant_masks is not None and r.saliency is not None


def test_precompute_errors_are_one_line(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text('{"format": "other"}')
    out = _run(["precompute", "--out", "b", "--quiet"], tmp_path)
    assert out.returncode == 3                   # bad input
    assert out.stderr.strip().splitlines()[-1] == (
        "aisviz: error: bundle.json is not an aisviz result bundle (format is not 'aisviz-bundle'): point to a "
        "folder written by `aisviz precompute`.")


def test_notebooks_are_copied_and_kept(tmp_path):
    out = _run(["notebooks", "course"], tmp_path)
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "course").iterdir())
    assert {"01_quickstart.ipynb", "03_workshop.ipynb", "INSTRUCTOR.md"} <= set(names)
    (tmp_path / "course" / "03_workshop.ipynb").write_text("my notes")
    again = _run(["notebooks", "course"], tmp_path)
    assert again.returncode == 0 and "existing files kept" in again.stdout
    assert (tmp_path / "course" / "03_workshop.ipynb").read_text() == "my notes"
    _run(["notebooks", "course", "--overwrite"], tmp_path)
    assert (tmp_path / "course" / "03_workshop.ipynb").read_text() != "my notes"


def test_the_notebooks_ship_inside_the_package():
    """aisviz/notebooks links to the checkout's notebooks/, so wheels carry them (package data)."""
    from aisviz.cli.share import packaged_notebooks

    folder = Path(__import__("aisviz").__file__).resolve().parent / "notebooks"
    assert folder.is_dir() and (folder / "03_workshop.ipynb").is_file()
    assert packaged_notebooks().resolve() == folder.resolve()
    assert 'notebooks/*.ipynb' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_precompute_on_a_full_disk_is_an_environment_error(tmp_path, small_mount):
    """A real 300 KB tmpfs: the result is computed, its arrays do not fit; exit 4 with one line, nothing left."""
    disk = small_mount("full", "size=300k")
    out = _run(["precompute", "--out", str(disk / "b"), "--seeds", "1", "--folds", "2", "--k-step", "256",
                "--saliency", "none", "--quiet"], tmp_path)
    assert out.returncode == 4, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"aisviz: error: cannot write the bundle into {disk / 'b'} (No space left on device)")
    assert "internal error" not in line and "free disk space" in line
    assert [p for p in disk.rglob("*") if p.is_file()] == []       # no partial setting, no index


def test_precompute_into_a_read_only_folder_fails_before_computing(tmp_path, small_mount):
    disk = small_mount("ro", "ro,size=100k")
    out = _run(["precompute", "--out", str(disk / "b"), "--quiet"], tmp_path)
    assert out.returncode == 4, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "cannot write into --out" in line and "Read-only file system" in line
    assert not (tmp_path / "home" / "features").exists()           # nothing was computed
