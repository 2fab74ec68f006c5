"""aisviz sweep: rows equal separate score/validate runs, resumable, failing cells recorded, the same table on a
real dask.distributed LocalCluster. The offline pretrained EfficientNet-Lite0 on the generated default set and on
a second set read from a folder; protocol shortened (3 folds, 2 seeds, every 64th k) to stay quick."""
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny_set

import aisviz
from aisviz.cli.commands import main
from aisviz.pipeline.sweeps import COLUMNS, cell_id, conv_layers, read_sweep

# Both on the fast pooled-statistics engine. Zeroing a map of the convolution (before BN + ReLU6) and of the
# activation give nearly the same read-out here, so the layer is checked through the saved map names.
LAYERS = ["_conv_head", "_head_act"]
PROTOCOL = dict(folds=3, seeds=2, k_step=64)
NUMBERS = ["r2_all", "mean_r2_test_topk", "sd_r2_test_topk", "mean_r2_test_all", "sd_r2_test_all",
           "mean_r2_test_random", "sd_r2_test_random", "mean_k_star", "sd_k_star", "p_value", "p_value_vs_random",
           "p_value_corrected", "p_value_vs_random_corrected"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One feature cache for the module, so that later tests reuse the activations the first one extracted."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("sweep-home")
        mp.setenv("AISVIZ_HOME", str(path))
        yield path


@pytest.fixture(autouse=True)
def _shared_cache(home, monkeypatch):
    monkeypatch.setenv("AISVIZ_HOME", str(home))


@pytest.fixture(scope="module")
def second_set(tmp_path_factory):
    """A second data set in a folder: 24 of the generated images with their simulated similarities."""
    from aisviz import load_dataset

    ds = load_dataset("synthetic").subset(range(6, 30))
    folder = tmp_path_factory.mktemp("second") / "synthetic24"
    (folder / "images").mkdir(parents=True)
    for i, name in enumerate(ds.image_names):
        ds.load_image(i).save(folder / "images" / name)
    np.save(folder / "similarity.npy", ds.similarity)
    (folder / "image_list.txt").write_text("\n".join(ds.image_names) + "\n")
    (folder / "dataset.json").write_text(json.dumps({"name": "synthetic24", "observer": "simulated"}))
    return str(folder)


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory, home, second_set):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(home))
        out = tmp_path_factory.mktemp("sweep") / "out"
        table = aisviz.sweep(["synthetic", second_set], "efficientnet_lite0", LAYERS, out=out, progress=False,
                             **PROTOCOL)
        return out, table


def _separate_runs(dataset, layer):
    from aisviz import AlignmentImportance, TopKValidation, load_dataset

    scorer = AlignmentImportance(layer=layer, progress=False).fit(load_dataset(dataset))
    validation = TopKValidation(n_folds=3, seeds=(111, 222), k_step=64, progress=False).fit(scorer)
    return scorer, validation


