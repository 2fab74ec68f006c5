"""Metrics between AIS heatmaps and saliency maps against hand-computed values, and the analyses around them."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from aisviz.core.comparison import ComparisonSet
from aisviz.core.heatmaps import mass_inside
from aisviz.core.metrics import (
    KL_EPS,
    UndefinedMetric,
    auc,
    cc,
    compare_maps,
    heatmap_agreement,
    image_maps,
    jsonable,
    kl,
    mass_share,
    pool_results,
    relative_risk,
    sim,
    summarize,
    top_region,
)
from aisviz.pipeline.comparisons import activation_strength, compare_dataset, export_panels, side_by_side


def grid(values, cols=5):
    return np.asarray(values, dtype=float).reshape(-1, cols)


def test_top_region_takes_ceil_q_pixels_and_keeps_ties_at_the_cut():
    m = np.arange(20.0).reshape(4, 5)
    assert np.flatnonzero(top_region(m, 0.1)).tolist() == [18, 19]
    assert top_region(np.arange(400.0), 0.05).sum() == 20  # 0.05 x 400 is 20, not 21
    tied = grid([3, 3, 3, 1, 0, 0, 0, 0], cols=4)
    assert top_region(tied, 0.25).sum() == 3  # 2 pixels asked, a tie of three at the cut: all three
    assert top_region(np.ones((3, 3)), 0.1).all()
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        top_region(tied, 5)


def test_relative_risk_by_hand():
    sal = grid([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])      # top 20%: pixels 0, 1
    ais = grid([10, 1, 9, 2, 3, 4, 5, 6, 7, 8])      # top 20%: pixels 0, 2
    # TP = 1, FN = 1, FP = 1, TN = 7: (1/2) / (1/8) = 4
    assert relative_risk(ais, sal, 0.2) == pytest.approx(4)
    assert relative_risk(sal, sal, 0.2) == math.inf  # FP = 0
    assert relative_risk(np.ones_like(sal), sal, 0.2) == pytest.approx(1)  # constant AIS: all pixels, chance
    with pytest.raises(UndefinedMetric, match="whole image"):
        relative_risk(ais, np.zeros_like(sal), 0.2)


def brute_auc(scores, positives):
    pos, neg = scores[positives], scores[~positives]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_auc_by_hand_with_ties():
    sal = np.array([[4.0, 3], [2, 1]])  # top 50%: the first row
    assert auc(np.array([[1.0, 3], [2, 2]]), sal, 0.5) == pytest.approx(2 / 4)
    assert auc(np.array([[2.0, 3], [2, 1]]), sal, 0.5) == pytest.approx(3.5 / 4)  # one tie counts a half
    assert auc(np.ones((2, 2)), sal, 0.5) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    a, s = rng.integers(0, 4, (6, 7)).astype(float), rng.random((6, 7))
    assert auc(a, s, 0.2) == pytest.approx(brute_auc(a.ravel(), top_region(s, 0.2).ravel()))
    with pytest.raises(UndefinedMetric, match="no negative"):
        auc(a, np.ones((6, 7)), 0.2)


def test_cc_sim_kl_by_hand():
    a = np.array([[1.0, 2], [3, 4]])
    assert cc(a, 2 * a) == pytest.approx(1)
    assert cc(a, a[::-1, ::-1]) == pytest.approx(-1)
    with pytest.raises(UndefinedMetric, match="constant"):
        cc(a, np.ones((2, 2)))
    top, left = np.array([[1.0, 1], [0, 0]]), np.array([[1.0, 0], [1, 0]])
    assert sim(top, left) == pytest.approx(0.5)
    assert sim(a, 3 * a) == pytest.approx(1)
    with pytest.raises(UndefinedMetric, match="all zero"):
        sim(np.zeros((2, 2)), a)
    # saliency `top` is the target P = [.5, .5, 0, 0]; AIS `left` the prediction Q = [.5, 0, .5, 0]
    expected = 0.5 * np.log(KL_EPS + 0.5 / (0.5 + KL_EPS)) + 0.5 * np.log(KL_EPS + 0.5 / KL_EPS)
    assert kl(left, top) == pytest.approx(expected)
    assert kl(a, a) == pytest.approx(0, abs=1e-12)
    with pytest.raises(UndefinedMetric, match="saliency map is all zero"):
        kl(a, np.zeros((2, 2)))


def test_mass_share():
    m = np.array([[1.0, 3], [0, 0]])
    assert mass_share(m, np.array([[False, True], [False, False]])) == pytest.approx(0.75)
    big = np.zeros((4, 4), bool)
    big[:2, 2:] = True  # the same region at twice the size: resized with nearest neighbours
    assert mass_share(m, big) == pytest.approx(0.75)
    with pytest.raises(UndefinedMetric):
        mass_share(np.zeros((2, 2)), big)


def test_image_maps_apply_one_transform_to_both():
    h, s = np.array([[-1.0, 2], [0, 4]]), np.arange(48.0).reshape(6, 8)
    (a,), (b,) = image_maps([h], [s], "display")
    assert a.shape == b.shape == (6, 8) and a.max() == b.max() == 1 and a.min() == 0
    assert np.allclose(b, (s / s.max()) ** 2)
    mask = np.zeros((6, 8), bool)
    mask[:, 4:] = True
    assert mass_share(a, mask) == pytest.approx(mass_inside(h, mask))  # the same as heatmaps.mass_inside
    (a,), (b,) = image_maps([h], [s], "linear")
    assert b is s and a.min() == 0 and a.max() == pytest.approx(4)
    with pytest.raises(ValueError, match="display"):
        image_maps([h], [s], "log")


@pytest.mark.parametrize("ais, sal, message", [
    (np.ones((2, 2)), np.ones((3, 3)), "display_map"),
    (-np.ones((2, 2)), np.ones((2, 2)), "negative"),
    (np.full((2, 2), np.nan), np.ones((2, 2)), "NaN"),
    (np.ones(4), np.ones(4), "2-D"),
])
def test_bad_maps_are_rejected(ais, sal, message):
    with pytest.raises(ValueError, match=message):
        cc(ais, sal)


def test_summarize_counts_inf_and_undefined_apart():
    s = summarize([1.0, 3.0, math.inf, math.nan])
    assert s == {"mean": 2.0, "sd": pytest.approx(math.sqrt(2)), "median": 3.0, "n": 3, "n_inf": 1,
                 "n_undefined": 1}
    assert math.isnan(summarize([math.nan])["mean"])


def test_compare_maps_rows_notes_and_summary():
    rng = np.random.default_rng(0)
    sal = [rng.random((8, 10)) for _ in range(3)]
    ais = [rng.random((8, 10)), np.zeros((8, 10)), sal[2].copy()]
    masks = np.zeros((3, 8, 10), bool)
    masks[:, :4] = True
    out = compare_maps(ais, sal, ["a", "b", "c"], masks=masks, dataset="toy")
    rows = out["images"]
    assert [r["image"] for r in rows] == ["a", "b", "c"]
    assert {"rr_5", "rr_10", "rr_15", "auc_5", "cc", "sim", "kl", "ais_mass_inside", "mask_area"} <= set(rows[0])
    # an all-zero AIS map: RR and AUC at chance, CC/SIM/KL and its mass share undefined with reasons
    assert rows[1]["rr_10"] == pytest.approx(1) and rows[1]["auc_10"] == pytest.approx(0.5)
    for key in ("cc", "sim", "kl", "ais_mass_inside"):
        assert math.isnan(rows[1][key]) and rows[1]["notes"][key]
    assert "ais_top_10" in rows[1]["notes"]
    assert rows[2]["rr_10"] == math.inf and rows[2]["cc"] == pytest.approx(1)
    assert out["summary"]["rr_10"]["n_inf"] == 1 and out["summary"]["cc"]["n_undefined"] == 1
    assert rows[0]["mask_area"] == pytest.approx(0.5)
    strict = json.loads(json.dumps(jsonable(out), allow_nan=False))
    assert strict["images"][1]["cc"] is None and strict["images"][2]["rr_10"] == "inf"
    pooled = pool_results([out, {**out, "dataset": "toy2"}])
    assert pooled["n_images"] == 6 and pooled["pooled"]["cc"]["n"] == 4
    assert set(pooled["per_dataset"]) == {"toy", "toy2"}
    with pytest.raises(ValueError, match="same order"):
        compare_maps(ais, sal[:2], ["a", "b", "c"])


def test_heatmap_agreement():
    h = np.array([[0.0, 1], [2, 5]])
    out = heatmap_agreement([h, h, h], [3 * h, -h, np.ones((2, 2))], ["a", "b", "c"], [(8, 6)] * 3)
    r = [row["pearson"] for row in out["images"]]
    assert r[0] == pytest.approx(1) and r[1] == pytest.approx(-1) and math.isnan(r[2])
    assert "constant" in out["images"][2]["notes"]["pearson"]


def fake_scorer(names, acts, image_ais, ais):
    return SimpleNamespace(image_names_=tuple(names), activations_=acts, image_ais_=np.asarray(image_ais),
                           ais_=np.asarray(ais), network_=SimpleNamespace(name="fake"), layer_="conv")


def test_activation_strength_by_hand():
    # map j has j + 1 active units of value (10, 4, 2, 1)[j] in a 3x3 map: sums 10, 8, 6, 4, so map 0 is
    # the most activated although it has the fewest active units
    a = np.zeros((4, 3, 3))
    for j, value in enumerate((10, 4, 2, 1)):
        a[j].flat[: j + 1] = value
    ais = np.array([0.1, 0.2, 0.3, 0.4])  # AIS rises with the active share: Spearman 1; map 0 ranks last
    out = activation_strength(fake_scorer(["x", "y"], [a, a], [ais, -ais], ais))
    assert out["dataset"]["most_activated_map"] == 0 and out["dataset"]["ais_rank_of_most_activated"] == 4
    assert out["dataset"]["spearman_active_vs_ais"] == pytest.approx(1)
    assert [r["spearman_active_vs_ais"] for r in out["images"]] == pytest.approx([1, -1])
    assert [r["ais_rank_of_most_activated"] for r in out["images"]] == [4, 1]
    assert out["chance_rank"] == 2.5


def tiny_set(n=3, size=(30, 20), masks=False):
    rng = np.random.default_rng(1)
    images = tuple(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n))
    sim_ = rng.uniform(0, 1, (n, n))
    sim_ = (sim_ + sim_.T) / 2
    np.fill_diagonal(sim_, 1)
    relevant = None
    if masks:
        relevant = np.zeros((n, size[1], size[0]), bool)
        relevant[:, :, : size[0] // 2] = True
    return ComparisonSet(name="tiny", image_names=tuple(f"im{i}.png" for i in range(n)), similarity=sim_,
                         images=images, relevant_masks=relevant)


def test_compare_dataset_with_a_fitted_scorer(tmp_path, monkeypatch):
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path))
    ds = tiny_set(masks=True)
    rng = np.random.default_rng(2)
    scorer = fake_scorer(ds.image_names, [rng.random((4, 2, 3)) for _ in range(3)], rng.random((3, 4)), rng.random(4))
    out = compare_dataset(ds, "center_bias", scorer=scorer)
    assert out["provider"]["name"] == "center_bias" and out["model"] == "fake" and out["dataset"] == "tiny"
    assert "display_map" in out["transform"]
    assert len(out["images"]) == 3 and out["summary"]["rr_5"]["n"] == 3
    assert 0 <= out["images"][0]["saliency_mass_inside"] <= 1
    other = fake_scorer(["a", "b", "c"], scorer.activations_, scorer.image_ais_, scorer.ais_)
    with pytest.raises(ValueError, match="other images"):
        compare_dataset(ds, "center_bias", scorer=other)


def test_panels_layout_and_export(tmp_path):
    ds = tiny_set()
    panel = side_by_side(ds.load_image(0), np.arange(6.0).reshape(2, 3), np.ones((20, 30)))
    assert panel.size == (3 * 30 + 2 * 4, 20) and panel.mode == "RGB"
    assert np.array_equal(np.asarray(panel)[:, :30], np.asarray(ds.load_image(0)))
    paths = export_panels(ds, [np.ones((2, 3))] * 3, [np.ones((20, 30))] * 3, tmp_path / "out")
    assert [p.name for p in paths] == ["im0.png", "im1.png", "im2.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.png", "im1.png", "im2.png"]
    labelled = Image.open(paths[0])
    assert labelled.width > 3 * 30 and labelled.height > 20  # titles and colour bars around the three panels
    with pytest.raises(ValueError, match="display mode"):
        export_panels(ds, [np.ones((2, 3))] * 3, [np.ones((20, 30))] * 3, tmp_path / "out", mode="rainbow")


@pytest.mark.realdata
@pytest.mark.slow
def test_peterson_animals_end_to_end(real_data_root, tmp_path, monkeypatch):
    from aisviz.io.catalog import load_dataset

    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path))
    ds = load_dataset("peterson_animals").subset(range(6))
    out = compare_dataset(ds, "spectral_residual")
    assert out["summary"]["rr_10"]["n"] + out["summary"]["rr_10"]["n_undefined"] == 6
    assert all(0 <= r["auc_10"] <= 1 for r in out["images"])


def test_ranks_are_scipys_average_ranks_without_importing_scipy_stats():
    """The metrics' ranks (AUC, Spearman) equal scipy.stats.rankdata's average ranks, ties included, and
    comparing a pair of maps imports no scipy.stats (a second of the dashboard's first view, issue 18)."""
    import subprocess
    import sys

    from scipy.stats import rankdata

    from aisviz.core.metrics import _ranks

    rng = np.random.default_rng(3)
    for x in (rng.integers(0, 5, size=(7, 9)).astype(float), rng.normal(size=40), np.array([2.0]),
              np.zeros(6), np.array([3.0, np.nan, 1.0])):
        np.testing.assert_array_equal(_ranks(x), rankdata(x, axis=None))
    code = ("import sys, numpy as np\nfrom aisviz.core.metrics import compare_pair\n"
            "rng = np.random.default_rng(0)\n"
            "compare_pair(rng.random((8, 8)), rng.random((8, 8)), rng.random((8, 8)) > 0.5)\n"
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
