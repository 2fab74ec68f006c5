"""The schema of a result bundle (aisviz.bundles), checked before any viewer sees it.

The checksums in a bundle show only that its files were not changed after its manifest was written: whoever
can change the files can rewrite the checksums too. So every opening checks what the files *are*:

- paths: every file resolves inside the bundle folder and is a regular file (a symbolic link that leaves the
  bundle is refused: an image linked to /etc/passwd, a setting folder or `arrays/` linked elsewhere);
- field types of bundle.json and of each manifest.json (an entry without `label`, `files` as a list, a
  number of seeds given as text, ...), and each entry's settings equal its manifest's;
- arrays: every array the manifest needs is declared in `files` and present; each .npy header is read alone
  (never the data): its dtype must be numeric (no object, structured or complex dtype), its shape must agree
  with the image count, the map count, the split count and the k values and stay within the limits below, and
  the file must hold exactly the bytes the header declares (a declared shape of 1e12 is refused without
  allocating anything);
- the small tables are read: the per-image shape tables (sides within MAX_SIDE, summing to their flat arrays)
  and the k values (ascending, from 1 to the map count).

A failure raises BundleError (exit code 3) naming the file, relative to the bundle, and the fix.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from aisviz.errors import InputError
from aisviz.pipeline.result import CURVE_NAMES
from aisviz.pipeline.settings import Settings

MAX_IMAGES = 100_000           # images per setting
MAX_MAPS = 1_000_000           # feature maps of a perturbed layer
MAX_SIDE = 16_384              # pixels (or activation cells) along one side
MAX_SETTINGS = 10_000          # settings per bundle
MAX_JSON_BYTES = 256 << 20     # bundle.json or one manifest.json
FIX = "write the bundle again into a new folder with `aisviz precompute --out NEW`"

FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
SETTING_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
CURVE_NAME = re.compile(r"[A-Za-z0-9_]+")
SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(InputError):
    """A bundle folder that cannot be read: missing, damaged, foreign, or from a newer aisviz (exit code 3)."""


def _error(rel: str, problem: str):
    return BundleError(f"bundle file {rel} {problem}: {FIX}.")


# ---------------------------------------------------------------------------------------------------
# field types


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_text(v) -> bool:
    return isinstance(v, str)


def _texts(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _num_or_none(v) -> bool:
    return v is None or _is_num(v)


# name: (test, what it must be)
SETTINGS_TYPES = {
    "dataset": (_is_text, "text"), "model": (_is_text, "text"), "weights": (_is_text, "text"),
    "layer": (lambda v: v is None or _is_text(v), "text or null"),
    "readout": (lambda v: v is None or _is_text(v), "text or null"),
    "similarity": (_is_text, "text"), "measure": (_is_text, "text"),
    "n_folds": (lambda v: _is_int(v) and v >= 2, "a whole number >= 2"),
    "n_seeds": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "k_step": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "n_random": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "provider": (_is_text, "text"),
    "dtype": (lambda v: v in ("float32", "float64"), '"float32" or "float64"'),
}
ENTRY_TYPES = {
    "id": (lambda v: _is_text(v) and SETTING_ID.fullmatch(v) is not None, "a folder name (letters, digits, . _ -)"),
    "label": (_is_text, "text"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "manifest_sha256": (lambda v: _is_text(v) and SHA256.fullmatch(v) is not None, "a sha256 in hex"),
}
MANIFEST_TYPES = {
    "kind": (lambda v: v == "setting", '"setting"'),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "curves": (lambda v: _texts(v) and all(CURVE_NAME.fullmatch(x) for x in v) and set(CURVE_NAMES) <= set(v),
               f"a list of curve names including {', '.join(CURVE_NAMES)}"),
    "has_saliency": (lambda v: isinstance(v, bool), "true or false"),
    "has_relevant_masks": (lambda v: isinstance(v, bool), "true or false"),
    "fields": (lambda v: isinstance(v, dict), "an object"),
    "files": (lambda v: isinstance(v, dict), "an object (file name: size and sha256)"),
}
SPLIT_KEYS = {"seed": _is_int, "fold": _is_int, "n_train": _is_int, "n_test": _is_int, "k_star": _is_int,
              "r2_train_all": _num_or_none, "r2_train_topk": _num_or_none, "r2_test_all": _num_or_none,
              "r2_test_topk": _num_or_none, "r2_test_random": _num_or_none, "test_images": _texts}
SUMMARY_KEYS = {**{f"{stat}_{k}": _is_num for stat in ("mean", "sd") for k in
                   ("k_star", "r2_test_all", "r2_test_topk", "r2_test_random", "r2_train_all", "r2_train_topk")},
                "n_splits": _is_int, "p_value": _num_or_none, "p_value_vs_random": _num_or_none}
FIELD_TYPES = {
    "dataset_name": (_is_text, "text"), "observer": (_is_text, "text"),
    "image_names": (lambda v: _texts(v) and 0 < len(v) <= MAX_IMAGES, f"a list of 1 to {MAX_IMAGES} names"),
    "map_names": (lambda v: _texts(v) and 0 < len(v) <= MAX_MAPS, f"a list of 1 to {MAX_MAPS} names"),
    "weights_label": (_is_text, "text"), "engine": (_is_text, "text"),
    "reruns_tail": (lambda v: isinstance(v, bool), "true or false"),
    "r2_all": (_is_num, "a number"), "k_step": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "splits": (lambda v: isinstance(v, list) and len(v) > 0 and all(
        isinstance(s, dict) and all(k in s and test(s[k]) for k, test in SPLIT_KEYS.items()) for s in v),
        f"a list of splits, each with {', '.join(SPLIT_KEYS)}"),
    "summary": (lambda v: isinstance(v, dict) and all(k in v and test(v[k]) for k, test in SUMMARY_KEYS.items()),
                f"an object with the numbers {', '.join(SUMMARY_KEYS)}"),
    "image_sizes": (lambda v: isinstance(v, list) and all(
        isinstance(s, list) and len(s) == 2 and all(_is_int(x) and x > 0 for x in s) for s in v),
        "a list of [width, height] pairs"),
    "display_size": (lambda v: _is_int(v) and 0 < v <= MAX_SIDE, f"a whole number from 1 to {MAX_SIDE}"),
    "saliency_provider": (_is_text, "text"), "saliency_error": (_is_text, "text"),
    "seconds": (_is_num, "a number"),
    "notes": (lambda v: v is None or isinstance(v, dict), "an object or null"),
}


def _check_types(doc: dict, types: dict, rel: str, where: str = ""):
    """where: where doc sits in the file, in words (" in setting entry 2"; "" for the top level)."""
    for name, (test, what) in types.items():
        if name not in doc:
            raise _error(rel, f"has no field {name!r}{where}")
        if not test(doc[name]):
            raise _error(rel, f"has field {name!r}{where} of the wrong type (it must be {what})")


def check_settings(settings: dict, rel: str, where: str = " under 'settings'") -> None:
    """Raise BundleError unless `settings` has exactly the fields of a dashboard Settings, each of its type."""
    unknown = sorted(set(settings) - set(SETTINGS_TYPES))
    if unknown:
        raise _error(rel, f"has unknown fields {unknown[:3]}{where} (expected only "
                          f"{', '.join(Settings.__dataclass_fields__)})")
    _check_types({"dtype": "float32", **settings}, SETTINGS_TYPES, rel, where)  # bundles before dtype: float32


def check_index(index: dict, rel: str) -> None:
    """Raise BundleError unless the index's list of settings has the schema's entries (unique ids)."""
    entries = index.get("settings")
    if not isinstance(entries, list):
        raise _error(rel, "has no list of settings")
    if len(entries) > MAX_SETTINGS:
        raise _error(rel, f"lists {len(entries)} settings (at most {MAX_SETTINGS})")
    seen = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _error(rel, f"has setting entry {i} that is not an object")
        _check_types(entry, ENTRY_TYPES, rel, f" in setting entry {i}")
        check_settings(entry["settings"], rel, f" in the settings of entry {i}")
        if entry["id"] in seen:
            raise _error(rel, f"lists setting {entry['id']!r} twice")
        seen.add(entry["id"])


# ---------------------------------------------------------------------------------------------------
# files and arrays


def real_root(root) -> Path:
    """The bundle folder with every symbolic link resolved: what each file must stay inside."""
    return Path(os.path.realpath(Path(root).expanduser()))


def inside(root: Path, rel: str) -> Path:
    """root / rel with links resolved; BundleError unless it is a regular file inside root (a real_root)."""
    real = Path(os.path.realpath(root / rel))
    if root not in real.parents:
        raise _error(rel, "leads outside the bundle (a symbolic link to another place)")
    if not real.is_file():
        raise _error(rel, "is missing")
    return real


def read_json_bytes(root: Path, rel: str) -> bytes:
    """The bytes of a JSON file of the bundle (inside it, at most MAX_JSON_BYTES)."""
    path = inside(root, rel)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise _error(rel, f"is {size} bytes (at most {MAX_JSON_BYTES})")
    return path.read_bytes()


def npy_header(path: Path, rel: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy file's header alone; BundleError unless the file holds exactly the bytes
    the header declares."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = fh.tell()
    except (OSError, ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise _error(rel, f"is not a plain .npy array ({' '.join(str(exc).split())[:80]})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise _error(rel, f"has dtype {dtype.str!r}; only numbers are allowed (bool, integer or float)")
    if any(d < 0 for d in shape):
        raise _error(rel, f"declares shape {shape}")
    expected = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise _error(rel, f"declares shape {shape} of {dtype.str} ({expected} bytes) but holds {size} bytes")
    return tuple(shape), dtype


def _shape_ok(shape: tuple, want: tuple) -> bool:
    return len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want))


def _read_small(path: Path, rel: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _error(rel, f"cannot be read ({' '.join(str(exc).split())[:80]})") from None


def check_setting(root: Path, sid: str, manifest: dict) -> None:
    """Raise BundleError unless the manifest of setting sid (parsed, format checked) and its files follow the
    schema. root: real_root() of the bundle."""
    rel = f"{sid}/manifest.json"
    _check_types(manifest, MANIFEST_TYPES, rel)
    check_settings(manifest["settings"], rel)
    fields = manifest["fields"]
    _check_types(fields, FIELD_TYPES, rel, " under 'fields'")
    n, c, s = len(fields["image_names"]), len(fields["map_names"]), len(fields["splits"])
    if len(fields["image_sizes"]) != n:
        raise _error(rel, f"has {len(fields['image_sizes'])} image sizes for {n} images")
    files = manifest["files"]
    for name, info in files.items():
        if not FILE_NAME.fullmatch(name) or ".." in name.split("/"):
            raise _error(rel, f"names a file {name[:80]!r} that is not a plain path inside its folder")
        if not (isinstance(info, dict) and _is_int(info.get("bytes")) and _is_text(info.get("sha256"))):
            raise _error(rel, f"has no size and sha256 for file {name!r}")
        path = inside(root, f"{sid}/{name}")
        if path.stat().st_size != info["bytes"]:
            raise _error(f"{sid}/{name}", f"is damaged ({path.stat().st_size} bytes, expected {info['bytes']})")

    headers = {}

    def array(name: str, kinds: str, want: tuple):
        key = f"arrays/{name}.npy"
        if key not in files:
            raise _error(rel, f"does not declare the array {key} among its files")
        shape, dtype = npy_header(root / sid / key, f"{sid}/{key}")
        if dtype.kind not in kinds:
            words = " or ".join(KIND_WORDS[k] for k in kinds)
            raise _error(f"{sid}/{key}", f"has dtype {dtype.str!r}, expected {words}")
        if not _shape_ok(shape, want):
            shown = tuple("any" if w is None else w for w in want)
            raise _error(f"{sid}/{key}", f"has shape {shape}, expected {shown} ({n} images, {c} maps, {s} splits)")
        headers[name] = dtype
        return shape

    for name, want in (("human", (n, n)), ("ais", (c,)), ("r2_without", (c,)), ("image_ais", (n, c)),
                       ("r_orig", (n,)), ("mds", (n, 2))):
        array(name, "f", want)
    activations = array("activations", "f", (n, c, None, None))
    if max(activations[2:]) > MAX_SIDE:
        raise _error(f"{sid}/arrays/activations.npy", f"has maps of {activations[2:]} cells (at most {MAX_SIDE} "
                                                      "a side)")
    (n_k,) = array("k_values", "iu", (None,))
    if not 0 < n_k <= c:
        raise _error(f"{sid}/arrays/k_values.npy", f"holds {n_k} k values for {c} maps")
    k_values = _read_small(root / sid / "arrays/k_values.npy", f"{sid}/arrays/k_values.npy")
    if k_values[0] < 1 or k_values[-1] != c or np.any(np.diff(k_values) <= 0):
        raise _error(f"{sid}/arrays/k_values.npy", f"must rise from 1 or more to the number of maps ({c})")
    for name in manifest["curves"]:
        array(f"curve_{name}", "f", (s, n_k))
    ragged = {"images": ("u", 3), "saliency": ("f", 2), "relevant_masks": ("b", 2)}
    image_shapes = None
    for name, (kind, ndim) in ragged.items():
        if name != "images" and not manifest[f"has_{name}"]:
            continue
        (size,) = array(f"{name}_flat", kind, (None,))
        array(f"{name}_shapes", "iu", (n, ndim))
        table_rel = f"{sid}/arrays/{name}_shapes.npy"
        table = _read_small(root / sid / f"arrays/{name}_shapes.npy", table_rel).astype(np.int64)
        if np.any(table < 1) or np.any(table > MAX_SIDE) or (name == "images" and np.any(table[:, 2] != 3)):
            raise _error(table_rel, f"holds sizes outside 1 to {MAX_SIDE} (images: height, width, 3)")
        if int(np.prod(table, axis=1).sum()) != size:
            raise _error(f"{sid}/arrays/{name}_flat.npy", "does not match its shape table")
        if image_shapes is None:
            image_shapes = table[:, :2]
        elif not np.array_equal(table, image_shapes):
            raise _error(table_rel, "gives other sizes than the images' shape table")
    if headers["images_flat"] != np.uint8:
        raise _error(f"{sid}/arrays/images_flat.npy", f"has dtype {headers['images_flat'].str!r}, expected uint8")


KIND_WORDS = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float"}
