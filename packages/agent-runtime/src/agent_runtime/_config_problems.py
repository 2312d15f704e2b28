"""Gathering the problems of claude-config's independent parts, so that one check names them
all: an operator with three mistakes fixes three, not one per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import ClaudeConfigError, ClaudeConfigErrors

# Named one by one up to here, the rest counted in one more: a server renamed in mcp.json that a
# long list names would otherwise bury the first problems under hundreds of lines (in doctor,
# in dev, and in the runtime's log of every new container).
SHOWN_PROBLEMS = 20


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
        """Raise what was found: one problem as it is, several as one ClaudeConfigErrors (past
        :data:`SHOWN_PROBLEMS`, the rest as one that says how many, where the first of them is)."""
        found = self.found
        if len(found) > SHOWN_PROBLEMS:
            rest = found[SHOWN_PROBLEMS:]
            reason = (
                f"and {len(rest)} more problem(s) from here on, not shown: fix those above and check again"
            )
            found = [*found[:SHOWN_PROBLEMS], ClaudeConfigError(rest[0].file, rest[0].field, reason)]
        if len(found) == 1:
            raise found[0]
        if found:
            raise ClaudeConfigErrors(found)
