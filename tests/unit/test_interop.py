"""The field's types in and out: rsatoolbox RDMs in (ComparisonSet) and out (to_rsatoolbox), activations
computed elsewhere scored with a pooled read-out; checked against numpy brute force."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisviz import AlignmentImportance
from aisviz.core.comparison import ComparisonSet
from aisviz.errors import DataError
from aisviz.io.interop import from_dataframe, from_rsatoolbox
from aisviz.models.precomputed import activations_network

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs  # noqa: E402


def _acts(n=10, c=6, hw=3, seed=0):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(n, c, hw, hw)), 0).astype(np.float32) + 0.01


def _human(acts, seed=1):
    """A 'human' similarity that follows the first three maps, plus noise."""
    pooled = acts.mean((2, 3))[:, :3]
    rng = np.random.default_rng(seed)
    s = np.corrcoef(pooled + 0.3 * rng.normal(size=pooled.shape))
    return (s + s.T) / 2


def _r2(readouts, human):
    iu = np.triu_indices(len(human), 1)
    return np.corrcoef(np.corrcoef(readouts)[iu], human[iu])[0, 1] ** 2


def test_precomputed_activations_match_numpy_brute_force():
    acts = _acts()
    human = _human(acts)
    ds = ComparisonSet(name="pre", image_names=tuple(f"i{k}" for k in range(10)), similarity=human)
    scorer = AlignmentImportance(progress=False, dtype="float64").fit(ds, network=activations_network(acts))
    pooled = acts.astype(np.float64).mean((2, 3))
    assert scorer.r2_all_ == pytest.approx(_r2(pooled, human), abs=1e-9)
    for j in range(acts.shape[1]):
        without = pooled.copy()
        without[:, j] = 0
        assert scorer.ais_[j] == pytest.approx(_r2(pooled, human) - _r2(without, human), abs=1e-9)
    assert scorer.engine_.kind == "per-map sufficient statistics"
    pooled_only = AlignmentImportance(progress=False, dtype="float64").fit(ds, network=activations_network(pooled))
    np.testing.assert_allclose(pooled_only.ais_, scorer.ais_, rtol=1e-5, atol=1e-7)  # given as float32


def test_precomputed_activations_are_checked():
    ds = ComparisonSet(name="pre", image_names=tuple(f"i{k}" for k in range(10)), similarity=_human(_acts()))
    with pytest.raises(DataError, match="9 precomputed activations for 10 images"):
        AlignmentImportance(progress=False).fit(ds, network=activations_network(_acts()[:9]))
    with pytest.raises(DataError, match="shape"):
        activations_network(np.zeros((10, 3, 2, 2, 1)))
    bad = _acts()
    bad[2, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="activation 2 holds NaN"):
        activations_network(bad)


@settings(max_examples=10, deadline=None)
@given(st.permutations(list(range(10))))
def test_rdms_in_are_aligned_by_pattern_descriptor(perm):
    acts = _acts()
    human = _human(acts)
    names = [f"i{k}.png" for k in range(10)]
    d = 1 - human
    iu = np.triu_indices(10, 1)
    shuffled = d[np.ix_(perm, perm)]
    rdms = RDMs(shuffled[iu][None], dissimilarity_measure="1 - r",
                pattern_descriptors={"image": [names[i] for i in perm]})
    ds = from_rsatoolbox(rdms, image_names=names, name="rdm")
    ref = ComparisonSet(name="ref", image_names=tuple(names), similarity=1 - d / d[iu].max() + 0 * d)
    off = ~np.eye(10, dtype=bool)
    np.testing.assert_allclose(ds.similarity[off], ref.similarity[off], atol=1e-12)
    assert "rsatoolbox RDMs" in ds.direction_note
    from_rdms = from_rsatoolbox(rdms)
    assert from_rdms.image_names == tuple(names[i] for i in perm)
    a = AlignmentImportance(progress=False, dtype="float64").fit(ds, network=activations_network(acts))
    b = AlignmentImportance(progress=False).fit(from_rdms, network=activations_network(acts[list(perm)]))
    np.testing.assert_allclose(a.ais_, b.ais_, rtol=1e-5, atol=1e-7)


def test_rdms_with_other_names_are_refused():
    rdms = RDMs(np.random.default_rng(0).random((1, 10)), pattern_descriptors={"image": list("abcde")})
    with pytest.raises(DataError, match="RDM pattern-descriptor labels do not match"):
        from_rsatoolbox(rdms, image_names=list("abcdx"), name="x")


def test_several_rdms_are_averaged():
    rng = np.random.default_rng(0)
    d = rng.random((3, 10))
    ds = from_rsatoolbox(RDMs(d))
    mean = from_rsatoolbox(RDMs(d.mean(0, keepdims=True)))
    np.testing.assert_allclose(ds.similarity, mean.similarity)
    assert ds.image_names == tuple("0123456789"[:5])  # no name descriptor: 0..n-1


def test_network_rdm_out_all_maps_and_top_k():
    acts = _acts()
    human = _human(acts)
    ds = ComparisonSet(name="pre", image_names=tuple(f"i{k}" for k in range(10)), similarity=human)
    scorer = AlignmentImportance(progress=False, dtype="float64").fit(ds, network=activations_network(acts))
    pooled = acts.astype(np.float64).mean((2, 3))
    iu = np.triu_indices(10, 1)
    full = scorer.to_rsatoolbox()
    np.testing.assert_allclose(full.dissimilarities[0], 1 - np.corrcoef(pooled)[iu], atol=1e-9)
    assert full.pattern_descriptors["image"] == list(ds.image_names) and full.descriptors["maps_kept"] == 6
    top = scorer.to_rsatoolbox(k=2)
    keep = np.argsort(-scorer.ais_, kind="stable")[:2]
    masked = np.zeros_like(pooled)
    masked[:, keep] = pooled[:, keep]
    np.testing.assert_allclose(top.dissimilarities[0], 1 - np.corrcoef(masked)[iu], atol=1e-6)
    assert top.descriptors["maps"] == "top 2 by data-set AIS"
    back = from_rsatoolbox(full)  # round trip: the network's RDM as a 'human' matrix
    assert back.image_names == ds.image_names
    with pytest.raises(ValueError, match="out of range"):
        scorer.to_rsatoolbox(k=7)


@pytest.mark.realdata
def test_real_mur92_subjects_as_rsatoolbox_rdms(real_data_root):
    """The 16 people's RDMs of the 92-object set, in rsatoolbox and shuffled, give the catalog set's matrix."""
    from aisviz.io.catalog import load_dataset

    folder = real_data_root / "mur2013_92objects"
    subjects = np.load(folder / "dissimilarity_subjects.npy")
    ref = load_dataset("mur92")
    perm = np.random.default_rng(0).permutation(92)
    iu = np.triu_indices(92, 1)
    rdms = RDMs(np.stack([s[np.ix_(perm, perm)][iu] for s in subjects]), dissimilarity_measure="behavioural",
                pattern_descriptors={"image": [ref.image_names[i] for i in perm]})
    ds = from_rsatoolbox(rdms, image_names=ref.image_names, name="mur92-rdms", image_paths=ref.image_paths)
    np.testing.assert_allclose(ds.similarity, ref.similarity, atol=1e-12)
    assert "mean of 16 RDMs" in ds.direction_note
    back = from_rsatoolbox(rdms, image_paths=[ref.image_paths[i] for i in perm], name="back")
    np.testing.assert_allclose(back.similarity, ref.similarity[np.ix_(perm, perm)], atol=1e-12)
    import pandas as pd

    frame = pd.DataFrame(ref.similarity, index=ref.image_names, columns=ref.image_names).iloc[perm, perm[::-1]]
    as_frame = from_dataframe(frame, image_names=ref.image_names, name="mur92-df")
    np.testing.assert_array_equal(as_frame.similarity, ref.similarity)


def test_a_labelled_matrix_passed_as_an_array_names_its_adapter():
    """ComparisonSet takes arrays; a DataFrame or RDMs given directly is refused with the adapter to use."""
    import pandas as pd

    frame = pd.DataFrame(np.eye(4), index=list("abcd"), columns=list("abcd"))
    with pytest.raises(DataError, match=r"from_dataframe"):
        ComparisonSet(name="df", image_names=tuple("abcd"), similarity=frame)
    with pytest.raises(DataError, match=r"from_rsatoolbox"):
        ComparisonSet(name="rdm", image_names=tuple("abcde"), similarity=RDMs(np.ones((1, 10))))


def _shuffled_rdms(perm, **descriptors):
    """Real rsatoolbox RDMs of the _human() set's dissimilarities, rows in `perm` order, with the image names in
    perm order under each given descriptor key (a value None = no names there)."""
    names = [f"i{k}.png" for k in range(10)]
    d = 1 - _human(_acts())
    iu = np.triu_indices(10, 1)
    pattern = {key: [names[i] for i in perm] if value is None else value for key, value in descriptors.items()}
    return RDMs(d[np.ix_(perm, perm)][iu][None], dissimilarity_measure="1 - r", pattern_descriptors=pattern), names


PERM = [3, 7, 0, 9, 1, 5, 8, 2, 6, 4]


@pytest.mark.parametrize("key", ["label", "stim_id", "filename"])
def test_rdms_with_names_under_any_descriptor_are_aligned_by_name(key):
    rdms, names = _shuffled_rdms(PERM, **{key: None})
    ref = ComparisonSet(name="ref", image_names=tuple(names), similarity=_human(_acts()))
    aligned = from_rsatoolbox(rdms, image_names=names, name="rdm")
    in_order = from_rsatoolbox(_shuffled_rdms(list(range(10)), **{key: None})[0], image_names=names, name="ordered")
    np.testing.assert_allclose(aligned.similarity, in_order.similarity, atol=1e-12)
    iu = np.triu_indices(10, 1)
    assert np.corrcoef(aligned.similarity[iu], ref.similarity[iu])[0, 1] > 0.999
    paths = [f"/stimuli/{n}" for n in names]                 # files in image order, rows shuffled
    from_paths = from_rsatoolbox(rdms, image_paths=paths)
    assert from_paths.image_names == tuple(names)
    np.testing.assert_allclose(from_paths.similarity, aligned.similarity, atol=1e-12)
    unnamed = from_rsatoolbox(rdms)              # no images: the rows' own names, their order
    assert unnamed.image_names == tuple(names[i] for i in PERM)


def test_rdms_whose_rows_nothing_names_are_refused_unless_order_or_positional():
    rdms, names = _shuffled_rdms(PERM, session=[1] * 10)       # rsatoolbox's default 'index' and a non-name key
    with pytest.raises(DataError, match=r"no pattern descriptor of the RDMs holds the image names .*"
                                        r"order=\[\.\.\.\].*positional=True"):
        from_rsatoolbox(rdms, image_names=names, name="x")
    with pytest.raises(DataError, match="no pattern descriptor"):
        from_rsatoolbox(rdms, image_paths=[f"/s/{n}" for n in names])
    in_order = from_rsatoolbox(_shuffled_rdms(list(range(10)), image=None)[0], image_names=names, name="ordered")
    by_order = from_rsatoolbox(rdms, image_names=names, order=[names[i] for i in PERM])
    np.testing.assert_allclose(by_order.similarity, in_order.similarity, atol=1e-12)
    with pytest.raises(DataError, match="order labels do not match"):
        from_rsatoolbox(rdms, image_names=names, order=[f"x{i}" for i in range(10)])
    by_position = from_rsatoolbox(rdms, image_names=names, positional=True)
    shuffled = ComparisonSet(name="s", image_names=tuple(names[i] for i in PERM), similarity=in_order.similarity[
        np.ix_(PERM, PERM)])
    np.testing.assert_allclose(by_position.similarity, shuffled.similarity, atol=1e-12)


def test_in_memory_images_need_names_or_positional():
    from PIL import Image

    rdms, names = _shuffled_rdms(PERM, image=None)
    images = [Image.new("RGB", (8, 8), (k, k, k)) for k in range(10)]
    with pytest.raises(DataError, match="in-memory images carry no names"):
        from_rsatoolbox(rdms, images=images)
    named = from_rsatoolbox(rdms, images=images, image_names=names)
    assert named.image_names == tuple(names) and named.images[3].getpixel((0, 0)) == (3, 3, 3)
    as_rows = from_rsatoolbox(rdms, images=images, positional=True)
    assert as_rows.image_names == tuple(names[i] for i in PERM)
