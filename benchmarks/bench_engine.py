"""Engine benchmark: fast paths vs the naive re-run of the tail, measured in one run (ratios, not absolutes).

    python benchmarks/bench_engine.py                 # all scenarios, CPU (GPU when present)
    python benchmarks/bench_engine.py --only vgg16    # one scenario
    python benchmarks/bench_engine.py --only protocol --device cuda            # fp32, checked against fp64
    python benchmarks/bench_engine.py --only protocol --device cuda --tf32     # TF32 matrix products, checked
    python benchmarks/bench_engine.py --only protocol --silent 0.7             # CPU, 70 % silent maps

Scenarios (random activations with the paper's shapes; random weights are fine for timing):
  vgg16   : VGG-16 conv5_3 (512 x 14 x 14) -> fc7, 120 images. Leave-one-map-out over all 512 maps and one
            nested top-k curve (k = 1..512). The naive re-run is timed on a subset of masks and scaled
            linearly (its cost per mask is constant); both give identical numbers on that subset.
  pooled  : EfficientNet-Lite0 _head_act (1280 x 7 x 7) -> pooled 1280-d, 120 images; same measurements.
  protocol: the full protocol for VGG-16 shapes (LOO + each split's training AIS + 40 splits x every k x
            (top-k + one random ordering)); on CPU one split is timed and scaled to 40. The naive re-run is
            timed on 8 masks of each kind in the same process and scaled to the protocol's mask count, so
            the ratio is measured within one run. With a precision below float64 (float32, TF32) it also
            reports the largest R^2 difference from float64 on the same splits (required: <= 1e-3).
  --silent: fraction of (image, map) pairs whose activation map is all zeros. Real post-ReLU layers have
            many; random activations have none, and the fast path skips them (identical results).
  default : `aisviz demo` on the embedded default set, cold (empty cache) and warm, as subprocesses.
Each scenario runs in its own process, which reports its peak resident memory (and GPU memory).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _timed(fn):
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def _activations(n, c, h, w, silent=0.0, seed=0):
    """Post-ReLU-like activations; a fraction `silent` of the (image, map) pairs is all zeros, as real post-ReLU
    layers have (random weights never give silent maps, and the fast path skips them)."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.standard_normal((n, c, h, w)).astype(np.float32), 0)
    acts[rng.random((n, c)) < silent] = 0
    return list(acts)


def _engines(model, n, device, dtype, silent=0.0):
    import torch

    from aisviz.core.engine import make_engine
    from aisviz.models.networks import load_network

    torch.manual_seed(0)  # the same random weights in every call: the float64 check needs the same network
    net = load_network(model, weights="none")
    li, ri = net.resolve_layers(None, None)
    c, h, w = {"vgg16": (512, 14, 14), "efficientnet_lite0": (1280, 7, 7)}[model]
    acts = _activations(n, c, h, w, silent)
    net.to(device)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    fast = make_engine(net, li, ri, acts, device=device, dtype=dt)
    naive = make_engine(net, li, ri, acts, device=device, dtype=dt, method="brute")
    return fast, naive, c


def scenario_engine(model, device, dtype, naive_masks, silent):
    fast, naive, c = _engines(model, 120, device, dtype, silent)
    subset = list(range(naive_masks))
    t_fast_sub, (p_fast, x_fast) = _timed(lambda: fast.loo(subset))
    t_naive_sub, (p_naive, x_naive) = _timed(lambda: naive.loo(subset))
    t_fast_all, _ = _timed(lambda: [fast.loo(js) for js in fast.chunks(list(range(c)))])
    order = np.random.default_rng(1).permutation(c)
    ks = list(range(1, c + 1))
    t_curve_fast, _ = _timed(lambda: [p for _, p in fast.prefix_pairs(order, ks)])
    t_curve_naive_sub, _ = _timed(lambda: [p for _, p in naive.prefix_pairs(order, ks[:naive_masks])])
    scale = c / naive_masks
    return {
        "model_shapes": model, "engine": fast.kind, "device": str(device), "dtype": dtype, "n_images": 120,
        "n_maps": c, "silent_fraction": silent, "naive_masks_timed": naive_masks,
        "loo_fast_s": t_fast_all, "loo_naive_s_estimated": t_naive_sub * scale,
        "loo_speedup_same_masks": t_naive_sub / t_fast_sub,
        "loo_speedup_all_maps": t_naive_sub * scale / t_fast_all,
        "curve_fast_s": t_curve_fast, "curve_naive_s_estimated": t_curve_naive_sub * scale,
        "curve_speedup": t_curve_naive_sub * scale / t_curve_fast,
        "max_abs_diff_pairs": float((p_fast - p_naive).abs().max()),
        "max_abs_diff_image_rows": float((x_fast - x_naive).abs().max()),
    }


