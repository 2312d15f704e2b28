"""The `agentbot` command: run the bot locally and operate a deployed stack.

Each command lives in its own module with a `register(subparsers)` function that adds
its parser and sets `handler` (a function taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__

# Modules that add commands; a missing one is skipped so commands land independently.
_COMMAND_MODULES = ("agentbot.dev", "agentbot.ops", "agentbot.doctor")


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
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
