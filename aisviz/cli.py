"""Command line: `aisviz COMMAND ...` (see `aisviz --help`)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATASET = "synthetic"


def paper_seeds(n: int) -> list[int]:
    """The paper's seeds 111, 222, ..., 888, continued the same way past 8."""
    if n < 1:
        raise ValueError(f"--seeds must be at least 1, not {n}.")
    return [111 * (i + 1) for i in range(n)]


def _add_model_args(p, several_datasets=False):
    if several_datasets:
        p.add_argument("--dataset", nargs="+", default=[DEFAULT_DATASET],
                       help="one or more catalog names or folders (default: synthetic); several are also pooled")
    else:
        p.add_argument("--dataset", default=DEFAULT_DATASET,
                       help="catalog name (see `aisviz datasets`) or a folder path (default: %(default)s, generated)")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="network name (see `aisviz models`; default: %(default)s, works offline)")
    p.add_argument("--layer", help="perturbed layer (default: the network's last convolutional layer)")
    p.add_argument("--readout", help="read-out layer (default: the penultimate representation)")
    p.add_argument("--weights", choices=("pretrained", "none"), default="pretrained",
                   help="'none' = random weights, for timing and tests")
    p.add_argument("--similarity", choices=("pearson", "cosine"), default="pearson",
                   help="network similarity between read-outs (paper: pearson)")
    p.add_argument("--measure", choices=("pearson", "spearman"), default="pearson",
                   help="alignment = squared correlation of the upper triangles (paper: pearson)")
    p.add_argument("--device", default="auto", help="'auto' (GPU when present), 'cpu', 'cuda', ...")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the network tail (similarities are always float64)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _scorer(args):
    from .ais import AlignmentImportance
    from .catalog import load_dataset

    dataset = load_dataset(args.dataset)
    scorer = AlignmentImportance(model=args.model, layer=args.layer, readout=args.readout, weights=args.weights,
                                 similarity=args.similarity, measure=args.measure, device=args.device,
                                 dtype=args.dtype, use_cache=not args.no_cache, progress=not args.quiet)
    return scorer.fit(dataset)


def _context(scorer) -> dict:
    ds = scorer.dataset_
    return {"dataset": ds.name, "observer": ds.observer, "n_images": ds.n_images, "model": scorer.network_.name,
            "weights": scorer.network_.weights, "layer": scorer.layer_, "readout": scorer.readout_,
            "n_maps": len(scorer.ais_), "similarity": scorer.similarity, "measure": scorer.measure,
            "engine": scorer.engine_.kind}


def _print_json(obj):
    json.dump(obj, sys.stdout, indent=1, allow_nan=True)
    sys.stdout.write("\n")


def cmd_datasets(args):
    from .catalog import list_datasets

    rows = list_datasets()
    if args.json:
        return _print_json(rows)
    for r in rows:
        state = f"available at {r['location']}" if r["available"] else "not found on the data search path"
        if r["name"] == DEFAULT_DATASET:
            state = "generated (offline default)"
        print(f"{r['name']:22s} {state}\n{'':22s} {r['description']}")


def cmd_models(args):
    from .models import list_models

    rows = list_models()
    if args.json:
        return _print_json(rows)
    for r in rows:
        print(f"{r['name']:22s} {r['source']}")


def cmd_layers(args):
    from .models import list_layers, load_network

    net = load_network(args.model, weights="none")  # shapes do not depend on the weights
    rows = list_layers(net)
    if args.json:
        return _print_json(rows)
    for r in rows:
        mark = " <- default perturbed layer" if r["default_layer"] else (
            " <- default read-out" if r["default_readout"] else "")
        print(f"{r['index']:3d} {r['name']:24s} {r['type']:24s} {'x'.join(map(str, r['shape'])):>12s}{mark}")


def cmd_download(args):
    from .catalog import download

    path = download(args.name, dest_root=args.dest)
    print(f"{args.name} is in {path}")


