"""The CLI contract (names and JSON keys that scripts depend on), run in-process and once as a real command."""
import json
import subprocess
import sys

import numpy as np
import pytest

from aisviz.cli import main, paper_seeds


@pytest.fixture
def folder_set(tmp_path, tiny_set):
    """The tiny set written as a user's folder: images/ + similarity.npy."""
    root = tmp_path / "myset"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny_set.image_names, tiny_set.images):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", tiny_set.similarity)
    return root


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_listing_commands(capsys):
    names = [d["name"] for d in _json(capsys, ["datasets", "--json"])]
    assert "synthetic" in names and "peterson_animals" in names
    models = _json(capsys, ["models", "--json"])
    assert models[0]["name"] == "efficientnet_lite0"
    layers = _json(capsys, ["layers", "vgg16", "--json"])
    assert [r["name"] for r in layers if r["default_layer"]] == ["features.29"]


def test_score_json_contract(capsys, folder_set):
    out = _json(capsys, ["score", "--dataset", str(folder_set), "--json", "--quiet"])
    assert out["n_images"] == 12 and out["n_maps"] == 1280 == len(out["ais"]) == len(out["map_names"])
    assert out["map_names"][5] == "_head_act:5" and out["observer"] == "human"
    assert 0 <= out["r2_all"] <= 1


def test_validate_json_contract(capsys, folder_set):
    out = _json(capsys, ["validate", "--dataset", str(folder_set), "--folds", "3", "--seeds", "2",
                         "--k-step", "128", "--json", "--quiet"])
    assert len(out["splits"]) == 6
    for split in out["splits"]:
        assert {"seed", "fold", "k_star", "r2_test_all", "r2_test_topk", "r2_test_random"} <= set(split)
    assert [s["seed"] for s in out["splits"][::3]] == [111, 222]
    assert {"mean_r2_test_all", "mean_r2_test_topk", "mean_r2_test_random", "mean_k_star", "p_value"} <= set(
        out["summary"])


def test_heatmaps_write_pngs(capsys, folder_set, tmp_path):
    out = tmp_path / "maps"
    assert main(["heatmaps", "--dataset", str(folder_set), "--out", str(out), "--top-k", "100", "--quiet"]) == 0
    pngs = sorted(out.glob("*_ais.png"))
    assert len(pngs) == 12 and not list(out.glob("*.tmp"))
    from PIL import Image

    assert Image.open(pngs[0]).width > 64  # the 64-px overlay with its title and colour bar
    assert set(np.load(out / "heatmaps.npz").files) == {f"img{i:02d}" for i in range(12)}


@pytest.mark.parametrize("argv,words", [
    (["score", "--dataset", "peterson_animalz"], ["peterson_animals"]),
    (["score", "--dataset", "{folder}", "--model", "resnet81"], ["resnet18"]),
    (["validate", "--dataset", "{folder}", "--folds", "5"], ["too few", "folds"]),
    (["heatmaps", "--dataset", "{folder}", "--out", "{tmp}", "--top-k", "5000"], ["out of range", "1280"]),
    (["score", "--dataset", "{folder}", "--layer", "_head_ac"], ["_head_act"]),
])
def test_errors_are_one_clear_line(capsys, folder_set, tmp_path, argv, words):
    argv = [a.format(folder=folder_set, tmp=tmp_path / "x") for a in argv] + ["--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisviz: error:") and "Traceback" not in err
    for w in words:
        assert w in err


def test_seeds_follow_the_paper():
    assert paper_seeds(8) == [111, 222, 333, 444, 555, 666, 777, 888]


def test_console_script_runs(folder_set):
    res = subprocess.run([sys.executable, "-m", "aisviz", "score", "--dataset", str(folder_set), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "alignment with all maps" in res.stdout


def test_saliency_command_json_and_panels(capsys, folder_set, tmp_path):
    out = _json(capsys, ["saliency", "--dataset", str(folder_set), "--json", "--quiet", "--out", str(tmp_path / "p")])
    summary = out["datasets"][0]["summary"]
    assert {"rr_5", "rr_10", "rr_15", "cc", "sim", "kl", "auc_10"} <= set(summary)
    assert len(out["datasets"][0]["images"]) == 12 and out["provider"]["kind"] == "classic baseline"
    assert len(list((tmp_path / "p" / "myset").glob("*.png"))) == 12


def test_unknown_saliency_name(capsys, folder_set):
    assert main(["saliency", "--dataset", str(folder_set), "--saliency", "spectral_residul", "--quiet"]) == 2
    assert "spectral_residual" in capsys.readouterr().err
