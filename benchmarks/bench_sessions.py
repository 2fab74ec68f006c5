"""Load test: N concurrent real browser sessions on one dashboard server.

    python benchmarks/bench_sessions.py --bundles DIR --n 3 10 30        # shared viewer mode
    python benchmarks/bench_sessions.py --researcher --n 4               # researcher mode (computes)

Starts `aisviz serve` (shared: `--shared --bundles DIR`; researcher: the default dashboard) on a free
127.0.0.1 port, then for each N opens N pages at once, each in its own browser context (its own cookies,
so its own Voila kernel) of one headless Debian Chromium (/usr/bin/chromium, driven by Playwright; every
request that is not to the server is aborted). Each session:
Visitors arrive all at once, or spread evenly over --ramp seconds (a class following a link).
- open: from the navigation until the page is interactive (the top-k slider enabled and the thumbnail
  grid shown);
- slider: 5 times, ArrowRight on the slider handle, until the read-out text changes;
- hover: 5 times, the mouse onto another thumbnail, until the detail panel's title changes.
Reports p50/p95 of each, RSS of the server and of every kernel (and PSS: the kernels' shared pages of the
memory-mapped bundles divided among them), the CPU seconds spent by the server (Voila and its kernels)
and by the browsers during the run (here they share the machine; in a class the browsers do not), and
errors (failed steps, page errors, error messages shown in the dashboard). Sessions are closed (their
kernels shut down) before the next N. Prints one JSON object per N, and a Markdown table at the end
(--markdown).

--record (shared mode) writes the viewer kernel's measured memory (of the last N) to
aisviz/server/viewer_memory.json: the one figure `aisviz serve --help`, the README, the instructor guide and
the documentation quote (tests/unit/test_viewer_memory.py checks that they all quote it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
STEPS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def kernels_of(pid):
    import psutil

    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


def memory(pid) -> dict:
    """RSS of the server process (Voila) and of each kernel; PSS of the kernels (Linux)."""
    import psutil

    server = psutil.Process(pid)
    # Voila is the server's direct child (kernels are Voila's children; their connection files also say "voila")
    voila = [p for p in server.children() if "aisviz.server.voila_server" in " ".join(p.cmdline())]
    kernels = kernels_of(pid)
    rss = [k.memory_info().rss / 2**20 for k in kernels]
    try:
        pss = [k.memory_full_info().pss / 2**20 for k in kernels]
    except (psutil.AccessDenied, AttributeError):
        pss = []
    server_rss = sum(p.memory_info().rss for p in [server, *voila]) / 2**20
    return {"kernels": len(kernels), "server_rss_mb": round(server_rss),
            "voila_rss_mb": round(sum(p.memory_info().rss for p in voila) / 2**20),
            "kernel_rss_mb_mean": round(statistics.mean(rss)) if rss else None,
            "kernel_rss_mb_max": round(max(rss)) if rss else None,
            "kernel_pss_mb_mean": round(statistics.mean(pss)) if pss else None,
            "total_rss_mb": round(server_rss + sum(rss)),
            "total_pss_mb": round(server_rss + sum(pss)) if pss else None}


def cpu_seconds(processes) -> dict:
    """pid -> user + system CPU seconds, for the processes still alive."""
    import psutil

    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return out


def pss_mb(process) -> float:
    """Proportional set size (shared pages divided among their users); 0 for a process that has ended."""
    import psutil

    try:
        return process.memory_full_info().pss / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def server_tree(pid):
    import psutil

    try:
        server = psutil.Process(pid)
        return [server, *server.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def browser_tree():
    """This process's Chromium processes (Playwright's driver starts them)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