def cmd_score(args):
    scorer = _scorer(args)
    if args.json:
        return _print_json({**_context(scorer), "r2_all": scorer.r2_all_, "ais": scorer.ais_.tolist(),
                            "map_names": list(scorer.map_names_), "image_names": list(scorer.image_names_)})
    c = _context(scorer)
    print(f"{c['dataset']} ({c['n_images']} images, {c['observer']} judgments) | {c['model']} "
          f"{c['layer']} -> {c['readout']} | {c['n_maps']} maps")
    print(f"alignment with all maps (R^2 = squared {c['measure']} r of the upper triangles): {scorer.r2_all_:.4f}")
    print("top 10 maps by AIS (= R^2 all maps - R^2 without the map):")
    for row in sorted(scorer.table(), key=lambda r: r["rank"])[:10]:
        print(f"  {row['map']:24s} AIS {row['ais']:+.5f}")


def _validate(args, scorer):
    from .ais import TopKValidation

    v = TopKValidation(n_folds=args.folds, seeds=paper_seeds(args.seeds), k_step=args.k_step,
                       n_random=args.n_random, progress=not args.quiet)
    return v.fit(scorer)


def _validation_dict(v) -> dict:
    return {"splits": v.splits_, "summary": v.summary_, "k_values": v.k_values_.tolist(),
            "curves_mean": {k: np.nanmean(c, 0).tolist() for k, c in v.curves_.items()}}


def _print_validation(scorer, v):
    s = v.summary_
    c = _context(scorer)
    print(f"{c['dataset']} ({c['n_images']} images, {c['observer']} judgments) | {c['model']} {c['layer']} -> "
          f"{c['readout']} | {s['n_splits']} splits")
    print("held-out alignment (test R^2, mean ± SD over splits):")
    print(f"  all {c['n_maps']} maps        {s['mean_r2_test_all']:.4f} ± {s['sd_r2_test_all']:.4f}")
    print(f"  top-k* maps by AIS  {s['mean_r2_test_topk']:.4f} ± {s['sd_r2_test_topk']:.4f}   "
          f"(k* = {s['mean_k_star']:.0f} ± {s['sd_k_star']:.0f}, chosen on training images)")
    print(f"  random k* maps      {s['mean_r2_test_random']:.4f} ± {s['sd_r2_test_random']:.4f}")
    p_all, p_random = (("n/a" if p is None else f"{p:.3g}") for p in (s["p_value"], s["p_value_vs_random"]))
    print(f"  one-sided paired t-test: top-k* > all maps p = {p_all}; top-k* > random p = {p_random}")


def cmd_validate(args):
    scorer = _scorer(args)
    v = _validate(args, scorer)
    if args.json:
        return _print_json({**_context(scorer), **_validation_dict(v)})
    _print_validation(scorer, v)


DISPLAY_HELP = ("heatmap display: default = clipped at 0, value/max, viridis with a colour bar; paper = the authors' "
                "display ((value/max)^2, jet, 0.6 image + 0.4 colour)")


def write_heatmaps(scorer, out_dir: Path, keep=None, display: str = "default") -> list[Path]:
    """One labelled PNG overlay per image (display mode, colour bar) plus heatmaps.npz with the raw maps."""
    from .figures import figure_bytes, heatmap_figure
    from .heatmaps import ais_heatmap
    from .storage import atomic_write

    ds, written, raw = scorer.dataset_, [], {}
    for i, name in enumerate(ds.image_names):
        heat = ais_heatmap(scorer.activations_[i], scorer.image_ais_[i], keep=keep)
        raw[name] = heat
        png = figure_bytes(heatmap_figure(ds.load_image(i), heat, display, name), dpi=100)
        written.append(atomic_write(out_dir / f"{Path(name).stem}_ais.png", lambda f, png=png: f.write(png)))
    atomic_write(out_dir / "heatmaps.npz", lambda f: np.savez(f, **{Path(k).stem: v for k, v in raw.items()}))
    return written


