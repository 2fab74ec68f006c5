"""Where data sets live: the data search path, the catalog of known sets, and downloads.

Real data sets are never shipped with aisviz (their licences forbid it). They are found on the
data search path: the folders in AISVIZ_DATA, then the project's data/ folder, then the user data
folder (AISVIZ_HOME/data, default ~/.cache/aisviz/data), where `download` puts them.
"""
from __future__ import annotations

import csv
import datetime
import difflib
import http.client
import io
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from aisviz.config import aisviz_home
from aisviz.core.comparison import IMAGE_EXTENSIONS, MATRIX_FILES, ComparisonSet
from aisviz.errors import DataError, EnvironmentProblem
from aisviz.io.folders import load_folder
from aisviz.io.storage import atomic_write, atomic_write_text, sha256_file
from aisviz.io.synthetic import make_default_set


class NoNetwork(DataError, EnvironmentProblem):
    """A download failed for want of a network (exit code 4); the message says which files to copy where."""

    exit_code = EnvironmentProblem.exit_code

REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def user_data_dir() -> Path:
    """AISVIZ_HOME/data, or ~/.cache/aisviz/data: where downloads go."""
    return aisviz_home() / "data"


def data_search_path(extra: Sequence[Path] = ()) -> list[Path]:
    """Folders searched for data sets, in order: `extra` (roots a caller added, e.g. in the dashboard), the
    folders in AISVIZ_DATA, the project's data/ and the user data folder."""
    paths = [Path(p) for p in extra]
    paths += [Path(p).expanduser() for p in os.environ.get("AISVIZ_DATA", "").split(os.pathsep) if p]
    if REPO_DATA.is_dir():
        paths.append(REPO_DATA)
    paths.append(user_data_dir())
    return paths


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    folder: str | None  # relative to a search-path root; None for generated sets
    description: str
    citation: str
    licence: str
    source_url: str
    # Key files of the set, relative to its folder, with the sha256 of a known-good copy (None
    # where no checksum was published). `download` fetches these where it has a source for them.
    files: dict = field(default_factory=dict)
    has_images: bool = True
    observer: str = "human"


_PETERSON_CITATION = (
    "Peterson, J. C., Abbott, J. T., & Griffiths, T. L. (2018). Evaluating (and improving) the "
    "correspondence between deep neural networks and human representations. Cognitive Science, "
    "42(8), 2648-2669. doi:10.1111/cogs.12670"
)
_PETERSON_UNRELEASED = (
    "Not openly released by the authors (the DimPred authors, Kaniuth et al. 2025, state they may "
    "not share it); known copies are unofficial redistributions without a licence. Local research "
    "only, do not redistribute; ask J. C. Peterson / the Griffiths lab for permission."
)
# sha256 of the matrix (similarity_normalized.npy) and image list of the six Peterson sets, taken from known-good
# copies, so a copy placed by hand can be checked.
_PETERSON_FILES = {
    "animals": ("3c426c3fb6fdcbaea3ee69e5cbc91c81fdf9a41564a3a6e48cc5ac561edaa48f",
                "5b35883ffa6ea518b71e549280a8250755cae07c106e323d29bcc04e1b982af8"),
    "automobiles": ("95beb60cbff93e1469111bd5fb66c149c2d96eebdf3f550cdc998e9c53142f1e",
                    "cfb36ca4ce053221bfc1ec2ef1479a129735ea0e892d743c2d8927bf87751af1"),
    "fruits": ("38e75c4787777ffc105616ae1260018dbaa8e3b0463eeaf68cf82d579c6759ce",
               "d7d5dd4400358b95c60012e423b0458bd4a1f7b2eaf69dc322971b3e92b331fa"),
    "furniture": ("3ade9abcf73c7bb1af631f880906bb1f95e05e77db6c71c41fe5a62a925d58fb",
                  "5803bafa908256b7cbedfd3472899025c5defd5819db25e22f3cffaf622b41b6"),
    "various": ("52aad96493ee6eabe9409073e36732fc3df5b9fa9cbd59f37f0ce1f3f5d74bb3",
                "5edc66902f820f358243bfc74a47e5b3f986286a1b9d4f2060e546335580459a"),
    "vegetables": ("6a54f3ce24cfa46e49b6d32a1c74013f50799a409b418dcadbd99ee9abfbe8c4",
                   "ea0d9107b669084f634461129c5236d9a54161133d283031fa0f6c9b70be1804"),
}
_WITH_IMAGES = ("animals", "fruits", "vegetables")  # no public copy of the others' images


