"""Memory benchmark: time and peak resident memory of `score` and `validate` as the number of images grows.

    python benchmarks/bench_memory.py                          # 120, 250, 500, 1000 and 2000 images
    python benchmarks/bench_memory.py --sizes 120 500 --k-step 8 --seeds 111 222

Each size runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own. Images are the embedded
generator's (aisviz.io.synthetic: gratings and distractors, 224 px) with its simulated observer's similarity
matrix; the network is the offline pretrained EfficientNet-Lite0 with its default layers (_head_act ->
pooled 1280-d), features computed without the disk cache. `score` = feature extraction + leave-one-map-out
data-set and image AIS; `validate` = TopKValidation with --folds x --seeds splits and every --k-step-th k
(defaults: 5 folds x 1 seed, k step 16, one random ordering per split, so that every size runs the same
protocol in minutes; the paper's 8 seeds and every k cost proportionally more time, not more memory).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(args):
    import torch

    from aisviz.io.synthetic import make_default_set
    from aisviz.models.networks import load_network
    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    dataset = make_default_set(args.n, seed=1)
    net = load_network("efficientnet_lite0")
    t_data = time.perf_counter() - t
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    def trace(p):  # with --trace: resident memory now and at peak as the fit goes, on stderr
        if args.trace:
            now = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2 ** 20
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{time.perf_counter() - t:7.1f}s {p.stage} {p.done:.2f}/{p.total} rss {now:.0f} MB "
                  f"peak {peak:.0f} MB",
                  file=sys.stderr, flush=True)

    t = time.perf_counter()
    scorer = AlignmentImportance(progress=False, use_cache=False).fit(dataset, network=net, callback=trace)
    t_score = time.perf_counter() - t
    rss_score = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    validation = TopKValidation(n_folds=args.folds, seeds=args.seeds, k_step=args.k_step,
                                progress=False).fit(scorer, callback=trace)
    t_validate = time.perf_counter() - t
    print(json.dumps({
        "n_images": args.n, "engine": scorer.engine_.kind, "generate_s": t_data, "score_s": t_score,
        "validate_s": t_validate, "splits": len(validation.splits_), "k_values": len(validation.k_values_),
        "peak_rss_mb_after_load": rss_data, "peak_rss_mb_after_score": rss_score,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "r2_all": scorer.r2_all_, "mean_r2_test_topk": validation.summary_["mean_r2_test_topk"]}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[120, 250, 500, 1000, 2000])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[111])
    p.add_argument("--k-step", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--trace", action="store_true", help="print resident memory as each fit goes (stderr)")
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.n:
        return _child(args)
    print(f"{'images':>7} {'score s':>8} {'validate s':>10} {'splits':>6} {'k':>4} {'peak RSS MB':>11}  "
          f"(after load / after score)")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--n", str(n), "--folds", str(args.folds), "--k-step", str(args.k_step),
               "--threads", str(args.threads), "--seeds", *map(str, args.seeds)] + (["--trace"] if args.trace else [])
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.trace else subprocess.PIPE, text=True)
        if res.returncode:
            print(f"{n:>7} failed (exit {res.returncode}): {(res.stderr or '').strip().splitlines()[-1:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{n:>7} {r['score_s']:8.1f} {r['validate_s']:10.1f} {r['splits']:6d} {r['k_values']:4d} "
              f"{r['peak_rss_mb']:11.0f}  ({r['peak_rss_mb_after_load']:.0f} / {r['peak_rss_mb_after_score']:.0f})",
              flush=True)


if __name__ == "__main__":
    main()
