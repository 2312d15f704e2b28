"""Gathering the problems of claude-config's independent parts, so that one check names them
all: an operator with three mistakes fixes three, not one per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import ClaudeConfigError, ClaudeConfigErrors


class ConfigProblems:
    """The problems found so far. Each independent part (a file, an MCP server, an agent, a
    skill, an approval rule, a tool in a list) is checked inside :meth:`part`: its first
    problem ends that part only, as what follows in it may depend on what failed."""

    def __init__(self) -> None:
        self.found: list[ClaudeConfigError] = []

    @contextmanager
    def part(self) -> Iterator[None]:
        """Record a ClaudeConfigError raised inside, and carry on after the block."""
        try:
            yield
        except ClaudeConfigError as exc:
            self.found.extend(exc.problems)

    def raise_any(self) -> None:
        """Raise what was found: one problem as it is, several as one ClaudeConfigErrors."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ClaudeConfigErrors(self.found)
