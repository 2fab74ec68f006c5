"""Alignment between a network's similarities and human judgments, and the held-out protocol's splits and k grid.

Definitions (Truong, Pesenti & Hasson 2025, Computational Brain & Behavior 8(3):421-441; arXiv:2409.16292):
- alignment: (Pearson r between the upper triangles, diagonal excluded, of the network's similarity
  matrix and the human one)^2; Spearman rho^2 as an option;
- row correlation of image i: Pearson r between image i's row of the human matrix and its row of network
  similarities, diagonal excluded (what image AIS differences);
- splits: the paper's 5 folds x seeds 111...888 (scikit-learn's shuffled KFold partitions).
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from scipy import stats

from aisviz.core.engine import upper_positions
from aisviz.errors import UsageError

MEASURES = ("pearson", "spearman")


def _check_measure(measure):
    if measure not in MEASURES:
        raise UsageError(f"measure must be one of {MEASURES}, not {measure!r}.")


def _spread_tolerance(*dtypes) -> float:
    """Standard deviation of similarities (which lie in [-1, 1]) below which their spread over the pairs is
    rounding error, not signal, for the coarsest of the precisions they went through (engines hand out
    float64 similarities computed from a float32 tail: their rounding is float32's)."""
    # Fast paths reach similarities through sums (cancellation costs ~3 digits), hence the margins.
    return max(1e-4 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9 for dtype in dtypes)


def _rank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, axis=-1)


def pair_positions(n: int, images: npt.ArrayLike | None = None) -> np.ndarray:
    """Positions, in the condensed upper triangle of an n x n matrix, of the pairs among `images`."""
    idx = np.arange(n) if images is None else np.sort(np.asarray(images))
    a, b = np.triu_indices(len(idx), 1)
    a, b = idx[a], idx[b]
    return a * (2 * n - a - 1) // 2 + (b - a - 1)


class AlignmentTarget:
    """The human side of the alignment over the pairs among `images`, prepared once and applied to
    many network similarity vectors: r^2 (Pearson, or Spearman rho^2) between upper triangles.
    `precision`: the dtype the network similarities were computed in (the engine's), if coarser than theirs."""

    def __init__(self, human: np.ndarray, images=None, measure: str = "pearson", precision=torch.float64):
        _check_measure(measure)
        n = human.shape[0]
        self.measure, self.n, self.precision = measure, n, precision
        positions = pair_positions(n, images)
        rows, cols = np.triu_indices(n, 1)
        h = human[rows[positions], cols[positions]].astype(np.float64)
        h = h / (np.abs(h).max() or 1.0)  # rescaled first, so no scale (1e160, 1e-170) over- or underflows
        # all pairs: nothing to select (saves a copy of every chunk of pairs)
        self.positions = None if len(positions) == len(rows) else torch.as_tensor(positions)
        if measure == "spearman":
            h = _rank(h)
        h = torch.as_tensor(h - h.mean())
        self.h = h / h.norm()

    def __call__(self, pairs) -> np.ndarray:
        """pairs: condensed upper triangles (M, P) or (P,) over all n images -> (M,) or scalar r^2;
        NaN where a network similarity is undefined (a read-out without variance), and where the network
        similarities have no spread over the pairs beyond rounding (e.g. a pooled read-out that keeps a single
        map gives every pair r = +-1 exactly): no correlation is defined there."""
        pairs = torch.as_tensor(pairs)
        squeeze = pairs.dim() == 1
        pairs = pairs[None] if squeeze else pairs
        a = pairs if self.positions is None else pairs.index_select(1, self.positions.to(pairs.device))
        a = a.double()
        a = a - a.mean(-1, keepdim=True)
        flat = a.norm(dim=-1) <= _spread_tolerance(pairs.dtype, self.precision) * a.shape[-1] ** 0.5
        if self.measure == "spearman":
            a = torch.as_tensor(_rank(a.cpu().numpy()), device=pairs.device)
            a = a - a.mean(-1, keepdim=True)
        r = (a @ self.h.to(a.device)) / a.norm(dim=-1)
        out = torch.where(flat, torch.nan, r ** 2).cpu().numpy()
        return out[0] if squeeze else out


