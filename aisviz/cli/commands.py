"""Command line: `aisviz COMMAND ...` (see `aisviz --help`).

How a command is written (so that every command behaves the same):
- it takes the parsed arguments and returns `(payload, show)`: payload is a dict, what `--json` prints (strict
  JSON through aisviz.io.jsonout: NaN/inf become null, counted in "nonfinite_as_null"; "warnings" is added);
  show() prints the human summary to stdout. Either may be None. (A command may instead print for itself,
  with print_json for its JSON, and return None.)
- `_sub(sub, name, help, func)` adds a subcommand with --json, --quiet, the help formatter that shows
  defaults, and the exit-code epilog.
- it raises the errors of aisviz.errors (UsageError, InputError and its kinds DataError/ModelError, and
  EnvironmentProblem): `main` prints their one-line message to stderr and returns the exit code of the kind
  (2 usage, 3 input data or model, 4 environment, 1 internal with the traceback in the log).
- warnings (AisvizWarning) are printed to stderr as they happen and listed under "warnings" in the JSON.
- output folders are checked with storage.prepare_output_dir before any computation; argument values with the
  `type=` checkers below, at parse time.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aisviz import __version__
from aisviz.cli.share import add_commands
from aisviz.config import aisviz_home, paper_seeds
from aisviz.core.heatmaps import ais_heatmap, mass_inside
from aisviz.core.metrics import comparison_dataframe, pool_results
from aisviz.core.splits import kfold_splits
from aisviz.errors import EXIT_INTERNAL, AisvizWarning, InputError, UsageError, exit_code_for, recording_warnings
from aisviz.io import jsonout
from aisviz.io.catalog import download, list_datasets, load_dataset
from aisviz.io.storage import atomic_write, output_names, prepare_output_dir
from aisviz.models.features import check_device_name, resolve_device
from aisviz.models.networks import TIMM_NOTE, list_layers, list_models, load_network
from aisviz.pipeline.caches import cache_report, clear_caches
from aisviz.pipeline.comparisons import ais_heatmaps, compare_dataset, export_panels
from aisviz.pipeline.compute import fit_importance, result_for
from aisviz.pipeline.derive import result_dataframe
from aisviz.pipeline.result_cache import load_result
from aisviz.pipeline.settings import Settings
from aisviz.pipeline.sweeps import COLUMN_MEANINGS, sweep
from aisviz.saliency.providers import get_provider, saliency_maps
from aisviz.server.serve import serve
from aisviz.server.viewer_memory import viewer_kernel_mb
from aisviz.viz.figures import heatmap_pngs

if TYPE_CHECKING:  # torch is imported by the commands that fit
    from aisviz.core.comparison import ComparisonSet

DEFAULT_DATASET = "synthetic"
EXIT_CODES_HELP = ("exit codes: 0 success; 1 internal error (traceback in the log named on stderr); 2 usage "
                   "(bad argument); 3 input data or model; 4 environment (disk, permissions, device, network); "
                   "130 interrupted.")


# ---------------------------------------------------------------------------------------------
# Parse-time checks: argparse turns their ArgumentTypeError into a usage error (exit code 2).


def at_least(minimum: int, why: str = "", maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number >= minimum (and <= maximum, when given)."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{why}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}{why}, not {value}")
        return value
    check.__name__ = f"integer >= {minimum}"
    return check


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a catalog name (see `aisviz datasets`) or a folder path "
                                         "(the current folder: '.')")
    return text


def device_name(text: str) -> str:

    try:
        return check_device_name(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def existing_file(text: str) -> str:
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return text


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _add_model_args(p, several_datasets=False):
    if several_datasets:
        p.add_argument("--dataset", nargs="+", default=[DEFAULT_DATASET], type=non_empty,
                       help="one or more catalog names or folders; several are also pooled")
    else:
        p.add_argument("--dataset", default=DEFAULT_DATASET, type=non_empty,
                       help="catalog name (see `aisviz datasets`) or a folder path ('synthetic' is generated)")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="network: efficientnet_lite0 (offline), a torchvision name (vgg16 = the paper's), or "
                        "timm:NAME with the timm extra (see `aisviz models`)")
    p.add_argument("--layer", help="perturbed layer (default: the network's last convolutional layer; "
                                   "see `aisviz layers MODEL`)")
    p.add_argument("--readout", help="read-out layer (default: the penultimate representation)")
    p.add_argument("--weights", default="pretrained",
                   help="'pretrained' (the network's DEFAULT ImageNet weights), a torchvision weights enum name "
                        "(e.g. IMAGENET1K_V1), or 'none' (random weights, for timing and tests)")
    p.add_argument("--weights-file", type=existing_file, metavar="PATH",
                   help="load the network's weights from this local state_dict file (torch.load with "
                        "weights_only=True), checked against the architecture; e.g. the paper's VGG-16 offline")
    p.add_argument("--similarity", choices=("pearson", "cosine"), default="pearson",
                   help="network similarity between read-outs (paper: pearson)")
    p.add_argument("--measure", choices=("pearson", "spearman"), default="pearson",
                   help="alignment = squared correlation of the upper triangles (paper: pearson)")
    p.add_argument("--device", default="auto", type=device_name,
                   help="auto (GPU when present), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the network tail (similarities are always float64)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def _network(args):

    return load_network(args.model, weights=args.weights, weights_file=args.weights_file)


def _settings_and_data(args, dataset_name=None):
    """The pipeline's Settings and data set (no network, no torch): what a cached result is looked up by."""
    name = dataset_name or args.dataset
    dataset = load_dataset(name)
    validation = {}
    if getattr(args, "folds", None) is not None:  # validate, demo: too few images for the folds?
        kfold_splits(dataset.n_images, args.folds, seeds=())
        validation = {"n_folds": args.folds, "n_seeds": args.seeds, "k_step": args.k_step, "n_random": args.n_random}
    settings = Settings(dataset=str(name), model=args.model, weights=args.weights, layer=args.layer,
                        readout=args.readout, similarity=args.similarity, measure=args.measure, dtype=args.dtype,
                        provider="", **validation)
    return settings, dataset