def _peterson_entry(kind: str) -> CatalogEntry:
    matrix_sha, list_sha = _PETERSON_FILES[kind]
    files = {"similarity_normalized.npy": matrix_sha, "image_list.txt": list_sha}
    if kind == "animals":
        return CatalogEntry(
            name="peterson_animals",
            folder="peterson2018/animals",
            description="Peterson et al. 2018: 120 animal photos, mean pairwise similarity "
            "ratings (0-10, stored / 10). The paper's main set; openly released by the authors.",
            citation=_PETERSON_CITATION + ". First used in Peterson, Abbott & Griffiths (2016), "
            "Proc. CogSci 38 (arXiv:1608.02164)",
            licence="jcpeterson/percept2vec: no licence for the ratings or images (its GPL-3.0 "
            "covers the code only); images scraped from the web, copyright of third parties. "
            "Cite; local research use; do not redistribute.",
            source_url="https://github.com/jcpeterson/percept2vec",
            files={
                "original/turkResults_CogSci2016.mat":
                    "57317121aaa43f553b6551d523eaf0740269e695c0dc438f36735f2ccb85977e",
                "original/animals.zip": None,
                **files,
            },
        )
    return CatalogEntry(
        name=f"peterson_{kind}",
        folder=f"peterson2018/{kind}",
        description=f"Peterson et al. 2018: 120 {kind} images, mean pairwise similarity ratings "
        "(0-1)." + ("" if kind in _WITH_IMAGES else " Matrix only: no public copy of the images."),
        citation=_PETERSON_CITATION,
        licence=_PETERSON_UNRELEASED,
        source_url="https://doi.org/10.1111/cogs.12670 (ask the authors for the data)",
        files=files,
        has_images=kind in _WITH_IMAGES,
    )


_RSATOOLBOX = "rsagroup/rsatoolbox/f1f83cadb7243492a1aae7460466e0f0140b20ac/demos/92imageData"

CATALOG: dict[str, CatalogEntry] = {
    **{f"peterson_{k}": _peterson_entry(k) for k in _PETERSON_FILES},
    "mur92": CatalogEntry(
        name="mur92",
        folder="mur2013_92objects",
        description="Kriegeskorte 92 object images (175x175 on grey) with human dissimilarity "
        "judgments of 16 people (Mur et al. 2013); the mean is converted to similarity.",
        citation="Mur, M., Meys, M., Bodurka, J., Goebel, R., Bandettini, P. A., & "
        "Kriegeskorte, N. "
        "(2013). Human object-similarity judgments reflect and transcend the primate-IT object "
        "representation. Frontiers in Psychology, 4, 128. doi:10.3389/fpsyg.2013.00128. Images: "
        "Kriegeskorte, N., et al. (2008). Matching categorical object representations in inferior "
        "temporal cortex of man and monkey. Neuron, 60(6), 1126-1141",
        licence="From rsagroup/rsatoolbox (MIT); no separate licence stated for the demo data or "
        "the Kiani et al. (2007) photographs. Cite both papers; local research and tests; ask the "
        "authors before publishing the images.",
        source_url="https://github.com/rsagroup/rsatoolbox/tree/"
        "f1f83cadb7243492a1aae7460466e0f0140b20ac/demos/92imageData",
        files={
            "original/92_behavRDMs.mat":
                "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f",
            "original/Kriegeskorte_Neuron2008_supplementalData.mat":
                "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504",
        },
    ),
    "synthetic": CatalogEntry(
        name="synthetic",
        folder=None,
        description="Generated default set (aisviz.io.synthetic.make_default_set): images with a "
        "known relevant region and simulated similarity judgments, for tests and demos.",
        citation="Generated by aisviz (aisviz.io.synthetic.make_default_set); simulated, not human, judgments.",
        licence="Generated by aisviz (MIT)",
        source_url="",
        observer="simulated",
    ),
}

