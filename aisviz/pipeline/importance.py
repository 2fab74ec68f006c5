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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import stats

from aisviz.config import PAPER_SEEDS
from aisviz.core.alignment import (
    AlignmentTarget,
    RowTarget,
    SubsetAlignments,
    _check_measure,
    alignment,
)
from aisviz.core.checks import check_set_size, warn_negative_alignment
from aisviz.core.engine import condense, make_engine
from aisviz.core.splits import k_grid, kfold_splits
from aisviz.errors import InputError, UsageError
from aisviz.io.interop import network_rdm
from aisviz.models.features import extract_activations, resolve_device
from aisviz.models.networks import OFFLINE_MODEL, Network, load_network

if TYPE_CHECKING:
    import pandas as pd

    from aisviz.core.comparison import ComparisonSet


@dataclass(frozen=True)
class Progress:
    """What a fit passes to its callback after each unit of work.

    stage: "activations" (units: images; reported before the first batch and after each batch of the
    extraction, or once when the activations come from the cache), "leave-one-map-out" (units: chunks of
    maps) or "validation" (units: splits, with fractions
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

    def fit(self, dataset: ComparisonSet, network: Network | None = None,
            callback: Callable[[Progress], None] | None = None) -> AlignmentImportance:
        """Score every map of the layer on `dataset`. callback(Progress) is called as the activations are
        extracted (per batch of images) and after each chunk of maps."""
        _check_measure(self.measure)
        check_set_size(dataset)
        net = network or load_network(self.model, weights=self.weights)
        li, ri = net.resolve_layers(self.layer, self.readout)
        self.network_, self.dataset_ = net, dataset
        self.layer_, self.readout_ = net.stage_names[li], net.stage_names[ri]
        device = resolve_device(self.device)
        on_images = None if callback is None else (lambda done, total: callback(Progress("activations", done, total)))
        self.activations_ = extract_activations(dataset, net, self.layer_, device=device, use_cache=self.use_cache,
                                                progress=self.progress, batch_size=self.batch_size,
                                                callback=on_images)
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

    def to_rsatoolbox(self, k: int | None = None) -> Any:
        """The network RDM (1 - network similarity) as rsatoolbox RDMs, with all maps or the top k by AIS."""

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

    def to_dataframe(self, kind: str = "maps") -> pd.DataFrame:
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
        raise UsageError(f"kind must be 'maps' or 'images', not {kind!r}.")


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

    def fit(self, scorer: AlignmentImportance, callback: Callable[[Progress], None] | None = None) -> TopKValidation:
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
            report = callback  # a local name, so that the checker sees it is not None inside the lambdas
            if report is None:
                return lambda fraction: None
            if split == 0:
                return lambda f: report(Progress("validation", (run + 1 + f) / (runs + 1), len(splits)))
            return lambda f: report(Progress("validation", split + (run + f) / runs, len(splits)))

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

    def to_dataframe(self, kind: str = "splits") -> pd.DataFrame:
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
        raise UsageError(f"kind must be 'splits', 'curves' or 'summary', not {kind!r}.")

    def _summarize(self) -> dict[str, Any]:
        col = {k: np.array([s[k] for s in self.splits_]) for k in
               ("k_star", "r2_test_all", "r2_test_topk", "r2_test_random", "r2_train_all", "r2_train_topk")}
        summary: dict[str, Any] = {f"mean_{k}": float(np.nanmean(v)) for k, v in col.items()}
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


def corrected_paired_greater(a: npt.ArrayLike, b: npt.ArrayLike, test_train_ratio: float) -> float | None:
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