def _cli_json(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(list(argv)) == 0
    return json.loads(buf.getvalue())


@pytest.mark.slow
def test_rows_equal_separate_score_and_validate_runs(first_sweep, second_set):
    out, table = first_sweep
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 4 and set(table.status) == {"computed"}
    for row in table.itertuples():
        dataset = "synthetic" if row.dataset == "synthetic" else second_set
        scorer, val = _separate_runs(dataset, row.layer)
        assert row.r2_all == pytest.approx(scorer.r2_all_, abs=1e-12)
        assert (row.n_maps, row.engine, row.readout) == (len(scorer.ais_), scorer.engine_.kind, scorer.readout_)
        for key in NUMBERS[1:]:
            assert getattr(row, key) == pytest.approx(val.summary_[key], abs=1e-12, nan_ok=True), key
        assert row.n_splits == val.summary_["n_splits"] == 6
        assert row.layer_index == {"_conv_head": 19, "_head_act": 21}[row.layer]
        maps = pd.read_csv(out / "cells" / cell_id(row.dataset, row.model, row.layer) / "maps.csv")
        pd.testing.assert_frame_equal(maps, scorer.to_dataframe("maps"))
    assert table.r2_all.nunique() == 2  # two data sets
    pd.testing.assert_frame_equal(read_sweep(out), table, check_dtype=False)  # the table on disk
    cell = out / "cells" / cell_id("synthetic", "efficientnet_lite0", "_head_act")
    assert {p.name for p in cell.iterdir()} == {"bundle", "maps.csv", "splits.csv", "curves.csv", "row.json"}
    assert len(pd.read_csv(cell / "maps.csv")) == 1280
    from aisviz.pipeline.bundles import open_catalog

    catalog = open_catalog(cell / "bundle", verify=True)
    (entry,) = catalog.entries
    result = catalog.load(entry.id)
    row = table.set_index(["dataset", "layer"]).loc[("synthetic", "_head_act")]
    assert result.r2_all == row.r2_all and result.summary["mean_r2_test_topk"] == row.mean_r2_test_topk


@pytest.mark.slow
def test_rerun_skips_finished_cells_and_redoes_a_removed_one(first_sweep, second_set):
    out, table = first_sweep
    redo = out / "cells" / cell_id(second_set, "efficientnet_lite0", "_conv_head")
    (redo / "row.json").unlink()
    kept = out / "cells" / cell_id("synthetic", "efficientnet_lite0", "_head_act") / "row.json"
    stamp = kept.stat().st_mtime_ns
    again = aisviz.sweep(["synthetic", second_set], "efficientnet_lite0", LAYERS, out=out, progress=False, **PROTOCOL)
    assert list(again.status) == ["reused", "reused", "computed", "reused"]
    assert kept.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again[NUMBERS], table[NUMBERS])
    # other settings are other cells: nothing is reused
    other = aisviz.sweep("synthetic", "efficientnet_lite0", ["_head_act"], out=out, progress=False,
                         **{**PROTOCOL, "k_step": 128})
    assert list(other.status) == ["computed"]


@pytest.mark.slow
def test_failing_cells_record_their_error_and_the_others_finish(tmp_path):
    table = aisviz.sweep(["synthetic", "no_such_set"], ["efficientnet_lite0", "no_such_net"],
                         ["_head_act", "nope"], out=tmp_path, progress=False, **PROTOCOL)
    status = {(r.dataset, r.model, r.layer): (r.status, r.error) for r in table.itertuples()}
    assert status[("synthetic", "efficientnet_lite0", "_head_act")] == ("computed", "")
    state, error = status[("synthetic", "efficientnet_lite0", "nope")]
    assert state == "failed" and error.startswith("ModelError: efficientnet_lite0 has no layer 'nope'")
    state, error = status[("no_such_set", "efficientnet_lite0", "_head_act")]
    assert state == "failed" and "unknown data set 'no_such_set'" in error
    assert status[("synthetic", "no_such_net", "nope")][0] == "failed"
    assert all("\n" not in e for _, e in status.values())
    assert len(table) == 8 and (table.status == "computed").sum() == 1
    assert not (tmp_path / "cells" / cell_id("synthetic", "efficientnet_lite0", "nope")).exists()
    assert len(read_sweep(tmp_path)) == 8