def cmd_heatmaps(args):
    from .ais import top_k_mask

    scorer = _scorer(args)
    keep = None if args.top_k is None else top_k_mask(scorer.ais_, args.top_k)
    written = write_heatmaps(scorer, Path(args.out), keep=keep, display=args.display)
    maps = "all maps" if keep is None else f"the top {args.top_k} maps by data-set AIS"
    print(f"wrote {len(written)} heatmap overlays ({maps}) and heatmaps.npz to {args.out}")


def cmd_demo(args):
    """The main job on the embedded default: AIS, held-out validation, heatmaps, ground-truth check."""
    t0 = time.perf_counter()
    scorer = _scorer(args)
    v = _validate(args, scorer)
    _print_validation(scorer, v)
    out = Path(args.out)
    written = write_heatmaps(scorer, out)
    ds = scorer.dataset_
    if ds.relevant_masks is not None:
        from .heatmaps import ais_heatmap, mass_inside

        share = [mass_inside(ais_heatmap(scorer.activations_[i], scorer.image_ais_[i]), ds.relevant_masks[i])
                 for i in range(ds.n_images)]
        area = [float(m.mean()) for m in ds.relevant_masks]
        print(f"ground truth: AIS heatmaps put {np.nanmean(share):.1%} of their mass on the planted relevant "
              f"region, which covers {np.mean(area):.1%} of each image (a uniform map would put that much)")
    print(f"wrote {len(written)} heatmap overlays to {out}/ in {time.perf_counter() - t0:.1f} s")


def cmd_saliency(args):
    """AIS heatmaps vs a saliency provider on one or more data sets: per image, per set and pooled."""
    from .compare import ais_heatmaps, compare_dataset, export_panels, jsonable, pool_results
    from .saliency import get_provider, saliency_maps

    provider = get_provider(args.saliency)
    results = []
    for name in list(args.dataset):
        scorer = _scorer(argparse.Namespace(**{**vars(args), "dataset": name}))
        result = compare_dataset(scorer.dataset_, provider, scorer=scorer, use_cache=not args.no_cache)
        results.append(result)
        if args.out:
            out = Path(args.out) / scorer.dataset_.name
            sal = saliency_maps(scorer.dataset_, provider, use_cache=not args.no_cache)
            export_panels(scorer.dataset_, ais_heatmaps(scorer), sal, out, mode=args.display, provider=provider.label)
    pooled = pool_results(results) if len(results) > 1 else None
    if args.json:
        return _print_json(jsonable({"provider": provider.describe(), "datasets": results, "pooled": pooled}))
    print(f"saliency: {provider.label}")
    keys = ["rr_5", "rr_10", "rr_15", "auc_10", "cc", "sim", "kl", "ais_mass_inside", "saliency_mass_inside"]
    summaries = [(r["dataset"], r["summary"]) for r in results] + ([("pooled", pooled["pooled"])] if pooled else [])
    print(f"{'metric':22s}" + "".join(f"{name[:18]:>20s}" for name, _ in summaries))
    for key in keys:
        if any(key in summ for _, summ in summaries):
            cells = [summ.get(key) for _, summ in summaries]
            print(f"{key:22s}" + "".join(f"{c['mean']:>11.3f} ± {c['sd']:<6.3f}" if c else f"{'':>20s}"
                                         for c in cells))
    print("rr_q: relative risk, AIS top q% predicting the saliency top q% (1 = chance); mean ± SD over images "
          "(infinite values excluded and counted in --json).")
    if args.out:
        print(f"wrote image | AIS overlay | saliency overlay panels under {args.out}/")