def _protocol(engine, human, splits, ks, with_cross=True, orders=None):
    """The validation protocol on an engine: leave-one-map-out (with the image rows, as the scorer), each
    split's training AIS, then per split the top-k curve and one random curve on train and test pairs.
    `orders` replaces the map orderings (a precision check must compare curves of the same masks: nearly tied
    AIS can swap places between float32 and float64). Returns (seconds for the shared part, seconds per
    split, the splits' train/test curves, the training AIS, the orderings used)."""
    import torch

    from aisviz.core.alignment import AlignmentTarget, SubsetAlignments

    c = engine.n_maps
    t0 = time.perf_counter()
    full = engine.full_rsm()[np.triu_indices(len(human), 1)]
    if with_cross:
        for js in engine.chunks(list(range(c))):
            engine.loo(js)
    subsets = SubsetAlignments(human, [train for _, _, train, _ in splits], center=float(full.mean()))
    loo = np.concatenate([subsets(engine.loo_pairs(js)) for js in engine.chunks(list(range(c)))], 1)
    ais = subsets(full[None].double()) - loo
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t_shared = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    if orders is None:
        orders = [o for s in range(len(splits)) for o in (np.argsort(-ais[s], kind="stable"), rng.permutation(c))]
    curves, t0 = [], time.perf_counter()
    for s, (seed, fold, train, test) in enumerate(splits):
        tr, te = AlignmentTarget(human, train), AlignmentTarget(human, test)
        for o in orders[2 * s: 2 * s + 2]:
            out = [(tr(p), te(p)) for _, p in engine.prefix_pairs(o, ks)]
            curves.append(np.concatenate([np.stack(x, 1) for x in out]))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return t_shared, (time.perf_counter() - t0) / len(splits), np.stack(curves), ais, orders


def _breakdown(fn, top=6):
    """Where the time of fn goes: the operators with the most self time (torch profiler), as shares of the
    total, e.g. "aten::addmm 48%" (the head's Linear layer) -- the profile the protocol's ratio rests on."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
    events = prof.key_averages()
    device = torch.cuda.is_available()
    def self_time(e):
        return e.self_device_time_total if device else e.self_cpu_time_total
    total = sum(self_time(e) for e in events) or 1
    ranked = sorted(events, key=self_time, reverse=True)[:top]
    return ", ".join(f"{e.key} {100 * self_time(e) / total:.0f}%" for e in ranked)


def scenario_protocol(device, dtype, silent, n_splits, check_float64):
    """LOO AIS + splits x every k x (ranked + one random ordering) for VGG-16 shapes, fast path, against the
    naive re-run timed on a few masks in the same process and scaled to the protocol's mask count."""
    import torch

    from aisviz.core.splits import kfold_splits

    fast, naive, c = _engines("vgg16", 120, device, dtype, silent)
    rng = np.random.default_rng(0)
    human = np.corrcoef(rng.standard_normal((120, 30)))
    splits = kfold_splits(120, 5)[:n_splits]
    ks = list(range(1, c + 1))
    order = rng.permutation(c)

    def naive_per_mask():  # every mask re-runs the tail on every image: its cost per mask is constant
        t_loo, _ = _timed(lambda: naive.loo(list(range(8))))
        t_prefix, _ = _timed(lambda: [p for _, p in naive.prefix_pairs(order, ks[:8])])
        return np.array([t_loo, t_prefix]) / 8

    # timed before and after the fast path and averaged, so that a shared machine's load drifts into both
    before = naive_per_mask()
    t_shared, t_split, curves, ais, orders = _protocol(fast, human, splits, ks)
    per_mask = (before + naive_per_mask()) / 2
    naive_shared, naive_split = per_mask[0] * c, per_mask[1] * 2 * c
    res = {"scenario": "full protocol, VGG-16 shapes (conv5_3 -> fc7), 120 images", "device": str(device),
           "dtype": dtype, "tf32": bool(torch.backends.cuda.matmul.allow_tf32), "silent_fraction": silent,
           "head_rows_skipped": 1 - fast.rows_run / (fast.n * (1 + 2 * c + 2 * n_splits * (c + 1))),
           "splits_timed": n_splits, "fast_shared_s": t_shared, "fast_per_split_s": t_split,
           "naive_shared_s_estimated": naive_shared, "naive_per_split_s_estimated": naive_split,
           "per_split_ratio": naive_split / t_split,
           "fast_40_splits_s": t_shared + 40 * t_split, "naive_40_splits_s_estimated": naive_shared + 40 * naive_split,
           "protocol_ratio_40_splits": (naive_shared + 40 * naive_split) / (t_shared + 40 * t_split)}
    res["fast_curve_breakdown"] = _breakdown(lambda: [p for _, p in fast.prefix_pairs(order, ks[:128])])
    if check_float64 and (dtype != "float64" or res["tf32"]):  # the same splits in float64 without TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        exact, _, _ = _engines("vgg16", 120, device, "float64", silent)
        _, _, reference, exact_ais, _ = _protocol(exact, human, splits, ks, with_cross=False, orders=orders)
        res["max_abs_ais_error_vs_float64"] = float(np.nanmax(np.abs(ais - exact_ais)))
        res["max_abs_r2_error_vs_float64"] = float(np.nanmax(np.abs(curves - reference)))  # the same orderings
        res["r2_error_within_1e-3"] = res["max_abs_r2_error_vs_float64"] <= 1e-3
    return res