@pytest.mark.slow
def test_same_table_on_a_local_dask_cluster(first_sweep, second_set, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    _, table = first_sweep
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        on_cluster = aisviz.sweep(["synthetic", second_set], "efficientnet_lite0", LAYERS, out=tmp_path,
                                  scheduler=cluster.scheduler_address, progress=False, **PROTOCOL)
    printed = capsys.readouterr()
    assert cluster.scheduler_address in printed.err and "dashboard" in printed.err and not printed.out
    assert set(on_cluster.status) == {"computed"}
    pd.testing.assert_frame_equal(on_cluster[["dataset", "model", "layer", "engine"]],
                                  table[["dataset", "model", "layer", "engine"]])
    np.testing.assert_allclose(on_cluster[NUMBERS].to_numpy(float), table[NUMBERS].to_numpy(float), atol=1e-12)


@pytest.mark.slow
def test_cli_sweep_json_rows(tmp_path):
    doc = _cli_json("sweep", "--dataset", "synthetic", "--layers", "_head_act", "nope", "--folds", "3", "--seeds",
                    "2", "--k-step", "64", "--out", str(tmp_path), "--quiet", "--json")
    assert [r["status"] for r in doc["rows"]] == ["computed", "failed"]
    assert doc["rows"][1]["r2_all"] is None and doc["rows"][0]["r2_all"] > 0
    assert "ceiling_fraction_topk" in doc["columns"]
    assert (tmp_path / "sweep.csv").is_file() and (tmp_path / "sweep.parquet").is_file()


def test_bad_protocol_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="folds must be at least 2"):
        aisviz.sweep("synthetic", folds=1, out=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_all_conv_lists_block_outputs_along_depth():
    from aisviz.models.networks import load_network

    eff = conv_layers(load_network("efficientnet_lite0"))
    assert eff[0] == "_stem_act" and eff[-1] == "_head_act" and len(eff) == 18
    assert "_conv_head" not in eff and "_bn1" not in eff
    vgg = conv_layers(load_network("vgg16", weights="none"))
    assert vgg == [f"features.{i}" for i in (1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29)]


def test_cell_folders_are_distinct_and_readable():
    a = cell_id("/data/sets/animals", "vgg16", "features.29")
    b = cell_id("/other/animals", "vgg16", "features.29")
    assert a != b and a.startswith("animals__vgg16__features.29__")


@pytest.mark.realdata
@pytest.mark.slow
def test_mur92_row_has_the_noise_ceiling(real_data_root, tmp_path):
    if not (real_data_root / "mur2013_92objects").is_dir():
        pytest.skip("the 92-object set is not on AISVIZ_DATA")
    row = aisviz.sweep("mur92", "efficientnet_lite0", ["_head_act"], out=tmp_path, progress=False,
                       **PROTOCOL).iloc[0]
    assert row.status == "computed" and row.n_subjects == 16
    assert 0 < row.ceiling_lower < row.ceiling_upper < 1
    assert row.ceiling_fraction_topk == pytest.approx(row.subject_r2_test_topk / row.ceiling_lower)
    assert 0 < row.subject_r2_test_all < row.ceiling_upper
    per_split = pd.read_csv(next((tmp_path / "cells").iterdir()) / "ceiling.csv")
    assert len(per_split) == row.n_splits


def _table(rows):
    full = []
    for r in rows:
        row = {c: np.nan for c in COLUMNS}
        row.update({"model": "efficientnet_lite0", "status": "computed", "error": "", **r})
        full.append(row)
    return pd.DataFrame(full, columns=list(COLUMNS))


def test_layer_table_orders_by_depth_and_drops_failed_cells(tmp_path):
    from aisviz.pipeline.sweeps import _write_table, layer_table

    rows = [dict(dataset="a", layer="deep", layer_index=9, mean_r2_test_topk=0.5),
            dict(dataset="a", layer="shallow", layer_index=2, mean_r2_test_topk=0.3),
            dict(dataset="a", layer="nope", layer_index=-1, status="failed", error="ModelError: x"),
            dict(dataset="b", layer="deep", layer_index=9, mean_r2_test_topk=0.1)]
    _write_table(tmp_path, _table(rows).to_dict("records"))
    got = layer_table(tmp_path, dataset="a")
    assert list(got.layer) == ["shallow", "deep"] and list(got.mean_r2_test_topk) == [0.3, 0.5]
    with pytest.raises(ValueError, match="several datasets"):
        layer_table(tmp_path)
    with pytest.raises(ValueError, match="no finished cell for dataset 'c'"):
        layer_table(tmp_path, dataset="c")


def test_layer_comparison_figure_shows_each_number_by_layer():
    pytest.importorskip("plotly")
    from aisviz.viz.plots import layer_comparison

    rows = [dict(dataset="a", layer=name, layer_index=i, r2_all=0.2, mean_r2_test_all=0.2 + i / 100,
                 sd_r2_test_all=0.01, mean_r2_test_topk=0.3 + i / 100, sd_r2_test_topk=0.02,
                 mean_r2_test_random=0.1, sd_r2_test_random=0.03) for i, name in enumerate(["l1", "l2", "l3"])]
    fig = layer_comparison(_table(rows))
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["test, top-k* maps by AIS"].y) == [0.3, 0.31, 0.32]
    assert list(by_name["test, top-k* maps by AIS"].error_y.array) == [0.02] * 3
    assert list(by_name["test, all maps"].customdata) == ["l1", "l2", "l3"]
    assert not any("ceiling" in (t.name or "") for t in fig.data)  # no per-subject matrices: no band
    for r in rows:
        r.update(ceiling_lower=0.35, ceiling_upper=0.42, subject_r2_test_topk=0.15)
    fig = layer_comparison(_table(rows))
    band = [t for t in fig.data if t.name == "noise ceiling (subject-level R², test pairs)"]
    assert len(band) == 1 and band[0].fill == "tonexty" and list(band[0].y) == [0.35] * 3


