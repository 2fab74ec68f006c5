"""One exception hierarchy for every error aisviz explains to its user, and the exit code of each kind.

Every message is one line that names the problem and the fix. The command line maps the kinds to exit
codes (`aisviz --help` prints them too):

| code | kind | examples |
|---|---|---|
| 0 | success | |
| 1 | internal error (a bug): the traceback goes to the log, `aisviz_home()/logs/cli.log` | |
| 2 | usage: a bad argument or option | `--folds 1`, `--device gpu0`, `--out` is a file |
| 3 | input data or model | a CSV cell that is not a number, an unknown layer, a weights file for another network |
| 4 | environment | a read-only or full disk, no GPU for `--device cuda`, no network for a download |

Warnings that a result may be wrong (not an error) use `AisvizWarning`; the command line prints them to
stderr and records them in its `--json` output.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3, 4


class AisvizError(Exception):
    """Base of the errors aisviz explains in one line; `exit_code` is the command line's exit status."""

    exit_code = EXIT_INTERNAL


class UsageError(AisvizError, ValueError):
    """A bad argument or option value (exit code 2)."""

    exit_code = EXIT_USAGE


class InputError(AisvizError, ValueError):
    """Bad input data, or a model, layer or weights that cannot be used (exit code 3)."""

    exit_code = EXIT_INPUT


class EnvironmentProblem(AisvizError, OSError):
    """The machine stands in the way: disk, permissions, device, network (exit code 4)."""

    exit_code = EXIT_ENVIRONMENT


class DataError(InputError):
    """Bad or missing input data (exit code 3). The message names the problem and how to fix it."""


class ModelError(InputError):
    """A bad model or layer name, or weights that cannot be had (exit code 3); the message names the fix."""


class AisvizWarning(UserWarning):
    """A result that may be wrong, or an input that was repaired; always says what to check."""


def exit_code_for(exc: BaseException) -> int:
    """The exit status for an exception raised by a command (see the module docstring)."""
    if isinstance(exc, AisvizError):
        return exc.exit_code
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)):
        return EXIT_ENVIRONMENT
    if isinstance(exc, OSError) and getattr(exc, "errno", None) is not None:
        return EXIT_ENVIRONMENT  # a failed system call: disk full, read-only file system, ...
    if isinstance(exc, ImportError):
        return EXIT_ENVIRONMENT  # an optional dependency that is not installed (the message names it)
    return EXIT_INTERNAL


def plain_text(exc: BaseException) -> str:
    """The exception's message on one line (or its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def is_expected(exc: BaseException) -> bool:
    """True for a problem of the user's input or machine (exit codes 2-4), False for a bug (exit code 1)."""
    return exit_code_for(exc) != EXIT_INTERNAL


def describe(action: str, exc: BaseException, where: str = "the log") -> str:
    """One plain sentence for a failed action, the same in the command line, the dashboard and the viewer.

    Parameters
    ----------
    action : what was being done, as a verb phrase ("load the data set").
    exc : the exception.
    where : where the details of an unexpected error (a bug) can be found.

    Returns
    -------
    "Could not <action>: <message>" for the user's and the machine's problems (whose messages carry their
    fix); for anything else, the error's kind and a pointer to `where`, never a traceback.
    """
    if is_expected(exc):
        return f"Could not {action}: {plain_text(exc)}"
    return f"Could not {action}: an unexpected {type(exc).__name__} happened. The details are in {where}."


@contextlib.contextmanager
def recording_warnings(echo: Callable[[str, type[Warning], str, int], None] | None = None) -> Iterator[list[str]]:
    """Collect the text of every AisvizWarning raised inside the block into the yielded list (the command line
    puts it into --json; the dashboard can show it). echo(text, category), if given, is called for every
    warning, aisviz's and libraries' alike, as it happens."""
    recorded: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if issubclass(category, AisvizWarning):
            recorded.append(text)
        if echo is not None:
            echo(text, category, filename, lineno)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.simplefilter("always", AisvizWarning)  # every one counts, also a repeat
        warnings.showwarning = show
        yield recorded
