"""The static site against the shared Voila mode, in the same run, on the same bundles (reported, not pass/fail).

    PYTHONPATH=$PWD python benchmarks/bench_site.py --bundles DIR [--repeats 15] [--opens 5] [--width 1280]

For each mode, in headless Debian Chromium:
- open to interactive: navigation until the curve, the read-out and the detail panel are shown (site: a fresh
  page from a local `python -m http.server`; shared: `aisviz serve --shared --bundles DIR`, a fresh page whose
  kernel starts, no preheated pool), median over --opens pages (shared: --opens-shared);
- slider: ArrowRight on the top-k slider until the curve's marker and the read-out show the new k, median of
  --repeats;
- hover: the mouse over a thumbnail until the detail panel and the metrics show that image, median of --repeats
  (site: the first hover of an image may load its detail file);
- server memory per viewer: the shared mode's kernel RSS per open page; the static server's RSS (one process for
  every viewer) before and after the pages.
Prints JSON. Figures depend on the machine's load: compare within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import dashboard_pages as dp  # noqa: E402
import site_pages as sp  # noqa: E402
from serve_helpers import kernel_processes, wait_listening  # noqa: E402


def _median(values) -> float:
    return round(statistics.median(values), 1)


def _rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def _interactions(page, repeats: int, n_images: int, slider, hover) -> dict:
    images = [(7 * j + 3) % n_images for j in range(repeats)]
    return {"slider_ms": [round(slider(page), 1) for _ in range(repeats)],
            "hover_ms": [round(hover(page, i), 1) for i in images]}


def bench_site(browser, bundles: Path, args) -> dict:
    from aisviz.site import write

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = write(bundles, Path(tmp) / "site")
        out = {"write_s": round(time.perf_counter() - t0, 1), "size_mb": round(report.bytes / 1e6, 1)}
        with sp.static_server(report.path) as url:
            import psutil

            server = [p for p in psutil.process_iter(["cmdline"]) if "http.server" in " ".join(p.info["cmdline"] or [])
                      and str(report.path) in " ".join(p.info["cmdline"] or [])][0]
            out["server_rss_mb_before"] = _rss_mb(server.pid)
            opens = []
            for _ in range(args.opens):
                page, seconds = sp.open_site(browser, url + "index.html", url, args.width, 800)
                opens.append(round(seconds, 2))
                page.context.close()
            page, _ = sp.open_site(browser, url + "index.html", url, args.width, 800)
            n = int(sp.attrs(page, ".aisviz-detail-inner")["n"])
            out.update(_interactions(page, args.repeats, n, lambda pg: sp.move_slider(pg), sp.hover))
            out["errors"] = page.errors
            page.context.close()
            out["server_rss_mb_after"] = _rss_mb(server.pid)
            out["server_mb_per_viewer"] = 0.0      # no process per viewer: one static server for all
        out["open_s"] = opens
    return out


def bench_shared(browser, bundles: Path, args) -> dict:
    port = dp.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AISVIZ_HOME=str(Path(tmp) / "home"), AISVIZ_APP_LOG=str(Path(tmp) / "app.log"))
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        with open(Path(tmp) / "serve.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(bundles),
                                     "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_listening(port, proc)
                server = {"url": f"http://127.0.0.1:{port}/", "port": port}
                out = {"server_rss_mb_before": _rss_mb(proc.pid)}
                opens, pages = [], []
                for _ in range(args.opens_shared):
                    page, seconds = dp.open_dashboard(browser, server, args.width, 800)
                    opens.append(round(seconds, 2))
                    pages.append(page)
                kernels = kernel_processes(proc.pid)
                out["kernels"] = len(kernels)
                out["kernel_rss_mb"] = [_rss_mb(k.pid) for k in kernels]
                out["server_mb_per_viewer"] = round(statistics.mean(out["kernel_rss_mb"]), 1) if kernels else None
                page = pages[-1]
                page.wait_for_timeout(1000)
                n = int(dp.attrs(page, ".aisviz-detail-inner")["n"])
                out.update(_interactions(page, args.repeats, n, lambda pg: dp.move_slider(pg), dp.hover))
                out["errors"] = page.errors
                for page in pages:
                    page.context.close()
                out["open_s"] = opens
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", required=True, help="bundle folder (aisviz precompute --out DIR)")
    ap.add_argument("--repeats", type=int, default=15, help="slider moves and hovers per mode (median reported)")
    ap.add_argument("--opens", type=int, default=5, help="fresh site pages opened (median reported)")
    ap.add_argument("--opens-shared", type=int, default=3, help="fresh shared-mode pages opened (each starts a kernel)")
    ap.add_argument("--width", type=int, default=1280, help="viewport width in px (height 800)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    bundles = Path(args.bundles).resolve()
    out = {"viewport": f"{args.width}x800", "repeats": args.repeats, "load_average": os.getloadavg()[0]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=sp.CHROMIUM, args=sp.CHROMIUM_ARGS)
        out["site"] = bench_site(browser, bundles, args)
        out["shared"] = bench_shared(browser, bundles, args)
        browser.close()
    for mode in ("site", "shared"):
        m = out[mode]
        m["open_s_median"] = round(statistics.median(m["open_s"]), 2)
        m["slider_ms_median"] = _median(m["slider_ms"])
        m["hover_ms_median"] = _median(m["hover_ms"])
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
