"""Kernel-websocket frames checked before jupyter_server parses them.

A browser sends kernel messages in the `v1.kernel.websocket.jupyter.org` framing:

    8 bytes   n, the number of offsets (little-endian)
    8n bytes  the offsets: where the channel name, then each message part, starts; the last one ends the frame
    ...       the channel name (utf-8), then the parts: header, parent header, metadata, content, buffers

jupyter_server's `deserialize_msg_from_ws_v1` (jupyter_server/services/kernels/connection/base.py, called by
`ZMQChannelsWebsocketConnection.handle_incoming_message`) trusts n: it builds a list of n offsets whatever the
frame's length, so the 24-byte frame `(2**62).to_bytes(8, "little") + b"\\0" * 16` makes the server loop and
allocate until it runs out of memory, and every visitor waits. `frame_problem` is the guard: the server calls
it on every incoming frame and closes that one connection when it names a problem.
"""
from __future__ import annotations

import json

CLIENT_CHANNELS = frozenset({"shell", "control", "stdin"})   # the channels a client may write to
MIN_OFFSETS = 6        # channel start and end, then the ends of header, parent header, metadata and content
MAX_OFFSETS = 1024     # a widget message has a few buffers; no real client sends hundreds
MAX_FRAME_BYTES = 16 * 2**20


def frame_problem(frame: bytes | str, max_bytes: int = MAX_FRAME_BYTES) -> str | None:
    """Why a kernel-websocket frame (v1 framing) must not reach `deserialize_msg_from_ws_v1`, or None when it is
    well formed: the offset count and every offset fit the frame, the offsets never decrease, the channel is one
    a client writes to, the header is a JSON object with a message type, and the frame is at most max_bytes.

    Parameters
    ----------
    frame: one websocket message as received.
    max_bytes: the largest frame accepted.

    Returns
    -------
    A short description of the problem (for the server log), or None.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        return "a text frame (the v1 framing is binary)"
    size = len(frame)
    if size > max_bytes:
        return f"{size} bytes (at most {max_bytes})"
    if size < 8 * (MIN_OFFSETS + 1):
        return f"{size} bytes, too short for a kernel message"
    count = int.from_bytes(frame[:8], "little")
    if not MIN_OFFSETS <= count <= MAX_OFFSETS or 8 * (count + 1) > size:
        return f"an offset count of {count} that does not fit a frame of {size} bytes"
    offsets = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
    if offsets[0] < 8 * (count + 1) or offsets[-1] > size:
        return "offsets outside the frame"
    if any(b < a for a, b in zip(offsets, offsets[1:])):
        return "decreasing offsets"
    try:
        channel = bytes(frame[offsets[0]:offsets[1]]).decode("utf-8")
        header = json.loads(bytes(frame[offsets[1]:offsets[2]]))
    except (UnicodeDecodeError, ValueError):
        return "a channel or header that is not utf-8 JSON"
    if channel not in CLIENT_CHANNELS:
        return "an unknown channel"
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
        return "a header without a message type"
    return None
