"""Sweeps over data sets x networks x layers: one score + held-out validation per cell, run on Dask.

A cell is (data set, network, perturbed layer). Cells are grouped per (data set, network): one Dask task
per group loads the images and the network once on its worker (tasks carry only names, never torch models)
and runs its cells one after the other, reusing the feature cache. Each finished cell is written to
`OUT/cells/<cell>/` (a dashboard result bundle, CSV tables, `row.json` last, all atomic), so a re-run skips
it; a failing cell becomes a row with its one-line error and the others go on. The table of rows is
`OUT/sweep.csv` and `OUT/sweep.parquet`, rewritten after each finished cell (on a Dask cluster: after
each group, when its rows reach the client).

Dask's local threaded scheduler is the default (no server); `scheduler="tcp://host:8786"` (or a
`distributed.Client`) runs the groups on any Dask cluster.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from aisviz.config import paper_seeds
from aisviz.core.comparison import ComparisonSet
from aisviz.errors import EnvironmentProblem, UsageError
from aisviz.io.catalog import load_dataset
from aisviz.io.storage import atomic_write, environment_problem
from aisviz.models.networks import Network, list_layers, load_network
from aisviz.pipeline.bundles import write_bundle
from aisviz.pipeline.compute import Computation, Report, run_pipeline
from aisviz.pipeline.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

DatasetSpec: TypeAlias = "str | Path | ComparisonSet"  # a catalog name, a data folder or a loaded set

# Columns of the sweep table, in order. Meanings are in COLUMN_MEANINGS.
RESULT_COLUMNS = ("r2_all", "mean_r2_test_topk", "sd_r2_test_topk", "mean_r2_test_all", "sd_r2_test_all",
                  "mean_r2_test_random", "sd_r2_test_random", "mean_k_star", "sd_k_star", "p_value",
                  "p_value_vs_random", "p_value_corrected", "p_value_vs_random_corrected", "n_splits")
CEILING_COLUMNS = ("n_subjects", "ceiling_lower_all", "ceiling_upper_all", "subject_r2_all", "ceiling_lower",
                   "ceiling_upper", "subject_r2_test_all", "subject_r2_test_topk", "ceiling_fraction_topk",
                   "ceiling_fraction_all")
COLUMNS = ("dataset", "model", "layer", "layer_index", "readout", "n_images", "n_maps", "engine",
           *RESULT_COLUMNS, *CEILING_COLUMNS, "seconds", "status", "error")

COLUMN_MEANINGS = {
    "layer_index": "position of the perturbed layer among the network's stages (depth)",
    "r2_all": "alignment (squared correlation of the upper triangles) with all maps, all pairs",
    "mean_r2_test_topk": "test R^2 with the top-k* maps by training AIS, mean over splits",
    "mean_r2_test_all": "test R^2 with all maps, mean over splits",
    "mean_r2_test_random": "test R^2 with k* random maps, mean over splits",
    "mean_k_star": "k*: number of maps kept (the authors' index + 1), the k with the highest training R^2, "
                   "mean over splits",
    "p_value": "one-sided paired t-test over splits, top-k* > all maps",
    "p_value_vs_random": "one-sided paired t-test over splits, top-k* > random k* maps",
    "p_value_corrected": "one-sided corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004), "
                         "top-k* > all maps: variance of the mean difference inflated to (1/J + n_test/n_train) "
                         "var(d), J = folds x seeds, because the splits share images",
    "p_value_vs_random_corrected": "the same corrected resampled t-test, top-k* > random k* maps",
    "ceiling_lower_all": "noise ceiling, lower bound, subject-level R^2: mean over subjects of R^2 between a "
                         "subject and the mean of the others (rsatoolbox's leave-one-subject-out), all pairs",
    "ceiling_upper_all": "noise ceiling, upper bound, subject-level R^2 (each subject against the mean of all), "
                         "all pairs",
    "subject_r2_all": "mean over subjects of R^2 with each subject, all maps, all pairs",
    "ceiling_lower": "noise ceiling lower bound (subject-level R^2) on each split's test pairs, mean over splits",
    "ceiling_upper": "noise ceiling upper bound (subject-level R^2) on each split's test pairs, mean over splits",
    "subject_r2_test_all": "mean over subjects of test R^2 with each subject, all maps, mean over splits",
    "subject_r2_test_topk": "mean over subjects of test R^2 with each subject, top-k* maps, mean over splits",
    "ceiling_fraction_topk": "subject_r2_test_topk / ceiling_lower (1 = predicts people as well as the others do)",
    "ceiling_fraction_all": "subject_r2_test_all / ceiling_lower",
    "seconds": "run time of the cell (feature extraction included)",
    "status": "computed, reused (finished in an earlier run with the same settings) or failed",
}

ALL_CONV = "all-conv"
_POOLING = ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Dropout", "Identity")
_FOLLOWED_INTO = ("BatchNorm2d", "ReLU", "ReLU6", "LeakyReLU", "SiLU", "GELU", "Hardswish", "ELU")


def conv_layers(net: Network) -> list[str]:
    """The perturbable layers along the network: outputs of convolution blocks (after their normalisation
    and activation), not the raw convolution, not pooling, before the default read-out."""

    rows = list_layers(net)
    stop = net.index(net.default_readout)
    out = []
    for row, nxt in zip(rows[:stop], rows[1:stop + 1]):
        if row["conv_map"] and row["type"] not in _POOLING and not (nxt["conv_map"] and nxt["type"] in _FOLLOWED_INTO):
            out.append(row["name"])
    return out


def _dataset_label(spec) -> str:
    return spec if isinstance(spec, str) else spec.name


def cell_id(dataset: str, model: str, layer: str) -> str:
    """A folder name for the cell: readable, and unique through a short hash of the exact names."""
    def slug(text):
        return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(text)).name or str(text))[:40]

    digest = hashlib.sha256(json.dumps([dataset, model, layer]).encode()).hexdigest()[:8]
    return f"{slug(dataset)}__{slug(model)}__{slug(layer)}__{digest}"


def _settings(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _empty_row(dataset, model, layer) -> dict:
    row: dict[str, Any] = {c: np.nan for c in COLUMNS}
    row.update(dataset=dataset, model=model, layer=layer, layer_index=-1, readout="", engine="", status="",
               error="", n_images=0, n_maps=0, n_splits=0, n_subjects=0)
    return row


def _plan(datasets, models, layers) -> tuple[list[tuple], list[dict]]:
    """Groups (dataset, model, [layers]) and error rows for models whose layers cannot be listed."""

    groups, failed = [], []
    for model in models:
        if layers is None or list(layers) == [ALL_CONV]:
            try:
                net = load_network(model, weights="none")  # layer names and shapes do not depend on the weights
                names = [net.default_layer] if layers is None else conv_layers(net)
            except Exception as exc:  # an unknown network fails its cells, not the sweep
                for ds in datasets:
                    failed.append({**_empty_row(_dataset_label(ds), model, "default" if layers is None else ALL_CONV),
                                   "status": "failed", "error": _error_line(exc)})
                continue
        else:
            names = list(layers)
        groups.extend((ds, model, names) for ds in datasets)
    return groups, failed


def _finished(cell_dir: Path, settings: str) -> dict | None:
    path = cell_dir / "row.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: compute the cell again
    if saved.get("settings") != settings:
        return None
    return {**saved["row"], "status": "reused"}


def _write_csv(path: Path, frame):
    atomic_write(path, lambda f: f.write(frame.to_csv(index=False).encode()))


def _save_cell(cell_dir: Path, row: dict, settings: str, config: dict, computation: Computation, ceiling_rows):
    """The cell's dashboard bundle and tables, then row.json (written last: its presence marks the cell
    finished). Each cell has its own bundle folder, so that parallel cells never write the same index."""
    import pandas as pd


    scorer, validation = computation.scorer, computation.validation
    write_bundle(replace(computation.result, seconds=row["seconds"]), cell_dir / "bundle", pngs=False)
    _write_csv(cell_dir / "maps.csv", scorer.to_dataframe("maps"))
    _write_csv(cell_dir / "splits.csv", validation.to_dataframe("splits"))
    _write_csv(cell_dir / "curves.csv", validation.to_dataframe("curves"))
    if ceiling_rows:
        _write_csv(cell_dir / "ceiling.csv", pd.DataFrame(ceiling_rows))
    payload = {"settings": settings, "config": config, "row": row, "summary": validation.summary_}
    atomic_write(cell_dir / "row.json", lambda f: f.write(json.dumps(payload, indent=1, default=_jsonable).encode()))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def cell_settings(label: str, model: str, layer: str, config: dict) -> Settings:
    """The pipeline's Settings of one cell (no saliency maps: a sweep compares layers)."""
    return Settings(dataset=label, model=model, weights=config["weights"], layer=layer, readout=config["readout"],
                    similarity=config["similarity"], measure=config["measure"], n_folds=config["folds"],
                    n_seeds=len(config["seeds"]), k_step=config["k_step"], n_random=config["n_random"],
                    provider="", dtype=config["dtype"])


