"""No silent wrong result: scale-safe alignment, relabelled inputs give relabelled results, too-small sets are
refused, a negative network-human correlation is flagged (property-based where it fits)."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisviz import AlignmentImportance
from aisviz.core.alignment import alignment, row_correlations
from aisviz.core.comparison import ComparisonSet
from aisviz.errors import AisvizWarning, DataError
from aisviz.models.precomputed import activations_network


def _acts(n, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return (np.maximum(rng.normal(size=(n, c, 2, 2)), 0) + 0.05).astype(np.float32)


def _human(acts, seed=1):
    pooled = acts.astype(np.float64).mean((2, 3))[:, :2]
    s = np.corrcoef(pooled + 0.5 * np.random.default_rng(seed).normal(size=pooled.shape))
    return (s + s.T) / 2


def _fit(names, human, acts, **kw):
    ds = ComparisonSet(name="t", image_names=tuple(names), similarity=human)
    return AlignmentImportance(progress=False, dtype="float64", **kw).fit(ds, network=activations_network(acts))


@settings(max_examples=40, deadline=None)
@given(st.integers(-170, 160), st.sampled_from(["pearson", "spearman"]))
def test_alignment_does_not_depend_on_the_scale_of_the_human_matrix(exponent, measure):
    import torch

    rng = np.random.default_rng(3)
    human = rng.random((9, 9))
    human = (human + human.T) / 2
    pairs = rng.random((3, 36))
    ref = alignment(pairs, human, measure=measure)
    scaled = alignment(pairs, human * 10.0 ** exponent, measure=measure)
    np.testing.assert_allclose(scaled, ref, rtol=1e-9)
    rows = torch.as_tensor(np.corrcoef(rng.random((9, 4))))[None]
    np.testing.assert_allclose(row_correlations(rows, human * 10.0 ** exponent, measure),
                               row_correlations(rows, human, measure), rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.permutations(list(range(8))), st.integers(-150, 150))
def test_relabelled_and_rescaled_inputs_give_the_same_results(perm, exponent):
    acts = _acts(8)
    human = _human(acts)
    names = [f"img{k}.png" for k in range(8)]
    ref = _fit(names, human, acts)
    p = list(perm)
    other = _fit([names[i] for i in p], human[np.ix_(p, p)] * 10.0 ** exponent, acts[p])
    assert other.r2_all_ == pytest.approx(ref.r2_all_, rel=1e-9)
    np.testing.assert_allclose(other.ais_, ref.ais_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(other.image_ais_, ref.image_ais_[p], rtol=1e-7, atol=1e-12)
    assert other.image_names_ == tuple(names[i] for i in p)


def test_three_images_are_refused():
    human = np.array([[1, 0.2, 0.5], [0.2, 1, 0.7], [0.5, 0.7, 1]])
    with pytest.raises(DataError, match=r"3 images; AIS needs at least 4.*always \+-1"):
        _fit(["a", "b", "c"], human, _acts(3))


def test_negative_network_human_correlation_is_flagged():
    acts = _acts(10, seed=4)
    human = np.corrcoef(acts.astype(np.float64).mean((2, 3)))  # the network's own geometry: r = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", AisvizWarning)
        right = _fit([str(k) for k in range(10)], human, acts)
    with pytest.warns(AisvizWarning, match=r"correlation is negative \(r = -.*dissimilarit"):
        swapped = _fit([str(k) for k in range(10)], 1 - human, acts)
    assert swapped.r2_all_ == pytest.approx(right.r2_all_)  # R^2 hides it ...
    np.testing.assert_allclose(swapped.image_ais_, -right.image_ais_, atol=1e-9)  # ... the heatmaps flip
    assert swapped.warnings_ and not right.warnings_


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12).filter(lambda s: s.strip()), min_size=1, max_size=20, unique=True))
def test_output_names_are_distinct_and_safe(names):
    import re

    from aisviz.io.storage import output_names

    out = output_names(names, "_ais.png")
    assert len(out) == len(names) and len({o.lower() for o in out}) == len(out)
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*_ais\.png", o) for o in out)


def test_fold_advice_never_repeats_the_request():
    from aisviz.core.splits import kfold_splits

    with pytest.raises(ValueError) as err:
        kfold_splits(5, 2)
    assert "at most 2 folds" not in str(err.value) and "at least 6 images" in str(err.value)
    with pytest.raises(ValueError, match="Use at most 3 folds"):
        kfold_splits(10, 4)
