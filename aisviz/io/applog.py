"""The dashboard log (AISVIZ_APP_LOG, written by every kernel of a server) kept bounded, whatever visitors send:
- rotated by size: at most LOG_BYTES per file and LOG_BACKUPS old files;
- each logged message cut to MESSAGE_CHARS characters (a refusal names what was refused, never all of it), and
  a traceback to TRACEBACK_CHARS;
- a message repeated from the same place is written at most REPEATS times a minute per kernel; the next one
  written says how many were left out.
Several kernels append to one file: each rotates when the file it writes to is full, so the files on disk stay
within about (LOG_BACKUPS + 1 + kernels) * LOG_BYTES.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import time
from pathlib import Path

LOG_BYTES = 5 * 2**20
LOG_BACKUPS = 3
MESSAGE_CHARS = 400
TRACEBACK_CHARS = 4000
REPEATS = 20
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


def short(value, limit: int = 120) -> str:
    """A value in words for a message or the log, at most `limit` characters (hostile input can be huge).

    Parameters
    ----------
    value: anything; strings are shown as they are, other values by their repr.
    limit: the most characters returned.

    Returns
    -------
    The text, cut with an ellipsis when longer.
    """
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class BoundedFormatter(logging.Formatter):
    """A formatter that cuts the message and the traceback (see the module's docstring)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = short(record.message, MESSAGE_CHARS)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        text = super().formatException(ei)
        lines = [short(line, MESSAGE_CHARS) for line in text.splitlines()]
        return short("\n".join(lines), TRACEBACK_CHARS)


class RepeatLimiter(logging.Filter):
    """Lets a message from one place (logger, template) through at most `repeats` times per `window` seconds;
    the first one let through afterwards notes how many were left out."""

    def __init__(self, repeats: int = REPEATS, window: float = 60.0, clock=time.monotonic):
        super().__init__()
        self.repeats, self.window, self.clock = repeats, window, clock
        self.seen: dict[tuple, list] = {}        # (logger, template) -> [window start, count, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:MESSAGE_CHARS])
        now = self.clock()
        start, count, left_out = self.seen.get(key, (now, 0, 0))
        if now - start > self.window:
            start, count = now, 0
        if count >= self.repeats:
            self.seen[key] = [start, count, left_out + 1]
            return False
        if left_out:
            record.msg = f"{record.msg} ({left_out} like it left out)"
        self.seen[key] = [start, count + 1, 0]
        if len(self.seen) > 1000:                  # templates are few; keep the table small anyway
            self.seen.clear()
        return True


def app_log_handler(path) -> logging.Handler:
    """The handler for the dashboard log at `path`: rotated, with cut messages and repeats limited.

    Parameters
    ----------
    path: the log file (its folder is created). AISVIZ_APP_LOG_BYTES, when set, replaces LOG_BYTES.

    Returns
    -------
    A logging handler (raises OSError when the file cannot be opened).
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    size = int(os.environ.get("AISVIZ_APP_LOG_BYTES") or LOG_BYTES)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=size, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(BoundedFormatter(FORMAT))
    handler.addFilter(RepeatLimiter())
    return handler