# Where `download` fetches each file from (relative path in the set's folder -> URL).
DOWNLOAD_SOURCES: dict[str, dict[str, str]] = {
    "peterson_animals": {
        "original/turkResults_CogSci2016.mat": "https://raw.githubusercontent.com/jcpeterson/"
        "percept2vec/2f82c622a8c4677101364e0b22883fc32e782faf/turkResults_CogSci2016.mat",
        # github.com/.../raw/ also follows Git LFS, in case the large zip is stored there.
        "original/animals.zip": "https://github.com/jcpeterson/percept2vec/raw/"
        "2f82c622a8c4677101364e0b22883fc32e782faf/animals.zip",
    },
    "mur92": {
        "original/92_behavRDMs.mat":
            f"https://raw.githubusercontent.com/{_RSATOOLBOX}/92_behavRDMs.mat",
        "original/Kriegeskorte_Neuron2008_supplementalData.mat":
            f"https://raw.githubusercontent.com/{_RSATOOLBOX}/"
            "Kriegeskorte_Neuron2008_supplementalData.mat",
    },
}


def _entry(name: str) -> CatalogEntry:
    if name in CATALOG:
        return CATALOG[name]
    close = difflib.get_close_matches(name, list(CATALOG), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise DataError(
        f"unknown data set '{name}' (and no folder of that name exists).{hint} Known data sets: "
        f"{', '.join(CATALOG)}. Or give the path to a folder laid out as in data/README.md."
    )


def _has_matrix(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).is_file() for f in MATRIX_FILES)


def locate_dataset(name: str, extra: Sequence[Path] = ()) -> Path | None:
    """The first folder on the data search path (after the `extra` roots) that holds catalog set `name`, or None."""
    entry = _entry(name)
    if entry.folder is None:
        return None
    for root in data_search_path(extra):
        if _has_matrix(root / entry.folder):
            return root / entry.folder
    return None


def list_datasets(extra: Sequence[Path] = ()) -> list[dict]:
    """Every catalog entry with `available` and `location` (a path string, or None); `extra`: roots searched
    first."""
    rows = []
    for entry in CATALOG.values():
        if entry.folder is None:
            location = None
            available = True  # generated on demand
        else:
            location = locate_dataset(entry.name, extra)
            available = location is not None
        rows.append({
            "name": entry.name,
            "folder": entry.folder,
            "description": entry.description,
            "citation": entry.citation,
            "licence": entry.licence,
            "source_url": entry.source_url,
            "has_images": entry.has_images,
            "observer": entry.observer,
            "downloadable": entry.name in DOWNLOAD_SOURCES,
            "available": available,
            "location": None if location is None else str(location),
        })
    return rows


def load_dataset(name_or_path: str | Path, extra: Sequence[Path] = ()) -> ComparisonSet:
    """Load a data folder by path, or a catalog set by name from the data search path (`extra` roots first)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return load_folder(path)
    entry = _entry(str(name_or_path))
    if entry.folder is None:
        return make_default_set()
    location = locate_dataset(entry.name, extra)
    if location is None:
        looked = "\n".join(
            f"  {root / entry.folder}" + ("  (exists but holds no matrix file)"
                                          if (root / entry.folder).is_dir() else "")
            for root in data_search_path(extra)
        )
        fetch = (
            f"With internet, `aisviz download {entry.name}` fetches it into "
            f"{user_data_dir() / entry.folder}."
            if entry.name in DOWNLOAD_SOURCES
            else f"aisviz cannot download it; obtain it from {entry.source_url}."
        )
        raise DataError(
            f"data set '{entry.name}' was not found. Looked in:\n{looked}\n{fetch} Or set "
            f"AISVIZ_DATA to a folder that holds {entry.folder}/ (several folders: separate "
            f"them with '{os.pathsep}')."
        )
    ds = load_folder(location, name=entry.name)
    return replace(
        ds,
        citation=ds.citation or entry.citation,
        licence=ds.licence or entry.licence,
        meta={**ds.meta, "catalog": entry.name},
    )


# ---------------------------------------------------------------------------------------------
# Downloads



def _copy_local(url: str, output_file, pooch_instance=None, check_only: bool = False):
    """pooch downloader for file:// URLs (local mirrors, tests): a plain copy."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return source.is_file()
    shutil.copyfile(source, output_file)


