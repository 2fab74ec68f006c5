"""Result bundles: everything the dashboard shows for one or more settings, written once by
`aisviz precompute`, read by viewer kernels (`aisviz serve --shared --bundles DIR`) without torch.

Layout of a bundle folder (format "aisviz-bundle", version 1):

    DIR/bundle.json                  the index: format, version, one entry per setting (id, label,
                                     settings, whether its layer is the network's default, and the
                                     sha256 of that setting's manifest), in the order of
                                     aisviz.pipeline.bundle_select.entry_order_key: the generated set first,
                                     then data sets by name; the network's default layer first
    DIR/<id>/manifest.json           one setting: the scalars, names, splits and summary of its
                                     Result, the aisviz version and UTC time that wrote it
                                     (computed_at; absent in bundles written before they were recorded),
                                     and every file below with its size and sha256
    DIR/<id>/arrays/<field>.npy      the arrays (little-endian .npy, opened with mmap_mode="r", so the
                                     kernels of one server share the pages); per-image arrays of
                                     different sizes (images, saliency, masks) are one flat .npy each plus
                                     a (n, ...) shape table
    DIR/<id>/images/<k>.png          image k at display size; heatmaps/<k>.png its AIS heatmap over all
                                     maps (the paper's display); thumbnails.png the contact sheet. These
                                     PNGs are for people and for static notebook figures; the dashboard
                                     reads the arrays.

Checks on opening (cheap; every viewer kernel does them): format, version, and the schema of
aisviz.pipeline.bundle_schema, which does not trust the checksums (whoever can change the files can rewrite them):
field types, every file inside the bundle (no symbolic link out of it) with its size, every array declared,
present, numeric and of the shape its image, map and split counts imply. `verify()` also compares every
sha256 (reads every byte; `aisviz serve --shared` and `aisviz precompute` do it once). A damaged or
foreign bundle raises BundleError naming the file (relative to the bundle) and the fix. Writing is atomic:
a setting is written into a hidden temporary folder and renamed into place, then the index is replaced
atomically; an interrupted run leaves the previous bundle intact.

Nothing this module imports loads torch, so viewer kernels stay small (tests/unit/test_layers.py checks it).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from aisviz import __version__
from aisviz.core.heatmaps import overlay
from aisviz.errors import DataError
from aisviz.io.storage import atomic_write, disk_full_as_errno, environment_problem, sha256_file
from aisviz.pipeline import bundle_schema
from aisviz.pipeline.bundle_schema import BundleError
from aisviz.pipeline.bundle_select import entry_order_key, find_entry
from aisviz.pipeline.derive import heatmap
from aisviz.pipeline.result import Result
from aisviz.pipeline.settings import Settings
from aisviz.viz.plots import contact_sheet

FORMAT = "aisviz-bundle"
VERSION = 1
INDEX = "bundle.json"
MANIFEST = "manifest.json"

# Result fields stored as one .npy each (same shape and dtype on reading).
ARRAY_FIELDS = ("human", "ais", "r2_without", "image_ais", "r_orig", "activations", "k_values", "mds")
# Per-image arrays of varying size: stored flat with a shape table.
RAGGED_FIELDS = ("images", "saliency", "relevant_masks")
# Fields stored in the manifest as JSON.
JSON_FIELDS = ("dataset_name", "observer", "image_names", "map_names", "weights_label", "engine", "reruns_tail",
               "r2_all", "k_step", "splits", "summary", "image_sizes", "display_size", "saliency_provider",
               "saliency_error", "seconds", "notes")


@dataclass(frozen=True)
class BundleEntry:
    """One setting in a bundle: its folder id, a label for menus, its settings (a dict), and whether its
    layer is the network's default (None: not recorded, in bundles of older aisviz)."""

    id: str
    label: str
    settings: dict
    manifest_sha256: str
    default_layer: bool | None = None

    def order_key(self) -> tuple:
        """Where this entry sits in bundle.json (aisviz.pipeline.bundle_select.entry_order_key)."""
        return entry_order_key(self.settings, self.default_layer)


# ---------------------------------------------------------------------------------------------------
# helpers