def _checked_network(args):
    """The network, with the device and layers checked: every check that needs it comes before any fit."""
    resolve_device(args.device)  # a missing GPU is reported now, not after loading everything
    net = _network(args)
    net.resolve_layers(args.layer, args.readout)
    return net


def _scorer(args, dataset_name=None):
    """The pipeline's first steps: the fitted AlignmentImportance."""

    net = _checked_network(args)
    settings, dataset = _settings_and_data(args, dataset_name)
    return fit_importance(settings, dataset, net, device=args.device, use_cache=not args.no_cache,
                          progress=not args.quiet)


def _result(args):
    """The whole pipeline (no saliency): (the Result, the data set). A result computed before with the same
    settings on the same data (by any command, dashboard or server) is read from the disk cache of results;
    --no-cache, or a --weights-file (not part of the settings), computes it."""

    settings, dataset = _settings_and_data(args)
    keep = not args.no_cache and args.weights_file is None
    cached = load_result(settings, dataset) if keep else None   # before the network: torch is not imported
    if cached is not None:
        return cached, dataset
    result, _ = result_for(settings, dataset, keep_results=keep, network=_checked_network(args), device=args.device,
                           use_cache=not args.no_cache, progress=not args.quiet)
    return result, dataset


def _context(scorer) -> dict:
    ds = scorer.dataset_
    return {"dataset": ds.name, "observer": ds.observer, "n_images": ds.n_images, "model": scorer.network_.name,
            "weights": scorer.network_.weights, "layer": scorer.layer_, "readout": scorer.readout_,
            "n_maps": len(scorer.ais_), "similarity": scorer.similarity, "measure": scorer.measure,
            "engine": scorer.engine_.kind}


def _result_context(result) -> dict:
    """_context's fields, from a Result (computed here or read from the cache of results)."""
    settings = result.settings
    return {"dataset": result.dataset_name, "observer": result.observer, "n_images": len(result.image_names),
            "model": settings.model, "weights": result.weights_label, "layer": settings.layer,
            "readout": settings.readout, "n_maps": result.n_maps, "similarity": settings.similarity,
            "measure": settings.measure, "engine": result.engine, "source": result.source}


def print_json(obj: Any) -> None:
    """Strict JSON on stdout, for a command that prints for itself (NaN/inf -> null, counted)."""

    sys.stdout.write(jsonout.dumps(obj) + "\n")


_print_json = print_json  # the name the commands of other branches (sweep, share) call


def _csv_dir(args):
    """The --csv folder, created and checked before any computation (None when not asked for)."""

    return None if getattr(args, "csv", None) is None else prepare_output_dir(args.csv, "--csv")