def cmd_sweep(args):
    """Score + validation for every (data set, network, layer) cell, on Dask; a table and one folder per cell."""
    from .sweep import COLUMN_MEANINGS, sweep

    layers = None if args.layers is None else (args.layers[0] if args.layers == ["all-conv"] else args.layers)
    table = sweep(args.dataset, args.model, layers, readout=args.readout, folds=args.folds,
                  seeds=paper_seeds(args.seeds), k_step=args.k_step, n_random=args.n_random, out=args.out,
                  scheduler=args.scheduler, workers=args.workers, weights=args.weights, similarity=args.similarity,
                  measure=args.measure, device=args.device, dtype=args.dtype, use_cache=not args.no_cache,
                  progress=not args.quiet)
    if args.json:
        rows = table.astype(object).where(table.notna(), None).to_dict("records")  # NaN -> null
        return _print_json({"out": args.out, "rows": rows, "columns": COLUMN_MEANINGS})
    cols = ["dataset", "model", "layer", "n_maps", "r2_all", "mean_r2_test_all", "mean_r2_test_topk",
            "mean_r2_test_random", "mean_k_star", "p_value", "ceiling_fraction_topk"]
    short = {"mean_r2_test_all": "test_all", "mean_r2_test_topk": "test_topk*", "mean_r2_test_random": "test_random",
             "mean_k_star": "k*", "ceiling_fraction_topk": "of_ceiling"}
    print(table[cols].rename(columns=short).to_string(index=False, float_format="%.4g"))
    for row in table[table.status == "failed"].itertuples():
        print(f"failed: {row.dataset} {row.model} {row.layer}: {row.error}")
    print(f"test_*: mean test R^2 over splits; of_ceiling: subject-level test R^2 at k* / noise-ceiling lower bound "
          f"(sets with per-subject matrices).\nTable: {args.out}/sweep.csv and sweep.parquet; "
          f"per cell: {args.out}/cells/")


def cmd_serve(args):
    from .serve import serve

    if args.shared and not args.bundles:
        raise ValueError("--shared needs --bundles DIR: the result bundles viewers may open (aisviz precompute).")
    code = serve(port=args.port, pool_size=args.pool_size, open_browser=args.open, cull_idle_timeout=args.cull_idle,
                 base_url=args.base_url, max_kernels=args.max_kernels, bundles=args.bundles if args.shared else None,
                 hub_auth=args.hub_auth)
    if code:
        raise SystemExit(code)


