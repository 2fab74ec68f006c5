"""Dashboard latencies in a real browser (Voila + headless Chromium), with cached results.

    PYTHONPATH=$PWD python benchmarks/bench_dashboard.py [--no-preheat] [--repeats 15] [--width 1280] [--port P]

Measures, on one page of the default dashboard (generated set, EfficientNet-Lite0):
- slider: ArrowRight on the top-k slider until the curve's marker and the read-out show the new k;
- hover: mouse over a thumbnail until the detail panel and the metrics show that image;
  (both timed from Python around Playwright's calls: they include its round trips)
- slider_in_page / hover_in_page: the same two gestures timed in the page, from the input event's timeStamp
  (performance.now()'s clock) until the DOM shows the new marker and read-out / the hovered image's title and
  its new, loaded AIS overlay (a MutationObserver and every animation frame look);
- page open to interactive: navigation until the read-out and the detail panel exist, cold (a kernel
  starts and computes; the feature and saliency caches on disk are warm) and with a preheated kernel
  (`--pool_size=1`, after the pool has filled).
Prints medians, p95 (for the in-page figures) and all values as JSON, with the load average (`uptime`) before
and after. Figures depend on the machine's load: compare within one run.
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
    for _ in range(2):                       # back to k values not yet shown, so that the marker moves
        page.keyboard.press("Home")
    page.wait_for_timeout(500)
    slider_in_page = [dp.slider_latency_in_page(page) for _ in range(repeats)]
    hover_in_page = [dp.hover_latency_in_page(page, i) for i in [(5 * j + 1) % 48 for j in range(repeats)]]
    return {"slider_ms": slider, "hover_ms": hover, "slider_in_page_ms": slider_in_page,
            "hover_in_page_ms": hover_in_page}


def _p95(values) -> float:
    v = sorted(values)
    q = (len(v) - 1) * 0.95
    lo, hi = int(q), min(int(q) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (q - lo)


def _uptime() -> str:
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--no-preheat", action="store_true", help="skip the preheated-kernel measurement")
    ap.add_argument("--port", type=int, default=0, help="the Voila server's port (default: any free one)")
    args = ap.parse_args(argv)
    if args.port:
        dp.free_port = lambda: args.port
    from playwright.sync_api import sync_playwright

    out = {"viewport": f"{args.width}x800", "repeats": args.repeats, "uptime_before": _uptime()}
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
    out["uptime_after"] = _uptime()
    for key in ("slider_ms", "hover_ms", "slider_in_page_ms", "hover_in_page_ms"):
        done = [x for x in out[key] if x is not None]
        out[f"{key}_timeouts"] = len(out[key]) - len(done)
        out[f"{key}_median"] = round(statistics.median(done), 1) if done else None
        if key.endswith("in_page_ms"):
            out[f"{key}_p95"] = round(_p95(done), 1) if done else None
        out[key] = [None if x is None else round(x, 1) for x in out[key]]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