def _write_csv(folder: Path, tables: dict) -> list[str]:

    written = []
    for name, df in tables.items():
        written.append(str(atomic_write(folder / f"{name}.csv",
                                        lambda f, df=df: f.write(df.to_csv(index=False).encode("utf-8")))))
    return written


# ---------------------------------------------------------------------------------------------
# Commands: each returns (payload for --json, function printing the human summary).


def cmd_datasets(args: argparse.Namespace) -> Any:

    rows = list_datasets()

    def show():
        for r in rows:
            state = f"available at {r['location']}" if r["available"] else "not found on the data search path"
            if r["name"] == DEFAULT_DATASET:
                state = "generated (offline default)"
            print(f"{r['name']:22s} {state}\n{'':22s} {r['description']}")
    return {"datasets": rows}, show


def cmd_models(args: argparse.Namespace) -> Any:

    rows = list_models()

    def show():
        for r in rows:
            print(f"{r['name']:22s} {r['source']}")
        print(TIMM_NOTE)
    return {"models": rows, "timm": TIMM_NOTE}, show


def cmd_layers(args: argparse.Namespace) -> Any:

    net = load_network(args.model, weights="none")  # shapes do not depend on the weights
    rows = list_layers(net)

    def show():
        for r in rows:
            mark = " <- default perturbed layer" if r["default_layer"] else (
                " <- default read-out" if r["default_readout"] else "")
            print(f"{r['index']:3d} {r['name']:24s} {r['type']:24s} {'x'.join(map(str, r['shape'])):>12s}{mark}")
    return {"model": net.name, "layers": rows}, show


def cmd_download(args: argparse.Namespace) -> Any:

    path = download(args.name, dest_root=args.dest, progress=not args.quiet)
    return {"name": args.name, "path": str(path)}, lambda: print(f"{args.name} is in {path}")


def cmd_score(args: argparse.Namespace) -> Any:
    csv_dir = _csv_dir(args)
    scorer = _scorer(args)
    c = _context(scorer)
    payload = {**c, "r2_all": scorer.r2_all_, "ais": scorer.ais_, "map_names": list(scorer.map_names_),
               "image_names": list(scorer.image_names_)}
    if csv_dir is not None:
        payload["csv"] = _write_csv(csv_dir, {"maps": scorer.to_dataframe("maps"),
                                              "images": scorer.to_dataframe("images")})

    def show():
        print(f"{c['dataset']} ({c['n_images']} images, {c['observer']} judgments) | {c['model']} "
              f"{c['layer']} -> {c['readout']} | {c['n_maps']} maps")
        print(f"alignment with all maps (R^2 = squared {c['measure']} r of the upper triangles): "
              f"{scorer.r2_all_:.4f}")
        print("top 10 maps by AIS (= R^2 all maps - R^2 without the map):")
        for row in sorted(scorer.table(), key=lambda r: r["rank"])[:10]:
            print(f"  {row['map']:24s} AIS {row['ais']:+.5f}")
        if csv_dir is not None:
            print(f"wrote maps.csv and images.csv to {csv_dir}")
    return payload, show


def _validation_dict(result) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a k undefined in every split has a NaN (null) mean
        means = {k: np.nanmean(c, 0).tolist() for k, c in result.curves.items()}
    return {"splits": list(result.splits), "summary": result.summary, "k_values": result.k_values.tolist(),
            "curves_mean": means}


def _print_validation(result):
    s = result.summary
    c = _result_context(result)
    print(f"{c['dataset']} ({c['n_images']} images, {c['observer']} judgments) | {c['model']} {c['layer']} -> "
          f"{c['readout']} | {s['n_splits']} splits" + (" | read from the cache of results (`aisviz cache show`)"
                                                        if result.source == "cache" else ""))
    print("held-out alignment (test R^2, mean ± SD over splits):")
    print(f"  all {c['n_maps']} maps        {s['mean_r2_test_all']:.4f} ± {s['sd_r2_test_all']:.4f}")
    print(f"  top-k* maps by AIS  {s['mean_r2_test_topk']:.4f} ± {s['sd_r2_test_topk']:.4f}   "
          f"(k* = {s['mean_k_star']:.0f} ± {s['sd_k_star']:.0f} maps kept, chosen on training images)")
    print(f"  random k* maps      {s['mean_r2_test_random']:.4f} ± {s['sd_r2_test_random']:.4f}")
    p_all, p_random, c_all, c_random = (("n/a" if p is None else f"{p:.3g}") for p in (
        s["p_value"], s["p_value_vs_random"], s["p_value_corrected"], s["p_value_vs_random_corrected"]))
    print(f"  one-sided paired t-test (the paper's): top-k* > all maps p = {p_all}; top-k* > random p = {p_random}")
    print(f"  corrected resampled t-test (Nadeau & Bengio; the splits share images): top-k* > all maps p = {c_all}; "
          f"top-k* > random p = {c_random}")