def run_cell(dataset: ComparisonSet, network: Network, settings: Settings, config: dict,
             report: Report | None = None) -> tuple[dict, Computation, list[dict] | None]:
    """Score and validate one cell in this process, through the pipeline. Returns (row, computation, ceiling
    rows). settings.k_step = 0 picks the dashboard's auto step for the layer's maps and engine. report(stage,
    fraction, text) follows the pipeline's stages (an exception it raises stops the cell)."""
    # torch loads here (the ceiling's alignment): reading a sweep's tables, as the dashboard does, needs none
    from aisviz.core.ceiling import ceiling_summary, load_subject_matrices, validation_ceiling

    t0 = time.perf_counter()
    computation = run_pipeline(settings, dataset=dataset, network=network, report=report or _no_report,
                               device=config["device"], use_cache=config["use_cache"],
                               progress=config.get("progress", False))
    scorer, validation = computation.scorer, computation.validation
    subjects = load_subject_matrices(dataset)
    ceiling_rows, ceiling = None, {}
    if subjects is not None:
        ceiling_rows = validation_ceiling(scorer, validation, subjects)
        ceiling = ceiling_summary(scorer, ceiling_rows, subjects)
    row = {"layer_index": network.index(scorer.layer_), "readout": scorer.readout_, "n_images": dataset.n_images,
           "n_maps": len(scorer.ais_), "engine": scorer.engine_.kind, "r2_all": scorer.r2_all_,
           **{k: validation.summary_[k] for k in RESULT_COLUMNS if k != "r2_all"}, **ceiling,
           "seconds": time.perf_counter() - t0}
    return row, computation, ceiling_rows


