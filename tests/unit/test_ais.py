"""AIS, image AIS and the validation protocol against their definitions (PAPER.md), computed by hand."""
import numpy as np
import pytest
import torch
from scipy import stats

from aisviz.core.alignment import alignment, pair_positions, top_k_mask
from aisviz.core.splits import k_grid, kfold_splits
from aisviz.models.networks import load_network
from aisviz.pipeline.importance import AlignmentImportance, TopKValidation, corrected_paired_greater


def _upper(m):
    return m[np.triu_indices(len(m), 1)]


@pytest.fixture(scope="module")
def lite():
    return load_network("efficientnet_lite0")


def test_data_set_and_image_ais_follow_the_definition(tiny_set, lite):
    s = AlignmentImportance(progress=False, dtype="float64").fit(tiny_set, network=lite)
    acts = torch.as_tensor(np.stack(s.activations_)).double()
    li, ri = lite.resolve_layers(None, None)

    def readouts(x):
        with torch.no_grad():
            return lite.run(x.float(), li + 1, ri + 1).double().numpy()

    full = readouts(acts)
    human = tiny_set.similarity
    r2_all = stats.pearsonr(_upper(np.corrcoef(full)), _upper(human))[0] ** 2
    assert s.r2_all_ == pytest.approx(r2_all, rel=1e-6)
    for j in (0, 7, 1000):
        x = acts.clone()
        x[:, j] = 0
        r2_without = stats.pearsonr(_upper(np.corrcoef(readouts(x))), _upper(human))[0] ** 2
        assert s.ais_[j] == pytest.approx(r2_all - r2_without, rel=1e-4, abs=1e-9)
    # image AIS of image 3, map 7: only image 3 loses map 7
    i, j = 3, 7
    x = acts.clone()
    x[i, j] = 0
    modified = readouts(x)[i]
    others = [k for k in range(len(full)) if k != i]
    row_mod = [np.corrcoef(modified, full[k])[0, 1] for k in others]
    row_orig = [np.corrcoef(full[i], full[k])[0, 1] for k in others]
    r_orig = stats.pearsonr(row_orig, human[i, others])[0]
    r_mod = stats.pearsonr(row_mod, human[i, others])[0]
    assert s.image_ais_[i, j] == pytest.approx(r_orig - r_mod, rel=1e-4, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("similarity,measure", [("pearson", "pearson"), ("cosine", "spearman")])
def test_fast_path_equals_brute_force_on_the_real_network(tiny_set, lite, similarity, measure):
    kw = dict(progress=False, similarity=similarity, measure=measure, dtype="float64")
    fast = AlignmentImportance(**kw).fit(tiny_set, network=lite)
    brute = AlignmentImportance(method="brute", **kw).fit(tiny_set, network=lite)
    assert type(fast.engine_).__name__ == "PooledEngine"
    np.testing.assert_allclose(fast.ais_, brute.ais_, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(fast.image_ais_, brute.image_ais_, rtol=1e-5, atol=1e-10)


@pytest.mark.slow
def test_vgg_fc_path_equals_brute_force(tiny_set):
    net = load_network("vgg11", weights="none")
    net.image_size = 64  # small inputs keep the test quick; the paper's 224 is the default
    # float64: with random weights all read-outs are nearly parallel, so float32 rounding would dominate
    fast = AlignmentImportance(progress=False, dtype="float64").fit(tiny_set, network=net)
    brute = AlignmentImportance(progress=False, dtype="float64", method="brute").fit(tiny_set, network=net)
    assert type(fast.engine_).__name__ == "LinearHeadEngine"
    np.testing.assert_allclose(fast.r2_all_, brute.r2_all_, rtol=1e-5)
    np.testing.assert_allclose(fast.r2_without_, brute.r2_without_, rtol=1e-5)


def test_kfold_splits_partition_like_sklearn():
    splits = kfold_splits(120, 5, (111, 222))
    assert len(splits) == 10
    for seed in (111, 222):
        tests = [t for s, f, tr, t in splits if s == seed]
        assert sorted(np.concatenate(tests).tolist()) == list(range(120))
        assert all(len(t) == 24 for t in tests)
    # scikit-learn's KFold(shuffle=True, random_state=111): RandomState(111).shuffle then consecutive folds
    order = np.arange(120)
    np.random.RandomState(111).shuffle(order)
    assert splits[0][3].tolist() == sorted(order[:24].tolist())
    assert len(pair_positions(120, splits[0][3])) == 276


def test_validation_protocol(tiny_set, lite):
    s = AlignmentImportance(progress=False).fit(tiny_set, network=lite)
    v = TopKValidation(n_folds=3, seeds=(111, 222), k_step=97, n_random=2, progress=False).fit(s)
    ks = v.k_values_
    assert ks[0] == 1 and ks[-1] == 1280 and len(v.splits_) == 6
    for split, tr, te, te_rand in zip(v.splits_, v.curves_["train_topk"], v.curves_["test_topk"],
                                      v.curves_["test_random"]):
        test = [tiny_set.image_names.index(n) for n in split["test_images"]]
        assert split["r2_test_all"] == pytest.approx(alignment(s.full_pairs_, tiny_set.similarity, test))
        # k = all maps: nothing removed (curves run in float32: 1e-5 relative)
        assert te[-1] == pytest.approx(split["r2_test_all"], rel=1e-5)
        assert te_rand[-1] == pytest.approx(split["r2_test_all"], rel=1e-5)
        assert split["k_star"] == ks[np.nanargmax(tr)]
        assert split["r2_test_topk"] == pytest.approx(te[list(ks).index(split["k_star"])], rel=1e-5)
    summ = v.summary_
    assert summ["n_splits"] == 6 and 1 <= summ["mean_k_star"] <= 1280
    # Beside the paper's t-test, the corrected resampled one on the same per-split values (4 test / 8 train).
    topk, full = (np.array([sp[key] for sp in v.splits_]) for key in ("r2_test_topk", "r2_test_all"))
    assert summ["p_value_corrected"] == corrected_paired_greater(topk, full, 4 / 8)
    # a larger variance only moves t towards 0, so p towards 1/2
    assert abs(summ["p_value_corrected"] - 0.5) < abs(summ["p_value"] - 0.5)
    assert "Nadeau & Bengio 2003" in summ["test_corrected"]


def test_corrected_resampled_ttest_equals_the_hand_computed_value():
    """Nadeau & Bengio's corrected resampled t-test (Bouckaert & Frank's form for repeated k-fold), by hand:
    differences 0.1, 0.2, 0.3, 0.4 (J = 4), n_test/n_train = 1/4: mean 0.25, variance (ddof 1) 1/60,
    t = 0.25 / sqrt((1/4 + 1/4) / 60) = 0.25 * sqrt(120); with 3 degrees of freedom Student's CDF has the
    closed form 1/2 + (u / (1 + u^2) + arctan(u)) / pi, u = t / sqrt(3)."""
    b = np.array([0.30, 0.10, 0.50, 0.20])
    a = b + np.array([0.1, 0.2, 0.3, 0.4])
    t = 0.25 * np.sqrt(120)
    u = t / np.sqrt(3)
    p_hand = 0.5 - (u / (1 + u * u) + np.arctan(u)) / np.pi
    assert corrected_paired_greater(a, b, 0.25) == pytest.approx(p_hand, rel=1e-12)
    assert p_hand == pytest.approx(0.0358, abs=1e-4)
    # No correction (ratio 0): the paper's paired t-test; the correction only ever raises p.
    assert corrected_paired_greater(a, b, 0.0) == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert corrected_paired_greater(a, b, 0.25) > stats.ttest_rel(a, b, alternative="greater").pvalue
    assert corrected_paired_greater(b, a, 0.25) == pytest.approx(1 - p_hand)
    assert corrected_paired_greater(a, np.array([np.nan, *b[1:]]), 0.25) is not None  # NaN splits left out
    assert corrected_paired_greater(a, a, 0.25) is None and corrected_paired_greater(a[:1], b[:1], 0.25) is None


def test_bad_protocol_parameters(tiny_set):
    with pytest.raises(ValueError, match="too few for 5 folds"):
        kfold_splits(12, 5)
    with pytest.raises(ValueError, match="k_step"):
        k_grid(10, 0)
    with pytest.raises(ValueError, match="out of range"):
        top_k_mask(np.zeros(10), 11)
    assert top_k_mask(np.array([0.1, 0.3, -0.2, 0.3]), 2).tolist() == [False, True, False, True]


@pytest.mark.slow
@pytest.mark.realdata
def test_peterson_animals_offline_network(real_data_root, monkeypatch):
    """Real human data: all-maps alignment and the held-out gain of the top-k maps (paper: VGG-16 .55 -> .62)."""
    from aisviz.io.catalog import load_dataset

    monkeypatch.setenv("AISVIZ_DATA", str(real_data_root))
    s = AlignmentImportance(progress=False).fit(load_dataset("peterson_animals"))
    assert 0.3 < s.r2_all_ < 0.6
    v = TopKValidation(seeds=(111, 222), k_step=16, progress=False).fit(s)
    assert v.summary_["mean_r2_test_topk"] > v.summary_["mean_r2_test_all"] > v.summary_["mean_r2_test_random"]


def test_validation_callback_reports_partial_results_and_can_stop_the_fit(tiny_set, lite):
    from aisviz.pipeline.importance import Progress

    scorer = AlignmentImportance(progress=False).fit(tiny_set, network=lite)
    whole = TopKValidation(n_folds=3, seeds=(111, 222), k_step=64, progress=False).fit(scorer)
    seen = []

    def record(p: Progress):
        assert p.stage == "validation" and 0 < p.done <= p.total == 6
        if p.partial is not None:  # a finished split: its summary equals a fit on the splits so far
            seen.append((p.done, p.partial.summary_["n_splits"], p.partial.curves_["test_topk"].copy()))

    TopKValidation(n_folds=3, seeds=(111, 222), k_step=64, progress=False).fit(scorer, callback=record)
    assert [(d, n) for d, n, _ in seen] == [(i, i) for i in range(1, 7)]
    np.testing.assert_array_equal(seen[-1][2], whole.curves_["test_topk"])
    first_seed = TopKValidation(n_folds=3, seeds=(111,), k_step=64, progress=False).fit(scorer)
    np.testing.assert_array_equal(seen[2][2], first_seed.curves_["test_topk"])

    class Stop(Exception):
        pass

    def stop_inside_first_split(p: Progress):
        if p.done > 0.2:
            raise Stop

    with pytest.raises(Stop):
        TopKValidation(n_folds=3, seeds=(111,), k_step=1, progress=False).fit(scorer, callback=stop_inside_first_split)


def test_scorer_callback_counts_images_then_chunks_of_maps(tiny_set, lite):
    events = []
    s = AlignmentImportance(progress=False, batch_size=8).fit(tiny_set, network=lite, callback=events.append)
    extraction = [(e.done, e.total) for e in events if e.stage == "activations"]
    assert extraction == [(0, 12), (8, 12), (12, 12)]  # images, before the first batch and after each
    events = events[len(extraction):]
    assert events and all(e.stage == "leave-one-map-out" for e in events)
    assert [e.done for e in events] == list(range(1, events[-1].total + 1))
    assert len(s.engine_.chunks(list(range(s.engine_.n_maps)))) == events[-1].total
    assert s.engine_.reruns_tail is False


def test_dataframes_hold_the_fitted_values(tiny_set, lite):
    s = AlignmentImportance(progress=False).fit(tiny_set, network=lite)
    maps = s.to_dataframe()
    np.testing.assert_array_equal(maps["ais"].to_numpy(), s.ais_)
    assert list(maps["map"]) == list(s.map_names_)
    images = s.to_dataframe("images").set_index(["image", "channel"])
    assert images.loc[(tiny_set.image_names[3], 7), "image_ais"] == s.image_ais_[3, 7]
    v = TopKValidation(n_folds=3, seeds=(111,), k_step=128, progress=False).fit(s)
    curves = v.to_dataframe("curves")
    assert len(curves) == 3 * len(v.k_values_)
    np.testing.assert_array_equal(curves["r2_test_topk"].to_numpy().reshape(3, -1), v.curves_["test_topk"])
    splits = v.to_dataframe("splits")
    assert list(splits["k_star"]) == [sp["k_star"] for sp in v.splits_]
    assert v.to_dataframe("summary").loc[0, "mean_r2_test_topk"] == v.summary_["mean_r2_test_topk"]
    with pytest.raises(ValueError, match="kind must be"):
        v.to_dataframe("nope")


# The same functions run on the GPU when one is present; without one, the CPU runs them (device="cpu").
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_subset_alignments_equal_one_target_per_subset(device):
    """The quadratic-form evaluation of many training sets equals gathering each set's pairs, NaN included."""
    from aisviz.core.alignment import AlignmentTarget, SubsetAlignments

    rng = np.random.default_rng(5)
    n = 30
    human = rng.uniform(0, 10, (n, n))                 # not symmetric: only the upper triangle counts
    pairs = 0.8 + 0.05 * rng.standard_normal((7, n * (n - 1) // 2))
    pairs[3, 17] = np.nan                               # a pair between images 0 and 18
    subsets = [np.sort(rng.choice(n, 20, replace=False)) for _ in range(6)] + [np.arange(1, n)]
    got = SubsetAlignments(human, subsets, center=0.8)(torch.as_tensor(pairs, device=device))
    want = np.stack([AlignmentTarget(human, s)(torch.as_tensor(pairs)) for s in subsets])
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)
    for scale in (1e160, 1e-170):  # r^2 ignores the human matrix's scale, and nothing overflows
        np.testing.assert_allclose(SubsetAlignments(human * scale, subsets, center=0.8)(pairs), got, rtol=1e-10)
    assert np.isnan(got[-1, 3]) == np.isnan(want[-1, 3]) and not np.isnan(got[-1, 2])


@pytest.mark.slow
def test_streamed_validation_equals_the_reference_protocol(tiny_set, lite):
    """Training AIS from one streamed pass and grouped prefix sums give the curves of the plain protocol:
    brute-force re-runs of every leave-one-map-out mask and every top-k mask, one split at a time."""
    from aisviz.core.alignment import AlignmentTarget
    from aisviz.core.engine import make_engine

    scorer = AlignmentImportance(progress=False, dtype="float64").fit(tiny_set, network=lite)
    v = TopKValidation(n_folds=3, seeds=(111, 222), k_step=97, progress=False).fit(scorer)
    li, ri = lite.resolve_layers(None, None)
    brute = make_engine(lite, li, ri, scorer.activations_, dtype=torch.float64, method="brute")
    loo = torch.cat([brute.loo_pairs(js) for js in brute.chunks(list(range(brute.n_maps)))])
    for i, (seed, fold, train, test) in enumerate(kfold_splits(12, 3, (111, 222))):
        train_t, test_t = AlignmentTarget(tiny_set.similarity, train), AlignmentTarget(tiny_set.similarity, test)
        ais_train = train_t(scorer.full_pairs_) - train_t(loo)
        order = np.argsort(-ais_train, kind="stable")
        random_order = np.random.default_rng([0, seed, fold]).permutation(brute.n_maps)
        for key, o, target in (("train_topk", order, train_t), ("test_topk", order, test_t),
                               ("test_random", random_order, test_t)):
            want = np.concatenate([target(p) for _, p in brute.prefix_pairs(o, v.k_values_)])
            np.testing.assert_allclose(v.curves_[key][i], want, rtol=1e-7, atol=1e-12)
        assert v.splits_[i]["k_star"] == v.k_values_[np.nanargmax(v.curves_["train_topk"][i])]


def test_no_maps_by_pairs_array_is_kept():
    """Memory is O(chunk * n^2): the pooled engine holds no (maps x pairs) values (at most n x n), and
    a chunk of maps stays within the engine's byte budget however large n is."""
    from torch import nn

    from aisviz.core.engine import PooledEngine, make_engine
    from aisviz.models.networks import Network

    n, c = 300, 64
    net = Network(name="pooled", weights="none", mean=(0.5,) * 3, std=(0.5,) * 3,
                  stages=[("conv", nn.Conv2d(3, c, 1)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten(1))])
    acts = [np.maximum(a, 0) for a in np.random.default_rng(0).standard_normal((n, c, 2, 2)).astype(np.float32)]
    engine = make_engine(net, 0, 2, acts)
    assert isinstance(engine, PooledEngine)
    tensors = [v for v in vars(engine).values() if isinstance(v, torch.Tensor)]
    tensors += [t for v in vars(engine).values() if isinstance(v, tuple) for t in v if isinstance(t, torch.Tensor)]
    assert max(t.numel() for t in tensors) <= n * n < c * n * (n - 1) // 2
    chunks = engine.chunks(list(range(c)))
    assert sum(map(len, chunks)) == c and max(map(len, chunks)) * n * n * 8 <= 2 ** 22
    pairs, cross = engine.loo(chunks[0])
    assert pairs.shape == (len(chunks[0]), n * (n - 1) // 2) and cross.shape == (len(chunks[0]), n, n)


@pytest.mark.parametrize("spread", [0.05, 1e-4])
def test_row_correlations_equal_scipy_per_row(spread):
    """The sums formulation of image rows' r equals scipy's Pearson r over k != i, even for nearly equal
    similarities (near-parallel read-outs), and it ignores the human matrix's scale."""
    from aisviz.core.alignment import row_correlations

    rng = np.random.default_rng(1)
    n = 40
    human = rng.uniform(0, 10, (n, n))
    rows = 0.99 + spread * rng.standard_normal((2, n, n))
    got = row_correlations(torch.as_tensor(rows), human)
    for m in range(2):
        for i in (0, 17, n - 1):
            others = [k for k in range(n) if k != i]
            assert got[m, i] == pytest.approx(stats.pearsonr(rows[m, i, others], human[i, others])[0], rel=1e-9)
    np.testing.assert_allclose(row_correlations(torch.as_tensor(rows), human * 1e160), got, rtol=1e-12)


@pytest.mark.slow
def test_one_pooled_map_has_undefined_alignment_whatever_the_rounding(lite):
    """A pooled read-out that keeps one map makes every pair r = 1 (or undefined): the alignment at k = 1 is
    undefined. The float32 tail leaves a spread of 1e-13 to 1e-8 over the pairs, which passed the float64
    tolerance: R^2 of pure rounding (0.15 on the CPU, 0.05 on a GPU, for the same split and map)."""
    from aisviz.io.synthetic import make_default_set
    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation

    scorer = AlignmentImportance(progress=False, device="cpu").fit(make_default_set(), network=lite)
    validation = TopKValidation(n_folds=5, seeds=[111, 222], k_step=256, progress=False).fit(scorer)
    assert validation.k_values_[0] == 1
    for name, curves in validation.curves_.items():
        assert np.isnan(curves[:, 0]).all(), (name, curves[:, 0])
        assert np.isfinite(curves[:, 1:]).all(), name
