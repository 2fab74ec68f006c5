"""Comparison sets: images plus a similarity matrix whose rows and columns stay tied to the images.

A `ComparisonSet` carries its image names with the matrix, validates the matrix once when it is
made, and loads images lazily as 8-bit RGB. `load_folder` reads the folder layout documented in
data/README.md. Pure computation: numpy, PIL and the standard library only.
"""
from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from aisviz.errors import AisvizWarning, DataError

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
OBSERVERS = ("human", "simulated")
SYMMETRY_RTOL = 1e-8


def _row(i: int, image_names: Sequence[str] | None) -> str:
    return f"row {i} (image '{image_names[i]}')" if image_names is not None else f"row {i}"


def validate_similarity(
    matrix: npt.ArrayLike, n_images: int | None = None, name: str = "", image_names: Sequence[str] | None = None
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


def dissimilarity_to_similarity(d: npt.ArrayLike, name: str = "") -> tuple[np.ndarray, str]:
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


def to_rgb(image: Image.Image, name: str = "", notes: list[str] | None = None) -> Image.Image:
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
            note = (f"image {name or '(in memory)'}: {int(bad.sum())} of {a.size} pixels are NaN or infinite; "
                    f"filled with the median of the others ({fill:.4g}). Check the file.")
            if notes is None:
                warnings.warn(note, AisvizWarning, stacklevel=2)
            else:  # the caller passes it on (worker threads must not touch the global warning filters)
                notes.append(note)
            a = np.where(bad, fill, a)
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.round(a).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if int(np.asarray(rgba.getchannel("A")).min()) >= 240:
            return rgba.convert("RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass(frozen=True, eq=False)
class ComparisonSet:
    """Images and their pairwise similarity (higher = more similar), row i = image i.

    `similarity` is an N×N array in image order. Labelled matrices come in through adapters that align them
    by their labels: aisviz.io.interop.from_dataframe (pandas) and from_rsatoolbox (rsatoolbox RDMs)."""

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
        if hasattr(sim, "get_matrices") or hasattr(sim, "columns"):
            adapter = "from_rsatoolbox(rdms, ...)" if hasattr(sim, "get_matrices") else "from_dataframe(df, ...)"
            raise DataError(
                f"data set '{self.name}': similarity is a {type(sim).__name__}; a ComparisonSet takes a numpy "
                f"matrix. Labelled matrices are aligned to the image names by aisviz.{adapter}."
            )
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

    def load_image(self, i: int, notes: list[str] | None = None) -> Image.Image:
        """Image i as 8-bit RGB (decoded now, not when the set was loaded). Repairs are warned about, or appended
        to `notes` when it is given."""
        if self.images is not None:
            return to_rgb(self.images[i], self.image_names[i], notes)
        if self.image_paths is None:
            raise self._missing_images()
        path = self.image_paths[i]
        try:
            with Image.open(path) as im:
                im.load()  # decode fully here, so truncated files fail now
                return to_rgb(im, str(path), notes)
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
        """The bytes that identify image i (for content hashes): the file's bytes, or the in-memory image's RGB
        pixels after its size (raw pixels: encoding a generated set's 48 images as PNG took 0.6 s per hash)."""
        if self.images is not None:
            rgb = to_rgb(self.images[i])
            return f"RGB {rgb.width}x{rgb.height}\0".encode() + rgb.tobytes()
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

    def subset(self, indices: npt.ArrayLike) -> ComparisonSet:
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


