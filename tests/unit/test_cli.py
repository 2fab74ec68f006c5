"""The CLI contract (names and JSON keys that scripts depend on), run in-process and once as a real command."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aisviz.cli.commands import main
from aisviz.config import paper_seeds


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
    names = [d["name"] for d in _json(capsys, ["datasets", "--json"])["datasets"]]
    assert "synthetic" in names and "peterson_animals" in names
    models = _json(capsys, ["models", "--json"])["models"]
    assert models[0]["name"] == "efficientnet_lite0"
    layers = _json(capsys, ["layers", "vgg16", "--json"])["layers"]
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
    assert {"mean_r2_test_all", "mean_r2_test_topk", "mean_r2_test_random", "mean_k_star", "p_value",
            "p_value_corrected", "p_value_vs_random_corrected"} <= set(out["summary"])


def test_validate_prints_the_corrected_t_test_beside_the_papers(capsys, folder_set):
    argv = ["validate", "--dataset", str(folder_set), "--folds", "3", "--seeds", "2", "--k-step", "128", "--quiet"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    paper = next(line for line in lines if "paired t-test (the paper's)" in line)
    corrected = next(line for line in lines if "corrected resampled t-test (Nadeau & Bengio" in line)
    assert "top-k* > all maps p = " in paper and "top-k* > all maps p = " in corrected
    assert "top-k* > random p = " in corrected


def test_heatmaps_write_pngs(capsys, folder_set, tmp_path):
    out = tmp_path / "maps"
    assert main(["heatmaps", "--dataset", str(folder_set), "--out", str(out), "--top-k", "100", "--quiet"]) == 0
    pngs = sorted(out.glob("*_ais.png"))
    assert len(pngs) == 12 and not list(out.glob("*.tmp"))
    from PIL import Image

    assert Image.open(pngs[0]).width > 64  # the 64-px overlay with its title and colour bar
    with np.load(out / "heatmaps.npz") as z:
        assert list(z["names"]) == [f"img{i:02d}.png" for i in range(12)]
        assert list(z["files"]) == [f"img{i:02d}_ais.png" for i in range(12)]


@pytest.mark.parametrize("argv,code,words", [
    (["score", "--dataset", "peterson_animalz"], 3, ["peterson_animals"]),
    (["score", "--dataset", "{folder}", "--model", "resnet81"], 3, ["resnet18"]),
    (["validate", "--dataset", "{folder}", "--folds", "5"], 2, ["too few", "folds", "at most 4 folds"]),
    (["heatmaps", "--dataset", "{folder}", "--out", "{tmp}", "--top-k", "5000"], 2, ["out of range", "1280"]),
    (["score", "--dataset", "{folder}", "--layer", "_head_ac"], 3, ["_head_act"]),
])
def test_errors_are_one_clear_line(capsys, folder_set, tmp_path, argv, code, words):
    argv = [a.format(folder=folder_set, tmp=tmp_path / "x") for a in argv] + ["--quiet"]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("aisviz: error:") and "Traceback" not in err and err.count("\n") == 1
    for w in words:
        assert w in err


def test_seeds_follow_the_paper():
    assert paper_seeds(8) == (111, 222, 333, 444, 555, 666, 777, 888)


@pytest.mark.slow
def test_console_script_runs(folder_set):
    res = subprocess.run([sys.executable, "-m", "aisviz", "score", "--dataset", str(folder_set), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "alignment with all maps" in res.stdout


@pytest.mark.slow
def test_saliency_command_json_and_panels(capsys, folder_set, tmp_path):
    out = _json(capsys, ["saliency", "--dataset", str(folder_set), "--json", "--quiet", "--out", str(tmp_path / "p")])
    summary = out["datasets"][0]["summary"]
    assert {"rr_5", "rr_10", "rr_15", "cc", "sim", "kl", "auc_10"} <= set(summary)
    assert len(out["datasets"][0]["images"]) == 12 and out["provider"]["kind"] == "classic baseline"
    assert len(list((tmp_path / "p" / "myset").glob("*.png"))) == 12


def test_unknown_saliency_name(capsys, folder_set):
    assert main(["saliency", "--dataset", str(folder_set), "--saliency", "spectral_residul", "--quiet"]) == 3
    assert "spectral_residual" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Nothing lost


def _strict_json(text):
    """json.loads that refuses NaN and Infinity, as every JSON reader but Python's does."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def clashing_set(tmp_path, tiny_set):
    """Names that collided, vanished or crashed before: a shared stem, an npz keyword, 'file'."""
    root = tmp_path / "clash"
    (root / "images").mkdir(parents=True)
    names = ["stim-0007.png", "stim-0007.jpg", "allow_pickle.png", "file.png", "x y.png"] + [
        f"other{i:02d}.png" for i in range(7)]
    for name, img in zip(names, tiny_set.images):
        img.save(root / "images" / name)
    (root / "image_list.txt").write_text("\n".join(names) + "\n")
    np.save(root / "similarity.npy", tiny_set.similarity)
    return root, names


