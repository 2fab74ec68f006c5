"""Noise ceiling: checked against a brute-force reading of rsatoolbox's definitions, rsatoolbox itself, and
(realdata) the 92-object set's 16 subjects."""
import numpy as np
import pytest
from scipy import stats

from aisviz.core.alignment import alignment
from aisviz.core.ceiling import (
    SubjectMatrices,
    load_subject_matrices,
    noise_ceiling,
    subject_alignment,
    subject_matrices,
    validation_ceiling,
)
from aisviz.errors import DataError


def _random_subjects(n_subjects=5, n=10, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, n))
    mats = []
    for _ in range(n_subjects):
        m = truth + rng.normal(scale=1.0, size=(n, n))
        mats.append((m + m.T) / 2)
    return SubjectMatrices(similarity=np.array(mats), subject_names=tuple(f"s{i}" for i in range(n_subjects)),
                           source="random")


def _brute_force(subjects, images, measure, squared):
    """rsatoolbox's bounds written out one subject at a time with scipy's correlations."""
    n = subjects.similarity.shape[1]
    idx = np.arange(n) if images is None else np.sort(images)
    a, b = np.triu_indices(len(idx), 1)
    vecs = [m[idx[a], idx[b]] for m in subjects.similarity]
    corr = (lambda x, y: stats.spearmanr(x, y)[0]) if measure == "spearman" else (lambda x, y: stats.pearsonr(x, y)[0])

    def pool(vs):
        if measure == "spearman":
            return np.mean([stats.rankdata(v) for v in vs], 0)
        return np.mean([(v - v.mean()) / v.std() for v in vs], 0)

    lower = [corr(pool(vecs[:s] + vecs[s + 1:]), vecs[s]) for s in range(len(vecs))]
    upper = [corr(pool(vecs), vecs[s]) for s in range(len(vecs))]
    p = 2 if squared else 1
    return np.mean(np.array(lower) ** p), np.mean(np.array(upper) ** p)