def _no_report(stage: str, fraction: float, text: str) -> None:
    """Sweeps report per cell (on_cell), not per stage."""


def _data_hash(dataset) -> str:
    """The content of a data set as far as a cell depends on it: images, names, matrix, per-subject matrices."""
    from aisviz.core.ceiling import load_subject_matrices  # torch, as in run_cell: only where cells are computed

    subjects = load_subject_matrices(dataset)
    extra = "" if subjects is None else hashlib.sha256(subjects.similarity.tobytes()).hexdigest()
    return dataset.content_hash() + extra


def run_cells(label: str, model: str, layers: list[str], config: dict, out: str | Path | None,
              load_dataset: Callable[[], ComparisonSet], load_network: Callable[[], Network],
              callback: Callable[[int, str, float, str], None] | None = None, stop_on: tuple = (),
              on_cell: Callable[[dict], None] | None = None) -> list[dict]:
    """The cells (label, model, layer) for each layer, one after the other, in this process: finished cells
    (row.json under `out` with the same settings and data content) are read back, the others computed and
    saved. load_dataset() is called once; load_network() once, and only when a cell must be computed.
    callback(i, stage, fraction, text) reports cell i's pipeline stages; on_cell(row) is called as each cell is
    done. An exception of a type in stop_on ends the run (a superseded dashboard job), and so does an
    EnvironmentProblem (a full disk, no GPU); any other fails only its cell (or, while loading, the cells that
    need it), whose row then holds the one-line error."""
    rows = {}

    def done(layer, row):
        rows[layer] = row
        if on_cell is not None:
            on_cell(row)

    try:
        dataset = load_dataset()
        settings = _settings({**{k: v for k, v in config.items() if k not in ("device", "use_cache", "progress")},
                              "data": _data_hash(dataset)})  # changed images or ratings are other cells
    except stop_on:
        raise
    except Exception as exc:
        for layer in layers:
            done(layer, {**_empty_row(label, model, layer), "status": "failed", "error": _error_line(exc)})
        return [rows[layer] for layer in layers]
    todo = []
    for i, layer in enumerate(layers):
        cell_dir = Path(out) / "cells" / cell_id(label, model, layer) if out else None
        finished = _finished(cell_dir, settings) if cell_dir else None
        if finished is not None:
            done(layer, finished)
        else:
            todo.append((i, layer, cell_dir))
    network = None
    for i, layer, cell_dir in todo:
        row = _empty_row(label, model, layer)
        report = None if callback is None else (lambda stage, fraction, text, i=i: callback(i, stage, fraction, text))
        try:
            network = network or load_network()
            computed, computation, ceiling_rows = run_cell(dataset, network, cell_settings(label, model, layer, config),
                                                           config, report)
            row.update(computed, status="computed")
            if cell_dir is not None:
                try:
                    _save_cell(cell_dir, row, settings, config, computation, ceiling_rows)
                except OSError as exc:  # a full disk or unwritable folder stops the run (exit code 4), not a cell
                    raise environment_problem(exc, f"the results of cell {cell_dir.name}") from None
        except (*stop_on, EnvironmentProblem):
            raise
        except Exception as exc:  # one failing cell is reported in its row; the others go on
            row.update(status="failed", error=_error_line(exc))
        done(layer, row)
    return [rows[layer] for layer in layers]