def cmd_validate(args: argparse.Namespace) -> Any:
    csv_dir = _csv_dir(args)
    result, _ = _result(args)
    payload = {**_result_context(result), **_validation_dict(result)}
    if csv_dir is not None:
        payload["csv"] = _write_csv(csv_dir, {kind: result_dataframe(result, kind)
                                              for kind in ("maps", "splits", "curves", "summary")})

    def show():
        _print_validation(result)
        if csv_dir is not None:
            print(f"wrote maps.csv, splits.csv, curves.csv and summary.csv to {csv_dir}")
    return payload, show


DISPLAY_HELP = ("heatmap display: default = clipped at 0, value/max, viridis with a colour bar; paper = the authors' "
                "display ((value/max)^2, jet, 0.6 image + 0.4 colour)")


def write_heatmaps(dataset: ComparisonSet, activations: Sequence[np.ndarray] | np.ndarray, image_ais: np.ndarray,
                   out_dir: Path, keep: np.ndarray | None = None, display: str = "default") -> list[dict]:
    """One labelled PNG overlay per image of dataset (display mode, title, colour bar) plus heatmaps.npz with
    the raw maps (from each image's activations (C, h, w) and image AIS (n, C)); atomic writes.
    File names are made unique and safe (storage.output_names); heatmaps.npz holds `names` (the image
    names), `files` (their PNGs) and `heatmap_0000`, ... in the same order, never keys made of image names.
    Returns one {"image", "file"} row per image."""

    files = output_names(dataset.image_names, "_ais.png")
    raw = [ais_heatmap(activations[i], image_ais[i], keep=keep) for i in range(len(files))]
    overlays = ((dataset.load_image(i), heat, name) for i, (heat, name) in enumerate(zip(raw, dataset.image_names)))
    for fname, png in zip(files, heatmap_pngs(overlays, display)):
        atomic_write(out_dir / fname, lambda f, png=png: f.write(png))
    arrays: dict[str, Any] = {"names": np.asarray(dataset.image_names), "files": np.asarray(files),
                              **{f"heatmap_{i:04d}": h for i, h in enumerate(raw)}}
    atomic_write(out_dir / "heatmaps.npz", lambda f: np.savez(f, **arrays))
    return [{"image": n, "file": f} for n, f in zip(dataset.image_names, files)]


def cmd_heatmaps(args: argparse.Namespace) -> Any:
    from aisviz.core.alignment import top_k_mask

    out = prepare_output_dir(args.out)
    scorer = _scorer(args)
    keep = None if args.top_k is None else top_k_mask(scorer.ais_, args.top_k)
    written = write_heatmaps(scorer.dataset_, scorer.activations_, scorer.image_ais_, out, keep=keep,
                             display=args.display)
    maps = "all maps" if keep is None else f"the top {args.top_k} maps by data-set AIS"
    payload = {**_context(scorer), "out": str(out), "maps": maps, "files": written, "npz": str(out / "heatmaps.npz")}
    return payload, lambda: print(f"wrote {len(written)} heatmap overlays ({maps}) and heatmaps.npz to {out}")


def cmd_demo(args: argparse.Namespace) -> Any:
    """The main job on the embedded default: AIS, held-out validation, heatmaps, ground-truth check."""

    t0 = time.perf_counter()
    out = prepare_output_dir(args.out)
    result, ds = _result(args)
    written = write_heatmaps(ds, result.activations, result.image_ais, out)
    payload = {**_result_context(result), **_validation_dict(result), "out": str(out), "files": written}
    truth = None
    if ds.relevant_masks is not None:

        share = [mass_inside(ais_heatmap(result.activations[i], result.image_ais[i]), ds.relevant_masks[i])
                 for i in range(ds.n_images)]
        truth = {"mean_mass_on_relevant_region": float(np.nanmean(share)),
                 "mean_relevant_area": float(np.mean([m.mean() for m in ds.relevant_masks]))}
        payload["ground_truth"] = truth
    seconds = time.perf_counter() - t0

    def show():
        _print_validation(result)
        if truth is not None:
            print(f"ground truth: AIS heatmaps put {truth['mean_mass_on_relevant_region']:.1%} of their mass on the "
                  f"planted relevant region, which covers {truth['mean_relevant_area']:.1%} of each image (a "
                  "uniform map would put that much)")
        print(f"wrote {len(written)} heatmap overlays to {out}/ in {seconds:.1f} s")
    return payload, show