class SubsetAlignments:
    """Pearson r^2 between network and human similarities over the pairs among each of S image subsets
    (e.g. the training images of every split), for a chunk of network similarity vectors at once.

    Same numbers as AlignmentTarget(human, subset) for each subset (tests check it), without gathering each
    subset's pairs: with t the subset's 0/1 indicator and A a symmetric matrix with zero diagonal, the sum
    over the subset's pairs is t'At/2, so every subset's sums of a, a^2 and a*h come from one (S, n) x (n, n)
    product per statistic. `center`: a value near the network similarities' mean; subtracting it changes no
    correlation and keeps the float64 sums free of cancellation. `precision`: as AlignmentTarget. Memory:
    the (S, n) indicators and O(chunk * n^2) temporaries.
    """

    def __init__(self, human: np.ndarray, subsets, center: float = 0.0, precision=torch.float64):
        n = human.shape[0]
        self.n, self.center, self.precision = n, center, precision
        t = torch.zeros(len(subsets), n, dtype=torch.float64)
        for s, images in enumerate(subsets):
            t[s, torch.as_tensor(np.asarray(images))] = 1
        self.t = t
        size = t.sum(1)
        self.n_pairs = size * (size - 1) / 2
        upper = np.triu(np.asarray(human, dtype=np.float64), 1)     # only the upper triangle is ever used
        upper = upper / (np.abs(upper).max() or 1.0)                    # no scale over- or underflows in h^2
        upper = np.triu(upper - upper[np.triu_indices(n, 1)].mean(), 1)  # shifted: no cancellation in sums
        h = torch.as_tensor(upper + upper.T)
        sum_h, sum_hh = self._pair_sums(h[None]), self._pair_sums((h * h)[None])
        self.h = h
        self.mean_h = sum_h[0] / self.n_pairs                           # (S,)
        self.ss_h = sum_hh[0] - self.n_pairs * self.mean_h ** 2          # (S,) sum of squared deviations

    def _pair_sums(self, a: torch.Tensor) -> torch.Tensor:
        """a (J, n, n) symmetric with zero diagonal -> (J, S): sums over each subset's pairs."""
        return ((self.t @ a) * self.t).sum(-1) / 2

    def __call__(self, pairs) -> np.ndarray:
        """pairs (J, P) condensed over all n images -> (S, J) r^2; NaN where a pair in the subset is NaN."""
        pairs = torch.as_tensor(pairs)
        dtype, pairs = pairs.dtype, pairs.double()
        if pairs.device != self.t.device:  # work where the pairs are (a GPU engine's chunks stay on the GPU)
            for name in ("t", "h", "n_pairs", "mean_h", "ss_h"):
                setattr(self, name, getattr(self, name).to(pairs.device))
        J, n = len(pairs), self.n
        bad = torch.isnan(pairs)
        a = torch.where(bad, 0.0, pairs - self.center)
        full = torch.zeros(J, n * n, dtype=torch.float64, device=pairs.device)
        full[:, upper_positions(n, full.device)] = a
        full = full.view(J, n, n)
        full = full + full.transpose(1, 2)
        sum_a, sum_aa, sum_ah = (self._pair_sums(x) for x in (full, full * full, full * self.h))
        cov = sum_ah - self.mean_h * sum_a
        var = sum_aa - sum_a ** 2 / self.n_pairs
        r2 = cov ** 2 / (var * self.ss_h)
        r2 = torch.where(var <= self.n_pairs * _spread_tolerance(dtype, self.precision) ** 2, torch.nan,
                         r2)  # as AlignmentTarget
        if bad.any():
            nan = torch.zeros(J, n * n, dtype=torch.float64, device=pairs.device)
            nan[:, upper_positions(n, nan.device)] = bad.double()
            nan = nan.view(J, n, n)
            r2 = torch.where(self._pair_sums(nan + nan.transpose(1, 2)) > 0, torch.nan, r2)
        return r2.T.cpu().numpy()


