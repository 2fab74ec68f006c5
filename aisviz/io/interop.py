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


def rdm_names(rdms: Any, descriptor: str | None = None) -> list[str] | None:
    """Image names from an RDMs object's pattern descriptors (the first of NAME_DESCRIPTORS), or None."""
    desc = rdms.pattern_descriptors or {}
    if descriptor is not None:
        if descriptor not in desc:
            raise DataError(f"the RDMs have no pattern descriptor {descriptor!r} (they have {sorted(desc)}); "
                            "name one of those.")
        return [str(x) for x in desc[descriptor]]
    for key in NAME_DESCRIPTORS:
        if key in desc:
            return [str(x) for x in desc[key]]
    return None


def rdms_to_similarity(rdms: Any, image_names: Sequence[str] | None = None, set_name: str = "",
                       descriptor: str | None = None) -> tuple[np.ndarray, str]:
    """rsatoolbox RDMs (dissimilarities; several are averaged) -> (similarity matrix in image order, note).

    With image_names, the RDMs' name descriptor (if any) aligns the rows; without one, rows are in order."""

    mats = np.asarray(rdms.get_matrices(), dtype=np.float64)
    d = mats.mean(axis=0)
    names = rdm_names(rdms, descriptor)
    if image_names is not None and names is not None:
        order = _labels_match(names, list(image_names))
        if order is None:
            raise _mismatch("RDM pattern-descriptor", names, list(image_names), set_name)
        d = d[np.ix_(order, order)]
    sim, note = dissimilarity_to_similarity(d, name=set_name or "RDMs")
    measure = getattr(rdms, "dissimilarity_measure", None)
    averaged = f"mean of {len(mats)} RDMs; " if len(mats) > 1 else ""
    return sim, f"rsatoolbox RDMs ({averaged}measure: {measure}); {note}"


def from_rsatoolbox(rdms: Any, image_names: Sequence[str] | None = None, name: str = "rdms",
                    descriptor: str | None = None, **fields: Any) -> ComparisonSet:
    """A ComparisonSet from rsatoolbox RDMs (dissimilarities, converted; several RDMs are averaged).

    Parameters
    ----------
    rdms : rsatoolbox.rdm.RDMs over the images.
    image_names : the set's image order. When given, the RDMs' name descriptor aligns the rows by name;
        without it, the names come from the descriptor (see rdm_names), else "0", "1", ...
    name : the set's name.
    descriptor : the pattern descriptor that holds the image names (default: the first of NAME_DESCRIPTORS).
    fields : further ComparisonSet fields (images, image_paths, observer, ...).

    Returns
    -------
    The ComparisonSet, its direction_note saying how the dissimilarities were converted.
    """
    names = list(image_names) if image_names is not None else (
        rdm_names(rdms, descriptor) or [str(i) for i in range(rdms.n_cond)])
    sim, note = rdms_to_similarity(rdms, names, name, descriptor)
    return ComparisonSet(name=name, image_names=tuple(names), similarity=sim, direction_note=note, **fields)


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