def cmd_saliency(args: argparse.Namespace) -> Any:
    """AIS heatmaps vs a saliency provider on one or more data sets: per image, per set and pooled."""

    csv_dir = _csv_dir(args)
    out_root = prepare_output_dir(args.out) if args.out else None
    provider = get_provider(args.saliency)
    results, csv_files = [], []
    for name in list(args.dataset):
        scorer = _scorer(args, dataset_name=name)
        result = compare_dataset(scorer.dataset_, provider, scorer=scorer, use_cache=not args.no_cache)
        results.append(result)
        if out_root is not None:
            sal = saliency_maps(scorer.dataset_, provider, use_cache=not args.no_cache)
            export_panels(scorer.dataset_, ais_heatmaps(scorer), sal, out_root / scorer.dataset_.name,
                          mode=args.display, provider=provider.label)
        if csv_dir is not None:

            fname = output_names([scorer.dataset_.name], "")[0]
            csv_files += _write_csv(csv_dir, {f"saliency_{fname}": comparison_dataframe(result)})
    pooled = pool_results(results) if len(results) > 1 else None
    payload = {"provider": provider.describe(), "datasets": results, "pooled": pooled}
    if csv_dir is not None:
        payload["csv"] = csv_files

    def show():
        print(f"saliency: {provider.label}")
        keys = ["rr_5", "rr_10", "rr_15", "auc_10", "cc", "sim", "kl", "ais_mass_inside", "saliency_mass_inside"]
        summaries = [(r["dataset"], r["summary"]) for r in results] + (
            [("pooled", pooled["pooled"])] if pooled else [])
        print(f"{'metric':22s}" + "".join(f"{name[:18]:>20s}" for name, _ in summaries))
        for key in keys:
            if any(key in summ for _, summ in summaries):
                cells = [summ.get(key) for _, summ in summaries]
                print(f"{key:22s}" + "".join(f"{c['mean']:>11.3f} ± {c['sd']:<6.3f}" if c else f"{'':>20s}"
                                             for c in cells))
        print("rr_q: relative risk, AIS top q% predicting the saliency top q% (1 = chance); mean ± SD over images "
              "(infinite values excluded and counted in --json).")
        if out_root is not None:
            print(f"wrote image | AIS overlay | saliency overlay panels under {out_root}/")
        if csv_files:
            print(f"wrote {', '.join(Path(f).name for f in csv_files)} to {csv_dir}")
    return payload, show


