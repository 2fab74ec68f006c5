"""Data-set folders: images plus a similarity or dissimilarity matrix (and optional image list, dataset.json).

The layout is documented in data/README.md; every fault names the file, the line or cell, and the fix.
"""
from __future__ import annotations

import csv
import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from aisviz.core.comparison import (
    IMAGE_EXTENSIONS,
    MATRIX_FILES,
    ComparisonSet,
    dissimilarity_to_similarity,
    validate_similarity,
)
from aisviz.errors import AisvizWarning, DataError
from aisviz.io.interop import _labels_match

IMAGE_LISTS = ("image_list.txt", "image_list.csv")


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


def warn_unpadded_numbers(sorted_names: Sequence[str], where: str | Path) -> None:
    if unpadded_numbers(sorted_names):
        warnings.warn(
            f"the images in {where} are numbered without zero padding ({', '.join(sorted_names[:3])}, ...), and "
            "with no image_list.txt their matrix rows are taken in sorted-name order, in which "
            f"{sorted_names[1]} comes before {sorted(sorted_names, key=_natural_key)[1]}. If the matrix is in "
            "numeric order, add image_list.txt with the names in matrix order (or zero-pad the numbers).",
            AisvizWarning, stacklevel=3)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def load_folder(path: str | Path, name: str | None = None) -> ComparisonSet:
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
