"""Engine benchmark: fast paths vs the naive re-run of the tail, measured in one run (ratios, not absolutes).

    python benchmarks/bench_engine.py                 # all scenarios, CPU (GPU when present)
    python benchmarks/bench_engine.py --only vgg16    # one scenario
    python benchmarks/bench_engine.py --device cuda --tf32

Scenarios (random activations with the paper's shapes; random weights are fine for timing):
  vgg16   : VGG-16 conv5_3 (512 x 14 x 14) -> fc7, 120 images. Leave-one-map-out over all 512 maps and one
            nested top-k curve (k = 1..512). The naive re-run is timed on a subset of masks and scaled
            linearly (its cost per mask is constant); both give identical numbers on that subset.
  pooled  : EfficientNet-Lite0 _head_act (1280 x 7 x 7) -> pooled 1280-d, 120 images; same measurements.
  protocol: the full protocol for VGG-16 shapes (LOO + 40 splits x every k x (top-k + random)), fast path
            only; on CPU it is estimated from one split.
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


def _activations(n, c, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return [np.maximum(rng.standard_normal((c, h, w)).astype(np.float32), 0) for _ in range(n)]


def _engines(model, n, device, dtype):
    import torch

    from aisviz.engine import make_engine
    from aisviz.models import load_network

    net = load_network(model, weights="none")
    li, ri = net.resolve_layers(None, None)
    c, h, w = {"vgg16": (512, 14, 14), "efficientnet_lite0": (1280, 7, 7)}[model]
    acts = _activations(n, c, h, w)
    net.to(device)
    dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    fast = make_engine(net, li, ri, acts, device=device, dtype=dt)
    naive = make_engine(net, li, ri, acts, device=device, dtype=dt, method="brute")
    return fast, naive, c


def scenario_engine(model, device, dtype, naive_masks):
    fast, naive, c = _engines(model, 120, device, dtype)
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
        "n_maps": c, "naive_masks_timed": naive_masks,
        "loo_fast_s": t_fast_all, "loo_naive_s_estimated": t_naive_sub * scale,
        "loo_speedup_same_masks": t_naive_sub / t_fast_sub,
        "loo_speedup_all_maps": t_naive_sub * scale / t_fast_all,
        "curve_fast_s": t_curve_fast, "curve_naive_s_estimated": t_curve_naive_sub * scale,
        "curve_speedup": t_curve_naive_sub * scale / t_curve_fast,
        "max_abs_diff_pairs": float((p_fast - p_naive).abs().max()),
        "max_abs_diff_image_rows": float((x_fast - x_naive).abs().max()),
    }


def scenario_protocol(device, dtype):
    """LOO AIS + 40 splits x every k x (ranked + one random ordering) for VGG-16 shapes."""
    import torch

    from aisviz.ais import AlignmentTarget, kfold_splits

    fast, _, c = _engines("vgg16", 120, device, dtype)
    rng = np.random.default_rng(0)
    human = np.corrcoef(rng.standard_normal((120, 30)))
    splits = kfold_splits(120, 5)
    ks = list(range(1, c + 1))

    def run(split_list):
        loo = torch.cat([fast.loo(js)[0] for js in fast.chunks(list(range(c)))])
        for seed, fold, train, test in split_list:
            tr, te = AlignmentTarget(human, train), AlignmentTarget(human, test)
            order = np.argsort(-(tr(fast.full_rsm()[np.triu_indices(120, 1)]) - tr(loo)), kind="stable")
            for o in (order, rng.permutation(c)):
                for _, pairs in fast.prefix_pairs(o, ks):
                    tr(pairs), te(pairs)

    on_gpu = str(device).startswith("cuda")
    t, _ = _timed(lambda: run(splits if on_gpu else splits[:1]))
    return {"scenario": "full protocol, VGG-16 shapes", "device": str(device), "dtype": dtype,
            "tf32": bool(torch.backends.cuda.matmul.allow_tf32), "splits_timed": 40 if on_gpu else 1,
            "seconds_for_40_splits": t if on_gpu else None, "seconds_one_split": None if on_gpu else t,
            "estimated_seconds_40_splits": t if on_gpu else 40 * t}


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
    from aisviz.features import resolve_device

    device = resolve_device(args.device)
    if args.scenario == "vgg16":
        res = scenario_engine("vgg16", device, args.dtype, naive_masks=16)
    elif args.scenario == "pooled":
        res = scenario_engine("efficientnet_lite0", device, args.dtype, naive_masks=64)
    elif args.scenario == "protocol":
        res = scenario_protocol(device, args.dtype)
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
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scenario:
        return _child(args)
    for name in [args.only] if args.only else ["vgg16", "pooled", "protocol", "default"]:
        cmd = [sys.executable, __file__, "--scenario", name, "--device", args.device, "--dtype", args.dtype]
        res = subprocess.run(cmd + (["--tf32"] if args.tf32 else []), capture_output=True, text=True)
        if res.returncode:
            print(f"{name}: failed\n{res.stderr[-2000:]}")
            continue
        result = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"== {name}")
        for k, v in result.items():
            print(f"  {k:28s} {v:.4g}" if isinstance(v, float) else f"  {k:28s} {v}")


if __name__ == "__main__":
    main()