def cmd_sweep(args: argparse.Namespace) -> Any:
    """Score + validation for every (data set, network, layer) cell, on Dask; a table and one folder per cell."""
    if args.weights_file:
        raise UsageError("aisviz sweep does not take --weights-file (it may run several networks); put the file "
                         "at the torch hub path that `aisviz models` names for the network, or use validate.")
    prepare_output_dir(args.out, "--out")   # an unwritable folder fails now (exit code 4), not after the cells
    layers = None if args.layers is None else (args.layers[0] if args.layers == ["all-conv"] else args.layers)
    table: Any = sweep(args.dataset, args.model, layers, readout=args.readout, folds=args.folds,
                  seeds=paper_seeds(args.seeds), k_step=args.k_step, n_random=args.n_random, out=args.out,
                  scheduler=args.scheduler, workers=args.workers, weights=args.weights, similarity=args.similarity,
                  measure=args.measure, device=args.device, dtype=args.dtype, use_cache=not args.no_cache,
                  progress=not args.quiet)
    failed = table[table.status == "failed"]
    for row in failed.itertuples():
        print(f"aisviz: failed: {row.dataset} {row.model} {row.layer}: {row.error}", file=sys.stderr)
    if len(failed) == len(table):
        first = failed.iloc[0]
        raise InputError(f"every cell of the sweep failed ({len(table)} of {len(table)}; the first: {first.dataset} "
                         f"{first.model} {first.layer}: {first.error}): fix what the errors name (`aisviz datasets`, "
                         "`aisviz models` and `aisviz layers MODEL` list the valid names).")
    if len(failed):
        print(f"aisviz: {len(failed)} of {len(table)} cells failed (listed above; their rows hold the error in "
              f"{args.out}/sweep.csv); the others finished.", file=sys.stderr)
    if args.json:
        rows = table.astype(object).where(table.notna(), None).to_dict("records")  # NaN -> null
        return _print_json({"out": args.out, "rows": rows, "columns": COLUMN_MEANINGS})
    cols = ["dataset", "model", "layer", "n_maps", "r2_all", "mean_r2_test_all", "mean_r2_test_topk",
            "mean_r2_test_random", "mean_k_star", "p_value", "p_value_corrected", "ceiling_fraction_topk"]
    short = {"mean_r2_test_all": "test_all", "mean_r2_test_topk": "test_topk*", "mean_r2_test_random": "test_random",
             "mean_k_star": "k*", "p_value_corrected": "p_corrected", "ceiling_fraction_topk": "of_ceiling"}
    print(table[cols].rename(columns=short).to_string(index=False, float_format="%.4g"))
    print(f"test_*: mean test R^2 over splits; k*: maps kept; p: the paper's paired t-test, p_corrected: the corrected "
          f"resampled t-test (the splits share images); of_ceiling: subject-level test R^2 at k* / noise-ceiling "
          f"lower bound (sets with per-subject matrices).\nTable: {args.out}/sweep.csv and sweep.parquet; "
          f"per cell: {args.out}/cells/")


def cmd_serve(args: argparse.Namespace) -> Any:

    if args.shared and not args.bundles:

        raise UsageError("--shared needs --bundles DIR: the result bundles viewers may open (aisviz precompute).")
    if args.default and not args.shared:
        raise UsageError("--default names a bundled setting: use it with --shared --bundles DIR.")
    code = serve(port=args.port, pool_size=args.pool_size, open_browser=args.open, cull_idle_timeout=args.cull_idle,
                 base_url=args.base_url, max_kernels=args.max_kernels, bundles=args.bundles if args.shared else None,
                 hub_auth=args.hub_auth, kernels_per_client=args.kernels_per_client,
                 pages_per_minute=args.pages_per_minute, claim_timeout=args.claim_timeout,
                 allow_paths=args.allow_paths, default=args.default)
    if code:
        raise SystemExit(code)
    return None, None


def cmd_cache(args: argparse.Namespace) -> Any:

    if args.action == "clear":
        removed = clear_caches()
        total = sum(r["removed"] for r in removed)

        def show():
            for r in removed:
                print(f"removed {r['removed']:5d} files from {r['path']}  ({r['what']})")
            print(f"removed {total} files in all")
        return {"action": "clear", "caches": removed, "removed": total}, show
    rows = cache_report()

    def show():
        for r in rows:
            print(f"{r['name']:10s} {r['files']:6d} files {r['bytes'] / 1e6:10.1f} MB  {r['path']}  ({r['what']})")
    return {"action": "show", "caches": rows}, show