def _fetch(url: str, target: Path, sha256: str | None, timeout: float, progress: bool = False) -> str:
    """Download url to target with pooch (atomic, sha256-checked, progress bar on stderr); return its sha256.

    A file already at target is kept when its checksum is right (so files copied in by hand are
    used as they are). Network failures propagate as requests' ConnectionError/Timeout for the caller
    to explain."""
    import pooch
    import requests

    if target.is_file():
        actual = sha256_file(target)
        if sha256 is None or actual == sha256:
            return actual
        target.unlink()  # a wrong copy: fetch a fresh one
    # Any: pooch's HTTPDownloader does not match pooch's own Downloader protocol as declared
    downloader: Any = _copy_local if url.startswith("file:") else pooch.HTTPDownloader(progressbar=progress,
                                                                                       timeout=timeout)
    target.parent.mkdir(parents=True, exist_ok=True)
    pooch.get_logger().setLevel("INFO" if progress else "WARNING")  # its "Downloading ..." lines go to stderr
    try:
        pooch.retrieve(url, known_hash=None if sha256 is None else f"sha256:{sha256}", fname=target.name,
                       path=target.parent, downloader=downloader)
    except ValueError as exc:  # pooch: the downloaded file's hash differs (the file is not kept)
        actual = re.search(r"got ([0-9a-f]{64})", str(exc))
        raise DataError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual.group(1) if actual else '?'}. "
            f"The download was deleted. Try again; if it persists the file changed upstream, so check it by "
            f"hand before placing it at {target}."
        ) from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise DataError(
            f"the server answered HTTP {status} for {url}. The file may have moved: fetch it "
            f"by hand and place it at {target}."
        ) from exc
    return sha256_file(target)


def _unzip_images(archive: Path, images_dir: Path) -> list[str]:
    """Extract the image files of a zip into images_dir, flattened by file name."""
    images_dir.mkdir(parents=True, exist_ok=True)
    names = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                base = Path(info.filename).name
                if (info.is_dir() or base.startswith(".") or "__MACOSX" in info.filename
                        or Path(base).suffix.lower() not in IMAGE_EXTENSIONS):
                    continue
                if base in names:
                    raise DataError(f"{archive} holds two images named {base}; extract it by hand.")
                # Written by base name only, so no path inside the archive can escape images/.
                data = zf.read(info)
                atomic_write(images_dir / base, lambda f: f.write(data))
                names.append(base)
    except zipfile.BadZipFile as exc:
        raise DataError(
            f"{archive} is not a valid zip archive ({exc}). Delete it and download again, or put "
            "the right file there by hand."
        ) from exc
    if not names:
        raise DataError(f"{archive} holds no image files; check that it is the right archive.")
    return names


def _save_npy(path: Path, array) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _convert_peterson_animals(folder: Path) -> list[str]:
    from scipy.io import loadmat

    mat = loadmat(folder / "original" / "turkResults_CogSci2016.mat")
    files = _unzip_images(folder / "original" / "animals.zip", folder / "images")
    # Rows are named by image number ("   7"); match each to the file whose name ends in it.
    by_number: dict[int, list[str]] = {}
    for f in files:
        digits = re.findall(r"\d+", Path(f).stem)
        if digits:
            by_number.setdefault(int(digits[-1]), []).append(f)
    numbers = [int(str(x).strip()) for x in np.ravel(mat["animals_big_names"])]
    notes = []
    if all(len(by_number.get(k, [])) == 1 for k in numbers):
        names = [by_number[k][0] for k in numbers]
    else:
        names = sorted(files)
        notes.append(
            "WARNING: the row names in turkResults_CogSci2016.mat did not match the image files "
            "one to one, so image_list.txt holds the sorted file names; check the row order."
        )
        warnings.warn(notes[-1])
    atomic_write_text(folder / "image_list.txt", "\n".join(names) + "\n")
    # The matrix last: a folder counts as a data set once its matrix exists, so it must be complete by then.
    _save_npy(folder / "similarity.npy", np.asarray(mat["simMatrix"], dtype=np.float64) / 10.0)
    return notes


