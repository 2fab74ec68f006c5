"""The command-line reference page, generated from the `aisviz` argparse parser (so it cannot go stale)."""
from __future__ import annotations

import argparse

from _load import obj
from targets import EXIT_CODES_HELP, PARSER_FACTORY


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _sentence(text: str) -> str:
    text = _cell(text)
    return text[:1].upper() + text[1:]


def _flag(action: argparse.Action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return names + " " + "\\|".join(f"`{c}`" for c in action.choices)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (action.dest.upper() if action.option_strings else "")
    if not metavar:
        return names
    more = {"+": f" {metavar} [{metavar} ...]", "*": f" [{metavar} ...]", "?": f" [{metavar}]"}
    return names + f" `{_cell(more.get(action.nargs, ' ' + metavar)).strip()}`"


def _default(action: argparse.Action) -> str:
    if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
            or action.nargs == 0:
        return "required" if action.required else ""
    value = action.default
    return "`" + (" ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)) + "`"


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    try:
        return _cell(text % {"default": action.default})
    except (TypeError, ValueError, KeyError):
        return _cell(text)


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        rows.append(f"| {_flag(action)} | {_default(action)} | {_help(action)} |")
    return rows


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands in the order `aisviz --help` lists them.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The top-level parser.

    Returns
    -------
    dict
        Subcommand name -> its parser.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render() -> str:
    """The Markdown of the CLI reference page: every command, argument, default and meaning.

    Returns
    -------
    str
        The page.
    """
    parser = obj(PARSER_FACTORY)()
    subs = subcommands(parser)
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
    lines = ["# Command line", "",
             "Generated from the `aisviz` argument parser when this site was built: every command, argument, "
             "default and meaning that `aisviz COMMAND --help` prints.", "",
             "```text", parser.format_usage().strip(), "```", "", _cell(parser.description or ""), "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#{name}) | {_cell(helps.get(name, ''))} |" for name in subs]
    lines += ["", "Every command also takes `-h`/`--help`. " + _sentence(obj(EXIT_CODES_HELP)) +
              " See [exit codes](exit-codes.md).", ""]
    lines += ["## `aisviz` (no command)", ""] + _arguments(parser) + [""]
    for name, sub in subs.items():
        lines += [f"## `{name}` {{#{name}}}", "", _cell(sub.description or helps.get(name, "")), "",
                  "```text", sub.format_usage().strip(), "```", ""] + _arguments(sub) + [""]
    return "\n".join(lines)
