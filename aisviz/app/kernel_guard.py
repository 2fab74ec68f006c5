"""What a browser can make a served dashboard's kernel send back: never a traceback or a server path.

In a kernel that Voila serves, a client can send any widget message. Stock behaviour answers some of them with
details meant for a developer:
- a value of the wrong type for a control (a string for a slider, say): ipywidgets' `_show_traceback` calls the
  shell's `showtraceback`, which sends an iopub `error` with the TraitError's traceback and site-packages paths;
- a `comm_open` for `jupyter.widget` (a widget created by the client): ipykernel logs the failure with its
  traceback to stderr, which the kernel sends to the client as a `stream` message;
- a Python warning prints its file and line to stderr, which the client sees the same way.
`harden_kernel` (called by every Dashboard) changes this only in a kernel served by Voila: tracebacks go to the
dashboard log (logger "aisviz.app"), the visitor sees one plain sentence in the message area, widgets are created
only by the kernel, and warnings are logged without their file.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

from aisviz.io.applog import short

log = logging.getLogger("aisviz.app")

WRONG_VALUE = ("Refused: a control was sent a value it cannot take (not from this page's controls). Nothing was "
               "changed.")
QUIET_LOGGERS = ("Comm", "ipykernel.comm")     # they log a client's failed comm messages with tracebacks

_state = {"refuse": None}


def served_by_voila() -> bool:
    """True in a kernel that Voila started for a page (Voila sets SERVER_SOFTWARE=voila/<version>)."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila/")


def _quiet_showtraceback(*args, **kwargs) -> None:
    """The shell's showtraceback in a served kernel: the traceback to the log, a plain sentence to the visitor."""
    exc = sys.exc_info()[1]
    log.warning("refused a widget message: %s", short(f"{type(exc).__name__}: {exc}", 300))
    if _state["refuse"] is not None:
        _state["refuse"](WRONG_VALUE)


def _refuse_client_widget(comm, msg) -> None:
    """The `jupyter.widget` comm target: this page's widgets are made by the kernel, never by the client."""
    log.warning("refused a widget the browser asked to create")
    comm.close()


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning("%s: %s", category.__name__, short(str(message), 300))


def harden_kernel(refuse) -> bool:
    """In a kernel served by Voila, keep tracebacks and paths from the client (see the module's docstring).

    Parameters
    ----------
    refuse: called with a plain sentence when a widget message is refused (the newest dashboard's message area).

    Returns
    -------
    True when the kernel is served by Voila (and now hardened), False elsewhere (JupyterLab, scripts).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not served_by_voila():
        return False
    _state["refuse"] = refuse
    if getattr(shell, "_aisviz_hardened", False):
        return True
    shell._aisviz_hardened = True
    shell.showtraceback = _quiet_showtraceback
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        quiet.propagate = False
        quiet.handlers = [_ToAppLog()]
    if not log.handlers:
        log.addHandler(logging.NullHandler())      # no log file: nothing falls through to stderr (the client)
    warnings.showwarning = _log_warning
    comm_manager = getattr(getattr(shell, "kernel", None), "comm_manager", None)
    if comm_manager is not None:
        comm_manager.register_target("jupyter.widget", _refuse_client_widget)
    return True


class _ToAppLog(logging.Handler):
    """Hands a record to the dashboard log with its message cut and without the traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        log.warning("kernel: %s", short(record.getMessage(), 300))