def test_noise_ceiling_has_its_own_subject_level_axis():
    """The ceiling bounds subject-level R² (mean over people of R² with each person), so it is drawn only
    beside the network's subject-level R², on an axis of its own, never against group-level test R²."""
    pytest.importorskip("plotly")
    from aisviz.viz.plots import layer_comparison

    rows = [dict(dataset="a", layer=name, layer_index=i, r2_all=0.45, mean_r2_test_all=0.3, sd_r2_test_all=0.01,
                 mean_r2_test_topk=0.379, sd_r2_test_topk=0.02, mean_r2_test_random=0.25, sd_r2_test_random=0.03,
                 ceiling_lower=0.35, ceiling_upper=0.42, subject_r2_test_topk=0.167, subject_r2_test_all=0.15)
            for i, name in enumerate(["l1", "l2"])]
    fig = layer_comparison(_table(rows))
    axis_of = {t.name: t.yaxis for t in fig.data}
    ceiling = {axis_of["noise ceiling upper"], axis_of["noise ceiling (subject-level R², test pairs)"]}
    group = {axis_of[name] for name in ("test, all maps", "test, top-k* maps by AIS", "test, k* random maps",
                                        "all maps, all pairs")}
    subject = {axis_of["subject-level test R², top-k* maps"], axis_of["subject-level test R², all maps"]}
    assert len(ceiling) == 1 and ceiling == subject and len(group) == 1 and not ceiling & group
    (ceiling_axis,), (group_axis,) = ceiling, group
    assert fig.layout[ceiling_axis.replace("y", "yaxis")].title.text.startswith("subject-level R²")
    assert fig.layout[group_axis.replace("y", "yaxis")].title.text.startswith("group-level R²")
    assert sum("group-level" in t.hovertemplate for t in fig.data if t.yaxis == group_axis) == 4


@pytest.mark.slow
def test_changed_ratings_are_not_taken_for_finished_cells(tmp_path, tiny_set):
    folder = tmp_path / "tiny"
    (folder / "images").mkdir(parents=True)
    for name, image in zip(tiny_set.image_names, tiny_set.images):
        image.save(folder / "images" / name)
    np.save(folder / "similarity.npy", tiny_set.similarity)
    protocol = dict(folds=3, seeds=2, k_step=64, out=tmp_path / "out", progress=False)
    first = aisviz.sweep(str(folder), "efficientnet_lite0", ["_head_act"], **protocol)
    assert list(aisviz.sweep(str(folder), "efficientnet_lite0", ["_head_act"], **protocol).status) == ["reused"]
    changed = tiny_set.similarity.copy()
    changed[0, 1] = changed[1, 0] = 0.0
    np.save(folder / "similarity.npy", changed)
    again = aisviz.sweep(str(folder), "efficientnet_lite0", ["_head_act"], **protocol)
    assert list(again.status) == ["computed"] and again.r2_all[0] != first.r2_all[0]


def test_k_star_is_labelled_as_the_number_of_maps_kept_beside_the_paper():
    """The authors report k* as a 0-based index; aisviz counts maps, so wherever its k* is set beside the paper's
    (the sweep's column meanings, notebook 02's table) it says so."""
    from aisviz.pipeline.sweeps import COLUMN_MEANINGS

    label = "number of maps kept (the authors' index + 1)"
    assert label in COLUMN_MEANINGS["mean_k_star"]
    notebook = json.loads((Path(__file__).parents[2] / "notebooks" / "02_paper_validation.ipynb").read_text())
    table_cell, reading = ("".join(c["source"]) for c in notebook["cells"][4:6])
    assert label in table_cell and "'k* maps'" in table_cell and "k* index" in table_cell
    assert label in reading


@pytest.mark.parametrize("argv", [["--layers", "nope"], ["--model", "no_such_net"], ["--dataset", "no_such_set"]],
                         ids=["unknown layer", "unknown model", "unknown data set"])