@pytest.mark.parametrize("measure", ["pearson", "spearman"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("images", [None, [0, 2, 3, 5, 7, 9]])
def test_bounds_equal_brute_force(measure, squared, images):
    subjects = _random_subjects()
    got = noise_ceiling(subjects, images, measure, squared)
    lower, upper = _brute_force(subjects, images, measure, squared)
    assert got["lower"] == pytest.approx(lower, abs=1e-12)
    assert got["upper"] == pytest.approx(upper, abs=1e-12)
    assert got["lower"] < got["upper"]  # leaving a subject out of the group can only lose agreement here
    assert got["n_pairs"] == (45 if images is None else 15)


@pytest.mark.parametrize("measure, method", [("pearson", "corr"), ("spearman", "spearman")])
def test_bounds_equal_rsatoolbox(measure, method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    subjects = _random_subjects(n_subjects=6, n=12, seed=3)
    rdms = rsatoolbox.rdm.RDMs(-subjects.similarity)  # as dissimilarities, the way rsatoolbox holds them
    lower, upper = boot_noise_ceiling(rdms, method=method)
    got = noise_ceiling(subjects, measure=measure, squared=False)
    assert (got["lower"], got["upper"]) == pytest.approx((lower, upper), abs=1e-12)
    test = [1, 4, 5, 8, 10, 11]
    lower, upper = boot_noise_ceiling(rdms.subsample_pattern("index", test), method=method)
    got = noise_ceiling(subjects, images=test, measure=measure, squared=False)
    assert (got["lower"], got["upper"]) == pytest.approx((lower, upper), abs=1e-12)


@pytest.mark.parametrize("measure", ["pearson", "spearman"])
def test_subject_alignment_is_mean_over_subjects_of_the_alignment(measure):
    subjects = _random_subjects(n=10)
    rng = np.random.default_rng(1)
    pairs = rng.normal(size=(3, 45))
    images = [0, 1, 4, 6, 8]
    want = [np.mean([alignment(p, m, images, measure) for m in subjects.similarity]) for p in pairs]
    np.testing.assert_allclose(subject_alignment(pairs, subjects, images, measure), want, atol=1e-12)
    assert subject_alignment(pairs[0], subjects, images, measure) == pytest.approx(want[0], abs=1e-12)


def test_bad_subject_files_say_what_to_fix(tmp_path, tiny_set):
    n = tiny_set.n_images
    with pytest.raises(DataError, match=r"must be \(subjects, 12, 12\)"):
        subject_matrices(np.zeros((3, n, n + 1)), tiny_set)
    with pytest.raises(DataError, match="at least 2"):
        subject_matrices(np.zeros((1, n, n)), tiny_set)
    bad = np.repeat(tiny_set.similarity[None], 2, 0).copy()
    bad[1, 0, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        subject_matrices(bad, tiny_set)
    with pytest.raises(DataError, match="names 1 subjects"):
        subject_matrices(np.repeat(tiny_set.similarity[None], 2, 0), tiny_set, names=["a"])
    shuffled = np.repeat(tiny_set.similarity[None], 2, 0)[:, ::-1]
    with pytest.warns(UserWarning, match="same image order"):
        subject_matrices(shuffled, tiny_set)


def test_subject_files_load_from_the_data_folder(tmp_path, tiny_set):
    from aisviz.io.folders import load_folder

    (tmp_path / "images").mkdir()
    for name, image in zip(tiny_set.image_names, tiny_set.images):
        image.save(tmp_path / "images" / name)
    dis = 1 - tiny_set.similarity
    np.save(tmp_path / "dissimilarity.npy", dis)
    assert load_subject_matrices(load_folder(tmp_path)) is None
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.01, size=(3,) + dis.shape)
    per_subject = dis[None] + (noise + noise.transpose(0, 2, 1)) / 2
    np.save(tmp_path / "dissimilarity_subjects.npy", per_subject)
    (tmp_path / "subjects.txt").write_text("ann\nbob\ncid\n")
    subjects = load_subject_matrices(load_folder(tmp_path))
    assert subjects.subject_names == ("ann", "bob", "cid")
    np.testing.assert_array_equal(subjects.similarity, -per_subject)  # dissimilarities turned around


def test_validation_ceiling_with_identical_subjects_reproduces_the_validation(tiny_set):
    """Two subjects who both gave the group matrix: every subject-level number is the validation's own."""
    from aisviz import AlignmentImportance, TopKValidation

    scorer = AlignmentImportance(progress=False).fit(tiny_set)
    v = TopKValidation(n_folds=3, seeds=(111, 222), k_step=50, progress=False).fit(scorer)
    twins = subject_matrices(np.repeat(tiny_set.similarity[None], 2, 0), tiny_set)
    rows = validation_ceiling(scorer, v, twins)
    for row, split in zip(rows, v.splits_):
        assert row["subject_r2_test_topk"] == pytest.approx(split["r2_test_topk"], abs=1e-9)
        assert row["subject_r2_test_all"] == pytest.approx(split["r2_test_all"], abs=1e-9)
        assert row["ceiling_lower"] == pytest.approx(1.0) and row["ceiling_upper"] == pytest.approx(1.0)


@pytest.mark.realdata
def test_mur92_ceiling_equals_rsatoolbox(real_data_root):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    from aisviz import load_dataset

    if not (real_data_root / "mur2013_92objects").is_dir():
        pytest.skip("the 92-object set is not on AISVIZ_DATA")
    ds = load_dataset("mur92")
    subjects = load_subject_matrices(ds)
    assert subjects.n_subjects == 16 and subjects.subject_names[0].endswith("subject1")
    raw = np.load(real_data_root / "mur2013_92objects" / "dissimilarity_subjects.npy")
    rdms = rsatoolbox.rdm.RDMs(raw)
    for measure, method in (("pearson", "corr"), ("spearman", "spearman")):
        got = noise_ceiling(subjects, measure=measure, squared=False)
        assert (got["lower"], got["upper"]) == pytest.approx(boot_noise_ceiling(rdms, method=method), abs=1e-10)
    test = np.arange(0, 92, 4)
    got = noise_ceiling(subjects, images=test, squared=False)
    assert (got["lower"], got["upper"]) == pytest.approx(
        boot_noise_ceiling(rdms.subsample_pattern("index", test), method="corr"), abs=1e-10)
    r2 = noise_ceiling(subjects)  # the default: squared Pearson, the alignment measure
    assert 0.3 < r2["lower"] < r2["upper"] < 0.5
