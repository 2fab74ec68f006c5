"""A hostile visitor against a real `aisviz serve --shared` (issue 17): one malformed websocket frame closes only
its own connection (F1); plain GETs from one client cannot take every kernel, and unclaimed kernels are
reclaimed in seconds (F2); wrong-typed widget values and client-opened widgets give plain refusals, never a
traceback or a server path (F4); 100 hostile messages leave the dashboard log small (F3)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_tiny_set
from serve_helpers import KernelClient, free_port, get_from, kernel_processes, wait_listening

from aisviz.server.frames import frame_problem

pytestmark = pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None
                                    for m in ("voila", "psutil", "websocket")),
                                reason="needs the app extra (voila) and psutil, websocket-client")

ROOT = Path(__file__).resolve().parents[2]
FREEZING_FRAME = (2**62).to_bytes(8, "little") + b"\0" * 16       # issue 17, F1
CLAIM_TIMEOUT = 15
LEAKS = ("Traceback", "/site-packages/", str(ROOT))


def v1_frame(msg_type: str = "comm_info_request", channel: str = "shell") -> bytes:
    from jupyter_client.session import Session
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    session = Session(key=b"")
    return serialize_msg_to_ws_v1(session.msg(msg_type, {}), channel, session.pack)


def test_frame_problem_names_each_malformed_frame():
    good = v1_frame()
    assert frame_problem(good) is None
    assert "too short" in frame_problem(FREEZING_FRAME)
    huge_count = (2**62).to_bytes(8, "little") + good[8:]
    assert "offset count" in frame_problem(huge_count)
    offsets = [int.from_bytes(good[8 * (i + 1):8 * (i + 2)], "little") for i in range(6)]
    swapped = good[:8] + b"".join(o.to_bytes(8, "little") for o in [offsets[0], offsets[2], offsets[1], *offsets[3:]])
    assert frame_problem(swapped + good[56:]) == "decreasing offsets"
    past_end = good[:48] + (len(good) + 1).to_bytes(8, "little") + good[56:]
    assert frame_problem(past_end) == "offsets outside the frame"
    assert frame_problem(good.decode("latin-1")) == "a text frame (the v1 framing is binary)"
    assert frame_problem(good, max_bytes=len(good) - 1).startswith(f"{len(good)} bytes")
    assert frame_problem(v1_frame(channel="iopub")) == "an unknown channel"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """`aisviz serve --shared` over a tiny bundle of two settings (saliency center_bias or none: a menu), with a
    short claim timeout; its log and dashboard log."""
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result
    from aisviz.server.serve import stop_process_tree

    folder = tmp_path_factory.mktemp("trust")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(folder / "home"))
        result = compute_result(dataset=make_tiny_set(n=12, size=48, seed=2), provider="center_bias", n_folds=3,
                                n_seeds=1, k_step=256, progress=False)
        plain = compute_result(dataset=make_tiny_set(n=12, size=48, seed=2), provider=None, n_folds=3,
                               n_seeds=1, k_step=256, progress=False)
    write_bundle(replace(result, settings=replace(result.settings, dataset="tiny")), folder / "bundles")
    write_bundle(replace(plain, settings=replace(plain.settings, dataset="tiny", provider="")), folder / "bundles")
    port = free_port()
    env = dict(os.environ, AISVIZ_HOME=str(folder / "home"), AISVIZ_APP_LOG=str(folder / "dashboard.log"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    log = folder / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(folder / "bundles"),
                             "--port", str(port), "--max-kernels", "8", "--claim-timeout", str(CLAIM_TIMEOUT)],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, timeout=180)
        yield {"port": port, "url": f"http://127.0.0.1:{port}", "proc": proc, "log": log,
               "app_log": folder / "dashboard.log"}
    finally:
        stop_process_tree(proc, grace=10)


def page_kernel(shared, source: str) -> str:
    """Load the dashboard page as the client at `source`; its kernel id."""
    import re

    status, page = get_from(shared["url"] + "/", source, timeout=300)
    assert status == 200, page[:300]
    return re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page).group(1)


def answers_within(shared, source: str, seconds: float) -> bool:
    t0 = time.perf_counter()
    try:
        status, _ = get_from(shared["url"] + "/voila/static/", source, timeout=seconds)
    except OSError:
        return False
    return status == 404 and time.perf_counter() - t0 < seconds


@pytest.mark.slow
def test_a_malformed_frame_closes_only_its_connection(shared):
    """Before the fix the server answered nothing for over 15 s after FREEZING_FRAME while its memory grew
    13-40 MB/s (jupyter_server's deserialize_msg_from_ws_v1 builds 2**62 offsets)."""
    import psutil
    import websocket

    kernel = page_kernel(shared, "127.0.0.5")
    server = psutil.Process(shared["proc"].pid).children()[0]          # Voila under the `aisviz serve` process
    rss = server.memory_info().rss
    for frame in (FREEZING_FRAME, (2**62).to_bytes(8, "little") + v1_frame()[8:]):
        client = KernelClient(shared["port"], kernel, source="127.0.0.5")
        client.ws.send_binary(frame)
        time.sleep(0.3)
        assert answers_within(shared, "127.0.0.6", 1.0), "another client got no answer within 1 s"
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            client.ws.settimeout(10)
            for _ in range(1000):          # the kernel's own messages first, then the close
                client.ws.recv()
    time.sleep(2)
    assert server.memory_info().rss < rss + 50 * 2**20
    again = KernelClient(shared["port"], kernel, source="127.0.0.5")    # the kernel itself is fine
    assert again.comm_ids()
    again.close()
    assert "a malformed frame (" in shared["log"].read_text()


@pytest.mark.slow
def test_one_client_with_plain_gets_cannot_lock_others_out(shared):
    """Before: five GETs took every kernel of a server capped at 5 for 10 minutes (until the idle cull)."""
    before = len(kernel_processes(shared["proc"].pid))
    with ThreadPoolExecutor(20) as pool:
        hostile = [pool.submit(get_from, shared["url"] + "/", "127.0.0.2", 300) for _ in range(20)]
        time.sleep(1)
        kernel = page_kernel(shared, "127.0.0.3")                       # another visitor still gets in
        client = KernelClient(shared["port"], kernel, source="127.0.0.3")   # its page connects: its kernel stays
        replies = [f.result() for f in hostile]
    statuses = sorted(status for status, _ in replies)
    assert statuses.count(200) == 4 and statuses.count(429) == 16, statuses     # 4 kernels per client
    refused = next(body for status, body in replies if status == 429)
    assert "<h1>Too many" in refused and not any(leak in refused for leak in LEAKS)
    assert client.comm_ids()
    # the hostile client's four kernels were never claimed: reclaimed within the claim timeout
    deadline = time.time() + CLAIM_TIMEOUT + 60
    while len(kernel_processes(shared["proc"].pid)) > before + 1 and time.time() < deadline:
        time.sleep(1)
    assert len(kernel_processes(shared["proc"].pid)) == before + 1
    assert "did not connect within 15 s" in shared["log"].read_text()
    assert get_from(shared["url"] + "/", "127.0.0.2", 300)[0] == 200  # its places are free again
    client.close()


def iopub_texts(client: KernelClient, seconds: float) -> list[str]:
    return [json.dumps(msg["content"]) for channel, msg in client.receive(time.time() + seconds)
            if channel == "iopub"]


@pytest.mark.slow
def test_wrong_typed_values_and_client_widgets_give_no_traceback(shared):
    kernel = page_kernel(shared, "127.0.0.4")
    client = KernelClient(shared["port"], kernel, source="127.0.0.4")
    widgets = {name: client.find_widget(f"aisviz-{name}") for name in ("display", "follow", "k")}
    client.update(widgets["display"], {"index": "x"})
    client.update(widgets["follow"], {"value": "x"})
    client.update(widgets["k"], {"value": "x"})
    client.send("comm_open", {"comm_id": "c" * 32, "target_name": "jupyter.widget",
                              "data": {"state": {"_model_name": "Nope"}}})
    texts = iopub_texts(client, 15)
    assert texts
    assert not [t for t in texts if any(leak in t for leak in LEAKS)], "a traceback or a path reached the client"
    assert any("Refused" in t and "cannot take" in t for t in texts)        # said in plain words
    client.close()


@pytest.mark.slow
def test_hostile_messages_leave_the_log_small(shared):
    """Before: 40 messages with 8,000 keys each added 322 MB to dashboard.log in 24 s."""
    kernel = page_kernel(shared, "127.0.0.7")
    client = KernelClient(shared["port"], kernel, source="127.0.0.7")
    menu = client.find_widget("aisviz-viewer-provider")    # a setting with a choice has a menu
    before = sum(f.stat().st_size for f in shared["app_log"].parent.glob("dashboard.log*"))
    for i in range(100):
        client.update(menu, {f"key{j}_{i}": "x" * 20 for j in range(8000)})
    texts = iopub_texts(client, 20)
    assert any("Refused" in t for t in texts) and not any("key4000_" in t for t in texts)   # keys not repeated
    files = list(shared["app_log"].parent.glob("dashboard.log*"))
    grown = sum(f.stat().st_size for f in files) - before
    assert grown < 100_000, f"the log grew by {grown} bytes"
    assert max(len(line) for f in files for line in f.read_text().splitlines()) < 2000
    client.close()


def test_admission_counts_pages_being_rendered_and_each_client_alone():
    from aisviz.server.admission import Admission, Limits

    now = [0.0]
    books = Admission(Limits(max_kernels=5, per_client=2, pages_per_minute=3), clock=lambda: now[0])
    assert books.admit("a", busy=0) is None and books.admit("a", busy=0) is None   # two pages rendering
    assert books.admit("a", busy=0).status == 429                                  # a third: refused at once
    assert books.admit("b", busy=0) is None                                        # another client gets in
    books.started("k1", "a")
    books.rendered("a", 1)
    assert books.unclaimed("k1") and books.owner("k1") == "a"
    books.claim("k1")
    assert not books.unclaimed("k1")
    assert books.admit("c", busy=3).status == 503                                  # 3 busy + 2 rendering = cap
    books.prune([])                                                                # every kernel ended
    books.rendered("a", 0)
    books.rendered("b", 0)
    assert books.admit("a", busy=0) is None
    assert books.admit("a", busy=0).title == "Too many page loads"                 # 3 in the last minute
    now[0] = 61.0
    books.rendered("a", 0)
    assert books.admit("a", busy=0) is None


def test_the_dashboard_log_rotates_cuts_and_limits_repeats(tmp_path, monkeypatch):
    import logging

    from aisviz.io.applog import LOG_BACKUPS, MESSAGE_CHARS, app_log_handler

    monkeypatch.setenv("AISVIZ_APP_LOG_BYTES", "20000")
    logger = logging.getLogger("aisviz.test-log")
    logger.propagate = False
    handler = app_log_handler(tmp_path / "logs" / "dashboard.log")
    logger.addHandler(handler)
    try:
        for i in range(1000):
            logger.warning("refused: %s", "k" * 100_000)             # one place: 20 a minute get through
            logger.warning(f"distinct {i}: %s", "v" * 100_000)        # many places: rotated away
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted((tmp_path / "logs").glob("dashboard.log*"))
    assert len(files) == LOG_BACKUPS + 1 and all(f.stat().st_size < 21_000 for f in files)
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert max(len(line) for line in lines) < MESSAGE_CHARS + 100
    assert sum("refused:" in line for line in lines) <= 20
