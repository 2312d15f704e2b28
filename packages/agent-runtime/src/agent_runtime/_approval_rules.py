"""[I] Which tool calls need the user's approval: ``claude-config/approvals.json``.

::

    {"require_approval": [
        {"tool": "Bash", "except": ["ls *", "cat *", "pwd"]},
        {"tool": "Write"},
        {"tool": "Edit"},
        {"tool": "mcp__agentbot-tools__*"}
    ]}

``tool`` is a tool name or a pattern (``*`` any text, ``?`` one character), so one entry can
cover an MCP server's tools. ``except`` lists Bash command patterns that run without asking
(only for Bash: other tools have no command to match). A command pattern with a wildcard never
matches a command with shell syntax (``ls *`` never allows ``ls; rm -rf ~``); one without a
wildcard matches that very command only, shell syntax and all. A missing file means no tool asks. A
rule that matches no tool the agents have is refused, with the name it was probably meant to be.

A grant ("Always in this chat") is a rule of the same shape in one string: ``Write``,
``mcp__server__tool``, or ``Bash(git *)`` for a command pattern.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from session_core import mask_command_secrets

from ._builtin_tools import KNOWN_TOOL_NAMES, TOOL_ALIASES, did_you_mean
from ._config_problems import ConfigProblems
from ._errors import ClaudeConfigError

APPROVALS_FILE = "approvals.json"
_TOOL_PATTERN = re.compile(r"[A-Za-z0-9_*?-]{1,128}")
_BASH_GRANT = re.compile(r"Bash\((?P<pattern>.+)\)", re.S)


class ApprovalRule(msgspec.Struct, frozen=True, kw_only=True):
    tool: str
    except_commands: tuple[str, ...] = ()


class ApprovalRules(msgspec.Struct, frozen=True, kw_only=True):
    """The validated ``approvals.json`` (empty: nothing asks)."""

    rules: tuple[ApprovalRule, ...] = ()

    def needs_approval(self, tool_name: str, tool_input: Mapping[str, Any]) -> bool:
        for rule in self.rules:
            if not fnmatch.fnmatchcase(tool_name, rule.tool):
                continue
            command = _bash_command(tool_name, tool_input)
            excepted = command is not None and any(_matches_command(command, p) for p in rule.except_commands)
            return not excepted
        return False


def load_approval_rules(
    base: Path,
    problems: ConfigProblems,
    *,
    agent_tools: Iterable[str] | None,
    mcp_servers: Iterable[str] | None,
) -> ApprovalRules:
    """Read ``base/approvals.json``, adding to ``problems`` a ClaudeConfigError naming the file
    and field for the file as a whole, else for each rule that is wrong.

    A rule must match a tool the agents have: a misspelt name ("Edti") would let that tool run
    without asking. ``agent_tools`` are the built-in tools agents.json gives them (None: the
    CLI's whole set, as when ``main.tools`` is unset or agents.json has problems of its own);
    an MCP rule must name a server of ``mcp_servers`` (None: not checked, as mcp.json has
    problems of its own)."""
    path = base / APPROVALS_FILE
    known = None if agent_tools is None else {*agent_tools, *(TOOL_ALIASES.get(t, t) for t in agent_tools)}
    servers = None if mcp_servers is None else set(mcp_servers)
    entries: list[object] = []
    with problems.part():
        entries = _entries(path)
    rules: dict[int, ApprovalRule] = {}
    for index, entry in enumerate(entries):
        where = f"require_approval[{index}]"
        with problems.part():
            rule = _rule(path, where, entry)
            _check_names_a_tool(rule.tool, path, f"{where}.tool", known, servers)
            _check_not_hidden(rule, rules, path, f"{where}.tool")
            rules[index] = rule
    return ApprovalRules(rules=tuple(rules.values()))


def _entries(path: Path) -> list[object]:
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClaudeConfigError(str(path), None, f"is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ClaudeConfigError(str(path), None, "must be a JSON object")
    unknown = sorted(set(raw) - {"require_approval"})
    if unknown:
        raise ClaudeConfigError(str(path), unknown[0], "is not a known field (expected: require_approval)")
    entries = raw.get("require_approval", [])
    if not isinstance(entries, list):
        raise ClaudeConfigError(str(path), "require_approval", "must be a list of {tool, except}")
    return entries


def _rule(path: Path, where: str, entry: object) -> ApprovalRule:
    if not isinstance(entry, dict):
        raise ClaudeConfigError(str(path), where, 'must be an object like {"tool": "Bash"}')
    unknown = sorted(set(entry) - {"tool", "except"})
    if unknown:
        raise ClaudeConfigError(
            str(path), f"{where}.{unknown[0]}", "is not a known field (expected: tool, except)"
        )
    tool = entry.get("tool")
    if not isinstance(tool, str) or not _TOOL_PATTERN.fullmatch(tool):
        raise ClaudeConfigError(
            str(path), f"{where}.tool", "must be a tool name or pattern (letters, digits, _ - * ?), e.g. Bash"
        )
    excepted = entry.get("except", [])
    if not isinstance(excepted, list) or not all(isinstance(c, str) and c.strip() for c in excepted):
        raise ClaudeConfigError(
            str(path), f"{where}.except", 'must be a list of command patterns, e.g. ["ls *"]'
        )
    if excepted and tool != "Bash":
        raise ClaudeConfigError(
            str(path), f"{where}.except", "applies to Bash only (other tools have no command)"
        )
    for index, command in enumerate(excepted):
        if _COMPOUND.search(command) and _literal_command(command.strip()) is None:  # it would be dead
            raise ClaudeConfigError(
                str(path),
                f"{where}.except[{index}]",
                f"{command.strip()!r} never matches: a pattern with a wildcard (* ? [ ]) never "
                "matches a command that chains, pipes, substitutes or redirects (; & | ` $ < > ( ) "
                "{ }); write the whole command without a wildcard, or the plain command",
            )
    return ApprovalRule(tool=tool, except_commands=tuple(c.strip() for c in excepted))


def _check_names_a_tool(
    pattern: str, path: Path, where: str, agent_tools: set[str] | None, servers: set[str] | None
) -> None:
    if pattern.startswith("mcp__"):
        server, _, tool = pattern[len("mcp__") :].partition("__")
        if servers is not None and not _GLOB.search(server) and server not in servers:
            reason = f"{pattern!r} names MCP server {server!r}, which mcp.json does not define"
            raise ClaudeConfigError(str(path), where, reason)
        if not tool and not _GLOB.search(pattern):  # Claude Code's rule for a whole server
            reason = (
                f"{pattern!r} matches no tool of MCP server {server!r} (its tools are "
                f"mcp__{server}__<tool>): write 'mcp__{server}__*' for all of them"
            )
            raise ClaudeConfigError(str(path), where, reason)
        return
    known = KNOWN_TOOL_NAMES if agent_tools is None else agent_tools
    if any(fnmatch.fnmatchcase(tool, pattern) for tool in known):
        return
    hint = did_you_mean(pattern, known)
    if agent_tools is None:  # main.tools unset: the agents have the CLI's whole set
        matches = f"no built-in tool of Claude Code{hint}"
    else:
        matches = f"no tool the agents have{hint}: agents.json gives them {', '.join(sorted(known))}"
    raise ClaudeConfigError(
        str(path),
        where,
        f"{pattern!r} matches {matches}; a misspelt name would let that tool run without asking",
    )


def _check_not_hidden(
    rule: ApprovalRule, earlier: Mapping[int, ApprovalRule], path: Path, where: str
) -> None:
    """The first entry that matches decides (``needs_approval``): a rule an earlier one matches
    for every tool it names never decides anything, and its exceptions never apply."""
    for index, before in earlier.items():
        if _GLOB.search(rule.tool):  # a pattern is covered by the same one, or by "*"
            covered = before.tool in (rule.tool, "*")
        else:
            covered = fnmatch.fnmatchcase(rule.tool, before.tool)
        if covered:
            raise ClaudeConfigError(
                str(path),
                where,
                f"never decides: require_approval[{index}] ({before.tool!r}) comes first and matches "
                f"every call {rule.tool!r} would; put the narrower rule first, or merge the two",
            )


def grant_rule_for(tool_name: str, tool_input: Mapping[str, Any]) -> str:
    """What "Always in this chat" allows for this call: the program of a Bash command with any
    arguments (``Bash(git *)``), else the tool. A command that starts with an assignment
    (``LANG=C ls``) or a program that runs other programs (``env``, ``sudo``, ``bash``,
    ``xargs``, ``python``...) is granted exactly as it is: its first word says nothing of what
    would run. So is one with shell syntax (``ls | wc -l``), which ``Bash(ls *)`` never covers.
    Such a command is granted as the chat shows it, its secrets masked: the rule is shown,
    listed by /permissions and stored, and a command holding a secret then asks again."""
    command = _bash_command(tool_name, tool_input)
    if command is None:
        return tool_name
    words = command.split()
    program = words[0] if words else ""
    general = program and not _GLOB.search(program) and "=" not in program and "/" not in program
    if not general or program in _RUNS_OTHER_PROGRAMS or _COMPOUND.search(command):
        shown = mask_command_secrets(command)
        return f"Bash({_WILDCARD.sub(lambda m: f'[{m.group(0)}]', shown)})"  # this command only
    return f"Bash({program} *)" if len(words) > 1 else f"Bash({program})"


_GLOB = re.compile(r"[*?\[\]]")
# What makes a command pattern match more than itself (a "]" alone stands for itself).
_WILDCARD = re.compile(r"[*?\[]")
# Programs whose arguments name another program to run (or code): "Always" for them would be
# "always anything".
_RUNS_OTHER_PROGRAMS = frozenset(
    {
        "env",
        "sudo",
        "doas",
        "su",
        "command",
        "builtin",
        "exec",
        "eval",
        "source",
        ".",
        "nice",
        "nohup",
        "timeout",
        "time",
        "xargs",
        "stdbuf",
        "ionice",
        "chrt",
        "taskset",
        "setsid",
        "chroot",
        "unshare",
        "nsenter",
        "strace",
        "ltrace",
        "watch",
        "flock",
        "script",
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "fish",
        "busybox",
        "python",
        "python3",
        "perl",
        "ruby",
        "node",
        "nodejs",
        "deno",
        "bun",
        "php",
        "lua",
        "awk",
        "gawk",
        "mawk",
        "sed",
        "find",
        "parallel",
        "make",
        "npx",
        "uvx",
        "pipx",
    }
)


def granted(grants: Iterable[str], tool_name: str, tool_input: Mapping[str, Any]) -> bool:
    """Whether one of the chat's grant rules covers this call."""
    command = _bash_command(tool_name, tool_input)
    for rule in grants:
        bash = _BASH_GRANT.fullmatch(rule)
        if bash is not None:
            if command is not None and _matches_command(command, bash.group("pattern")):
                return True
        elif fnmatch.fnmatchcase(tool_name, rule):
            return True
    return False


def _bash_command(tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
    if tool_name != "Bash":
        return None
    command = tool_input.get("command")
    return command.strip() if isinstance(command, str) else ""


# A command that chains, pipes, substitutes or redirects does more than its first program:
# a pattern such as "ls *" never lets "ls; rm -rf ~" through.
_COMPOUND = re.compile(r"[;&|`$<>\n(){}]")


def _matches_command(command: str, pattern: str) -> bool:
    literal = _literal_command(pattern)
    if literal is not None:  # nothing else can match: the shell syntax in it is what was allowed
        return command == literal
    if _COMPOUND.search(command):
        return False
    if fnmatch.fnmatchcase(command, pattern):
        return True
    # "ls *" also covers plain "ls"
    return pattern.endswith(" *") and command == pattern[:-2]


# A glob character escaped, as ``grant_rule_for`` does: ``[*]`` is a literal ``*`` (``[]]``:
# grants kept before "]" was left as it is).
_ESCAPED_GLOB = re.compile(r"\[([*?\[\]])\]")


def _literal_command(pattern: str) -> str | None:
    """The one command ``pattern`` matches when it has no wildcard (escaped glob characters
    stand for themselves), else None."""
    parts = _ESCAPED_GLOB.split(pattern)  # text, escaped character, text, ...
    if any(_WILDCARD.search(text) for text in parts[::2]):
        return None
    return "".join(parts)