def test_cli_sweep_where_every_cell_failed_exits_3_with_the_errors_on_stderr(tmp_path, capsys, argv):
    code = main(["sweep", *argv, "--folds", "3", "--seeds", "2", "--out", str(tmp_path), "--quiet"])
    printed = capsys.readouterr()
    assert code == 3 and printed.out == ""
    first, last = printed.err.strip().splitlines()
    assert first.startswith("aisviz: failed: ") and argv[1] in first
    assert last.startswith("aisviz: error: every cell of the sweep failed (1 of 1; the first: ")
    assert list(read_sweep(tmp_path).status) == ["failed"]           # the table says which and why
    code = main(["sweep", *argv, "--folds", "3", "--seeds", "2", "--out", str(tmp_path), "--quiet", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and doc["exit_code"] == 3 and doc["error"].startswith("every cell of the sweep failed")


@pytest.mark.slow
def test_cli_sweep_with_some_failed_cells_exits_0_with_a_summary_on_stderr(tmp_path, capsys):
    code = main(["sweep", "--layers", "_head_act", "nope", "--folds", "3", "--seeds", "2", "--k-step", "64",
                 "--out", str(tmp_path), "--quiet"])
    printed = capsys.readouterr()
    assert code == 0
    lines = printed.err.strip().splitlines()
    assert len(lines) == 2, printed.err
    assert lines[0].startswith("aisviz: failed: synthetic efficientnet_lite0 nope: ModelError: efficientnet_lite0 has "
                               "no layer 'nope'")
    assert lines[1] == (f"aisviz: 1 of 2 cells failed (listed above; their rows hold the error in "
                        f"{tmp_path}/sweep.csv); the others finished.")
    assert "failed" not in printed.out and "_head_act" in printed.out


@pytest.mark.slow
def test_sweep_table_holds_the_first_cell_after_kill_9(tmp_path):
    """A sweep killed (SIGKILL) while its second cell runs keeps the first cell's row in sweep.csv."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, AISVIZ_HOME=str(tmp_path / "home"), PYTHONPATH=str(root))
    out = tmp_path / "out"
    # the second cell (an early layer: the network's tail re-runs for every mask) takes minutes here
    proc = subprocess.Popen([sys.executable, "-m", "aisviz", "sweep", "--layers", "_head_act", "_blocks.1",
                             "--folds", "3", "--seeds", "2", "--k-step", "64", "--out", str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not list(out.glob("cells/*/row.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()
        deadline = time.monotonic() + 10                 # the table follows its row.json within moments
        while not (out / "sweep.csv").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(out.glob("cells/*/row.json"))) == 1   # the second cell is still running
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    table = read_sweep(out)
    assert list(zip(table.layer, table.status)) == [("_head_act", "computed")]
    assert table.r2_all[0] > 0


def test_sweep_into_a_read_only_folder_fails_before_computing(capsys, small_mount, home):
    disk = small_mount("ro", "ro,size=100k")
    assert main(["sweep", "--out", str(disk / "s"), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "cannot write into --out" in err and "Read-only file system" in err and err.count("\n") == 1


@pytest.mark.slow
def test_sweep_on_a_full_disk_stops_with_exit_4(capsys, small_mount):
    """A real 300 KB tmpfs: the cell is computed, its results do not fit: the run stops (not a failed cell)."""
    disk = small_mount("full", "size=300k")
    code = main(["sweep", "--layers", "_head_act", "_conv_head", "--folds", "3", "--seeds", "2", "--k-step", "64",
                 "--out", str(disk / "s"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 4, err
    (line,) = err.strip().splitlines()
    assert line.startswith("aisviz: error: cannot write the results of cell synthetic__efficientnet_lite0___head_act")
    assert "(No space left on device)" in line and "internal error" not in line


def test_a_local_sweep_shows_each_cells_progress(capsys):
    # a set of its own: another test's set may have its activations in this process's memory already
    dataset = make_tiny_set(n=12, size=64, seed=23)
    aisviz.sweep(dataset, "efficientnet_lite0", ["_head_act"], folds=2, seeds=1, k_step=64, progress=True)
    err = capsys.readouterr().err
    assert "sweep cells" in err
    assert re.search(r"efficientnet_lite0 _head_act: 100%.*12/12", err), err   # the 12 images extracted
    assert "leave-one-map-out" in err and "validation splits" in err
