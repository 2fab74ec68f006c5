"""Noise ceiling of the alignment with human similarity judgments, for sets with per-subject matrices.

Definitions (rsatoolbox, `inference.boot_noise_ceiling` with `pool_rdm`), over one set of pairs:
- each subject's similarity vector is z-scored (Pearson) or ranked (Spearman) and the group vector is the
  mean of those;
- upper bound: mean over subjects s of alignment(subject s, group vector of all subjects);
- lower bound: mean over subjects s of alignment(subject s, group vector of the other subjects), i.e.
  leave-one-subject-out.
aisviz's alignment is the squared correlation (R^2, or rho^2), so each subject's term is squared before
the mean; `squared=False` gives rsatoolbox's r. A network is put on the same scale by its subject-level
alignment: the mean over subjects s of alignment(network, subject s) on the same pairs. A network whose
subject-level alignment reaches the lower bound predicts each person as well as the other people do.

Pure computation: numpy only. rsatoolbox is not needed (the tests check these numbers against it).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from aisviz.core.alignment import MEASURES, pair_positions
from aisviz.errors import DataError, UsageError

if TYPE_CHECKING:
    from aisviz.core.comparison import ComparisonSet

# Looked for in a data set's folder; "dissimilarity" files are turned into similarities by negation
# (affine per subject, so every correlation with them keeps its size).
SUBJECT_FILES = ("similarity_subjects.npy", "dissimilarity_subjects.npy")


@dataclass(frozen=True)
class SubjectMatrices:
    """Per-subject similarity matrices (higher = more similar), shape (n_subjects, n_images, n_images)."""

    similarity: np.ndarray
    subject_names: tuple[str, ...]
    source: str

    @property
    def n_subjects(self) -> int:
        return len(self.similarity)


def load_subject_matrices(dataset: ComparisonSet) -> SubjectMatrices | None:
    """The per-subject matrices stored beside a data set loaded from a folder (`similarity_subjects.npy` or
    `dissimilarity_subjects.npy`, names in an optional `subjects.txt`), or None where there are none."""
    folder = dataset.meta.get("folder")
    if not folder:
        return None
    for fname in SUBJECT_FILES:
        path = Path(folder) / fname
        if path.is_file():
            return subject_matrices(np.load(path, allow_pickle=False), dataset, source=str(path),
                                    dissimilarity=fname.startswith("dis"),
                                    names=_read_names(Path(folder) / "subjects.txt"))
    return None


def _read_names(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def subject_matrices(matrices: npt.ArrayLike, dataset: ComparisonSet, source: str = "subject matrices",
                     dissimilarity: bool = False, names: Sequence[str] | None = None) -> SubjectMatrices:
    """Check per-subject matrices (S, n, n) against `dataset` (same n, in its image order) and orient them
    as similarities."""
    m = np.asarray(matrices, dtype=np.float64)
    n = dataset.n_images
    if m.ndim != 3 or m.shape[1:] != (n, n):
        raise DataError(f"{source} has shape {m.shape}; it must be (subjects, {n}, {n}): one {n}x{n} matrix per "
                        f"subject, rows in the order of data set '{dataset.name}'. Fix or remove the file.")
    if len(m) < 2:
        raise DataError(f"{source} holds {len(m)} subject; a noise ceiling needs at least 2. Remove the file or "
                        f"add the other subjects' matrices.")
    if not np.all(np.isfinite(m)):
        raise DataError(f"{source} contains NaN or infinite values; a noise ceiling needs complete matrices. "
                        f"Fill or drop the incomplete subjects.")
    if names is not None and len(names) != len(m):
        raise DataError(f"subjects.txt beside {source} names {len(names)} subjects but the file holds {len(m)}; "
                        f"give one name per line, in the same order.")
    sim = -m if dissimilarity else m
    rows, cols = np.triu_indices(n, 1)
    mean_r = np.corrcoef(sim.mean(0)[rows, cols], dataset.similarity[rows, cols])[0, 1]
    if not mean_r > 0.99:  # the group matrix should be (an affine map of) the subjects' mean
        warnings.warn(f"the mean of the subject matrices in {source} correlates only {mean_r:.3f} with the matrix "
                      f"of data set '{dataset.name}': check that both use the same image order.")
    names = tuple(names) if names is not None else tuple(f"subject{s + 1}" for s in range(len(m)))
    return SubjectMatrices(similarity=sim, subject_names=names, source=source)


def _vectors(subjects: SubjectMatrices, images=None) -> np.ndarray:
    n = subjects.similarity.shape[1]
    rows, cols = np.triu_indices(n, 1)
    pos = pair_positions(n, images)
    return subjects.similarity[:, rows[pos], cols[pos]]


def _standardized(v: np.ndarray, measure: str) -> np.ndarray:
    """Rows centred and scaled to unit norm; ranked first for Spearman. Pearson r of two rows = their dot."""
    if measure == "spearman":
        v = stats.rankdata(v, axis=-1)
    v = v - v.mean(-1, keepdims=True)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _check(measure):
    if measure not in MEASURES:
        raise UsageError(f"measure must be one of {MEASURES}, not {measure!r}.")


def noise_ceiling(subjects: SubjectMatrices, images: npt.ArrayLike | None = None, measure: str = "pearson",
                  squared: bool = True) -> dict:
    """Lower and upper noise-ceiling bounds over the pairs among `images` (default: all pairs); see the module
    docstring. Returns {"lower", "upper", "n_subjects", "n_pairs"}."""
    _check(measure)
    v = _vectors(subjects, images)
    if measure == "spearman":
        pooled_terms = stats.rankdata(v, axis=-1)   # rsatoolbox pools ranks for Spearman
    else:
        pooled_terms = (v - v.mean(-1, keepdims=True)) / v.std(-1, keepdims=True)
    s = len(v)
    total = pooled_terms.sum(0)
    own = _standardized(v, measure)
    upper = np.sum(own * _standardized(total, measure), -1)
    lower = np.sum(own * _standardized((total[None] - pooled_terms) / (s - 1), measure), -1)
    power = 2 if squared else 1
    return {"lower": float(np.mean(lower ** power)), "upper": float(np.mean(upper ** power)), "n_subjects": s,
            "n_pairs": v.shape[1]}


def subject_alignment(pairs: npt.ArrayLike, subjects: SubjectMatrices, images: npt.ArrayLike | None = None,
                      measure: str = "pearson", squared: bool = True) -> np.ndarray | float:
    """Mean over subjects of the alignment of network similarities with each subject, over the pairs among
    `images`. pairs: condensed upper triangles over all n images, (M, P) or (P,)."""
    _check(measure)
    pairs = np.asarray(pairs, dtype=np.float64)
    squeeze = pairs.ndim == 1
    pairs = pairs[None] if squeeze else pairs
    a = _standardized(pairs[:, pair_positions(subjects.similarity.shape[1], images)], measure)
    r = a @ _standardized(_vectors(subjects, images), measure).T          # (M, S)
    out = np.mean(r ** (2 if squared else 1), axis=1)
    return float(out[0]) if squeeze else out


def validation_ceiling(scorer: Any, validation: Any, subjects: SubjectMatrices) -> list[dict]:
    """Per split of a fitted TopKValidation: the noise ceiling on the split's test pairs and the network's
    subject-level test alignment with all maps and with the top-k* maps (k* and the map order as in the
    validation: ranked by training AIS)."""
    measure = scorer.measure
    index = {name: i for i, name in enumerate(scorer.dataset_.image_names)}
    rows = []
    for split, ais_train in zip(validation.splits_, validation.train_ais_):
        test = np.array(sorted(index[name] for name in split["test_images"]))
        order = np.argsort(-ais_train, kind="stable")   # the validation's ranking
        (_, topk_pairs), = scorer.engine_.prefix_pairs(order, [split["k_star"]])
        bounds = noise_ceiling(subjects, test, measure)
        rows.append({"seed": split["seed"], "fold": split["fold"], "ceiling_lower": bounds["lower"],
                     "ceiling_upper": bounds["upper"],
                     "subject_r2_test_all": subject_alignment(scorer.full_pairs_.cpu().numpy(), subjects, test,
                                                              measure),
                     "subject_r2_test_topk": float(subject_alignment(topk_pairs[0].cpu().numpy(), subjects, test,
                                                                     measure))})
    return rows


def ceiling_summary(scorer: Any, per_split: list[dict], subjects: SubjectMatrices) -> dict:
    """The sweep's ceiling columns from validation_ceiling's rows: bounds on all pairs and on the test pairs
    (mean over splits), the network's subject-level alignment on the same pairs, and its test alignment as a
    fraction of the lower bound."""
    mean = {key: float(np.mean([r[key] for r in per_split])) for key in per_split[0] if key not in ("seed", "fold")}
    all_pairs = noise_ceiling(subjects, measure=scorer.measure)
    return {"n_subjects": subjects.n_subjects,
            "ceiling_lower_all": all_pairs["lower"], "ceiling_upper_all": all_pairs["upper"],
            "subject_r2_all": float(subject_alignment(scorer.full_pairs_.cpu().numpy(), subjects,
                                                      measure=scorer.measure)),
            **mean,
            "ceiling_fraction_topk": mean["subject_r2_test_topk"] / mean["ceiling_lower"],
            "ceiling_fraction_all": mean["subject_r2_test_all"] / mean["ceiling_lower"]}
