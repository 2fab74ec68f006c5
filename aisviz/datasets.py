"""Comparison sets: images plus a similarity matrix whose rows and columns stay tied to the images.

A `ComparisonSet` carries its image names with the matrix, validates the matrix once when it is
made, and loads images lazily as 8-bit RGB. `load_folder` reads the folder layout documented in
data/README.md. Pure computation: numpy, PIL and the standard library only.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .errors import AisvizWarning, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Searched in this order when dataset.json names no matrix file. The names that start with
# "dissimilarity" hold dissimilarities and are converted to similarities.
MATRIX_FILES = (
    "similarity.npy",
    "similarity.csv",
    "similarity_normalized.npy",
    "similarity_normalized.csv",
    "dissimilarity.npy",
    "dissimilarity.csv",
    "dissimilarity_mean.npy",
    "dissimilarity_mean.csv",
)
IMAGE_LISTS = ("image_list.txt", "image_list.csv")
OBSERVERS = ("human", "simulated")
SYMMETRY_RTOL = 1e-8


class DataError(InputError):
    """Bad or missing input data (exit code 3). The message names the problem and how to fix it."""


def _row(i: int, image_names: Sequence[str] | None) -> str:
    return f"row {i} (image '{image_names[i]}')" if image_names is not None else f"row {i}"


def validate_similarity(
    matrix, n_images: int | None = None, name: str = "", image_names: Sequence[str] | None = None
) -> np.ndarray:
    """Check a similarity matrix and return it as a float64 copy; raise DataError if unusable.

    `name` (a data set or file) and `image_names` only make the messages more precise.
    The checks also hold for dissimilarity matrices, which differ only by direction.
    """
    label = f"matrix '{name}'" if name else "similarity matrix"
    try:
        s = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label} is not numeric ({exc}). Store plain numbers only.") from None
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise DataError(
            f"{label} has shape {s.shape}; it must be square (N×N, one row and one column per "
            "image). Save a single N×N matrix."
        )
    n = s.shape[0]
    if n_images is None and image_names is not None:
        n_images = len(image_names)
    if n_images is not None and n != n_images:
        raise DataError(
            f"{label} is {n}×{n} but there are {n_images} images. Give one row and one column "
            "per image, in image order."
        )
    if n < 3:
        raise DataError(
            f"{label} covers {n} images; at least 3 are needed to correlate pairs. Add images."
        )
    bad = ~np.isfinite(s)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{label} has {int(bad.sum())} non-finite values (NaN or inf); the first is at "
            f"{_row(i, image_names)}, column {j}. Fill in every pair (for example with the mean "
            "rating) or drop the images that lack ratings."
        )
    asym = np.abs(s - s.T)
    if asym.max() > SYMMETRY_RTOL * max(np.abs(s).max(), np.finfo(float).tiny):
        i, j = np.unravel_index(asym.argmax(), asym.shape)
        raise DataError(
            f"{label} is not symmetric: the largest difference is {asym.max():.3g}, between "
            f"[{i}, {j}] = {s[i, j]:.6g} and [{j}, {i}] = {s[j, i]:.6g}. If both triangles hold "
            "valid ratings, average it with its transpose: (S + S.T) / 2."
        )
    off = s[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    if np.ptp(off) == 0:
        raise DataError(
            f"{label} is constant off the diagonal (every pair = {off[0, 0]:.6g}), so there is "
            "nothing to align with. Check that the right file was used."
        )
    flat = np.flatnonzero(np.ptp(off, axis=1) == 0)
    if flat.size:
        i = int(flat[0])
        raise DataError(
            f"{label}: {_row(i, image_names)} has the same value ({off[i, 0]:.6g}) for every "
            f"other image ({flat.size} such rows in all), so its per-image correlation is "
            "undefined. Remove that image (ComparisonSet.subset) or fix its ratings."
        )
    return s


def dissimilarity_to_similarity(d, name: str = "") -> tuple[np.ndarray, str]:
    """Turn dissimilarities into similarities: s = 1 - d / max(off-diagonal d), diagonal 1.

    The map is affine, so Pearson and Spearman alignment with any model are unchanged.
    Returns the matrix and a note that states the conversion.
    """
    d = validate_similarity(d, name=name)
    off = d[~np.eye(len(d), dtype=bool)]
    top = off.max()
    if top <= 0:
        raise DataError(
            f"dissimilarity matrix '{name}' has no positive value off the diagonal "
            f"(max {top:.6g}). "
            "Dissimilarities must grow as images differ more; check that this is not a "
            "similarity matrix saved under a dissimilarity name."
        )
    s = 1.0 - d / top
    np.fill_diagonal(s, 1.0)
    note = (
        f"converted from dissimilarity: s = 1 - d / max(d), with max(d) = {top:.6g} over the "
        "off-diagonal pairs; affine, so Pearson and Spearman alignment are unchanged; "
        "diagonal set to 1"
    )
    return s, note


def to_rgb(image: Image.Image, name: str = "") -> Image.Image:
    """Return an 8-bit RGB copy of an image in any common PIL mode.

    16-bit images keep their top 8 bits; 32-bit integer and float images are scaled by their own
    range (NaN or infinite pixels are filled with the median of the others, with an AisvizWarning);
    images with real transparency are composited on white. Alpha is just dropped (as
    PIL's convert("RGB") and the authors' code do) when the image is effectively opaque (alpha >= 240
    everywhere: Peterson's animal PNGs carry a few pixels of alpha 249-254 that would otherwise move).
    """
    mode = image.mode
    if mode.startswith("I;16"):
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in ("I", "F"):
        a = np.asarray(image, dtype=np.float64)
        bad = ~np.isfinite(a)
        if bad.any():  # one NaN would otherwise make the range NaN and the whole image black
            fill = float(np.median(a[~bad])) if (~bad).any() else 0.0
            warnings.warn(
                f"image {name or '(in memory)'}: {int(bad.sum())} of {a.size} pixels are NaN or infinite; "
                f"filled with the median of the others ({fill:.4g}). Check the file.", AisvizWarning, stacklevel=2)
            a = np.where(bad, fill, a)
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.round(a).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] >= 240:
            return rgba.convert("RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass(frozen=True, eq=False)
class ComparisonSet:
    """Images and their pairwise similarity (higher = more similar), row i = image i.

    `similarity` may be an N×N array (in image order), a pandas DataFrame labelled with the image names
    (aligned by its labels; any order), or rsatoolbox RDMs (dissimilarities, converted; aligned by the
    pattern descriptor that holds the image names, under any key; RDMs with no such descriptor are refused:
    use from_rsatoolbox with order= or positional=True)."""

    name: str
    image_names: tuple[str, ...]
    similarity: np.ndarray
    image_paths: tuple[Path, ...] | None = None
    images: tuple[Image.Image, ...] | None = None
    observer: str = "human"
    direction_note: str = ""
    citation: str = ""
    licence: str = ""
    relevant_masks: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        names = tuple(str(x) for x in self.image_names)
        dups = sorted(x for x, c in Counter(names).items() if c > 1)
        if dups:
            raise DataError(
                f"data set '{self.name}' has duplicate image names: {dups[:5]}. Every image needs "
                "a unique name: rename or remove the duplicates."
            )
        sim, note = self.similarity, self.direction_note
        from . import interop

        if interop.is_rdms(sim):  # rsatoolbox RDMs hold dissimilarities: converted, aligned by pattern names
            sim, rdm_note = interop.rdms_to_similarity(sim, names, self.name)
            note = "; ".join(x for x in (note, rdm_note) if x)
        elif interop.is_dataframe(sim):  # aligned by its labels, never by position
            sim = interop.align_dataframe(sim, names, self.name)
        sim = validate_similarity(sim, name=self.name, image_names=names)
        sim.setflags(write=False)
        if self.image_paths is not None and self.images is not None:
            raise DataError(
                f"data set '{self.name}' got both image_paths and images. Give files "
                "(image_paths) or in-memory images (images), not both."
            )
        paths = None if self.image_paths is None else tuple(Path(p) for p in self.image_paths)
        images = None if self.images is None else tuple(self.images)
        for what, seq in (("image_paths", paths), ("images", images)):
            if seq is not None and len(seq) != len(names):
                raise DataError(
                    f"data set '{self.name}' has {len(names)} image names but {len(seq)} "
                    f"{what}. Give exactly one per name, in the same order."
                )
        if self.observer not in OBSERVERS:
            raise DataError(
                f"data set '{self.name}': observer '{self.observer}' is not one of {OBSERVERS}. "
                "Use 'human' for measured judgments and 'simulated' for generated ones."
            )
        masks = self.relevant_masks
        if masks is not None:
            masks = np.array(masks, dtype=bool)
            if masks.ndim != 3 or len(masks) != len(names):
                raise DataError(
                    f"data set '{self.name}': relevant_masks has shape {masks.shape}; it must be "
                    f"({len(names)}, H, W), one mask per image."
                )
            masks.setflags(write=False)
        for attr, value in (
            ("image_names", names),
            ("similarity", sim),
            ("image_paths", paths),
            ("images", images),
            ("relevant_masks", masks),
            ("meta", dict(self.meta)),
            ("direction_note", note),
        ):
            object.__setattr__(self, attr, value)

    @classmethod
    def from_rsatoolbox(cls, rdms, images=None, image_paths=None, name: str = "rdms", descriptor=None,
                        image_names=None, order=None, positional: bool = False, **fields):
        """A set from rsatoolbox RDMs: dissimilarities converted (several RDMs averaged), rows matched to the
        images by name: the names of the images (image_names, else the file names of image_paths) are looked
        up in the RDMs' pattern descriptors (any key; or `descriptor`), or in `order` (the image name of each
        RDM row). When nothing names the rows, positional=True takes them in image order; otherwise that
        unchecked pairing is refused. Without images, the names come from the RDMs ('image', 'stimulus',
        'conds', ... or any descriptor of distinct values)."""
        from .interop import comparison_set_from_rsatoolbox

        return comparison_set_from_rsatoolbox(rdms, images=images, image_paths=image_paths, name=name,
                                              descriptor=descriptor, image_names=image_names, order=order,
                                              positional=positional, **fields)

    def __repr__(self):
        source = "files" if self.image_paths else "in memory" if self.images else "no images"
        return (
            f"ComparisonSet(name={self.name!r}, n_images={self.n_images}, "
            f"observer={self.observer!r}, images={source})"
        )

    @property
    def n_images(self) -> int:
        return len(self.image_names)

    def _missing_images(self) -> DataError:
        folder = self.meta.get("folder")
        fix = (
            f"put the image files named in its image list into {Path(folder) / 'images'}/"
            if folder
            else "make the set with image_paths (files) or images (in memory)"
        )
        return DataError(
            f"data set '{self.name}' has no images, only its similarity matrix. To use its "
            f"images, {fix}."
        )

    def load_image(self, i: int) -> Image.Image:
        """Image i as 8-bit RGB (decoded now, not when the set was loaded)."""
        if self.images is not None:
            return to_rgb(self.images[i], self.image_names[i])
        if self.image_paths is None:
            raise self._missing_images()
        path = self.image_paths[i]
        try:
            with Image.open(path) as im:
                im.load()  # decode fully here, so truncated files fail now
                return to_rgb(im, str(path))
        except Image.DecompressionBombError as exc:
            raise DataError(
                f"image {path} is very large ({exc}); Pillow refuses it as a possible decompression bomb. "
                "If the file is trusted, save a smaller copy (e.g. 2000 px on the long side: aisviz resizes "
                "to a short side of 224 px anyway)."
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(
                f"cannot read image {path} ({type(exc).__name__}: {exc}). The file is damaged, "
                "truncated or not an image: re-download it or replace it with a good copy."
            ) from exc

    def image_size(self, i: int) -> tuple[int, int]:
        """(width, height) of image i, read from the file header without decoding the pixels."""
        if self.images is not None:
            return self.images[i].size
        if self.image_paths is None:
            raise self._missing_images()
        try:
            with Image.open(self.image_paths[i]) as im:
                return im.size
        except Image.DecompressionBombError:
            return self.load_image(i).size  # raises the explanation of load_image
        except (OSError, SyntaxError, ValueError):
            return self.load_image(i).size  # likewise, for a damaged file

    def image_bytes(self, i: int) -> bytes:
        """Raw file bytes, or PNG bytes of the RGB in-memory image (for content hashes)."""
        if self.images is not None:
            buf = io.BytesIO()
            to_rgb(self.images[i]).save(buf, format="PNG")
            return buf.getvalue()
        if self.image_paths is None:
            raise self._missing_images()
        try:
            return self.image_paths[i].read_bytes()
        except OSError as exc:
            raise DataError(
                f"cannot read image {self.image_paths[i]} ({exc}). Restore the file or reload "
                "the data set."
            ) from exc

    def content_hash(self) -> str:
        """sha256 over image bytes (in order), image names and the similarity matrix."""
        h = hashlib.sha256()
        if self.images is not None or self.image_paths is not None:
            for i in range(self.n_images):
                data = self.image_bytes(i)
                # The length prefix stops bytes from shifting between neighbouring images.
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
        h.update("\0".join(self.image_names).encode())
        h.update(np.ascontiguousarray(self.similarity).tobytes())
        return h.hexdigest()

    def subset(self, indices) -> ComparisonSet:
        """The set restricted to `indices` (ints or a boolean mask), everything kept aligned."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_images,):
                raise DataError(
                    f"boolean subset mask has shape {idx.shape}; it needs ({self.n_images},)."
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(int).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_images):
            raise DataError(
                f"subset indices must lie in 0..{self.n_images - 1}; got {idx.min()}..{idx.max()}."
            )
        if len(set(idx.tolist())) != idx.size:
            raise DataError("subset indices repeat an image; give each index once.")

        def pick(seq):
            return None if seq is None else tuple(seq[i] for i in idx)

        return replace(
            self,
            image_names=pick(self.image_names),
            similarity=self.similarity[np.ix_(idx, idx)],
            image_paths=pick(self.image_paths),
            images=pick(self.images),
            relevant_masks=None if self.relevant_masks is None else self.relevant_masks[idx],
            meta={**self.meta, "subset_of": self.name, "subset_indices": idx.tolist()},
        )

    def upper_triangle(self) -> np.ndarray:
        """Pairs above the diagonal, row-major as np.triu_indices(n, 1)."""
        return self.similarity[np.triu_indices(self.n_images, 1)]


