"""The `agentbot` command: run the bot locally and operate a deployed stack.

Each command lives in its own module with a `register(subparsers)` function that adds
its parser and sets `handler` (a function taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from typing import cast

from . import __version__

# Modules that add commands; a missing one is skipped so commands land independently.
_COMMAND_MODULES = ("agentbot.dev", "agentbot.ops", "agentbot.chat", "agentbot.doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentbot",
        description="Telegram AI agent on AWS serverless: run it locally, operate a deployed stack.",
    )
    parser.add_argument("--version", action="version", version=f"agentbot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentbot` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, with its usage (argparse would show the top one)
        command = _command_parser(parser, args.command) or parser
        command.error(_unrecognized(extra, command))
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args) or 0)


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # argparse keeps its subcommands' parsers here only
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return cast(argparse.ArgumentParser, action.choices[command])
    return None


def _unrecognized(extra: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's complaint, with the option meant when one is close (``--state_dir``)."""
    known = [option for action in parser._actions for option in action.option_strings]
    for arg in extra:
        close = difflib.get_close_matches(arg.split("=", 1)[0], known, n=1) if arg.startswith("-") else []
        if close:
            return f"unrecognized arguments: {' '.join(extra)} (did you mean {close[0]}?)"
    return f"unrecognized arguments: {' '.join(extra)}"


if __name__ == "__main__":
    sys.exit(main())
