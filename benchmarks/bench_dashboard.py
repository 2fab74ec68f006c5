"""Dashboard latencies in a real browser (Voila + headless Chromium), with cached results.

    PYTHONPATH=$PWD python benchmarks/bench_dashboard.py [--no-preheat] [--repeats 15] [--width 1280]

Measures, on one page of the default dashboard (generated set, EfficientNet-Lite0):
- slider: ArrowRight on the top-k slider until the curve's marker and the read-out show the new k;
- hover: mouse over a thumbnail until the detail panel and the metrics show that image;
- page open to interactive: navigation until the read-out and the detail panel exist, cold (a kernel
  starts and computes; the feature and saliency caches on disk are warm) and with a preheated kernel
  (`--pool_size=1`, after the pool has filled).
Prints medians (and all values) as JSON. Figures depend on the machine's load: compare within one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import dashboard_pages as dp  # noqa: E402


def _warm_caches(home: Path):
    """Features and saliency maps on disk, as a returning user has them."""
    import os

    os.environ["AISVIZ_HOME"] = str(home)
    from aisviz.app import default_provider
    from aisviz.io.catalog import load_dataset
    from aisviz.pipeline.importance import AlignmentImportance
    from aisviz.saliency.providers import saliency_maps

    ds = load_dataset("synthetic")
    AlignmentImportance(progress=False).fit(ds)
    saliency_maps(ds, default_provider())


def _interactions(page, repeats: int) -> dict:
    slider = [dp.move_slider(page) for _ in range(repeats)]
    hover = [dp.hover(page, i) for i in [(7 * j + 3) % 48 for j in range(repeats)]]
    return {"slider_ms": slider, "hover_ms": hover}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--no-preheat", action="store_true", help="skip the preheated-kernel measurement")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = {"viewport": f"{args.width}x800", "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        home = Path(tmp)
        _warm_caches(home)
        browser = p.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
        with dp.voila_server(home) as server:
            page, seconds = dp.open_dashboard(browser, server, args.width, 800)
            out["open_cold_s"] = round(seconds, 2)
            page.wait_for_timeout(1000)
            out.update(_interactions(page, args.repeats))
            page.context.close()
        if not args.no_preheat:
            with dp.voila_server(home, pool_size=1) as server:
                time.sleep(45)  # let the pool's kernel start and run the notebook
                page, seconds = dp.open_dashboard(browser, server, args.width, 800)
                out["open_preheated_s"] = round(seconds, 2)
                page.context.close()
        browser.close()
    for key in ("slider_ms", "hover_ms"):
        out[f"{key}_median"] = round(statistics.median(out[key]), 1)
        out[key] = [round(x, 1) for x in out[key]]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
