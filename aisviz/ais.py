"""Alignment Importance Scores and the held-out top-k validation (Truong, Pesenti & Hasson).

Definitions (Truong, Pesenti & Hasson 2025, Computational Brain & Behavior 8(3):421-441; arXiv:2409.16292):
- alignment: (Pearson r between the upper triangles, diagonal excluded, of the network's similarity
  matrix and the human one)^2; Spearman rho^2 as an option.
- data-set AIS of map j: alignment(all maps) - alignment(map j zeroed in every image).
- image AIS of (image i, map j): r_orig(i) - r_mod(i, j), where r is the Pearson r (not squared) between
  image i's row of the human matrix and its row of network similarities, diagonal excluded, and r_mod
  uses image i's read-out with map j zeroed against everyone else's unmodified read-outs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from .checks import check_set_size, warn_negative_alignment
from .engine import condense, make_engine, upper_positions
from .errors import InputError, UsageError
from .features import extract_activations, resolve_device
from .models import OFFLINE_MODEL, load_network

MEASURES = ("pearson", "spearman")
PAPER_SEEDS = (111, 222, 333, 444, 555, 666, 777, 888)


@dataclass(frozen=True)
class Progress:
    """What a fit passes to its callback after each unit of work.

    stage: "leave-one-map-out" (units: chunks of maps) or "validation" (units: splits, with fractions
    for the chunks of k values inside a split; the first split's unit also covers the one pass that gives
    every split its training AIS); done/total: units finished so far and in all;
    partial: set when a whole validation split has finished: the TopKValidation itself, whose splits_,
    curves_ and summary_ then describe the splits so far. A callback that raises stops the fit there
    (the dashboard cancels superseded work this way); the object is then left unfinished.
    """

    stage: str
    done: float
    total: int
    partial: object = None


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


def pair_positions(n: int, images=None) -> np.ndarray:
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


def alignment(pairs, human: np.ndarray, images=None, measure: str = "pearson", precision=torch.float64) -> np.ndarray:
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


class AlignmentImportance:
    """Leave-one-map-out AIS of every feature map of a layer, for the data set and for each image.

    After fit(dataset): r2_all_ (alignment with all maps), ais_ (n_maps,), image_ais_ (n_images, n_maps),
    r_orig_ (n_images,), map_names_, image_names_, full_rsm_ (n, n), full_pairs_ (its condensed upper
    triangle), r2_without_ (n_maps,), activations_, engine_. Beyond the activations, memory is O(chunk * n^2):
    no (maps x pairs) array is kept.
    """

    def __init__(self, model: str = OFFLINE_MODEL, layer: str | None = None, readout: str | None = None,
                 similarity: str = "pearson", measure: str = "pearson", weights: str = "pretrained",
                 device: str = "auto", dtype: str = "float32", method: str = "auto", use_cache: bool = True,
                 progress: bool = True, batch_size: int = 16):
        self.model, self.layer, self.readout = model, layer, readout
        self.similarity, self.measure, self.weights = similarity, measure, weights
        self.device, self.dtype, self.method = device, dtype, method
        self.use_cache, self.progress, self.batch_size = use_cache, progress, batch_size

    def fit(self, dataset, network=None, callback=None):
        """Score every map of the layer on `dataset`. callback(Progress) is called after each chunk of maps."""
        _check_measure(self.measure)
        check_set_size(dataset)
        net = network or load_network(self.model, weights=self.weights)
        li, ri = net.resolve_layers(self.layer, self.readout)
        self.network_, self.dataset_ = net, dataset
        self.layer_, self.readout_ = net.stage_names[li], net.stage_names[ri]
        device = resolve_device(self.device)
        self.activations_ = extract_activations(dataset, net, self.layer_, device=device, use_cache=self.use_cache,
                                                progress=self.progress, batch_size=self.batch_size)
        dtype = {"float32": torch.float32, "float64": torch.float64}[self.dtype]
        net.to(device)
        self.engine_ = make_engine(net, li, ri, self.activations_, similarity=self.similarity, device=device,
                                   dtype=dtype, method=self.method)
        human = dataset.similarity
        n_maps = self.engine_.n_maps
        self.image_names_ = tuple(dataset.image_names)
        self.map_names_ = tuple(f"{self.layer_}:{j}" for j in range(n_maps))
        self.full_rsm_ = self.engine_.full_rsm()
        self.full_pairs_ = condense(self.full_rsm_)
        self.r2_all_ = float(alignment(self.full_pairs_, human, measure=self.measure, precision=dtype))
        self.warnings_ = warn_negative_alignment(self.full_pairs_, human, self.measure, dataset.name)
        rows = RowTarget(human, self.measure)
        self.r_orig_ = rows(self.full_rsm_[None])[0]
        # Streamed: each chunk of maps is reduced to its alignments and image rows at once, so memory stays
        # O(chunk * n^2) rather than O(maps * n^2).
        target = AlignmentTarget(human, measure=self.measure, precision=dtype)
        r2_without, image_ais = [], []
        from tqdm.auto import tqdm

        chunks = self.engine_.chunks(list(range(n_maps)))
        for done, js in enumerate(tqdm(chunks, desc="leave-one-map-out", disable=not self.progress, unit="chunk")):
            pairs, cross = self.engine_.loo(js)
            r2_without.append(target(pairs))
            image_ais.append(self.r_orig_[None] - rows(cross))
            del pairs, cross
            if callback is not None:
                callback(Progress("leave-one-map-out", done + 1, len(chunks)))
        self.r2_without_ = np.concatenate(r2_without)
        self.ais_ = self.r2_all_ - self.r2_without_
        self.image_ais_ = np.concatenate(image_ais).T            # (n_images, n_maps)
        return self

    def to_rsatoolbox(self, k: int | None = None):
        """The network RDM (1 - network similarity) as rsatoolbox RDMs, with all maps or the top k by AIS."""
        from .interop import network_rdm

        return network_rdm(self, k)

    def ranking(self) -> np.ndarray:
        """Map indices from the highest AIS to the lowest."""
        return np.argsort(-self.ais_, kind="stable")

    def table(self) -> list[dict]:
        """One row per map: name, channel, AIS, alignment without it, rank (1 = most important)."""
        rank = np.empty(len(self.ais_), int)
        rank[self.ranking()] = np.arange(1, len(self.ais_) + 1)
        return [{"map": name, "channel": j, "ais": float(self.ais_[j]), "r2_without": float(self.r2_without_[j]),
                 "rank": int(rank[j])} for j, name in enumerate(self.map_names_)]

    def to_dataframe(self, kind: str = "maps"):
        """pandas DataFrame of the results. kind="maps": one row per map (table()); kind="images": one row
        per (image, map) with its image AIS, plus each image's r_orig (its row correlation with all maps)."""
        import pandas as pd

        if kind == "maps":
            return pd.DataFrame(self.table())
        if kind == "images":
            n, c = self.image_ais_.shape
            return pd.DataFrame({"image": np.repeat(self.image_names_, c), "map": np.tile(self.map_names_, n),
                                 "channel": np.tile(np.arange(c), n), "image_ais": self.image_ais_.ravel(),
                                 "r_orig": np.repeat(self.r_orig_, c)})
        raise ValueError(f"kind must be 'maps' or 'images', not {kind!r}.")


