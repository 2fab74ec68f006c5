"""The command line's non-computing commands: wall time per call, repeated (a hyperfine-style loop).

    python benchmarks/bench_cli.py                  # 15 repeats of each command
    python benchmarks/bench_cli.py --repeats 30 --json

Each command runs as a fresh process (`python -m aisviz ...`), as a user's shell runs it, with a private
AISVIZ_HOME. `models` lists torchvision's networks from a kept list after its first call; the first call
(which imports torchvision to make the list) is reported on its own. The goal is < 0.5 s per call.
Also reported: whether the command imported torch (it should not).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

COMMANDS = (["--version"], ["--help"], ["datasets"], ["models"], ["cache", "show"])
PROBE = ("import runpy, sys; sys.argv = ['aisviz'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('aisviz', run_name='__main__')\n"
         "finally:\n    print('TORCH-LOADED' if 'torch' in sys.modules else 'TORCH-FREE', file=sys.stderr)")


def _call(args: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aisviz", *args], env=env, capture_output=True, check=True, timeout=300)
    return time.perf_counter() - t


def _loads_torch(args: list[str], env: dict) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    return "TORCH-LOADED" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, AISVIZ_HOME=home)
        first_models = _call(["models"], env)
        rows = []
        for command in COMMANDS:
            _call(command, env)  # one warm-up call: the page cache holds the package's files
            times = np.array([_call(command, env) for _ in range(args.repeats)])
            rows.append({"command": "aisviz " + " ".join(command), "median_s": float(np.median(times)),
                         "p95_s": float(np.percentile(times, 95)), "max_s": float(times.max()),
                         "repeats": args.repeats, "imports_torch": _loads_torch(command, env)})
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"rows": rows, "models_first_call_s": first_models, "load": load}, indent=1))
        return
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"{'command':22s} {'median':>8s} {'p95':>8s} {'max':>8s}  torch")
    for r in rows:
        print(f"{r['command']:22s} {r['median_s']:7.3f}s {r['p95_s']:7.3f}s {r['max_s']:7.3f}s  "
              f"{'imported' if r['imports_torch'] else 'not imported'}")
    print(f"`aisviz models`, first call (lists torchvision's networks once): {first_models:.2f} s")


if __name__ == "__main__":
    main()
