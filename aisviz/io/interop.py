"""The field's data types in and out: pandas DataFrames and rsatoolbox RDMs for human matrices, rsatoolbox
RDMs for the network's geometry, and activations computed elsewhere (e.g. with thingsvision).

Labels travel with the data: a labelled matrix is aligned to the image names by its labels, never by its
position, and a mismatch is an error that names the labels at fault.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from aisviz.core.comparison import ComparisonSet, dissimilarity_to_similarity
from aisviz.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

# rsatoolbox pattern descriptors that name images, tried in this order ("index" is rsatoolbox's default 0..n-1).
NAME_DESCRIPTORS = ("image", "images", "image_name", "stimulus", "stimuli", "name", "names", "conds", "condition")


def is_rdms(obj: object) -> bool:
    return type(obj).__name__ == "RDMs" and hasattr(obj, "get_matrices") and hasattr(obj, "pattern_descriptors")


def is_dataframe(obj: object) -> bool:
    return hasattr(obj, "index") and hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def _labels_match(labels, names) -> list[int] | None:
    """Position in `labels` of each name (a label may omit the file extension); None if they are not one set."""
    labels = [str(x) for x in labels]
    lookup = {}
    for k, lab in enumerate(labels):
        lookup.setdefault(lab, k)
    order = []
    for n in names:
        k = lookup.get(n, lookup.get(Path(n).stem))
        if k is None:
            return None
        order.append(k)
    return order if len(set(order)) == len(labels) == len(names) else None


def _mismatch(what, labels, names, set_name) -> DataError:
    labels = [str(x) for x in labels]
    stems = {Path(n).stem for n in names} | set(names)
    extra = [x for x in labels if x not in stems][:3]
    missing = [n for n in names if n not in labels and Path(n).stem not in labels][:3]
    return DataError(
        f"data set '{set_name}': the {what} labels do not match the image names ({len(labels)} labels, "
        f"{len(names)} names; not among the names: {extra}; without a label: {missing}). Label the rows and "
        "columns with the image names (in any order), or pass a plain array in image order."
    )


def align_dataframe(df: pd.DataFrame, image_names: Sequence[str], set_name: str = "") -> np.ndarray:
    """A square DataFrame as a matrix in image_names order, aligned by its row and column labels.

    Unlabelled frames (a default 0..n-1 index and columns) are taken in image order."""
    import pandas as pd

    names = list(image_names)
    default = (isinstance(df.index, pd.RangeIndex) and isinstance(df.columns, pd.RangeIndex))
    if default:
        return df.to_numpy(dtype=np.float64)
    rows, cols = _labels_match(df.index, names), _labels_match(df.columns, names)
    if rows is None:
        raise _mismatch("row", df.index, names, set_name)
    if cols is None:
        raise _mismatch("column", df.columns, names, set_name)
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data set '{set_name}': the DataFrame holds values that are not numbers ({exc}). "
                        "Store plain numbers only.") from None
    return values[np.ix_(rows, cols)]


def rdm_names(rdms, descriptor: str | None = None) -> list[str] | None:
    """Image names from an RDMs object's pattern descriptors: `descriptor`, else the first of NAME_DESCRIPTORS,
    else the first other descriptor (not rsatoolbox's default "index") whose values are distinct; or None."""
    desc = rdms.pattern_descriptors or {}
    if descriptor is not None:
        if descriptor not in desc:
            raise DataError(f"the RDMs have no pattern descriptor {descriptor!r} (they have {sorted(desc)}); "
                            "name one of those.")
        return [str(x) for x in desc[descriptor]]
    others = [k for k in desc if k not in NAME_DESCRIPTORS and k != "index"]
    for key in [k for k in NAME_DESCRIPTORS if k in desc] + others:
        values = [str(x) for x in desc[key]]
        if len(set(values)) == len(values) == rdms.n_cond:
            return values
    return None


def rdm_rows(rdms: Any, image_names: Sequence[str], set_name: str = "", descriptor: str | None = None,
             order: Sequence[str] | None = None, positional: bool = False) -> list[int]:
    """The RDM row of each image name, checked by name.

    Parameters
    ----------
    rdms : rsatoolbox RDMs.
    image_names : the names, in the order wanted.
    set_name : the data set's name (messages).
    descriptor : the pattern descriptor that holds the names (default: any descriptor whose values are the
        image names, with or without file extension).
    order : the image name of each RDM row, when no descriptor holds them.
    positional : take the rows in image order, unchecked.

    Returns
    -------
    list of row indices, one per image name. Raises DataError when the names cannot be matched, and when no
    descriptor holds the names and neither `order` nor `positional=True` says how the rows are ordered.
    """
    names = list(image_names)
    desc = rdms.pattern_descriptors or {}
    if order is not None:
        order = [str(x) for x in order]
        if len(order) != rdms.n_cond:
            raise DataError(f"data set '{set_name}': order names {len(order)} rows, but the RDMs have "
                            f"{rdms.n_cond}; give the image name of each RDM row.")
        rows = _labels_match(order, names)
        if rows is None:
            raise _mismatch("order", order, names, set_name)
        return rows
    if descriptor is not None:
        rows = _labels_match(rdm_names(rdms, descriptor), names)
        if rows is None:
            raise _mismatch(f"RDM pattern-descriptor {descriptor!r}", rdm_names(rdms, descriptor), names, set_name)
        return rows
    for key in [k for k in NAME_DESCRIPTORS if k in desc] + [k for k in desc if k not in NAME_DESCRIPTORS]:
        rows = _labels_match([str(x) for x in desc[key]], names)
        if rows is not None:
            return rows
    if positional:
        if rdms.n_cond != len(names):
            raise DataError(f"data set '{set_name}': the RDMs have {rdms.n_cond} rows for {len(names)} images.")
        return list(range(len(names)))
    known = [k for k in NAME_DESCRIPTORS if k in desc]
    if known:
        raise _mismatch("RDM pattern-descriptor", [str(x) for x in desc[known[0]]], names, set_name)
    shown = {k: [str(x) for x in desc[k]][:2] for k in desc}
    raise DataError(f"data set '{set_name}': no pattern descriptor of the RDMs holds the image names (they have "
                    f"{shown}), so the order of their rows cannot be checked. Give the image name of each row: "
                    "aisviz.from_rsatoolbox(rdms, ..., order=[...]) or a pattern descriptor of names; or "
                    "pass positional=True if the rows are in image order.")


def rdms_to_similarity(rdms, image_names=None, set_name: str = "", descriptor: str | None = None, order=None,
                       positional: bool = False):
    """rsatoolbox RDMs (dissimilarities; several are averaged) -> (similarity matrix in image order, note).

    With image_names, the rows are aligned by name (rdm_rows: a descriptor holding the names, or `order`),
    or taken in order with positional=True; without them, rows are in order."""

    mats = np.asarray(rdms.get_matrices(), dtype=np.float64)
    d = mats.mean(axis=0)
    if image_names is not None:
        rows = rdm_rows(rdms, image_names, set_name, descriptor, order, positional)
        d = d[np.ix_(rows, rows)]
    sim, note = dissimilarity_to_similarity(d, name=set_name or "RDMs")
    measure = getattr(rdms, "dissimilarity_measure", None)
    averaged = f"mean of {len(mats)} RDMs; " if len(mats) > 1 else ""
    return sim, f"rsatoolbox RDMs ({averaged}measure: {measure}); {note}"


def from_rsatoolbox(rdms: Any, images: Sequence[Any] | None = None, image_paths: Sequence[Any] | None = None,
                    name: str = "rdms", descriptor: str | None = None, image_names: Sequence[str] | None = None,
                    order: Sequence[str] | None = None, positional: bool = False, **fields: Any) -> ComparisonSet:
    """A ComparisonSet from rsatoolbox RDMs, its rows matched to the images by name.

    The images' names are image_names, else the file names of image_paths. With names, the RDMs' rows are
    aligned to them (rdm_rows: a pattern descriptor holding the names, or `order`, the image name of each
    RDM row; positional=True takes the rows in image order, unchecked). Without names, the set's names come
    from the RDMs (rdm_names; else "0", "1", ...); in-memory `images` then cannot be matched to the rows, so
    they need image_names, order or positional=True."""
    if image_names is None and image_paths is not None:
        image_names = [Path(p).name for p in image_paths]
    if image_names is None:
        names = rdm_names(rdms, descriptor) if order is None else [str(x) for x in order]
        if images is not None and not positional:
            raise DataError(f"data set '{name}': in-memory images carry no names, so they cannot be matched to the "
                            "RDMs' rows: pass image_names=[name of each image], or positional=True if the images "
                            "are in the order of the RDM rows.")
        names = names or [str(i) for i in range(rdms.n_cond)]
        order, positional = names, False
    else:
        names = [str(x) for x in image_names]
    sim, note = rdms_to_similarity(rdms, names, name, descriptor, order, positional)
    note = "; ".join(x for x in (fields.pop("direction_note", ""), note) if x)
    return ComparisonSet(name=name, image_names=tuple(names), similarity=sim,
                         images=None if images is None else tuple(images),
                         image_paths=None if image_paths is None else tuple(Path(p) for p in image_paths),
                         direction_note=note, **fields)


def from_dataframe(df: Any, image_names: Sequence[str] | None = None, name: str = "dataframe",
                   **fields: Any) -> ComparisonSet:
    """A ComparisonSet from a labelled pandas DataFrame (a square similarity matrix).

    Parameters
    ----------
    df : pandas DataFrame whose index and columns are the image names.
    image_names : the set's image order; the frame is aligned to it by its labels, never by position
        (default: the frame's index order).
    name : the set's name.
    fields : further ComparisonSet fields (images, image_paths, observer, ...).

    Returns
    -------
    The ComparisonSet.
    """
    names = [str(x) for x in (image_names if image_names is not None else df.index)]
    return ComparisonSet(name=name, image_names=tuple(names), similarity=align_dataframe(df, names, name), **fields)


def _rsatoolbox():
    try:
        from rsatoolbox.rdm.rdms import RDMs
    except ImportError:
        raise ImportError("exporting RDMs needs rsatoolbox: pip install 'aisviz[rsa]' (or pip install rsatoolbox)."
                          ) from None
    return RDMs


def network_rdm(scorer: Any, k: int | None = None) -> Any:
    """The fitted scorer's network RDM as rsatoolbox RDMs: dissimilarity = 1 - network similarity of the
    read-outs, with all maps (k=None) or only the top-k maps by data-set AIS kept (the rest zeroed)."""
    RDMs = _rsatoolbox()
    n_maps = len(scorer.ais_)
    if k is None or k == n_maps:
        pairs, kept = scorer.full_pairs_, n_maps
    else:
        from aisviz.core.alignment import top_k_mask

        top_k_mask(scorer.ais_, k)  # checks the range of k
        (_, pairs), = list(scorer.engine_.prefix_pairs(scorer.ranking(), [k]))
        pairs, kept = pairs[0], k
    pairs = np.asarray(pairs.cpu().numpy() if hasattr(pairs, "cpu") else pairs, dtype=np.float64)
    net = scorer.network_
    return RDMs(
        (1.0 - pairs)[None],
        dissimilarity_measure=f"1 - {scorer.similarity} similarity of the read-outs",
        descriptors={"model": net.name, "weights": net.weights, "layer": scorer.layer_,
                     "readout": scorer.readout_, "maps_kept": kept,
                     "maps": "all" if kept == n_maps else f"top {kept} by data-set AIS"},
        pattern_descriptors={"image": list(scorer.image_names_)},
    )