async def session(browser, url, index, results, open_timeout, delay=0.0):
    await asyncio.sleep(delay)
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    local = url.rsplit("/", 1)[0] if url.count("/") > 3 else url
    await ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
                    else route.abort())
    page = await ctx.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    out = {"open_s": None, "slider_ms": [], "hover_ms": [], "hover_unchanged": 0, "errors": errors}
    try:
        t0 = time.perf_counter()
        await page.goto(url, timeout=open_timeout * 1000)
        await page.wait_for_function(
            "() => { const h = document.querySelector('.aisviz-k .noUi-handle');"
            " const g = document.querySelector('.aisviz-grid');"
            " const s = document.querySelector('.aisviz-k');"
            " return h && g && g.offsetWidth > 0 && s && !s.classList.contains('mod-disabled')"
            " && !s.querySelector('[disabled]'); }", timeout=open_timeout * 1000)
        out["open_s"] = time.perf_counter() - t0
        handle = page.locator(".aisviz-k .noUi-handle")
        readout = page.locator(".aisviz-readout")
        for _ in range(STEPS):
            before = await readout.inner_text()
            await handle.focus()
            t = time.perf_counter()
            await page.keyboard.press("ArrowRight")
            await page.wait_for_function("(b) => document.querySelector('.aisviz-readout').innerText !== b",
                                         arg=before, timeout=30_000)
            out["slider_ms"].append((time.perf_counter() - t) * 1000)
        grid = page.locator(".aisviz-grid")
        await grid.scroll_into_view_if_needed()       # mouse events only reach what is on screen
        box = await grid.bounding_box()
        title = page.locator(".aisviz-detail-title")
        for step in range(STEPS):
            before = await title.inner_text()
            # a different thumbnail each time: spread over the grid's width, first and second row
            x = box["x"] + box["width"] * (0.05 + 0.9 * (((index * 3 + step * 7) % 10) / 10 + 0.05))
            y = box["y"] + min(box["height"] / 2, 20 + 60 * (step % 2))
            t = time.perf_counter()
            await page.mouse.move(x, y)
            try:
                await page.wait_for_function(
                    "(b) => document.querySelector('.aisviz-detail-title').innerText !== b", arg=before,
                    timeout=10_000)
                out["hover_ms"].append((time.perf_counter() - t) * 1000)
            except Exception:  # noqa: BLE001 - the pointer landed on the image already shown, or a gap
                out["hover_unchanged"] += 1
        shown = await page.locator(".aisviz-message").all_inner_texts()
        errors.extend(f"dashboard message: {m}" for m in shown if m.strip())
    except Exception as exc:  # noqa: BLE001 - a failed session is an error of the run, not of the bench
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    results[index] = (out, ctx)


async def run_n(url, n, open_timeout, server_pid, ramp=0.0):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results = [None] * n
        server_before = cpu_seconds(server_tree(server_pid))
        t0 = time.perf_counter()
        await asyncio.gather(*(session(browser, url, i, results, open_timeout, ramp * i / n) for i in range(n)))
        wall = time.perf_counter() - t0
        mem = memory(server_pid)
        # CPU spent during the run by the server (Voila and its kernels) and by the browsers: on this bench
        # they share one machine; in a class the browsers run on the visitors' own computers.
        server_cpu = sum(v - server_before.get(pid, 0.0) for pid, v in cpu_seconds(server_tree(server_pid)).items())
        browser_cpu = sum(cpu_seconds(browser_tree()).values())
        browser_pss = sum(pss_mb(p) for p in browser_tree())
        for _, ctx in results:          # as a visitor closing the tab: the page's unload beacon runs
            for page in ctx.pages:
                await page.close(run_before_unload=True)
        await asyncio.sleep(2)          # the browser stays open, as a visitor's does, while the beacons go out
        for _, ctx in results:
            await ctx.close()
        await browser.close()
    outs = [r[0] for r in results]
    opens = [o["open_s"] for o in outs if o["open_s"] is not None]
    sliders = [v for o in outs for v in o["slider_ms"]]
    hovers = [v for o in outs for v in o["hover_ms"]]
    errors = [e for o in outs for e in o["errors"]]
    r = lambda v, d=0: None if v is None else round(v, d)  # noqa: E731
    return {"n": n, "opened": len(opens), "wall_s": r(wall, 1),
            "open_s_p50": r(percentile(opens, 50), 1), "open_s_p95": r(percentile(opens, 95), 1),
            "slider_ms_p50": r(percentile(sliders, 50)), "slider_ms_p95": r(percentile(sliders, 95)),
            "hover_ms_p50": r(percentile(hovers, 50)), "hover_ms_p95": r(percentile(hovers, 95)),
            "hover_unchanged": sum(o["hover_unchanged"] for o in outs),   # not counted as samples or errors
            "server_cpu_s": r(server_cpu, 1), "browser_cpu_s": r(browser_cpu, 1), "browser_pss_mb": r(browser_pss),
            **mem,
            "errors": len(errors), "error_examples": sorted(set(errors))[:5]}


def kernels_left(pid, keep=0, timeout=60):
    """Kernels still running `timeout` s after every tab closed (preheated ones, `keep`, stay)."""
    end = time.time() + timeout
    while len(kernels_of(pid)) > keep and time.time() < end:
        time.sleep(0.5)
    return len(kernels_of(pid))