def jsonable(x: Any) -> Any:
    """Plain JSON types for numpy scalars/arrays and tuples (NaN and inf stay floats: Python's json
    writes and reads them)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x)
    return x


def setting_label(settings: dict, dataset_name: str) -> str:
    """A menu label: data set · network (weights) · perturbed layer → read-out · saliency provider."""
    weights = "" if settings.get("weights", "pretrained") == "pretrained" else f" ({settings['weights']} weights)"
    layers = f"{settings.get('layer') or 'default layer'} → {settings.get('readout') or 'default read-out'}"
    provider = settings.get("provider") or "no saliency"
    return f"{dataset_name} · {settings.get('model')}{weights} · {layers} · {provider}"


def setting_id(settings: dict, dataset_name: str) -> str:
    """A folder name: readable prefix + hash of the settings (equal settings replace each other)."""
    digest = hashlib.sha256(json.dumps(jsonable(settings), sort_keys=True).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", f"{dataset_name}-{settings.get('model')}").strip("-")[:48]
    return f"{stem}-{digest}"


def public_settings(settings: dict, dataset_name: str) -> dict:
    """The settings as a viewer may see them: a data set given as a folder is named by the set's name,
    so no server path reaches a viewer."""
    out = dict(settings)
    ds = str(out.get("dataset", ""))
    if os.sep in ds or ds.startswith(("~", ".")):
        out["dataset"] = dataset_name
    return out


# ---------------------------------------------------------------------------------------------------
# writing

def _save_npy(folder: Path, name: str, array: np.ndarray, files: dict):
    path = folder / "arrays" / f"{name}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    np.save(path, arr, allow_pickle=False)
    files[f"arrays/{name}.npy"] = None


def _save_ragged(folder: Path, name: str, arrays, dtype, files: dict):
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    ndim = {a.ndim for a in arrays}
    if len(ndim) != 1:
        raise DataError(f"{name}: per-image arrays must all have the same number of dimensions.")
    shapes = np.array([a.shape for a in arrays], dtype=np.int64)
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, dtype)
    _save_npy(folder, f"{name}_flat", flat, files)
    _save_npy(folder, f"{name}_shapes", shapes, files)


def _write_pngs(folder: Path, result, files: dict):
    """Display images, all-maps AIS heatmap overlays (the paper's display) and the contact sheet."""
    from PIL import Image


    for sub in ("images", "heatmaps"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    thumbs = []
    for i in range(result.n_images):
        image = Image.fromarray(np.asarray(result.images[i]))
        image.save(folder / "images" / f"{i:04d}.png")
        files[f"images/{i:04d}.png"] = None
        overlay(image, heatmap(result, i, None)).save(folder / "heatmaps" / f"{i:04d}.png")
        files[f"heatmaps/{i:04d}.png"] = None
        thumbs.append(image)
    sheet = contact_sheet(thumbs, cell=64)
    sheet = sheet[0] if isinstance(sheet, tuple) else sheet
    sheet.save(folder / "thumbnails.png")
    files["thumbnails.png"] = None


def _write_setting(folder: Path, result, settings: dict, pngs: bool) -> dict:
    files: dict = {}
    for name in ARRAY_FIELDS:
        _save_npy(folder, name, getattr(result, name), files)
    for name, arr in result.curves.items():
        _save_npy(folder, f"curve_{name}", arr, files)
    _save_ragged(folder, "images", result.images, np.uint8, files)
    if result.saliency is not None:
        _save_ragged(folder, "saliency", result.saliency, np.float32, files)
    if result.relevant_masks is not None:
        _save_ragged(folder, "relevant_masks", result.relevant_masks, np.bool_, files)
    if pngs:
        _write_pngs(folder, result, files)
    for rel in files:
        p = folder / rel
        files[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {"format": FORMAT, "version": VERSION, "kind": "setting", "settings": settings,
                "aisviz_version": __version__, "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "curves": sorted(result.curves), "has_saliency": result.saliency is not None,
                "has_relevant_masks": result.relevant_masks is not None,
                "fields": jsonable({name: getattr(result, name) for name in JSON_FIELDS}), "files": files}
    text = json.dumps(manifest, indent=1, allow_nan=True)
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def _read_index(root: Path) -> dict:
    root = bundle_schema.real_root(root)
    if not (root / INDEX).exists():
        raise BundleError(f"{root} is not a result bundle ({INDEX} is missing): write one with "
                          "`aisviz precompute --out FOLDER`.")
    try:
        index = json.loads(bundle_schema.read_json_bytes(root, INDEX).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleError(f"the bundle index {INDEX} is damaged ({exc.__class__.__name__}): write the bundle "
                          "again with `aisviz precompute`.") from None
    _check_format(index, INDEX)
    bundle_schema.check_index(index, INDEX)
    return index


def _check_format(doc, name: str):
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{name} is not an aisviz result bundle (format is not {FORMAT!r}): point to a folder "
                          "written by `aisviz precompute`.")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{name} has no valid format version: write the bundle again with `aisviz precompute`.")
    if version > VERSION:
        raise BundleError(f"{name} is format version {version}, written by a newer aisviz; this aisviz reads "
                          f"version {VERSION}: upgrade aisviz (pip install -U aisviz).")


def check_output(out) -> None:
    """Raise BundleError now if `out` cannot take a setting (a file, or a folder whose bundle fails any check
    of open_catalog), before anything is computed for it."""
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root} is a file: give a folder for the bundle.")
    if (root / INDEX).exists() or (root / INDEX).is_symlink():
        catalog = BundleCatalog(root, _read_index(root))
        for e in catalog.entries:
            catalog.load(e.id)


def write_bundle(result, out, pngs: bool = True, default_layer: bool | None = None) -> BundleEntry:
    """Add one Result to the bundle folder `out` (created if needed); a setting with the same
    settings is replaced in place. The index stays in the order of entry_order_key, whatever the order of
    the calls. default_layer: whether the result's layer is its network's default. Returns its index
    entry. Atomic: readers see the old or the new bundle."""
    root = Path(out).expanduser()
    try:
        return _write_bundle(result, root, pngs, default_layer)
    except OSError as exc:  # full disk, read-only or unwritable folder: exit code 4, not a bug
        raise environment_problem(exc, f"the bundle into {root}") from None


def _write_bundle(result, root: Path, pngs: bool, default_layer: bool | None) -> BundleEntry:
    root.mkdir(parents=True, exist_ok=True)
    index = _read_index(root) if (root / INDEX).exists() else {"format": FORMAT, "version": VERSION,
                                                               "settings": []}
    settings = public_settings(jsonable(result.settings.to_dict()), result.dataset_name)
    sid = setting_id(settings, result.dataset_name)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{sid}.", suffix=".tmp"))
    try:
        with disk_full_as_errno(tmp):
            _write_setting(tmp, result, settings, pngs)
        digest = sha256_file(tmp / MANIFEST)
        target = root / sid
        old = None
        if target.exists():
            old = target.with_name(f".{sid}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    entry = BundleEntry(id=sid, label=setting_label(settings, result.dataset_name), settings=settings,
                        manifest_sha256=digest, default_layer=default_layer)
    record = {"id": entry.id, "label": entry.label, "settings": entry.settings,
              "manifest_sha256": entry.manifest_sha256, "default_layer": default_layer}
    entries = list(index["settings"])
    ids = [e.get("id") for e in entries]
    if sid in ids:
        entries[ids.index(sid)] = record        # replaced in place: re-running a precompute moves nothing
    else:
        entries.append(record)
    entries.sort(key=lambda e: entry_order_key(e["settings"], e.get("default_layer")))   # stable: ties keep order
    index = {"format": FORMAT, "version": VERSION, "settings": entries}
    text = json.dumps(index, indent=1, allow_nan=True).encode("utf-8")
    atomic_write(root / INDEX, lambda f: f.write(text))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".*.tmp"):       # folders of earlier interrupted runs
        shutil.rmtree(leftover, ignore_errors=True)
    return entry


# ---------------------------------------------------------------------------------------------------
# reading

class BundleCatalog:
    """An opened bundle folder: `entries` (the settings it holds, sorted by entry_order_key, also for
    bundles written by older aisviz), `find(dataset=..., layer=...)` -> the entry of those settings,
    `load(id)` -> Result with memory-mapped read-only arrays, `verify()` -> checks every checksum."""

    def __init__(self, root, index: dict):
        self.root = bundle_schema.real_root(root)      # every file must resolve inside this folder
        self.entries: tuple[BundleEntry, ...] = tuple(sorted(
            (BundleEntry(id=e["id"], label=e["label"], settings=dict(e["settings"]),
                         manifest_sha256=e["manifest_sha256"], default_layer=e.get("default_layer"))
             for e in index["settings"]), key=BundleEntry.order_key))
        self._manifests: dict[str, dict] = {}

    def __len__(self):
        return len(self.entries)

    def entry(self, sid: str) -> BundleEntry:
        for e in self.entries:
            if e.id == sid:
                return e
        raise BundleError(f"this bundle has no setting {sid!r}; it has: {', '.join(e.id for e in self.entries)}.")

    def find(self, **wanted) -> BundleEntry:
        """The first entry whose settings have these values, e.g. find(dataset="synthetic",
        model="efficientnet_lite0", layer="_head_act"); a clear error listing what the bundle holds when none
        does (aisviz.pipeline.bundle_select.find_entry)."""
        return find_entry(self.entries, **wanted)

    def manifest(self, sid: str) -> dict:
        """The setting's manifest, checked against the index's checksum and the bundle schema
        (aisviz.pipeline.bundle_schema: field types, every file inside the bundle with its size, array headers)."""
        if sid in self._manifests:
            return self._manifests[sid]
        entry = self.entry(sid)
        rel = f"{sid}/{MANIFEST}"
        raw = bundle_schema.read_json_bytes(self.root, rel)
        if hashlib.sha256(raw).hexdigest() != entry.manifest_sha256:
            raise BundleError(f"bundle file {rel} is damaged (its checksum differs from the index): write the "
                              "bundle again with `aisviz precompute`.")
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise BundleError(f"bundle file {rel} is damaged (not JSON): write the bundle again with "
                              "`aisviz precompute`.") from None
        _check_format(manifest, rel)
        bundle_schema.check_setting(self.root, sid, manifest)
        if manifest["settings"] != entry.settings:
            raise BundleError(f"bundle file {rel} holds other settings than its entry in {INDEX}: "
                              f"{bundle_schema.FIX}.")
        self._manifests[sid] = manifest
        return manifest

    def verify(self) -> int:
        """Compare every file's sha256 with its manifest; returns the number of files checked."""
        n = 0
        for e in self.entries:
            for name, info in self.manifest(e.id)["files"].items():
                if sha256_file(self.root / e.id / name) != info["sha256"]:
                    raise BundleError(f"bundle file {e.id}/{name} is damaged (its checksum differs): write the "
                                      "bundle again with `aisviz precompute`.")
                n += 1
        return n

    def _array(self, sid: str, name: str) -> np.ndarray:
        rel = f"{sid}/arrays/{name}.npy"
        if f"arrays/{name}.npy" not in self.manifest(sid)["files"]:
            raise BundleError(f"bundle file {rel} is not listed in its manifest: write the bundle again.")
        try:
            return np.load(self.root / rel, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"bundle file {rel} is damaged ({str(exc).splitlines()[0][:80]}): write the bundle "
                              "again with `aisviz precompute`.") from None

    def _ragged(self, sid: str, name: str) -> tuple:
        flat, shapes = self._array(sid, f"{name}_flat"), np.asarray(self._array(sid, f"{name}_shapes"))
        sizes = [math.prod(int(v) for v in s) for s in shapes]
        if sum(sizes) != flat.size:
            raise BundleError(f"bundle file {sid}/arrays/{name}_flat.npy does not match its shape table: write the "
                              "bundle again with `aisviz precompute`.")
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return tuple(flat[offsets[i]:offsets[i + 1]].reshape(tuple(int(v) for v in shapes[i]))
                     for i in range(len(sizes)))

    def load(self, sid: str) -> Result:
        """The Result of setting sid; its arrays are read-only memory maps of the bundle's files."""

        m = self.manifest(sid)
        f = m["fields"]
        try:
            settings = Settings.from_dict(m["settings"])
            return Result(
                settings=settings, dataset_name=f["dataset_name"], observer=f["observer"],
                image_names=tuple(f["image_names"]), map_names=tuple(f["map_names"]),
                weights_label=f["weights_label"], engine=f["engine"], reruns_tail=bool(f["reruns_tail"]),
                human=self._array(sid, "human"), r2_all=float(f["r2_all"]), ais=self._array(sid, "ais"),
                r2_without=self._array(sid, "r2_without"), image_ais=self._array(sid, "image_ais"),
                r_orig=self._array(sid, "r_orig"), activations=self._array(sid, "activations"),
                k_values=self._array(sid, "k_values"), k_step=int(f["k_step"]),
                curves={name: self._array(sid, f"curve_{name}") for name in m["curves"]},
                splits=tuple(f["splits"]), summary=dict(f["summary"]), images=self._ragged(sid, "images"),
                image_sizes=tuple(tuple(s) for s in f["image_sizes"]), display_size=int(f["display_size"]),
                saliency=self._ragged(sid, "saliency") if m["has_saliency"] else None,
                saliency_provider=f["saliency_provider"], saliency_error=f["saliency_error"],
                mds=self._array(sid, "mds"),
                relevant_masks=self._ragged(sid, "relevant_masks") if m["has_relevant_masks"] else None,
                seconds=float(f["seconds"]), source="bundle", notes=dict(f.get("notes") or {}))
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle file {sid}/{MANIFEST} does not describe a valid result ({exc}): write the "
                              "bundle again with `aisviz precompute`.") from None


def open_catalog(root, verify: bool = False) -> BundleCatalog:
    """Open the bundle folder root: checks the index and every manifest against the bundle schema
    (aisviz.pipeline.bundle_schema: field types, files inside the bundle with their sizes, array dtypes and shapes);
    with verify=True also every checksum, and opens every result. Raises BundleError with the fix when
    anything is wrong."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder: give the folder written by `aisviz precompute --out FOLDER`.")
    catalog = BundleCatalog(root, _read_index(root))
    if not catalog.entries:
        raise BundleError(f"the bundle {root} holds no settings: add one with `aisviz precompute --out {root}`.")
    for e in catalog.entries:
        catalog.manifest(e.id)
    if verify:
        catalog.verify()
        for e in catalog.entries:       # the schema's checks passed: each result must now open
            catalog.load(e.id)
    return catalog