def cmd_cache(args):
    from .features import cache_dir, clear_cache

    if args.action == "clear":
        print(f"removed {clear_cache()} cached feature files from {cache_dir()}")
    else:
        print(cache_dir())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisviz", description=(
        "Alignment Importance Scores: which feature maps of a CNN layer make its image similarities match "
        "human similarity judgments (Truong, Pesenti & Hasson)."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("datasets", help="known data sets and where they are")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("models", help="networks aisviz can load")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("layers", help="a network's layers with output shapes")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_layers)
    p = sub.add_parser("download", help="fetch a catalog data set (needs internet)")
    p.add_argument("name")
    p.add_argument("--dest", help="root folder (default: the user data folder on the search path)")
    p.set_defaults(func=cmd_download)
    for name, func, help_ in (("score", cmd_score, "data-set-level AIS of every map"),
                              ("validate", cmd_validate, "held-out top-k validation (the paper's protocol)"),
                              ("heatmaps", cmd_heatmaps, "image-specific AIS heatmaps as PNG overlays"),
                              ("demo", cmd_demo, "everything on the embedded default: validation + heatmaps")):
        p = sub.add_parser(name, help=help_)
        _add_model_args(p)
        if name in ("score", "validate"):
            p.add_argument("--json", action="store_true")
        if name in ("validate", "demo"):
            p.add_argument("--folds", type=int, default=5)
            p.add_argument("--seeds", type=int, default=8, help="number of seeds: 111, 222, ... (paper: 8)")
            p.add_argument("--k-step", type=int, default=1,
                           help="evaluate k = 1, 1+step, ..., all maps (paper: every k, step 1)")
            p.add_argument("--n-random", type=int, default=1,
                           help="random map orderings per split for the random-subset baseline")
        if name == "heatmaps":
            p.add_argument("--top-k", type=int, help="weight only the top-k maps by data-set AIS (default: all)")
            p.add_argument("--display", choices=("default", "paper"), default="default", help=DISPLAY_HELP)
        if name in ("heatmaps", "demo"):
            p.add_argument("--out", required=name == "heatmaps", default="aisviz-demo",
                           help="folder for the PNG overlays")
        p.set_defaults(func=func)
    p = sub.add_parser("saliency", help="AIS heatmaps vs saliency maps: relative risk, CC, SIM, KL, AUC")
    _add_model_args(p, several_datasets=True)
    p.add_argument("--saliency", default="spectral_residual",
                   help="spectral_residual, fine_grained, center_bias (classic baselines, offline), deepgaze_iie "
                        "(needs internet), or a folder of per-image maps (PNG/NPY named like the images)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write image | AIS | saliency panels as PNGs here")
    p.add_argument("--display", choices=("default", "paper"), default="default", help=DISPLAY_HELP)
    p.set_defaults(func=cmd_saliency)
    p = sub.add_parser("sweep", help="score + validation over data sets x networks x layers, on Dask",
                       conflict_handler="resolve")  # --model and --layer(s) take several values here
    _add_model_args(p, several_datasets=True)
    p.add_argument("--dataset", nargs="+", default=[DEFAULT_DATASET], help="one or more catalog names or folders")
    p.add_argument("--model", nargs="+", default=["efficientnet_lite0"], help="one or more networks")
    p.add_argument("--layers", "--layer", nargs="+", dest="layers",
                   help="perturbed layers, or 'all-conv' (default: each network's default)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=8, help="number of seeds: 111, 222, ... (paper: 8)")
    p.add_argument("--k-step", type=int, default=1,
                   help="evaluate k = 1, 1+step, ..., all maps (paper: 1; 0 = the dashboard's auto step per layer)")
    p.add_argument("--n-random", type=int, default=1, help="random map orderings per split (baseline)")
    p.add_argument("--out", required=True, help="folder for the table and per-cell results (re-runs resume)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: local threads)")
    p.add_argument("--workers", type=int, default=1, help="local threads running cells at once (default: 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("serve", help="the dashboard in a browser (Voila, bound to 127.0.0.1)")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--pool-size", type=int, default=0, help="preheated kernels (each ~1.1-1.4 GB)")
    p.add_argument("--open", action="store_true", help="open a browser tab")
    p.add_argument("--cull-idle", type=int, default=600,
                   help="seconds before idle kernels (no tab open) are shut down (checked every tenth of it)")
    p.add_argument("--base-url", help="URL prefix when served behind a reverse proxy, e.g. /aisviz/")
    p.add_argument("--shared", action="store_true",
                   help="shared viewer mode: light kernels that only show the bundles in --bundles")
    p.add_argument("--bundles", help="folder of result bundles (aisviz precompute) for --shared")
    p.add_argument("--max-kernels", type=int, default=0, help="cap on visitors' kernels; 0 = none")
    p.add_argument("--hub-auth", action="store_true", help="run as a JupyterHub service (see deploy/)")
    p.set_defaults(func=cmd_serve)
    from .cli_share import add_commands

    add_commands(sub)
    p = sub.add_parser("cache", help="show or clear the feature cache")
    p.add_argument("action", choices=("show", "clear"))
    p.set_defaults(func=cmd_cache)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .catalog import DataError
    from .models import ModelError

    try:
        args.func(args)
    except (DataError, ModelError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"aisviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aisviz: interrupted (nothing half-written: caches and outputs are written atomically)",
              file=sys.stderr)
        return 130
    return 0

if __name__ == "__main__":
    sys.exit(main())
