"""Where aisviz keeps files, and how it writes them: atomically, so an interrupted run leaves no partial file."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from aisviz.errors import EnvironmentProblem, UsageError

TEMP_SUFFIXES = (".tmp", ".part")  # what atomic_write and downloads leave behind when killed mid-write


def atomic_write(target: Path, write) -> Path:
    """Call write(binary file) on a temporary file beside target, then rename it onto target. A full disk
    raises OSError with errno ENOSPC (see disk_full_as_errno)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with disk_full_as_errno(target), os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@contextlib.contextmanager
def disk_full_as_errno(target: Path):
    """Inside the block, an OSError without errno on a full disk becomes OSError(ENOSPC): numpy reports a short
    write as "61440 requested and 32752 written" with no errno, which would read as a bug (exit code 1)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None and _free_bytes(Path(target)) < (1 << 20):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from exc
        raise


def _free_bytes(target: Path) -> int:
    folder = target if target.is_dir() else target.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def environment_problem(exc: OSError, what: str) -> EnvironmentProblem:
    """A one-line EnvironmentProblem (exit code 4) for an OSError met while writing `what`."""
    return EnvironmentProblem(f"cannot write {what} ({exc.strerror or exc}): free disk space, or choose a folder "
                              "you can write to.")


def atomic_write_text(target: Path, text: str) -> Path:
    return atomic_write(target, lambda f: f.write(text.encode("utf-8")))


def clear_files(folder: Path, pattern: str = "*.npz") -> int:
    """Delete the cache files matching pattern in folder, and stale temporary files; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for f in list(folder.glob(pattern)) + stale_temp_files(folder):
        if f.is_file():
            f.unlink(missing_ok=True)
            removed += 1
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):  # folders a cache entry left empty
            d.rmdir()
    return removed


def stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files of interrupted writes (.name.XXXX.tmp / .part) anywhere below folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in folder.rglob(".*") if p.is_file() and p.name.endswith(TEMP_SUFFIXES)]


def folder_usage(folder: Path) -> tuple[int, int]:
    """(number of files, total bytes) below folder; (0, 0) when it does not exist."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()] if Path(folder).is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def output_names(image_names: Sequence[str], suffix: str) -> list[str]:
    """One safe, distinct output file name per image: its stem + suffix, made unique.

    Characters other than letters, digits, '.', '-' and '_' become '_', and leading dots and dashes go (so no
    name can leave the output folder, hide, or read as an option). Where two images share a stem (stim.png and
    stim.jpg) both keep their extension (stim_png + suffix); any remaining clash gets -2, -3, ... (compared
    without case, for macOS and Windows). Callers write the image -> file mapping beside the outputs."""
    def clean(s):
        return re.sub(r"[^A-Za-z0-9._-]", "_", s).lstrip(".-") or "image"

    stems = [clean(Path(n).stem) for n in image_names]
    shared = {s for s, c in Counter(stems).items() if c > 1}
    base = [clean(Path(n).name.replace(".", "_")) if s in shared else s for n, s in zip(image_names, stems)]
    seen: set[str] = set()
    out = []
    for b in base:
        name, k = b + suffix, 1
        while name.lower() in seen:  # case-insensitive file systems (macOS, Windows) would merge them
            k += 1
            name = f"{b}-{k}{suffix}"
        seen.add(name.lower())
        out.append(name)
    return out


def prepare_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Create the output folder now, before any computation, and check that files can be written there."""
    out = Path(path).expanduser()
    if not str(path).strip():
        raise UsageError(f"{option} is empty; give a folder to write into, e.g. {option} results.")
    for p in [out, *out.parents]:
        if p.exists() and not p.is_dir():
            what = "is a file" if p == out else f"lies below {p}, which is a file"
            raise UsageError(f"{option} {out} {what}; give a folder path (a new or existing folder).")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".aisviz-write-check.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write into {option} {out} ({exc.strerror or exc}); choose a folder you can write to.") from None
    return out


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (bundles, downloads and weights files)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