def record(row: dict, argv: list, load_before: tuple) -> None:
    """Write the viewer kernel's measured memory: the one figure every document quotes."""
    import datetime
    import platform

    import psutil

    from aisviz.server.viewer_memory import FIGURE_FILE

    if row["errors"] or row["opened"] < row["n"] or not row["kernel_rss_mb_mean"]:
        sys.exit(f"not recorded: {row['opened']} of {row['n']} pages opened, {row['errors']} errors")
    figure = {"kernel_rss_mb": row["kernel_rss_mb_mean"], "kernel_rss_mb_max": row["kernel_rss_mb_max"],
              "kernel_pss_mb": row["kernel_pss_mb_mean"], "viewers": row["n"],
              "measured": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                         f"{psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}",
              "load_average_1min_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
              "command": "python benchmarks/bench_sessions.py " + " ".join(argv)}
    FIGURE_FILE.write_text(json.dumps(figure, indent=1) + "\n")
    print(f"recorded {figure['kernel_rss_mb']} MB per viewer kernel in {FIGURE_FILE}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", help="bundle folder for shared mode (aisviz precompute)")
    ap.add_argument("--researcher", action="store_true", help="researcher mode (the default dashboard)")
    ap.add_argument("--n", type=int, nargs="+", default=[3], help="numbers of concurrent sessions")
    ap.add_argument("--open-timeout", type=float, default=300, help="seconds a page may take to open")
    ap.add_argument("--pool-size", type=int, default=0, help="preheated kernels (aisviz serve --pool-size)")
    ap.add_argument("--ramp", type=float, default=0.0,
                    help="arrivals spread evenly over this many seconds (default 0: all at once)")
    ap.add_argument("--port", type=int, default=0, help="port for the server (default: a free one)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--record", action="store_true",
                    help="shared mode: write the viewer kernel's memory (last N) to aisviz/server/viewer_memory.json")
    args = ap.parse_args(argv)
    if not args.researcher and not args.bundles:
        ap.error("give --bundles DIR (shared mode) or --researcher")
    if args.record and args.researcher:
        ap.error("--record writes the viewer kernel's figure: run it in shared mode (--bundles DIR)")
    load_before = os.getloadavg()
    port = args.port or free_port()
    # every session comes from 127.0.0.1: no per-client limits (a class has one address per student)
    cmd = [sys.executable, "-m", "aisviz", "serve", "--port", str(port), "--max-kernels", str(max(args.n) + 5),
           "--kernels-per-client", "0", "--pages-per-minute", "0"]
    if not args.researcher:
        cmd += ["--shared", "--bundles", args.bundles]
    if args.pool_size:
        cmd += ["--pool-size", str(args.pool_size)]
    home = tempfile.mkdtemp(prefix="aisviz-bench-")
    env = dict(os.environ, AISVIZ_APP_LOG=str(Path(home) / "dashboard.log"))
    log = open(Path(home) / "serve.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        end = time.time() + 120
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"the server stopped: {(Path(home) / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/"
        for n in args.n:
            row = asyncio.run(run_n(url, n, args.open_timeout, proc.pid, args.ramp))
            row["mode"] = ("researcher" if args.researcher else "shared") + (
                f", {args.pool_size} preheated" if args.pool_size else "") + (
                f", arrivals over {args.ramp:g} s" if args.ramp else "")
            row["kernels_left_after_close"] = kernels_left(proc.pid, keep=args.pool_size)
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.record and rows:
        record(rows[-1], argv if argv is not None else sys.argv[1:], load_before)
    if args.markdown:
        print("\n| mode | N | opened | open p50 / p95 (s) | slider p50 / p95 (ms) | hover p50 / p95 (ms) | "
              "kernel RSS / PSS mean (MB) | total RSS (MB) | CPU s server / browsers | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['mode']} | {r['n']} | {r['opened']} | {r['open_s_p50']} / {r['open_s_p95']} | "
                  f"{r['slider_ms_p50']} / {r['slider_ms_p95']} | {r['hover_ms_p50']} / {r['hover_ms_p95']} | "
                  f"{r['kernel_rss_mb_mean']} / {r['kernel_pss_mb_mean']} | {r['total_rss_mb']} | "
                  f"{r['server_cpu_s']} / {r['browser_cpu_s']} | {r['errors']} |")
    return rows


if __name__ == "__main__":
    main()