def test_heatmap_outputs_are_never_lost(capsys, clashing_set, tmp_path):
    root, names = clashing_set
    out = tmp_path / "maps"
    result = _json(capsys, ["heatmaps", "--dataset", str(root), "--out", str(out), "--quiet", "--json"])
    files = [row["file"] for row in result["files"]]
    assert [row["image"] for row in result["files"]] == names
    assert len(set(files)) == 12 and sorted(p.name for p in out.glob("*.png")) == sorted(files)
    assert files[:2] == ["stim-0007_png_ais.png", "stim-0007_jpg_ais.png"] and files[4] == "x_y_ais.png"
    with np.load(out / "heatmaps.npz", allow_pickle=False) as z:
        assert list(z["names"]) == names and list(z["files"]) == files
        assert all(z[f"heatmap_{i:04d}"].ndim == 2 for i in range(12))
    assert not list(out.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("below,words", [("", ["is a file"]), ("sub/dir", ["lies below", "which is a file"])])
def test_bad_output_folder_fails_before_any_computation(capsys, folder_set, tmp_path, below, words):
    (tmp_path / "out").write_text("x")
    out = tmp_path / "out" / below if below else tmp_path / "out"
    assert main(["heatmaps", "--dataset", str(folder_set), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and err.count("\n") == 1
    assert not (tmp_path / "aisviz-home" / "features").exists()  # nothing was computed


def test_csv_out_that_is_a_file_fails_first(capsys, folder_set, tmp_path):
    (tmp_path / "f").write_text("x")
    assert main(["score", "--dataset", str(folder_set), "--csv", str(tmp_path / "f"), "--quiet"]) == 2
    assert "--csv" in capsys.readouterr().err
    assert not (tmp_path / "aisviz-home" / "features").exists()


def test_cache_show_and_clear_cover_every_cache(capsys, folder_set, tmp_path):
    assert main(["saliency", "--dataset", str(folder_set), "--quiet"]) == 0  # fills both caches
    home = tmp_path / "aisviz-home"
    (home / "features" / ".abc.npz.123.tmp").write_bytes(b"half")
    (home / "data").mkdir()
    (home / "data" / ".x.mat.9.part").write_bytes(b"half")
    capsys.readouterr()
    shown = {r["name"]: r for r in _json(capsys, ["cache", "show", "--json"])["caches"]}
    assert shown["features"]["files"] == 2 and shown["features"]["bytes"] > 1000
    assert shown["saliency"]["files"] == 1 and shown["temp"]["files"] == 2
    cleared = _json(capsys, ["cache", "clear", "--json"])
    assert cleared["removed"] == 4
    assert [p for p in home.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------
# Errors: one line, a fix, an exit code by kind; arguments checked at parse time


@pytest.mark.parametrize("argv,words", [
    (["validate", "--folds", "1"], ["--folds", "at least 2"]),
    (["validate", "--seeds", "0"], ["--seeds", "at least 1"]),
    (["validate", "--n-random", "0"], ["--n-random", "at least 1"]),
    (["validate", "--k-step", "x"], ["--k-step", "not a whole number"]),
    (["score", "--device", "gpu0"], ["--device", "cuda:N"]),
    (["score", "--dataset", ""], ["--dataset", "is empty", "'.'"]),
    (["score", "--weights-file", "/nonexistent/w.pt"], ["--weights-file", "not a file"]),
    (["score", "--similarity", "euclid"], ["--similarity", "pearson"]),
    (["serve", "--port", "70000"], ["--port", "at most 65535"]),
])
def test_bad_arguments_are_usage_errors_at_parse_time(capsys, argv, words):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words)
    assert not (Path(os.environ["AISVIZ_HOME"]) / "features").exists()  # nothing was computed


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_gpu_is_an_environment_error(capsys, folder_set):
    assert main(["score", "--dataset", str(folder_set), "--device", "cuda", "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err and err.count("\n") == 1


def test_internal_errors_exit_1_with_the_traceback_in_the_log(capsys, monkeypatch, tmp_path):
    from aisviz.cli import commands as cli_main

    def broken():  # stands in for a bug anywhere below a command
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_main, "list_datasets", broken)
    assert main(["datasets"]) == 1
    err = capsys.readouterr().err
    log = tmp_path / "aisviz-home" / "logs" / "cli.log"
    assert "internal error" in err and str(log) in err and "Traceback" not in err
    assert "RuntimeError: a bug" in log.read_text() and "Traceback" in log.read_text()


def test_version_and_help_show_every_default(capsys):
    from aisviz import __version__
    from aisviz.cli.commands import build_parser

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"aisviz {__version__}"
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = " ".join(sub.format_help().split())
        assert "exit codes" in text
        if name == "validate":
            assert "(default: 5)" in text and "(default: efficientnet_lite0)" in text


def test_unwritable_cache_costs_only_the_caching(capsys, folder_set, tmp_path, monkeypatch):
    """AISVIZ_HOME is a file (so nothing can be written below it): the result still comes, with a warning."""
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    monkeypatch.setenv("AISVIZ_HOME", str(home))
    assert main(["score", "--dataset", str(folder_set), "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert 0 <= out["r2_all"] <= 1
    assert any("feature cache" in w and "--no-cache" in w for w in out["warnings"])
    assert "aisviz: warning: could not write the feature cache" in captured.err


def test_cache_entry_that_is_a_folder_is_recomputed(capsys, folder_set, tmp_path):
    first = _json(capsys, ["score", "--dataset", str(folder_set), "--json", "--quiet"])
    (cached,) = (tmp_path / "aisviz-home" / "features").glob("*.npz")
    cached.unlink()
    cached.mkdir()
    again = _json(capsys, ["score", "--dataset", str(folder_set), "--json", "--quiet"])
    assert again["r2_all"] == pytest.approx(first["r2_all"], abs=1e-12)
    assert any("feature cache" in w for w in again["warnings"])


def test_offline_torchvision_download_keeps_stdout_clean(capsys):
    assert main(["score", "--model", "vgg16", "--json", "--quiet"]) == 3
    captured = capsys.readouterr()
    doc = json.loads(captured.out)          # stdout holds only the JSON object of the failure
    assert doc["exit_code"] == 3 and "--weights-file" in doc["error"] and "--weights-file" in captured.err


# ---------------------------------------------------------------------------------------------
# Strict JSON, warnings recorded, CSV


def test_json_is_strict_and_records_warnings(capsys, tmp_path, tiny_set):
    """Swapped similarity/dissimilarity at an extreme scale: finite R^2, a recorded warning, strict JSON."""
    root = tmp_path / "swapped"
    (root / "images").mkdir(parents=True)
    for name, img in zip(tiny_set.image_names, tiny_set.images):
        img.save(root / "images" / name)
    np.save(root / "similarity.npy", (1 - tiny_set.similarity) * 1e-170)
    assert main(["score", "--dataset", str(root), "--json", "--quiet"]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert 0 < out["r2_all"] <= 1 and out["nonfinite_as_null"] == 0
    assert any("negative" in w and "dissimilarit" in w for w in out["warnings"])


def test_csv_tables(capsys, folder_set, tmp_path):
    import pandas as pd

    out = _json(capsys, ["validate", "--dataset", str(folder_set), "--folds", "3", "--seeds", "1", "--k-step", "256",
                         "--csv", str(tmp_path / "csv"), "--json", "--quiet"])
    assert sorted(Path(f).name for f in out["csv"]) == ["curves.csv", "maps.csv", "splits.csv", "summary.csv"]
    maps = pd.read_csv(tmp_path / "csv" / "maps.csv")
    assert len(maps) == 1280 and np.allclose(maps["ais"].sort_values(ascending=False).to_numpy()[:3],
                                             np.sort(maps["ais"])[::-1][:3])
    assert len(pd.read_csv(tmp_path / "csv" / "splits.csv")) == 3
    _json(capsys, ["saliency", "--dataset", str(folder_set), "--csv", str(tmp_path / "s"), "--json", "--quiet"])
    sal = pd.read_csv(tmp_path / "s" / "saliency_myset.csv")
    assert len(sal) == 12 and {"dataset", "rr_10", "cc"} <= set(sal.columns)


def test_json_on_demo_download_and_cache(capsys, folder_set, tmp_path):
    demo = _json(capsys, ["demo", "--dataset", str(folder_set), "--folds", "2", "--seeds", "1", "--k-step", "640",
                          "--out", str(tmp_path / "demo"), "--json", "--quiet"])
    assert len(demo["files"]) == 12 and demo["summary"]["n_splits"] == 2
    assert main(["download", "peterson_fruits", "--json", "--dest", str(tmp_path / "dl")]) == 3
    assert "cannot download" in capsys.readouterr().err


def test_a_second_demo_reads_the_cached_result_without_torch(capsys, folder_set, tmp_path):
    """validate and demo go through the pipeline's cache of results: a second run with the same settings on the
    same data reads the Result (no torch import, no fit) and writes the same numbers and heatmaps."""
    argv = ["demo", "--dataset", str(folder_set), "--folds", "2", "--seeds", "1", "--k-step", "640", "--json",
            "--quiet"]
    first = _json(capsys, argv + ["--out", str(tmp_path / "first")])
    script = ("import json, sys\nfrom aisviz.cli.commands import main\ncode = main(sys.argv[1:])\n"
              "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}), file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", script, *argv, "--out", str(tmp_path / "second")],
                         capture_output=True, text=True, env=os.environ, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    second, status = json.loads(run.stdout), json.loads(run.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "torch": False} and (first["source"], second["source"]) == ("computed", "cache")
    assert second["summary"] == first["summary"] and second["curves_mean"] == first["curves_mean"]
    a, b = (np.load(tmp_path / name / "heatmaps.npz") for name in ("first", "second"))
    assert all(np.array_equal(a[key], b[key]) for key in a.files) and len(a.files) == 14
    again = _json(capsys, ["validate", *argv[1:], "--no-cache"])
    assert again["source"] == "computed" and again["summary"] == first["summary"]


@pytest.mark.parametrize("options,reason", [("ro,size=100k", "Read-only file system"),
                                            ("size=300k", "No space left on device")])
def test_read_only_or_full_cache_folder_keeps_the_result(capsys, folder_set, monkeypatch, small_mount, options,
                                                         reason):
    home = small_mount("home", options)
    monkeypatch.setenv("AISVIZ_HOME", str(home))
    out = _json(capsys, ["score", "--dataset", str(folder_set), "--json", "--quiet"])
    assert 0 <= out["r2_all"] <= 1
    assert any(reason in w and "--no-cache" in w for w in out["warnings"])
    assert [p for p in home.rglob("*") if p.is_file()] == []  # no partial file left behind


def test_read_only_output_folder_is_an_environment_error_before_computing(capsys, folder_set, small_mount):
    out = small_mount("ro", "ro,size=100k")
    assert main(["heatmaps", "--dataset", str(folder_set), "--out", str(out / "maps"), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "cannot write into --out" in err and "Read-only file system" in err and err.count("\n") == 1
    assert not (Path(os.environ["AISVIZ_HOME"]) / "features").exists()


@pytest.mark.parametrize("argv", [["validate", "--folds", "5"], ["score", "--layer", "_head_ac"],
                                  ["score", "--readout", "_stem_act"]])
def test_checks_that_need_the_data_or_network_come_before_the_fit(capsys, folder_set, argv):
    assert main(argv + ["--dataset", str(folder_set), "--quiet"]) in (2, 3)
    assert "aisviz: error:" in capsys.readouterr().err
    assert not (Path(os.environ["AISVIZ_HOME"]) / "features").exists()  # no activations were computed


@pytest.mark.slow
@pytest.mark.realdata
def test_real_swapped_matrix_is_flagged(capsys, real_data_root, tmp_path):
    """Peterson's animals with dissimilarities saved as similarities: same R^2, flipped heatmaps, a warning."""
    source = real_data_root / "peterson2018" / "animals"
    root = tmp_path / "animals-swapped"
    root.mkdir()
    (root / "images").symlink_to(source / "images")
    (root / "image_list.txt").write_text((source / "image_list.txt").read_text())
    np.save(root / "similarity.npy", 1 - np.load(source / "similarity_normalized.npy"))
    swapped = _json(capsys, ["score", "--dataset", str(root), "--json", "--quiet"])
    right = _json(capsys, ["score", "--dataset", "peterson_animals", "--json", "--quiet"])
    assert swapped["r2_all"] == pytest.approx(right["r2_all"], rel=1e-9) and not right["warnings"]
    (warning,) = swapped["warnings"]
    assert "correlation is negative (r = -0.6" in warning and "dissimilarity" in warning


def test_download_into_a_read_only_folder_is_an_environment_error(capsys, small_mount, tmp_path):
    """The files come from file:// URLs (no network needed); the destination is a real read-only mount."""
    from aisviz.errors import EnvironmentProblem
    from aisviz.io.catalog import download

    src = tmp_path / "turk.mat"
    src.write_bytes(b"not really a mat file")
    dest = small_mount("ro", "ro,size=100k")
    with pytest.raises(EnvironmentProblem, match=r"cannot write the download of 'peterson_animals'.*--dest"):
        download("peterson_animals", dest, sources={"original/turkResults_CogSci2016.mat": src.as_uri()})


def test_nan_pixel_warning_is_recorded_also_when_the_activations_come_from_the_cache(capsys, tmp_path, tiny_set):
    from PIL import Image

    root = tmp_path / "floats"
    (root / "images").mkdir(parents=True)
    for k, name in enumerate(tiny_set.image_names):
        grey = np.asarray(tiny_set.images[k].convert("L"), dtype=np.float32)
        if k in (0, 3):  # image 0 is also recomputed to check the cache: its warning must not double
            grey[5, 5] = np.nan
        Image.fromarray(grey, mode="F").save(root / "images" / name.replace(".png", ".tif"))
    np.save(root / "similarity.npy", tiny_set.similarity)
    for run in ("computed", "cached"):
        out = _json(capsys, ["score", "--dataset", str(root), "--json", "--quiet"])
        nan_warnings = [w for w in out["warnings"] if "NaN or infinite" in w]
        assert len(nan_warnings) == 2 and "img03.tif" in nan_warnings[1], (run, out["warnings"])
    assert "noted when these activations were computed" in nan_warnings[0]


@pytest.mark.parametrize("argv,code", [(["score", "--dataset", "no_such_set", "--json", "--quiet"], 3),
                                       (["validate", "--folds", "1", "--json"], 2),
                                       (["layers", "no_such_net", "--json"], 3)],
                         ids=["input", "usage at parse time", "model"])
def test_json_failures_are_an_object_on_stdout(capsys, argv, code):
    assert main(argv) == code
    printed = capsys.readouterr()
    doc = json.loads(printed.out)
    assert set(doc) == {"error", "exit_code"} and doc["exit_code"] == code
    assert doc["error"] and "\n" not in doc["error"] and doc["error"] in printed.err   # the same line as stderr


def test_json_environment_and_internal_failures_are_objects_too(capsys, folder_set, small_mount, monkeypatch):
    out = small_mount("ro", "ro,size=100k")
    assert main(["heatmaps", "--dataset", str(folder_set), "--out", str(out / "maps"), "--json", "--quiet"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 4 and "Read-only file system" in doc["error"]
    from aisviz.cli import commands as cli_main

    def broken():  # stands in for a bug anywhere below a command
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_main, "list_datasets", broken)
    assert main(["datasets", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1 and doc["error"].startswith("internal error: RuntimeError: a bug")