# ---------------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default (where it has one: not for switches or optional settings), and keeps the
    epilog's line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _sub(sub, name, help_, func, json_=True):
    p = sub.add_parser(name, help=help_, description=help_, formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP)
    if json_:
        p.add_argument("--json", action="store_true", help="print the result as strict JSON on stdout (NaN -> null); "
                                                           "messages go to stderr")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisviz", formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP,
                                     description=(
        "Alignment Importance Scores: which feature maps of a CNN layer make its image similarities match "
        "human similarity judgments (Truong, Pesenti & Hasson 2025)."))
    parser.add_argument("--version", action="version", version=f"aisviz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _sub(sub, "datasets", "known data sets and where they are", cmd_datasets)
    _sub(sub, "models", "networks aisviz can load", cmd_models)
    p = _sub(sub, "layers", "a network's layers with output shapes", cmd_layers)
    p.add_argument("model", help="network name (see `aisviz models`)")
    p = _sub(sub, "download", "fetch a catalog data set (needs internet)", cmd_download)
    p.add_argument("name", help="catalog name (see `aisviz datasets`)")
    p.add_argument("--dest", help="root folder (default: the user data folder on the search path)")
    for name, func, help_ in (("score", cmd_score, "data-set-level AIS of every map"),
                              ("validate", cmd_validate, "held-out top-k validation (the paper's protocol)"),
                              ("heatmaps", cmd_heatmaps, "image-specific AIS heatmaps as PNG overlays"),
                              ("demo", cmd_demo, "everything on the embedded default: validation + heatmaps")):
        p = _sub(sub, name, help_, func)
        _add_model_args(p)
        if name in ("score", "validate"):
            p.add_argument("--csv", metavar="DIR", help="also write the result tables as CSV files into DIR")
        if name in ("validate", "demo"):
            p.add_argument("--folds", type=at_least(2, " (a held-out test needs 2 folds)"), default=5,
                           help="folds per seed (paper: 5)")
            p.add_argument("--seeds", type=at_least(1), default=8, help="number of seeds: 111, 222, ... (paper: 8)")
            p.add_argument("--k-step", type=at_least(1), default=1,
                           help="evaluate k = 1, 1+step, ..., all maps (paper: every k, step 1)")
            p.add_argument("--n-random", type=at_least(1, " (the random-subset baseline needs one ordering)"),
                           default=1, help="random map orderings per split for the random-subset baseline")
        if name == "heatmaps":
            p.add_argument("--top-k", type=at_least(1), help="weight only the top-k maps by data-set AIS "
                                                             "(default: all maps)")
            p.add_argument("--display", choices=("default", "paper"), default="default", help=DISPLAY_HELP)
        if name in ("heatmaps", "demo"):
            p.add_argument("--out", required=name == "heatmaps", default="aisviz-demo" if name == "demo" else None,
                           help="folder for the PNG overlays and heatmaps.npz")
    p = _sub(sub, "saliency", "AIS heatmaps vs saliency maps: relative risk, CC, SIM, KL, AUC", cmd_saliency)
    _add_model_args(p, several_datasets=True)
    p.add_argument("--saliency", default="spectral_residual",
                   help="spectral_residual, fine_grained, center_bias (classic baselines, offline), deepgaze_iie "
                        "(needs internet), or a folder of per-image maps (PNG/NPY named like the images)")
    p.add_argument("--out", help="also write image | AIS | saliency panels as PNGs here")
    p.add_argument("--display", choices=("default", "paper"), default="default", help=DISPLAY_HELP)
    p.add_argument("--csv", metavar="DIR", help="also write one CSV per data set (one row per image) into DIR")
    help_ = "score + validation over data sets x networks x layers, on Dask"
    p = sub.add_parser("sweep", help=help_, description=help_, formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP,
                       conflict_handler="resolve")  # --dataset, --model and --layer(s) take several values here
    p.add_argument("--json", action="store_true", help="print the rows as strict JSON on stdout (NaN -> null)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    _add_model_args(p, several_datasets=True)
    p.add_argument("--dataset", nargs="+", default=[DEFAULT_DATASET], help="one or more catalog names or folders")
    p.add_argument("--model", nargs="+", default=["efficientnet_lite0"], help="one or more networks")
    p.add_argument("--layers", "--layer", nargs="+", dest="layers",
                   help="perturbed layers, or 'all-conv' (default: each network's default)")
    p.add_argument("--folds", type=at_least(2), default=5, help="cross-validation folds per seed (paper: 5)")
    p.add_argument("--seeds", type=at_least(1), default=8, help="number of seeds: 111, 222, ... (paper: 8)")
    p.add_argument("--k-step", type=at_least(0), default=1,
                   help="evaluate k = 1, 1+step, ..., all maps (paper: 1; 0 = the dashboard's auto step per layer)")
    p.add_argument("--n-random", type=at_least(1), default=1, help="random map orderings per split (baseline)")
    p.add_argument("--out", required=True, help="folder for the table and per-cell results (re-runs resume)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: local threads)")
    p.add_argument("--workers", type=at_least(1), default=1, help="local threads running cells at once")
    p = _sub(sub, "serve", "the dashboard in a browser (Voila, bound to 127.0.0.1)", cmd_serve, json_=False)
    p.add_argument("--port", type=at_least(1, maximum=65535), default=8866, help="port on 127.0.0.1")
    p.add_argument("--pool-size", type=at_least(0), default=0,
                   help=f"preheated kernels (researcher kernels 1.3-1.4 GB resident, viewer kernels "
                        f"{viewer_kernel_mb()} MB: measured, aisviz/server/viewer_memory.json)")
    p.add_argument("--open", action="store_true", help="open a browser tab")
    p.add_argument("--cull-idle", type=at_least(1), default=600,
                   help="seconds before idle kernels (no tab open) are shut down (checked every tenth of it)")
    p.add_argument("--base-url", help="URL prefix when served behind a reverse proxy, e.g. /aisviz/")
    p.add_argument("--shared", action="store_true",
                   help="shared viewer mode: light kernels that only show the bundles in --bundles")
    p.add_argument("--bundles", help="folder of result bundles (aisviz precompute) for --shared")
    p.add_argument("--default", metavar="SETTING",
                   help="the setting shared pages open on: its id in bundle.json, or field=value pairs, e.g. "
                        "dataset=synthetic,layer=_head_act (default: the bundle's first, the generated set's "
                        "default layer)")
    p.add_argument("--max-kernels", type=at_least(0),
                   help="cap on visitors' kernels (default 40 shared, 4 researcher; 0 = none)")
    p.add_argument("--kernels-per-client", type=at_least(0),
                   help="kernels one visitor (address, or hub user) may hold (default 4 shared, 0 = no limit)")
    p.add_argument("--pages-per-minute", type=at_least(0),
                   help="page loads per visitor and minute (default 20 shared, 0 = no limit)")
    p.add_argument("--claim-timeout", type=at_least(1), default=45,
                   help="seconds for a page to connect to its kernel before the kernel is shut down")
    p.add_argument("--allow-paths", nargs="+", metavar="DIR",
                   help="folders the researcher dashboard's path box may open (served with --base-url or "
                        "--hub-auth the box is off without this)")
    p.add_argument("--hub-auth", action="store_true", help="run as a JupyterHub service (see deploy/)")

    add_commands(sub, _sub)
    p = _sub(sub, "cache", "show the caches with their sizes, or clear them all", cmd_cache)
    p.add_argument("action", choices=("show", "clear"), help="show: list each cache; clear: delete every cached "
                                                             "file and stale temporary file")
    return parser


def log_file() -> Path:
    """Where internal errors leave their traceback: AISVIZ_HOME/logs/cli.log, or the temp folder if that
    cannot be written."""

    for folder in (aisviz_home() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ("cli.log" if folder.name == "logs" else "aisviz-cli.log")
            with open(path, "a"):
                return path
        except OSError:
            continue
    return Path(tempfile.gettempdir()) / "aisviz-cli.log"


def _log_traceback(exc) -> Path:
    path = log_file()
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} aisviz {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass
    return path


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: JSON or text on stdout, warnings and errors on stderr; returns the exit code."""
    def echo(text, category, filename, lineno):
        whose = "" if issubclass(category, AisvizWarning) else \
            f" ({category.__name__} from {Path(filename).name}:{lineno})"  # a library's warning: say whose
        print(f"aisviz: warning{whose}: {text}", file=sys.stderr)

    with recording_warnings(echo) as recorded:
        try:
            result = args.func(args)
            # A command that prints for itself (e.g. through print_json) returns None.
            payload, show = result if isinstance(result, tuple) else (None, None)
        except KeyboardInterrupt:
            message = "interrupted (nothing half-written: caches and outputs are written atomically)"
            print(f"aisviz: {message}", file=sys.stderr)
            return _failed(args, message, 130)
        except Exception as exc:
            code = exit_code_for(exc)
            if code == EXIT_INTERNAL:
                path = _log_traceback(exc)
                message = (f"internal error: {type(exc).__name__}: {exc} (a bug: the traceback is in {path}; "
                           "please report it with that file)")
            else:
                message = " ".join(str(exc).split())
            print(f"aisviz: {'' if code == EXIT_INTERNAL else 'error: '}{message}", file=sys.stderr)
            return _failed(args, message, code)
    if getattr(args, "json", False) and payload is not None:
        print_json({**payload, "warnings": recorded})
    elif show is not None:
        show()
    return 0


def _failed(args, message: str, code: int) -> int:
    """With --json, a failure is also a JSON object on stdout: {"error": the one-line message, "exit_code": code}."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    return code


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
        sys.stderr.write(usage.getvalue())
        code = exc.code if isinstance(exc.code, int) else 2
        if code and "--json" in argv:
            lines = usage.getvalue().strip().splitlines()
            return _failed(argparse.Namespace(json=True), lines[-1] if lines else "usage error", code)
        return code
    sys.stderr.write(usage.getvalue())
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