def top_k_mask(ais: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k maps with the highest AIS (ties broken by channel order)."""
    n_maps = len(ais)
    if not 1 <= k <= n_maps:
        raise UsageError(f"k = {k} is out of range: this layer has {n_maps} maps, so k must be 1 to {n_maps}.")
    keep = np.zeros(n_maps, bool)
    keep[np.argsort(-np.asarray(ais), kind="stable")[:k]] = True
    return keep


def kfold_splits(n: int, n_folds: int = 5, seeds=PAPER_SEEDS):
    """(seed, fold, train, test) for each seed and fold; the same partitions as scikit-learn's
    KFold(n_folds, shuffle=True, random_state=seed)."""
    if n_folds < 2:
        raise UsageError(f"folds must be at least 2, not {n_folds}.")
    if n // n_folds < 3:
        fix = f"Use at most {n // 3} folds, or more images." if n // 3 >= 2 else \
            "A held-out test needs at least 6 images (2 folds of 3): add images."
        raise UsageError(
            f"{n} images are too few for {n_folds} folds: each test fold needs at least 3 images (3 pairs). {fix}")
    out = []
    for seed in seeds:
        order = np.arange(n)
        np.random.RandomState(seed).shuffle(order)
        sizes = np.full(n_folds, n // n_folds)
        sizes[: n % n_folds] += 1
        start = 0
        for fold, size in enumerate(sizes):
            test = np.sort(order[start:start + size])
            start += size
            out.append((int(seed), fold, np.setdiff1d(np.arange(n), test), test))
    return out


def k_grid(n_maps: int, k_step: int = 1) -> np.ndarray:
    """The k values evaluated: every k (k_step=1, the paper) or 1, 1+step, ... always ending at n_maps."""
    if k_step < 1:
        raise UsageError(f"k_step must be at least 1, not {k_step}.")
    ks = list(range(1, n_maps + 1, k_step))
    if ks[-1] != n_maps:
        ks.append(n_maps)
    return np.asarray(ks)


class TopKValidation:
    """The paper's held-out test: rank maps by AIS on training images, keep the top k, measure test alignment.

    For each split (n_folds x seeds): training AIS from the training pairs only; train and test alignment
    for every k in the grid with only the top-k maps kept; k* = argmax of training alignment, reported as the
    number of maps kept (the authors' code reports the 0-based index of that argmax, which is k* - 1); test
    alignment at k* vs with all maps. Baseline: n_random random orderings per split (each prefix is a
    uniformly random subset of size k), scored the same way.

    After fit(scorer): k_values_, splits_ (list of dicts), curves_ (dict of (n_splits, n_k) arrays:
    train_topk, test_topk, train_random, test_random), summary_ (dict), train_ais_ ((n_splits, n_maps): each
    split's training AIS, whose order ranks the maps).

    Training AIS uses the leave-one-map-out similarities restricted to the training pairs; one streamed pass
    over chunks of maps gives it for every split (SubsetAlignments), so memory stays O(splits * n + chunk * n^2).
    """

    def __init__(self, n_folds: int = 5, seeds=PAPER_SEEDS, k_step: int = 1, n_random: int = 1,
                 random_seed: int = 0, progress: bool = True):
        self.n_folds, self.seeds, self.k_step = n_folds, tuple(seeds), k_step
        self.n_random, self.random_seed, self.progress = n_random, random_seed, progress

    def _curves(self, engine, order, train_target, test_target, tick=None):
        tr, te = [], []
        for ks, pairs in engine.prefix_pairs(order, self.k_values_):
            tr.append(train_target(pairs))
            te.append(test_target(pairs))
            if tick is not None:
                tick(ks[-1] / self.k_values_[-1])
        return np.concatenate(tr), np.concatenate(te)

    def fit(self, scorer: AlignmentImportance, callback=None):
        """Run every split on a fitted scorer. callback(Progress) is called after each chunk of k values
        (partial=None) and after each split (partial=self, with splits_, curves_ and summary_ so far)."""
        engine, human, measure = scorer.engine_, scorer.dataset_.similarity, scorer.measure
        n, n_maps = scorer.dataset_.n_images, engine.n_maps
        self.k_values_ = k_grid(n_maps, self.k_step)
        splits = kfold_splits(n, self.n_folds, self.seeds)
        curves = {key: [] for key in ("train_topk", "test_topk", "train_random", "test_random")}
        self.splits_ = []
        from tqdm.auto import tqdm

        runs = 1 + self.n_random

        def tick(split, run):
            # The first split's unit also covers the training-AIS pass of every split (run -1).
            if callback is None:
                return lambda fraction: None
            if split == 0:
                return lambda f: callback(Progress("validation", (run + 1 + f) / (runs + 1), len(splits)))
            return lambda f: callback(Progress("validation", split + (run + f) / runs, len(splits)))

        self.train_ais_ = self._training_ais(scorer, [train for _, _, train, _ in splits], tick(0, -1))
        for done, (seed, fold, train, test) in enumerate(tqdm(splits, desc="validation splits",
                                                               disable=not self.progress)):
            train_target, test_target = (AlignmentTarget(human, images, measure, engine.dtype)
                                         for images in (train, test))
            r2_train_all, r2_test_all = float(train_target(scorer.full_pairs_)), float(test_target(scorer.full_pairs_))
            ais_train = self.train_ais_[done]
            order = np.argsort(-ais_train, kind="stable")
            tr, te = self._curves(engine, order, train_target, test_target, tick(done, 0))
            rng = np.random.default_rng([self.random_seed, seed, fold])
            rand = [self._curves(engine, rng.permutation(n_maps), train_target, test_target, tick(done, r + 1))
                    for r in range(self.n_random)]
            tr_rand, te_rand = np.mean([r[0] for r in rand], 0), np.mean([r[1] for r in rand], 0)
            if np.all(np.isnan(tr)):
                raise InputError(f"training alignment is undefined for every k in split seed={seed} fold={fold}")
            best = int(np.nanargmax(tr))  # k with undefined alignment (a silent read-out) cannot be chosen
            for key, val in zip(curves, (tr, te, tr_rand, te_rand)):
                curves[key].append(val)
            self.splits_.append({
                "seed": seed, "fold": fold, "n_train": len(train), "n_test": len(test),
                "k_star": int(self.k_values_[best]), "r2_train_all": r2_train_all, "r2_train_topk": float(tr[best]),
                "r2_test_all": r2_test_all, "r2_test_topk": float(te[best]), "r2_test_random": float(te_rand[best]),
                "test_images": [scorer.dataset_.image_names[i] for i in test]})
            self.curves_ = {k: np.asarray(v) for k, v in curves.items()}
            self.summary_ = self._summarize()
            if callback is not None:
                callback(Progress("validation", done + 1, len(splits), partial=self))
        return self

    @staticmethod
    def _training_ais(scorer, train_sets, tick) -> np.ndarray:
        """(splits, n_maps) data-set AIS on each split's training pairs, in one streamed leave-one-map-out pass
        (nothing of size maps x pairs is kept). Pearson: every split at once by SubsetAlignments; Spearman
        ranks each split's pairs separately."""
        engine, human, measure = scorer.engine_, scorer.dataset_.similarity, scorer.measure
        if measure == "pearson":
            evaluate = SubsetAlignments(human, train_sets, center=float(scorer.full_pairs_.mean()),
                                        precision=engine.dtype)
        else:
            targets = [AlignmentTarget(human, train, measure, engine.dtype) for train in train_sets]

            def evaluate(pairs):
                return np.stack([target(pairs) for target in targets])
        r2_all = evaluate(scorer.full_pairs_[None])                       # (splits, 1)
        chunks = engine.chunks(list(range(engine.n_maps)))
        r2_without = []
        for done, js in enumerate(chunks):
            r2_without.append(evaluate(engine.loo_pairs(js)))
            tick((done + 1) / len(chunks))
        return r2_all - np.concatenate(r2_without, 1)

    def to_dataframe(self, kind: str = "splits"):
        """pandas DataFrame of the results. kind="splits": one row per split (test images joined by ";");
        kind="curves": one row per (split, k) with the train/test R^2 of the top-k and random-k maps;
        kind="summary": one row with the summary."""
        import pandas as pd

        if kind == "splits":
            rows = [{**s, "test_images": ";".join(s["test_images"])} for s in self.splits_]
            return pd.DataFrame(rows)
        if kind == "curves":
            n_splits, n_k = self.curves_["test_topk"].shape
            out = pd.DataFrame({"seed": np.repeat([s["seed"] for s in self.splits_], n_k),
                                "fold": np.repeat([s["fold"] for s in self.splits_], n_k),
                                "k": np.tile(self.k_values_, n_splits)})
            for key, values in self.curves_.items():
                out[f"r2_{key}"] = values.ravel()
            return out
        if kind == "summary":
            return pd.DataFrame([self.summary_])
        raise ValueError(f"kind must be 'splits', 'curves' or 'summary', not {kind!r}.")

    def _summarize(self):
        col = {k: np.array([s[k] for s in self.splits_]) for k in
               ("k_star", "r2_test_all", "r2_test_topk", "r2_test_random", "r2_train_all", "r2_train_topk")}
        summary = {f"mean_{k}": float(np.nanmean(v)) for k, v in col.items()}
        summary.update({f"sd_{k}": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in col.items()})
        summary["n_splits"] = len(self.splits_)
        ratio = float(np.mean([s["n_test"] / s["n_train"] for s in self.splits_]))
        summary["p_value"] = _paired_greater(col["r2_test_topk"], col["r2_test_all"])
        summary["p_value_vs_random"] = _paired_greater(col["r2_test_topk"], col["r2_test_random"])
        summary["p_value_corrected"] = corrected_paired_greater(col["r2_test_topk"], col["r2_test_all"], ratio)
        summary["p_value_vs_random_corrected"] = corrected_paired_greater(col["r2_test_topk"],
                                                                          col["r2_test_random"], ratio)
        summary["test"] = "one-sided paired t-test over splits (top-k* > comparison)"
        summary["test_corrected"] = CORRECTED_TEST
        return summary


CORRECTED_TEST = ("one-sided corrected resampled t-test for repeated k-fold cross-validation (Nadeau & Bengio 2003; "
                  "Bouckaert & Frank 2004): t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)), d = per-split "
                  "differences, J = folds x repeats, J - 1 degrees of freedom; the splits share images, so the "
                  "plain paired t-test (p_value) overstates the evidence")


def _paired_greater(a, b) -> float | None:
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 2 or np.allclose(a, b):
        return None  # undefined: a single split, or no difference at all
    return float(stats.ttest_rel(a, b, alternative="greater").pvalue)


def corrected_paired_greater(a, b, test_train_ratio: float) -> float | None:
    """One-sided corrected resampled t-test (a > b) over the splits of repeated k-fold cross-validation.

    The splits of repeated k-fold share training and test images, so their differences are correlated and
    the plain paired t-test (variance / J) is too confident. Nadeau & Bengio (2003) inflate the variance of
    the mean difference by the test/train size ratio; Bouckaert & Frank (2004) use it for r repeats of
    k folds with J = k * r splits:

        d_j = a_j - b_j,   t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),   var with ddof = 1,
        p = P(T > t) for Student's T with J - 1 degrees of freedom.

    Parameters
    ----------
    a, b : (J,) per-split values (e.g. test R² with the top-k* maps and with all maps); splits where either
        is NaN are left out.
    test_train_ratio : n_test / n_train, images held out over images trained on (24 / 96 = 0.25 for 5 folds
        of 120 images).

    Returns
    -------
    The p-value, or None when undefined (fewer than two splits, or no difference at all).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    d = a[ok] - b[ok]
    if len(d) < 2 or np.allclose(a[ok], b[ok]):
        return None
    se = np.sqrt((1.0 / len(d) + test_train_ratio) * np.var(d, ddof=1))
    with np.errstate(divide="ignore"):
        t = d.mean() / se  # identical differences: +-inf, p = 0 or 1
    return float(stats.t.sf(t, len(d) - 1))