def run_group(dataset_spec: str | Path | ComparisonSet, model: str, layers: list[str], config: dict, out: str | None,
              on_cell: Callable[[dict], None] | None = None) -> list[dict]:
    """One Dask task: the cells of one (data set, network), sequentially, in the worker's process."""

    return run_cells(_dataset_label(dataset_spec), model, layers, config, out,
                     lambda: load_dataset(dataset_spec) if isinstance(dataset_spec, (str, Path)) else dataset_spec,
                     lambda: load_network(model, weights=config["weights"]), on_cell=on_cell)


def _client(scheduler):
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError("running a sweep on a Dask cluster needs dask.distributed: "
                          "pip install 'aisviz[sweep]'") from exc
    return scheduler if isinstance(scheduler, Client) else Client(scheduler)


def sweep(datasets: str | ComparisonSet | Sequence[DatasetSpec], models: str | Sequence[str] = ("efficientnet_lite0",),
          layers: str | Sequence[str] | None = None, *, readout: str | None = None, folds: int = 5,
          seeds: int | Sequence[int] = 8, k_step: int = 1, n_random: int = 1, out: str | Path | None = None,
          scheduler: Any = None, workers: int = 1, weights: str = "pretrained", similarity: str = "pearson",
          measure: str = "pearson", device: str = "auto", dtype: str = "float32", use_cache: bool = True,
          progress: bool = True,
          on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Score and validate every cell (data set x network x layer); returns a pandas DataFrame, one row per cell
    (columns COLUMNS, meanings COLUMN_MEANINGS).

    datasets: catalog names, folders or ComparisonSets; models: network names; layers: None (each network's
    default perturbed layer), "all-conv" (every convolution block's output) or a list of layer names.
    seeds: a count (the paper's 111, 222, ...) or the seeds themselves; k_step: 1 = every k (the paper), 0 = the
    dashboard's auto step per layer. out: folder for per-cell results and
    the table (resumable); None keeps nothing. scheduler: None = Dask's local threaded scheduler with
    `workers` threads; an address such as "tcp://host:8786" or a distributed.Client = that cluster.
    on_row(row) is called on the client as each cell finishes (on a cluster: as its group's rows arrive).
    progress: a bar over the cells and, on local threads, each cell's bars (images extracted, chunks of maps,
    validation splits).
    """
    import pandas as pd

    try:
        from dask.base import compute
        from dask.delayed import delayed
    except ImportError as exc:
        raise ImportError("aisviz sweep runs on Dask: pip install 'aisviz[sweep]'") from exc
    datasets = [datasets] if isinstance(datasets, (str, ComparisonSet)) else list(datasets)
    models = [models] if isinstance(models, str) else list(models)
    layers = [layers] if isinstance(layers, str) else layers
    if not datasets or not models:
        raise UsageError("a sweep needs at least one data set and one network.")
    if isinstance(seeds, int):
        seeds = paper_seeds(seeds)
    elif tuple(int(s) for s in seeds) != paper_seeds(len(seeds)):
        raise UsageError(f"seeds {tuple(seeds)}: a sweep uses the paper's seeds 111, 222, ...; give their number.")
    config = {"readout": readout, "folds": int(folds), "seeds": seeds, "k_step": int(k_step),
              "n_random": int(n_random), "weights": weights, "similarity": similarity, "measure": measure,
              "dtype": dtype, "device": device, "use_cache": use_cache,
              "progress": progress and scheduler is None}  # each local cell's bars too (images, maps, splits)
    if config["folds"] < 2 or config["k_step"] < 0 or config["n_random"] < 0:
        raise UsageError(f"folds must be at least 2 (got {folds}), k_step at least 0 (0 = auto; got {k_step}) and "
                         f"n_random at least 0 (got {n_random}).")
    out = Path(out) if out is not None else None
    groups, rows = _plan(datasets, models, layers)
    finished: dict[tuple[int, str], dict] = {}    # (group, layer) -> its row, as cells finish
    n_cells = sum(len(g[2]) for g in groups) + len(rows)
    from tqdm.auto import tqdm

    bar = tqdm(total=n_cells, desc="sweep cells", unit="cell", disable=not progress)
    bar.update(len(rows))
    lock = threading.Lock()

    def ordered() -> list[dict]:
        return rows + [finished[(i, layer)] for i, (_, _, names) in enumerate(groups) for layer in names
                       if (i, layer) in finished]

    def cell_done(group: int, row: dict):
        """One finished cell: the bar moves, on_row sees it, and the table on disk is rewritten (a sweep
        killed later keeps every row finished so far)."""
        with lock:
            finished[(group, row["layer"])] = row
            bar.update(1)
            if on_row is not None:
                on_row(row)
            if out is not None:
                _write_table(out, ordered())

    if out is not None and rows:
        _write_table(out, rows)                   # cells that failed in planning
    outdir = None if out is None else str(out)
    if scheduler is None:
        # traverse=False: a ComparisonSet travels as it is, not taken apart as a dataclass. Threads share this
        # process, so each finished cell reaches cell_done at once.
        tasks = [delayed(run_group)(delayed(ds, traverse=False), model, names, config, outdir,
                                    on_cell=functools.partial(cell_done, i), dask_key_name=f"sweep-group-{i}")
                 for i, (ds, model, names) in enumerate(groups)]
        compute(*tasks, scheduler="threads", num_workers=max(1, int(workers)))
    else:
        from distributed import as_completed

        client = _client(scheduler)
        assert client.scheduler is not None, "a client made by _client is connected"
        # stderr: stdout may carry the --json rows
        print(f"Dask cluster {client.scheduler.address}; its dashboard: {client.dashboard_link}", file=sys.stderr)
        futures = {client.submit(run_group, ds, model, names, config, outdir, pure=False): i
                   for i, (ds, model, names) in enumerate(groups)}
        for future in as_completed(futures):  # cells on other machines reach this client as their group ends
            i = futures[future]
            try:
                group_rows = future.result()
            except Exception as exc:  # the task itself died (e.g. its worker was killed): its cells failed
                ds, model, names = groups[i]
                group_rows = [{**_empty_row(_dataset_label(ds), model, layer), "status": "failed",
                               "error": _error_line(exc)} for layer in names]
            for row in group_rows:
                cell_done(i, row)
        if client is not scheduler:
            client.close()
    bar.close()
    return pd.DataFrame(ordered(), columns=list(COLUMNS))


def _write_table(out: Path, rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    _write_csv(out / "sweep.csv", frame)
    try:
        atomic_write(out / "sweep.parquet", lambda f: frame.to_parquet(f, index=False))
    except ImportError as exc:
        raise ImportError("writing sweep.parquet needs pyarrow: pip install 'aisviz[sweep]'") from exc


def read_sweep(out: str | Path) -> pd.DataFrame:
    """The sweep table written to `out` (a DataFrame), from the Parquet file, or the CSV without pyarrow."""
    import pandas as pd

    out = Path(out)
    if not (out / "sweep.csv").is_file():
        raise FileNotFoundError(f"no sweep table in {out}: run `aisviz sweep --out {out}` first.")
    try:
        return pd.read_parquet(out / "sweep.parquet")
    except (ImportError, OSError):
        return pd.read_csv(out / "sweep.csv", keep_default_na=False, na_values=[""])


SETTING_COLUMNS = ("weights", "similarity", "measure", "folds", "n_seeds", "k_step", "n_random")


def read_cells(out: str | Path) -> pd.DataFrame:
    """Every finished cell under `out` (OUT/cells/*/row.json) as a DataFrame: the row's COLUMNS plus the
    settings it was computed with (SETTING_COLUMNS). An unreadable cell is left out (a re-run redoes it)."""
    import pandas as pd

    rows = []
    for path in sorted(Path(out).glob("cells/*/row.json")):
        try:
            saved = json.loads(path.read_text())
            config = saved["config"]
            rows.append({**saved["row"], "weights": config["weights"], "similarity": config["similarity"],
                         "measure": config["measure"], "folds": config["folds"], "n_seeds": len(config["seeds"]),
                         "k_step": config["k_step"], "n_random": config["n_random"]})
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return pd.DataFrame(rows, columns=[*COLUMNS, *SETTING_COLUMNS])


def layer_table(source: pd.DataFrame | str | Path, dataset: str | None = None,
                model: str | None = None) -> pd.DataFrame:
    """The finished cells of one (data set, network) ordered by depth (layer_index): what the layer comparison
    shows. source: a sweep table (DataFrame) or the folder a sweep wrote; dataset/model may be omitted where
    the table holds only one."""
    # Any: pandas' own annotations make a boolean-mask selection "Series | DataFrame"
    table: Any = read_sweep(source) if isinstance(source, (str, Path)) else source
    table = table[table.status != "failed"]
    for column, value in (("dataset", dataset), ("model", model)):
        choices = sorted(table[column].unique())
        if value is None and len(choices) > 1:
            raise UsageError(f"the sweep holds several {column}s ({', '.join(map(str, choices))}); pick one.")
        if value is not None and value not in choices:
            raise UsageError(f"the sweep has no finished cell for {column} {value!r}; it has "
                             f"{', '.join(map(str, choices)) or 'none'}.")
        table = table if value is None else table[table[column] == value]
    return table.sort_values("layer_index", kind="stable").reset_index(drop=True)


class SweepEntry:
    """`aisviz.sweep`: calling it runs `sweep(...)`; the table readers and the column meanings hang off it,
    so that `aisviz.sweep.layer_table(OUT)` and `aisviz.sweep.COLUMN_MEANINGS` read as documented."""

    COLUMN_MEANINGS = COLUMN_MEANINGS
    layer_table = staticmethod(layer_table)
    read_sweep = staticmethod(read_sweep)
    read_cells = staticmethod(read_cells)
    conv_layers = staticmethod(conv_layers)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return sweep(*args, **kwargs)

    def __repr__(self) -> str:
        return "<aisviz.sweep: run a sweep of data sets x networks x layers; see help(aisviz.pipeline.sweeps.sweep)>"


sweep_entry = SweepEntry()
