"""Dashboard latencies in a real browser (Voila + headless Chromium), with cached results.

    PYTHONPATH=$PWD python benchmarks/bench_dashboard.py [--no-preheat] [--repeats 15] [--width 1280] [--port P]

Measures, on one page of the default dashboard (generated set, EfficientNet-Lite0):
- slider: ArrowRight on the top-k slider until the curve's marker and the read-out show the new k;
- hover: mouse over a thumbnail until the detail panel and the metrics show that image;
  (both timed from Python around Playwright's calls: they include its round trips)
- slider_in_page / hover_in_page: the same two gestures timed in the page, from the input event's timeStamp
  (performance.now()'s clock) until the DOM shows the new marker and read-out / the hovered image's title and
  its new, loaded AIS overlay (a MutationObserver and every animation frame look);
- page open to interactive (navigation until the read-out, the detail panel and the curve are on the page),
  --opens times each, with the feature, saliency and result caches on disk warm (a returning user):
  cold (a fresh server per open: its kernel starts, imports, builds the Dashboard and reads the result from
  the disk cache), second tab (another page on that server: a new kernel, the same cached result) and
  preheated (`--pool_size=1`: the pool's kernel ran the notebook before the page asked; each open waits
  for the pool to refill).
Each open is broken down (ms from the navigation's start, median and p95 over the opens):
- in the page (Navigation Timing, Resource Timing and a MutationObserver): html_first_byte, html_received
  (Voila streams the page while the kernel runs the notebook), widgets_js (Voila's JS and the shared plotly
  module received), first_widget (the dashboard's box on the page), readout, detail, curve (= interactive);
- in the kernel (the dashboard log's lines, and the kernel process's start time): kernel_started,
  dashboard_building (python up and aisviz.app imported), first_request (the Dashboard built),
  result_shown (the result read, its figures built and published), and the result's source.
Prints medians, p95 and all values as JSON, with the load average (`uptime`) before and after. Figures depend
on the machine's load: compare within one run.
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
    """Features, saliency maps and the default page's result on disk, as a returning user has them."""
    import os

    os.environ["AISVIZ_HOME"] = str(home)
    from aisviz.app import Dashboard

    Dashboard(run_async=False)   # computes the notebook's default setting (features, maps, result: all cached)


# In the page, from the navigation's start: when each part of the dashboard first appears.
MARKS_JS = """(() => {
    const marks = window.__aisvizMarks = {};
    const parts = {first_widget: '.aisviz-dashboard', readout: '.aisviz-readout-inner',
                   detail: '.aisviz-detail-inner', curve: '.aisviz-curve .main-svg'};
    const look = () => { for (const [k, sel] of Object.entries(parts))
        if (!(k in marks) && document.querySelector(sel)) marks[k] = performance.now(); };
    new MutationObserver(look).observe(document, {subtree: true, childList: true});
})()"""
READ_MARKS_JS = r"""() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const js = performance.getEntriesByType('resource').filter(r => /\.js(\?|$)/.test(r.name));
    const plotly = js.filter(r => r.name.includes('plotly-widget.js'));
    return Object.assign({origin: performance.timeOrigin, html_first_byte: nav.responseStart,
        html_received: nav.responseEnd,
        widgets_js: js.length ? Math.max(...js.map(r => r.responseEnd)) : null,
        plotly_js: plotly.length ? plotly[0].responseEnd : null}, window.__aisvizMarks);
}"""
KERNEL_LINES = {"dashboard: building": "dashboard_building", "dashboard: request 1 ": "first_request",
                "dashboard: shown a result": "result_shown"}


def _kernel_marks(log: Path, origin_ms: float, known: set) -> dict:
    """The kernel's part of an open, from the dashboard log: the first kernel (pid) not in `known` (added to
    it); ms from the page's navigation start (origin_ms, epoch)."""
    import datetime
    import re

    import psutil

    by_pid: dict = {}
    for line in log.read_text().splitlines():
        m = re.match(r"(\S+ \S+) INFO aisviz.app \[pid (\d+)\] (.*)", line)
        if not m or int(m.group(2)) in known:
            continue
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000 - origin_ms
        marks = by_pid.setdefault(int(m.group(2)), {})
        for start, name in KERNEL_LINES.items():
            if m.group(3).startswith(start) and name not in marks:
                marks[name] = when
                if name == "result_shown":
                    marks["source"] = m.group(3).split("source: ")[1].split(",")[0]
    if not by_pid:
        return {}
    pid = min(by_pid)  # pids grow: the oldest kernel not yet measured
    known.add(pid)
    try:
        by_pid[pid]["kernel_started"] = psutil.Process(pid).create_time() * 1000 - origin_ms
    except psutil.Error:
        pass
    return by_pid[pid]