def scenario_default():
    home = tempfile.mkdtemp(prefix="aisviz-bench-")
    env = {**os.environ, "AISVIZ_HOME": home}
    out = []
    for label in ("cold", "warm"):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aisviz", "demo", "--quiet", "--out", os.path.join(home, "out")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        out.append((label, time.perf_counter() - t))
    return {"scenario": "aisviz demo (embedded default, 5 folds x 8 seeds, every k)",
            **{f"{label}_s": t for label, t in out}}


def _child(args):
    import torch

    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    from aisviz.models.features import resolve_device

    device = resolve_device(args.device)
    args.silent = float(args.silent)
    if args.scenario == "vgg16":
        res = scenario_engine("vgg16", device, args.dtype, naive_masks=16, silent=args.silent)
    elif args.scenario == "pooled":
        res = scenario_engine("efficientnet_lite0", device, args.dtype, naive_masks=64, silent=args.silent)
    elif args.scenario == "protocol":
        n_splits = args.splits or (40 if str(device).startswith("cuda") else 1)
        res = scenario_protocol(device, args.dtype, args.silent, n_splits,
                                check_float64=args.check_float64 or str(device).startswith("cuda"))
    else:
        res = scenario_default()
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("vgg16", "pooled", "protocol", "default"))
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on NVIDIA GPUs")
    p.add_argument("--silent", default="0.5",
                   help="fraction of (image, map) pairs whose activation map is all zeros (default 0.5); several, "
                        "comma-separated (e.g. 0.3,0.5,0.7), run the scenarios once for each")
    p.add_argument("--check-float64", action="store_true",
                   help="protocol: also run it in float64 and report the largest R^2 difference (always on a GPU)")
    p.add_argument("--splits", type=int, help="protocol: splits timed (default: 40 on a GPU, 1 on the CPU)")
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scenario:
        return _child(args)
    names = [args.only] if args.only else ["vgg16", "pooled", "protocol", "default"]
    fractions = args.silent.split(",")   # `default` runs the real demo: silent maps are what they are
    runs = [(n, f) for f in fractions for n in names if n != "default"] + [("default", "") for n in names
                                                                          if n == "default"]
    for name, silent in runs:
        cmd = [sys.executable, __file__, "--scenario", name, "--device", args.device, "--dtype", args.dtype,
               "--silent", silent or "0"] + (["--splits", str(args.splits)] if args.splits else []) \
            + (["--check-float64"] if args.check_float64 else [])
        res = subprocess.run(cmd + (["--tf32"] if args.tf32 else []), capture_output=True, text=True)
        if res.returncode:
            print(f"{name}: failed\n{res.stderr[-2000:]}")
            continue
        result = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"== {name}" + ("" if name == "default" else f" (silent {silent})"))
        for k, v in result.items():
            print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")


if __name__ == "__main__":
    main()