def _convert_mur92(folder: Path) -> list[str]:
    from scipy.io import loadmat

    rdms = loadmat(folder / "original" / "92_behavRDMs.mat")["rdms_behav_92"].ravel()
    subjects = np.stack([np.asarray(r["RDM"], dtype=np.float64) for r in rdms])
    _save_npy(folder / "dissimilarity_subjects.npy", subjects)
    subject_names = [str(np.ravel(r["name"])[0]) for r in rdms]
    atomic_write_text(folder / "subjects.txt", "\n".join(subject_names) + "\n")
    supplement = folder / "original" / "Kriegeskorte_Neuron2008_supplementalData.mat"
    stimuli = loadmat(supplement)["stimuli_92objs"].ravel()
    (folder / "images").mkdir(exist_ok=True)
    flags = ("human", "face", "animal", "natural")
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["row", "filename", "category", *flags])
    for i, stim in enumerate(stimuli):
        fname = f"{i + 1:03d}.png"  # the standard Kriegeskorte-92 order
        pixels = np.asarray(stim["image"], dtype=np.uint8)
        atomic_write(folder / "images" / fname, lambda f: Image.fromarray(pixels).save(f, format="PNG"))
        writer.writerow([i, fname, str(np.ravel(stim["category"])[0]),
                         *(int(np.ravel(stim[k])[0]) for k in flags)])
    atomic_write_text(folder / "image_list.csv", table.getvalue())
    _save_npy(folder / "dissimilarity_mean.npy", subjects.mean(axis=0))  # last: see _convert_peterson_animals
    return [f"dissimilarity_mean.npy is the mean over the {len(subjects)} people, made by aisviz."]


_CONVERTERS = {"peterson_animals": _convert_peterson_animals, "mur92": _convert_mur92}


def download(name: str, dest_root: str | Path | None = None, timeout: float = 20, sources: dict | None = None,
             progress: bool = True) -> Path:
    """Fetch catalog set `name` into dest_root (default: user_data_dir()) and convert it.

    `sources` ({relative path: URL}) replaces the built-in URLs, e.g. with file:// URLs in tests.
    Returns the set's folder, ready for load_folder.
    """
    entry = _entry(name)
    if entry.folder is None:
        raise DataError(f"'{name}' is generated by aisviz; there is nothing to download.")
    root = Path(dest_root).expanduser() if dest_root is not None else user_data_dir()
    folder = root / entry.folder
    urls = sources if sources is not None else DOWNLOAD_SOURCES.get(name)
    if not urls:
        raise DataError(
            f"aisviz cannot download '{name}': {entry.licence} Obtain it from "
            f"{entry.source_url} and put its files into {folder} (layout: data/README.md), or set "
            f"AISVIZ_DATA to a folder that holds {entry.folder}/."
        )
    import requests

    got = {}
    try:
        for rel, url in urls.items():
            got[rel] = _fetch(url, folder / rel, entry.files.get(rel), timeout, progress)
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
            requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        reason = getattr(exc, "reason", exc)
        by_hand = "\n".join(f"  {url}\n    -> {folder / rel}" for rel, url in urls.items())
        raise NoNetwork(
            f"cannot download '{name}': no network connection ({reason}). On a machine with "
            f"internet, fetch these files and copy them to exactly these paths:\n{by_hand}\n"
            f"then run `aisviz download {name}` again: files already in place are checked, not "
            f"fetched. Or set AISVIZ_DATA to a folder that already holds {entry.folder}/."
        ) from exc
    except OSError as exc:  # after the network errors, which are OSErrors too: disk full, read-only, ...
        raise EnvironmentProblem(
            f"cannot write the download of '{name}' into {folder} ({exc.strerror or exc}); free disk space or "
            "choose another folder with --dest (or set AISVIZ_HOME)."
        ) from exc

    notes = _CONVERTERS[name](folder)
    lines = [
        f"aisviz download of {name}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"source: {entry.source_url}",
    ]
    for rel, url in urls.items():
        known = entry.files.get(rel)
        check = "matches the published sha256" if known else "no published checksum: recorded here"
        lines.append(f"{rel}  sha256 {got[rel]}  ({check})  from {url}")
        if known is None:
            print(f"note: no published checksum for {rel}; its sha256 {got[rel]} is recorded in "
                  f"{folder / 'DOWNLOADED.txt'}", file=sys.stderr)
    atomic_write_text(folder / "DOWNLOADED.txt", "\n".join(lines + notes) + "\n")
    return folder