def _open(browser, server, width: int, known: set) -> tuple:
    """One measured open: (page, seconds to interactive as seen from Python, the breakdown in ms)."""
    page = dp.new_page(browser, server["port"], width, 800)
    page.add_init_script(MARKS_JS)
    t0 = time.perf_counter()
    page.goto(server["url"], timeout=120_000)
    dp.wait_interactive(page)
    seconds = time.perf_counter() - t0
    marks = page.evaluate(READ_MARKS_JS)
    marks["page_errors"] = len(page.errors)
    page.wait_for_timeout(300)   # the log's last line is written after the view is on the page
    marks.update(_kernel_marks(server["home"] / "dashboard.log", marks.pop("origin"), known))
    return page, seconds, marks


def _wait_for_preheated(server, known: set, timeout: float = 300):
    """Until a kernel not yet measured has shown its result (the pool's kernel ran the notebook)."""
    log = server["home"] / "dashboard.log"
    end = time.time() + timeout
    while time.time() < end:
        if log.exists():
            text = log.read_text()
            shown = {int(line.split("[pid ")[1].split("]")[0]) for line in text.splitlines()
                     if "dashboard: shown a result" in line}
            if shown - known:
                return
        time.sleep(0.5)
    raise RuntimeError(f"no preheated kernel showed its result within {timeout} s")


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


def _summary(opens: list) -> dict:
    """Median and p95 of the seconds to interactive and of every mark of the breakdown."""
    out = {"n": len(opens), "seconds": [round(o["seconds"], 2) for o in opens]}
    for key in ["seconds", *dict.fromkeys(k for o in opens for k in o["marks"])]:
        values = [o["seconds"] if key == "seconds" else o["marks"].get(key) for o in opens]
        numbers = [v for v in values if isinstance(v, (int, float))]
        if numbers:
            digits = 2 if key == "seconds" else 0
            out[f"{key}_median"] = round(statistics.median(numbers), digits)
            out[f"{key}_p95"] = round(_p95(numbers), digits)
        elif values and values[0] is not None:
            out[key] = sorted(set(map(str, values)))
    return out


def _uptime() -> str:
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15, help="slider and hover gestures")
    ap.add_argument("--opens", type=int, default=15, help="page opens of each kind (cold, second tab, preheated)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--no-preheat", action="store_true", help="skip the preheated-kernel measurement")
    ap.add_argument("--no-gestures", action="store_true", help="skip the slider and hover measurements")
    ap.add_argument("--port", type=int, default=0, help="the Voila server's port (default: any free one)")
    args = ap.parse_args(argv)
    if args.port:
        dp.free_port = lambda: args.port
    from playwright.sync_api import sync_playwright

    out = {"viewport": f"{args.width}x800", "repeats": args.repeats, "opens": args.opens,
           "uptime_before": _uptime()}
    opens: dict = {"cold": [], "second_tab": [], "preheated": []}
    known: set = set()   # kernels already measured (their pids)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        home = Path(tmp)
        _warm_caches(home)
        browser = p.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
        def measure(kind: str, server):
            """One open of this kind, added to opens[kind]; the page, or None when it failed (counted)."""
            try:
                page, seconds, marks = _open(browser, server, args.width, known)
            except Exception as exc:  # noqa: BLE001 - a failed open is a result: counted, and the run goes on
                out.setdefault("failed_opens", []).append(f"{kind}: {str(exc).splitlines()[0]}")
                return None
            opens[kind].append({"seconds": seconds, "marks": marks})
            return page

        for i in range(args.opens):
            with dp.voila_server(home) as server:
                page = measure("cold", server)
                second = measure("second_tab", server)
                if second is not None:
                    second.context.close()
                if page is not None:
                    if i == 0 and not args.no_gestures:
                        page.wait_for_timeout(1000)
                        out.update(_interactions(page, args.repeats))
                    page.context.close()
        if not args.no_preheat:
            with dp.voila_server(home, pool_size=1) as server:
                for _ in range(args.opens):
                    _wait_for_preheated(server, known)
                    page = measure("preheated", server)
                    if page is not None:
                        page.context.close()
        browser.close()
    out["uptime_after"] = _uptime()
    out["open"] = {kind: _summary(v) for kind, v in opens.items() if v}
    out["open_marks"] = {kind: [o["marks"] for o in v] for kind, v in opens.items() if v}
    for key in ("slider_ms", "hover_ms", "slider_in_page_ms", "hover_in_page_ms"):
        if key not in out:
            continue
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
