import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data_root():
    """The first AISVIZ_DATA entry that holds the Peterson sets; skips the test when there is none."""
    for entry in os.environ.get("AISVIZ_DATA", "").split(os.pathsep):
        if entry and (Path(entry) / "peterson2018" / "animals" / "images").is_dir():
            return Path(entry)
    pytest.skip("real data not on AISVIZ_DATA (set AISVIZ_DATA=../shared/data)")


def make_tiny_set(n=12, size=64, seed=0):
    """A small in-memory comparison set: coloured discs whose simulated similarity follows their hue."""
    import numpy as np
    from PIL import Image, ImageDraw

    from aisviz.core.comparison import ComparisonSet

    rng = np.random.default_rng(seed)
    hues = np.sort(rng.uniform(0, 1, n))
    images = []
    for h in hues:
        img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(80, 160, 3)))
        r = int(rng.integers(size // 6, size // 3))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        colour = Image.new("HSV", (1, 1), (int(h * 255), 220, 230)).convert("RGB").getpixel((0, 0))
        ImageDraw.Draw(img).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        images.append(img)
    sim = 1 - np.abs(hues[:, None] - hues[None, :])
    return ComparisonSet(name="tiny", image_names=tuple(f"img{i:02d}.png" for i in range(n)), similarity=sim,
                         images=tuple(images), observer="simulated")


@pytest.fixture
def tiny_set():
    return make_tiny_set()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own feature cache, so tests never see each other's files."""
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "aisviz-home"))


@pytest.fixture
def small_mount(tmp_path):
    """Mount a real tmpfs (read-only, or 300 KB: too small for a feature cache); skip where mounting is not
    allowed (not root, or a container without the capability)."""
    mounted = []

    def mount(name, options):
        target = tmp_path / name
        target.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


class SessionListener:
    """Collects what a dashboard Session reports (progress is ignored)."""

    def __init__(self):
        self.results, self.errors = [], []

    def progress(self, job, stage, fraction, text):
        pass

    def finished(self, job, result):
        self.results.append(result)

    def failed(self, job, exc):
        self.errors.append(exc)
