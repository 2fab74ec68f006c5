"""The sharing and teaching subcommands of `aisviz`: precompute (result bundles), site (a static site of
them) and notebooks (copy the tutorial and workshop notebooks). aisviz.cli registers them with add_commands(sub)."""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aisviz.errors import EnvironmentProblem
from aisviz.pipeline.bundles import open_catalog
from aisviz.pipeline.compute import precompute
from aisviz.site import write

NOTEBOOK_FOLDER = "notebooks"


def cmd_precompute(args: argparse.Namespace) -> None:

    out = Path(args.out)
    for dataset in args.dataset:
        for layer in args.layer or [None]:
            entry, result = precompute(out, dataset=dataset, model=args.model, layer=layer, readout=args.readout,
                                       provider=None if args.saliency == "none" else args.saliency,
                                       n_folds=args.folds, n_seeds=args.seeds, k_step=args.k_step,
                                       n_random=args.n_random, weights=args.weights, device=args.device,
                                       progress=not args.quiet, use_cache=not args.no_cache)
            s = result.summary
            print(f"added {entry.label}: test R² all maps {s['mean_r2_test_all']:.3f}, top-k* "
                  f"{s['mean_r2_test_topk']:.3f} ({s['n_splits']} splits) in {result.seconds:.0f} s")
            if result.saliency_error:
                print(f"  note: {result.saliency_error}")
    catalog = open_catalog(out, verify=True)
    print(f"{out} holds {len(catalog)} setting(s), checksums verified; share it with "
          f"`aisviz serve --shared --bundles {out}`")


def cmd_site(args):

    report = write(args.bundles, args.out, single_file=args.single_file)
    mb = report.bytes / 1e6
    if args.single_file:
        print(f"wrote {report.path} ({mb:.1f} MB, {report.settings} setting(s)): one HTML file that opens offline "
              "in any browser")
    else:
        print(f"wrote {report.path} ({mb:.1f} MB in {report.files} files, {report.settings} setting(s)): open "
              f"{report.path / 'index.html'} or serve the folder with any web server")


def packaged_notebooks() -> Path:
    """The folder of the notebooks shipped with aisviz (aisviz/notebooks in a wheel; the checkout's
    notebooks/ folder in a source checkout)."""
    folder = Path(__file__).resolve().parent.parent / NOTEBOOK_FOLDER
    if folder.is_dir() and any(folder.glob("*.ipynb")):
        return folder
    raise EnvironmentProblem("the aisviz notebooks are not installed with this copy of aisviz: reinstall it "
                            "(pip install --force-reinstall aisviz).")


def copy_notebooks(dest: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the shipped notebooks (and their guide files) to dest; existing files are kept unless
    overwrite. Returns the files written."""
    src, dest = packaged_notebooks(), Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for f in sorted(src.iterdir()):
        if f.suffix not in (".ipynb", ".md") or f.name.startswith("."):
            continue
        target = dest / f.name
        if target.exists() and not overwrite:
            continue
        shutil.copyfile(f, target)
        written.append(target)
    return written


def cmd_notebooks(args: argparse.Namespace) -> None:
    written = copy_notebooks(args.dest, overwrite=args.overwrite)
    kept = "" if args.overwrite else " (existing files kept; --overwrite replaces them)"
    print(f"copied {len(written)} file(s) to {args.dest}{kept}:")
    for f in written:
        print(f"  {f.name}")
    if not written:
        print("  nothing new", file=sys.stderr)


def add_commands(sub: Any, make: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the subcommands; make(sub, name, help, func, json_=...) is aisviz.cli's parser factory (it adds
    --quiet and the exit-code epilog)."""
    p = make(sub, "precompute", "compute what the dashboard shows and add it to a result bundle", cmd_precompute,
             json_=False)
    p.add_argument("--out", required=True, help="bundle folder (created; settings already in it are kept)")
    p.add_argument("--dataset", nargs="+", default=["synthetic"],
                   help="catalog names or folders; one setting per data set and layer")
    p.add_argument("--model", default="efficientnet_lite0", help="network (offline default)")
    p.add_argument("--layer", nargs="+", help="perturbed layer(s) (default: the network's last conv layer)")
    p.add_argument("--readout", help="read-out layer (default: the penultimate representation)")
    p.add_argument("--saliency", default="spectral_residual",
                   help="saliency provider shown beside the heatmaps, or 'none'")
    p.add_argument("--weights", choices=("pretrained", "none"), default="pretrained",
                   help="'none' = random weights, for timing and tests")
    p.add_argument("--folds", type=int, default=5, help="folds per seed (paper: 5)")
    p.add_argument("--seeds", type=int, default=8, help="number of seeds: 111, 222, ... (paper: 8)")
    p.add_argument("--k-step", type=int, default=0, help="0 = the dashboard's auto step")
    p.add_argument("--n-random", type=int, default=1, help="random map orderings per split (random baseline)")
    p.add_argument("--device", default="auto", help="'auto' (GPU when present), 'cpu', 'cuda', ...")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p = make(sub, "site", "write a static site of result bundles: opens from a file or any web server, offline",
             cmd_site, json_=False)
    p.add_argument("--bundles", required=True, help="bundle folder written by `aisviz precompute --out`")
    p.add_argument("--out", required=True,
                   help="site folder to write (created; a site written earlier is replaced), or with --single-file "
                        "the HTML file")
    p.add_argument("--single-file", action="store_true",
                   help="write one HTML file with everything inlined (for e-mail or supplementary material)")
    p = make(sub, "notebooks", "copy the tutorial and workshop notebooks (and the instructor guide) into a folder",
             cmd_notebooks, json_=False)
    p.add_argument("dest", help="folder to copy them into (created)")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist already")