# ---------------------------------------------------------------------------------------------
# Folder loader


def _read_dataset_json(folder: Path) -> dict:
    path = folder / "dataset.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} ({exc}). Fix the JSON or remove the file.") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path} must hold a JSON object like {{\"name\": ...}}; fix or remove it.")
    if "similarity" in info and "dissimilarity" in info:
        raise DataError(
            f"{path} names both a similarity and a dissimilarity file; keep only the one to use."
        )
    return info


def _find_matrix_file(folder: Path, info: dict) -> tuple[Path, str]:
    for kind in ("similarity", "dissimilarity"):
        if kind in info:
            path = folder / str(info[kind])
            if not path.is_file():
                raise DataError(
                    f"{folder / 'dataset.json'} names {kind} file '{info[kind]}', but {path} does "
                    "not exist. Fix the name in dataset.json or add the file."
                )
            return path, kind
    for fname in MATRIX_FILES:
        if (folder / fname).is_file():
            return folder / fname, "dissimilarity" if fname.startswith("dis") else "similarity"
    raise DataError(
        f"no similarity matrix in {folder}: looked for {', '.join(MATRIX_FILES)}. Add "
        "similarity.npy (N×N, higher = more similar) or dissimilarity.npy (higher = less "
        "similar), or name the file in dataset.json."
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cell_fault(cell: str) -> str:
    if not cell.strip():
        return "is empty"
    if "," in cell and _is_number(cell.replace(",", ".")):
        return f"holds {cell!r}, which looks like a decimal comma; write numbers with a '.' decimal point"
    return f"holds {cell!r}, which is not a number"


def _read_csv_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numbers only, or with a header row and/or an index column of image names.

    Faults are reported by line and column of the file (both counted from 1), with the cell's value."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    numbered = [(k + 1, line) for k, line in enumerate(text.splitlines()) if line.strip()]
    if not numbered:
        raise DataError(f"{path} is empty. Write the N×N matrix into it, one row per line.")
    first_line, first = numbered[0]
    for sep, label in ((";", "';'"), ("\t", "tabs")):
        if sep in first and first.count(sep) > first.count(","):
            raise DataError(
                f"{path} separates its values with {label} (line {first_line}); aisviz reads comma-separated "
                "files with a '.' decimal point. Re-save it that way, e.g. in pandas: "
                f"pd.read_csv(path, sep={sep!r}, decimal=',', index_col=0).to_csv(path)."
            )
    line_numbers = [k for k, _ in numbered]
    rows = list(csv.reader(line for _, line in numbered))

    def mostly_text(cells):
        return sum(not _is_number(c) and c.strip() != "" for c in cells) > len(cells) / 2

    header = index = None
    if len(rows[0]) > 1 and mostly_text(rows[0][1:]):  # names above the columns
        header, rows, line_numbers = [c.strip() for c in rows[0]], rows[1:], line_numbers[1:]
    if rows and mostly_text([r[0] for r in rows]):  # names before the rows
        index, rows = [r[0].strip() for r in rows], [r[1:] for r in rows]
    if header is not None and len(header) == len(rows) + 1:
        header = header[1:]  # the corner cell above the index column
    names = index if index is not None else header
    offset = 2 if index is not None else 1  # file column of the first value

    def where(i, j=None):
        row = f"line {line_numbers[i]}"
        if names is not None and i < len(names):
            row += f" (image '{names[i]}')"
        return row if j is None else f"{row}, column {j + offset}"

    values = []
    for i, row in enumerate(rows):
        if len(row) != len(rows):
            hint = ""
            if len(row) > len(rows) and any("." not in c and _is_number(c) for c in row):
                hint = " If the numbers use decimal commas (0,5), they split into extra columns: re-save with '.'."
            raise DataError(
                f"{path}: {where(i)} has {len(row)} values but there are {len(rows)} data rows; the matrix "
                f"must be N×N (plus an optional header row and index column).{hint}"
            )
        out = []
        for j, cell in enumerate(row):
            try:
                out.append(float(cell))
            except ValueError:
                raise DataError(
                    f"{path}: {where(i, j)} {_cell_fault(cell)}. Fill in every pair with a number (a missing "
                    "rating: the mean rating, or drop the image from the list and the matrix)."
                ) from None
        values.append(out)
    if header is not None and index is not None and header != index:
        raise DataError(
            f"{path}: the header names and the index-column names differ (for example "
            f"{header[:3]} vs {index[:3]}). Rows and columns must be in the same image order."
        )
    return np.array(values, dtype=np.float64), names


def _read_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False), None
        return _read_csv_matrix(path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # ValueError covers bad bytes and text
        raise DataError(
            f"cannot read matrix file {path} ({exc}). It is damaged, truncated or not a plain "
            ".npy/.csv matrix: re-create it (np.save) or re-download it."
        ) from exc


def _read_image_list(folder: Path) -> tuple[list[str], str] | None:
    txt, table = folder / IMAGE_LISTS[0], folder / IMAGE_LISTS[1]
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8-sig").splitlines()
        return [line.strip() for line in lines if line.strip()], txt.name
    if table.is_file():
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "filename" not in (reader.fieldnames or []):
                raise DataError(
                    f"{table} has no 'filename' column (columns: {reader.fieldnames}). Add a "
                    "header row with a 'filename' column that names each image file."
                )
            return [row["filename"].strip() for row in reader], table.name
    return None


def _image_names(folder: Path, matrix_file: Path, csv_names: list[str] | None):
    images_dir = folder / "images"
    listed = _read_image_list(folder)
    if listed is not None:
        names, source = listed
    elif csv_names is not None:
        names, source = csv_names, f"the row names in {matrix_file.name}"
    elif images_dir.is_dir():
        names = sorted(
            p.name
            for p in images_dir.iterdir()
            if p.is_file() and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        source = "images/ (sorted file names)"
        if not names:
            raise DataError(
                f"{images_dir} holds no image files ({', '.join(IMAGE_EXTENSIONS)}). Copy the "
                "images there."
            )
        warn_unpadded_numbers(names, images_dir)
    else:
        raise DataError(
            f"{folder} has neither an images/ folder nor an image list, so its matrix rows "
            "cannot be tied to images. Add images/ (rows = sorted file names) or image_list.txt."
        )
    if not names:
        raise DataError(f"{folder / source} lists no images. Write one file name per row.")
    dups = sorted(x for x, c in Counter(names).items() if c > 1)
    if dups:
        raise DataError(
            f"{source} in {folder} lists these names more than once: {dups[:5]}. Each image may "
            "appear only once; remove the duplicates (and their matrix rows)."
        )
    order = None
    if csv_names is not None and listed is not None:
        # The CSV's names label its rows: they are aligned to the list (a name may omit the file extension).
        from .interop import _labels_match

        order = _labels_match(csv_names, names)
        if order is None:
            raise DataError(
                f"the row names in {matrix_file} ({csv_names[:3]}...) do not match {source} "
                f"({names[:3]}...): they must name the same images, in any order. Fix the names, or "
                "drop them from the CSV (rows are then taken in list order)."
            )
        if order == list(range(len(names))):
            order = None
    return names, source, order


def unpadded_numbers(names: Sequence[str]) -> bool:
    """True when names carry numbers of different widths whose string order is not their numeric order
    (img1, img10, img2): sorting such names as text rarely gives the order a matrix was saved in."""
    keys = []
    for n in names:
        m = re.search(r"(\d+)\D*$", n)
        if m is None:
            return False
        keys.append((n[:m.start(1)], int(m.group(1)), len(m.group(1))))
    widths = {w for _, _, w in keys}
    return len(widths) > 1 and sorted(range(len(keys)), key=lambda i: keys[i][:2]) != list(range(len(keys)))


def warn_unpadded_numbers(sorted_names: Sequence[str], where) -> None:
    if unpadded_numbers(sorted_names):
        warnings.warn(
            f"the images in {where} are numbered without zero padding ({', '.join(sorted_names[:3])}, ...), and "
            "with no image_list.txt their matrix rows are taken in sorted-name order, in which "
            f"{sorted_names[1]} comes before {sorted(sorted_names, key=_natural_key)[1]}. If the matrix is in "
            "numeric order, add image_list.txt with the names in matrix order (or zero-pad the numbers).",
            AisvizWarning, stacklevel=3)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def load_folder(path, name: str | None = None) -> ComparisonSet:
    """Load a data folder laid out as in data/README.md. Images are only checked to exist."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"data folder {folder} does not exist or is not a folder. Check the path; the "
            "expected layout (images/ plus similarity.npy or dissimilarity.npy) is in "
            "data/README.md."
        )
    info = _read_dataset_json(folder)
    matrix_file, kind = _find_matrix_file(folder, info)
    matrix, csv_names = _read_matrix(matrix_file)
    names, source, order = _image_names(folder, matrix_file, csv_names)
    if order is not None and matrix.ndim == 2 and matrix.shape == (len(order), len(order)):
        matrix = matrix[np.ix_(order, order)]
    if matrix.ndim == 2 and matrix.shape[0] != len(names):
        raise DataError(
            f"{matrix_file} is {matrix.shape[0]}×{matrix.shape[1]} but {source} gives "
            f"{len(names)} images. The matrix needs one row and one column per image, in "
            f"{source} order: fix whichever is wrong."
        )
    matrix = validate_similarity(matrix, name=str(matrix_file), image_names=names)
    note = ""
    if kind == "dissimilarity":
        matrix, note = dissimilarity_to_similarity(matrix, name=str(matrix_file))

    images_dir = folder / "images"
    paths = None  # matrix-only set: an image list but no images/ folder
    if images_dir.is_dir():
        paths = tuple(images_dir / n for n in names)
        missing = [n for n, p in zip(names, paths) if not p.is_file()]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(
                f"{len(missing)} of the {len(names)} images in {source} are missing from "
                f"{images_dir}: {missing[:5]}{more}. Copy them there, or remove them from the "
                "image list and the matrix."
            )
    return ComparisonSet(
        name=name or str(info.get("name") or folder.name),
        image_names=tuple(names),
        similarity=matrix,
        image_paths=paths,
        observer=str(info.get("observer", "human")),
        direction_note=note,
        citation=str(info.get("citation", "")),
        licence=str(info.get("licence", info.get("license", ""))),
        meta={"folder": str(folder), "matrix_file": matrix_file.name, "image_list": source},
    )