def alignment(pairs: npt.ArrayLike | torch.Tensor, human: np.ndarray, images: npt.ArrayLike | None = None,
              measure: str = "pearson", precision: torch.dtype = torch.float64) -> np.ndarray:
    """Alignment of network similarities (condensed pairs over all n images, (M, P) or (P,)) with the
    human matrix over the pairs among `images` (default: all). See AlignmentTarget."""
    return AlignmentTarget(human, images, measure, precision)(pairs)


class RowTarget:
    """The human rows, prepared once, against which many network similarity rows are correlated: for image i
    the correlation r (not squared) over k != i of its network row with its human row."""

    def __init__(self, human: np.ndarray, measure: str = "pearson"):
        _check_measure(measure)
        self.human, self.measure, self.n = human, measure, human.shape[0]
        if measure == "pearson":
            n = self.n
            h = torch.tensor(human, dtype=torch.float64)
            h = h / (h.abs().max() or 1.0)                              # no scale over- or underflows
            off = ~torch.eye(n, dtype=torch.bool)
            h = torch.where(off, h - torch.where(off, h, 0.0).sum(-1, keepdim=True) / (n - 1), 0.0)
            self.h = h / h.norm(dim=-1, keepdim=True)                    # centred over k != i, diagonal 0

    def __call__(self, sim_rows: torch.Tensor) -> np.ndarray:
        """sim_rows (..., n, n): entry [.., i, k] = network similarity of image i to image k -> r, (..., n)."""
        n = self.n
        if self.measure == "spearman":
            off = ~np.eye(n, dtype=bool)
            a = sim_rows.double().cpu().numpy()[..., off].reshape(sim_rows.shape[:-2] + (n, n - 1))
            a, h = torch.as_tensor(_rank(a)), torch.as_tensor(_rank(self.human[off].reshape(n, n - 1)))
            a, h = a - a.mean(-1, keepdim=True), h - h.mean(-1, keepdim=True)
            return ((a * h).sum(-1) / (a.norm(dim=-1) * h.norm(dim=-1))).cpu().numpy()
        # Sums instead of explicit centring (a few passes over the (..., n, n) rows instead of a dozen): the
        # human row is centred with a zero diagonal, so sum_k a_ik h_ik needs no centring of a; the spread of
        # a is taken around one of its own entries, which keeps the sums of squares free of cancellation.
        a = sim_rows.double()
        ref = a.gather(-1, ((torch.arange(n, device=a.device) + 1) % n).expand(a.shape[:-1])[..., None])
        d = a - ref
        diag = d.diagonal(dim1=-2, dim2=-1)
        total = d.sum(-1) - diag
        spread = d.square().sum(-1) - diag.square() - total.square() / (n - 1)
        r = (d * self.h.to(a.device)).sum(-1) / spread.clamp_min(0).sqrt()
        return r.cpu().numpy()


def row_correlations(sim_rows: torch.Tensor, human: np.ndarray, measure: str = "pearson") -> np.ndarray:
    """sim_rows (..., n, n): entry [.., i, k] = network similarity of image i to image k. Returns the
    correlation r (not squared) over k != i of row i with human row i, shape (..., n). See RowTarget."""
    return RowTarget(human, measure)(sim_rows)


def top_k_mask(ais: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k maps with the highest AIS (ties broken by channel order)."""
    n_maps = len(ais)
    if not 1 <= k <= n_maps:
        raise UsageError(f"k = {k} is out of range: this layer has {n_maps} maps, so k must be 1 to {n_maps}.")
    keep = np.zeros(n_maps, bool)
    keep[np.argsort(-np.asarray(ais), kind="stable")[:k]] = True
    return keep
