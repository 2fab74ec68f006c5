"""AIS, image AIS and the validation protocol against their definitions (PAPER.md), computed by hand."""
import numpy as np
import pytest
import torch
from scipy import stats

from aisviz.ais import AlignmentImportance, TopKValidation, alignment, k_grid, kfold_splits, pair_positions, top_k_mask
from aisviz.models import load_network


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


@pytest.mark.parametrize("similarity,measure", [("pearson", "pearson"), ("cosine", "spearman")])
def test_fast_path_equals_brute_force_on_the_real_network(tiny_set, lite, similarity, measure):
    kw = dict(progress=False, similarity=similarity, measure=measure, dtype="float64")
    fast = AlignmentImportance(**kw).fit(tiny_set, network=lite)
    brute = AlignmentImportance(method="brute", **kw).fit(tiny_set, network=lite)
    assert type(fast.engine_).__name__ == "PooledEngine"
    np.testing.assert_allclose(fast.ais_, brute.ais_, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(fast.image_ais_, brute.image_ais_, rtol=1e-5, atol=1e-10)


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


def test_bad_protocol_parameters(tiny_set):
    with pytest.raises(ValueError, match="too few for 5 folds"):
        kfold_splits(12, 5)
    with pytest.raises(ValueError, match="k_step"):
        k_grid(10, 0)
    with pytest.raises(ValueError, match="out of range"):
        top_k_mask(np.zeros(10), 11)
    assert top_k_mask(np.array([0.1, 0.3, -0.2, 0.3]), 2).tolist() == [False, True, False, True]


@pytest.mark.realdata
def test_peterson_animals_offline_network(real_data_root, monkeypatch):
    """Real human data: all-maps alignment and the held-out gain of the top-k maps (paper: VGG-16 .55 -> .62)."""
    from aisviz.catalog import load_dataset

    monkeypatch.setenv("AISVIZ_DATA", str(real_data_root))
    s = AlignmentImportance(progress=False).fit(load_dataset("peterson_animals"))
    assert 0.3 < s.r2_all_ < 0.6
    v = TopKValidation(seeds=(111, 222), k_step=16, progress=False).fit(s)
    assert v.summary_["mean_r2_test_topk"] > v.summary_["mean_r2_test_all"] > v.summary_["mean_r2_test_random"]


def test_validation_callback_reports_partial_results_and_can_stop_the_fit(tiny_set, lite):
    from aisviz.ais import Progress

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


def test_scorer_callback_counts_chunks_of_maps(tiny_set, lite):
    events = []
    s = AlignmentImportance(progress=False).fit(tiny_set, network=lite, callback=events.append)
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
