"""Loading and validating the operator's ``claude-config/`` directory (once per container).

Layout::

    system_prompt.md            the main agent's system prompt
    agents.json                 {"main": {tool policy},
                                 "agents": {name: {description, prompt_file, tools, model}}}
    agents/<name>.md            a subagent's prompt (named by prompt_file; README.md: notes)
    mcp.json                    {"mcpServers": {name: {"type": "stdio"|"http"|"sse", ...}}}
                                (http/sse may name secret headers: "headers_from_ssm";
                                _mcp_config.py)
    skills/<name>/SKILL.md      YAML front matter (name, description) + Markdown, plus any scripts
                                (the front matter read as the CLI reads it: _front_matter.py)
    approvals.json              which tool calls wait for the user's approval (_approval_rules.py)

Claude Code's own files (``_NOT_READ``: .mcp.json, settings.json, CLAUDE.md, .claude/, …) are
refused, each saying which of the files above its content goes in.

Every error is a :class:`ClaudeConfigError` naming the file and the field to fix; one load names
every problem of the independent parts (see _config_problems), so one round of fixes does.
"""

from __future__ import annotations

import os
import re
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from ._approval_rules import ApprovalRules, load_approval_rules
from ._builtin_tools import KNOWN_TOOL_NAMES, did_you_mean
from ._config_files import read_json, read_text, refuse_unknown_fields, string_list
from ._config_links import link_problems
from ._config_problems import ConfigProblems
from ._errors import ClaudeConfigError
from ._front_matter import FRONT_MATTER, load_front_matter
from ._mcp_commands import ProgramLookup
from ._mcp_config import load_mcp
from ._model_names import agent_model_mistake

PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"]
# A full MCP tool name (a built-in one is one of KNOWN_TOOL_NAMES). No patterns.
_MCP_TOOL = re.compile(r"mcp__([A-Za-z0-9_-]+?)__([A-Za-z0-9_-]+)")
_SKILL_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# The CLI gets the system prompt as one argument of its command line, which Linux caps at 128 KiB
# (MAX_ARG_STRLEN, with its closing NUL): a longer one would fail every turn as the CLI starts.
MAX_SYSTEM_PROMPT_BYTES = 128 * 1024 - 1
# Claude Code's own files, which an operator who knows it puts here: the CLI gets claude-config
# through the SDK's options and reads none of them, so what they hold would be missing unnoticed.
_SETTINGS_INSTEAD = (
    "the CLI reads no settings file; tool permissions go in agents.json (main.allowed_tools, "
    "main.disallowed_tools), calls that ask first in approvals.json"
)
_NOT_READ = {
    ".mcp.json": "MCP servers go in mcp.json (the same mcpServers object)",
    "settings.json": _SETTINGS_INSTEAD,
    "settings.local.json": _SETTINGS_INSTEAD,
    "CLAUDE.md": "the main agent's instructions go in system_prompt.md",
    "CLAUDE.local.md": "the main agent's instructions go in system_prompt.md",
    "AGENTS.md": "the main agent's instructions go in system_prompt.md",
    ".claude": "skills go in skills/<name>/SKILL.md, subagents in agents.json (prompt in agents/<name>.md), "
    "MCP servers in mcp.json",
}


class MainAgentPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tool policy of the main agent (``agents.json`` → ``main``). A misspelt field is an
    error: silently ignored, ``alowed_tools`` would leave every tool unallowed."""

    tools: tuple[str, ...] | None = None
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    permission_mode: PermissionMode = "bypassPermissions"
    max_turns: Annotated[int, msgspec.Meta(ge=1)] | None = None
    model: str | None = None


class SubagentConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One subagent: what ``agents.json`` says plus the prompt read from ``prompt_file``."""

    name: str
    description: str
    prompt: str
    tools: tuple[str, ...] | None
    model: str | None


class SkillConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A skill directory under ``skills/`` with its parsed front matter."""

    name: str
    description: str
    directory: str


class ClaudeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The validated contents of a claude-config directory."""

    root: str
    system_prompt: str
    main: MainAgentPolicy
    agents: tuple[SubagentConfig, ...]
    mcp_servers: Mapping[str, Mapping[str, Any]]
    skills: tuple[SkillConfig, ...]
    # HTTP/SSE server → header → SSM parameter holding the header's value (``headers_from_ssm``):
    # the runtime adds these headers in a proxy, so they never reach the CLI (see _mcp_secrets).
    mcp_secret_headers: Mapping[str, Mapping[str, str]] = {}
    # [I] Which tool calls wait for the user's approval in the chat (approvals.json).
    approvals: ApprovalRules = ApprovalRules()


def default_config_path() -> Path:
    """``CLAUDE_CONFIG_PATH``, else ``$LAMBDA_TASK_ROOT/claude-config``, else the repo's copy."""
    explicit = os.environ.get("CLAUDE_CONFIG_PATH", "").strip()
    if explicit:
        return Path(explicit)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "").strip()
    if task_root and (Path(task_root) / "claude-config").is_dir():
        return Path(task_root) / "claude-config"
    # src/agent_runtime/_claude_config.py → repo root is four levels up
    return Path(__file__).resolve().parents[4] / "claude-config"


def load_claude_config(
    root: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    programs: ProgramLookup | None = None,
) -> ClaudeConfig:
    """Read and validate a claude-config directory.

    ``${NAME}`` / ``${NAME:-default}`` in mcp.json strings expand from ``environ``
    (default: the process environment); ``${PYTHON}`` is this interpreter and
    ``${CLAUDE_CONFIG_PATH}`` the config directory itself. With ``programs``, each command MCP
    server's program must be found by it (as the runtime will start it).
    Raises ClaudeConfigError naming the file and field of every problem found.
    """
    base = Path(root) if root is not None else default_config_path()
    env = dict(os.environ if environ is None else environ)
    env.setdefault("PYTHON", sys.executable)
    env["CLAUDE_CONFIG_PATH"] = str(base.resolve())
    if not base.is_dir():
        raise ClaudeConfigError(str(base), None, "directory does not exist (set CLAUDE_CONFIG_PATH)")
    problems = ConfigProblems()
    system_prompt = ""
    with problems.part():
        system_prompt = _load_system_prompt(base / "system_prompt.md")
    for name, where_instead in _NOT_READ.items():
        if (base / name).exists():
            problems.found.append(ClaudeConfigError(str(base / name), None, f"is not read: {where_instead}"))
    problems.found.extend(link_problems(base))
    # A file with problems of its own is not what the files that name its parts are checked
    # against (its tools), as that would only repeat its problems as theirs; but mcp.json
    # defines its servers' names as soon as it parses, whatever is wrong inside a server.
    mcp, mcp_names = load_mcp(base / "mcp.json", env, programs, problems)
    skills = _load_skills(base / "skills", problems)
    agents = _load_agents(base, mcp_names, problems)
    approvals = load_approval_rules(
        base,
        problems,
        agent_tools=None if agents is None else _agent_tools(*agents),
        mcp_servers=mcp_names,
    )
    problems.raise_any()
    assert mcp is not None and agents is not None  # each is None only with a problem raised above
    return ClaudeConfig(
        root=str(base),
        system_prompt=system_prompt,
        main=agents[0],
        agents=agents[1],
        mcp_servers=mcp[0],
        skills=skills,
        mcp_secret_headers=mcp[1],
        approvals=approvals,
    )


def _agent_tools(main: MainAgentPolicy, agents: tuple[SubagentConfig, ...]) -> set[str] | None:
    """The built-in tools any agent may call (None: main.tools unset, so the CLI's whole set)."""
    if main.tools is None:
        return None
    return {*main.tools, *(tool for agent in agents for tool in agent.tools or ())}


def _load_system_prompt(file: Path) -> str:
    from ._file_notes import with_file_notes  # it imports this module (through the outbox)

    system_prompt = read_text(file, None).strip()
    if not system_prompt:
        raise ClaudeConfigError(str(file), None, "is empty")
    size = len(system_prompt.encode())
    room = MAX_SYSTEM_PROMPT_BYTES - (len(with_file_notes(system_prompt).encode()) - size)
    if size > room:
        raise ClaudeConfigError(
            str(file),
            None,
            f"is {size:,} bytes, more than the {room:,} the CLI can be started with (it takes the "
            "system prompt on its command line, which Linux caps at 128 KiB): shorten it, or move "
            "reference material into a skill (skills/<name>/SKILL.md), which the agent reads when needed",
        )
    return system_prompt


def _check_tools(
    tools: tuple[str, ...], file: Path, field: str, mcp_names: set[str] | None, problems: ConfigProblems
) -> None:
    for index, tool in enumerate(tools):
        with problems.part():
            _check_tool(tool, file, f"{field}[{index}]", mcp_names)


def _check_tool(tool: str, file: Path, where: str, mcp_names: set[str] | None) -> None:
    """``mcp_names``: the servers mcp.json defines (None: not known, mcp.json has problems)."""
    if any(ch in tool for ch in "*?[]"):
        raise ClaudeConfigError(str(file), where, f"{tool!r} is a wildcard; list each tool by its full name")
    mcp = _MCP_TOOL.fullmatch(tool)
    if tool.startswith("mcp__"):
        if mcp is None:
            raise ClaudeConfigError(
                str(file), where, f"{tool!r} is not a full MCP tool name (mcp__<server>__<tool>)"
            )
        if mcp_names is not None and mcp.group(1) not in mcp_names:
            raise ClaudeConfigError(
                str(file),
                where,
                f"{tool!r} names MCP server {mcp.group(1)!r}, which mcp.json does not define",
            )
    elif tool not in KNOWN_TOOL_NAMES:
        # The CLI would leave the tool out without a word (or, in disallowed_tools, not hide
        # the one meant), and approvals.json's rules are checked against these names: a rule
        # for the misspelt one would pass.
        hint = did_you_mean(tool) or " (no built-in tool of Claude Code has that name)"
        raise ClaudeConfigError(str(file), where, f"unknown tool {tool!r}{hint}")


def _load_agents(
    base: Path, mcp_names: set[str] | None, problems: ConfigProblems
) -> tuple[MainAgentPolicy, tuple[SubagentConfig, ...]] | None:
    """main and the subagents of agents.json (None: it has problems, added to ``problems``)."""
    file = base / "agents.json"
    before = len(problems.found)
    data: dict[str, Any] | None = None
    with problems.part():
        data = read_json(file, required=False)
    if data is None:
        return None  # it does not parse: nothing in it to check
    with problems.part():
        refuse_unknown_fields(data, ("main", "agents"), file, "")
    main: MainAgentPolicy | None = None
    with problems.part():
        main = _main_policy(data.get("main", {}), file, mcp_names, problems)
    agents: list[SubagentConfig] = []
    with problems.part():
        agents_raw = data.get("agents", {})
        if not isinstance(agents_raw, dict):
            raise ClaudeConfigError(str(file), "agents", "must be an object of name → definition")
        for name, spec in agents_raw.items():
            with problems.part():
                agent = _subagent(base, file, name, spec, mcp_names, problems)
                if agent is not None:
                    agents.append(agent)
        for unnamed in _prompts_no_agent_names(base, agents_raw):
            reason = (
                f"no agent in agents.json names it as prompt_file, so it is no subagent: add "
                f"agents.{unnamed.stem} (description, prompt_file, tools) to agents.json"
            )
            problems.found.append(ClaudeConfigError(str(unnamed), None, reason))
    if main is None or len(problems.found) > before:
        return None
    return main, tuple(agents)


def _main_policy(
    main_raw: object, file: Path, mcp_names: set[str] | None, problems: ConfigProblems
) -> MainAgentPolicy | None:
    """main's tool policy (None: it has problems, added to ``problems``)."""
    if not isinstance(main_raw, dict):
        raise ClaudeConfigError(str(file), "main", "must be an object")
    before = len(problems.found)
    # Field by field, and the tools of each list that is itself right: msgspec stops at the
    # first mistake, and the operator should see them all (a misspelt tool beside a wrong
    # max_turns too), not one round of fixes per run.
    for item in main_raw.items():
        with problems.part():
            _check_main_field(item, file, mcp_names, problems)
    if len(problems.found) > before:
        return None
    return msgspec.convert(main_raw, MainAgentPolicy)


_MAIN_TOOL_LISTS = ("tools", "allowed_tools", "disallowed_tools")


def _check_main_field(
    item: tuple[str, object], file: Path, mcp_names: set[str] | None, problems: ConfigProblems
) -> None:
    try:
        alone = msgspec.convert(dict([item]), MainAgentPolicy)
    except msgspec.ValidationError as exc:
        field, reason = _problem_of(exc, "main", MainAgentPolicy)
        raise ClaudeConfigError(str(file), field, reason) from exc
    name = item[0]
    tools = getattr(alone, name) if name in _MAIN_TOOL_LISTS else None
    if tools is not None:
        _check_tools(tools, file, f"main.{name}", mcp_names, problems)


def _subagent(
    base: Path, file: Path, name: str, spec: object, mcp_names: set[str] | None, problems: ConfigProblems
) -> SubagentConfig | None:
    """The subagent ``name`` (None: it has problems, added to ``problems``). Its description,
    prompt file, tools and model are checked each on its own, so one run names every mistake."""
    field = f"agents.{name}"
    if not _SKILL_NAME.fullmatch(name):
        raise ClaudeConfigError(str(file), field, "agent names use a-z, 0-9 and '-'")
    if not isinstance(spec, dict):
        raise ClaudeConfigError(str(file), field, "must be an object")
    before = len(problems.found)
    with problems.part():
        refuse_unknown_fields(spec, ("description", "prompt_file", "tools", "model"), file, field)
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        with problems.part():
            raise ClaudeConfigError(str(file), f"{field}.description", "is required (a non-empty string)")
    prompt = ""
    with problems.part():
        prompt = _subagent_prompt(base, file, field, spec.get("prompt_file"))
    tools = None
    if "tools" in spec:
        with problems.part():
            tools = string_list(spec["tools"], file, f"{field}.tools")
            _check_tools(tools, file, f"{field}.tools", mcp_names, problems)
    model = spec.get("model")
    with problems.part():
        if model is not None and not isinstance(model, str):
            raise ClaudeConfigError(str(file), f"{field}.model", "must be a string (alias or model id)")
        mistake = agent_model_mistake(model) if model is not None else None
        if mistake is not None:  # every call of the subagent would fail, in every turn that uses it
            raise ClaudeConfigError(str(file), f"{field}.model", mistake)
    if len(problems.found) > before or not isinstance(description, str):
        return None
    return SubagentConfig(name=name, description=description.strip(), prompt=prompt, tools=tools, model=model)


def _subagent_prompt(base: Path, file: Path, field: str, prompt_file: object) -> str:
    """The subagent's instructions, read from its ``prompt_file``."""
    if not isinstance(prompt_file, str) or not prompt_file.strip():
        raise ClaudeConfigError(
            str(file), f"{field}.prompt_file", "is required (a path relative to claude-config)"
        )
    if "\x00" in prompt_file:  # no file has such a name (and a path with it cannot be looked up)
        raise ClaudeConfigError(str(file), f"{field}.prompt_file", "must not contain a NUL character")
    prompt_path = (base / prompt_file).resolve()
    if not prompt_path.is_relative_to(base.resolve()):
        raise ClaudeConfigError(str(file), f"{field}.prompt_file", "must stay inside claude-config")
    if not prompt_path.is_file():
        raise ClaudeConfigError(str(file), f"{field}.prompt_file", f"{prompt_file!r} does not exist")
    prompt = read_text(prompt_path, f"{field}.prompt_file")
    if FRONT_MATTER.match(prompt):  # Claude Code's subagent file: its fields would be prompt text
        raise ClaudeConfigError(
            str(file),
            f"{field}.prompt_file",
            f"{prompt_file!r} starts with front matter (Claude Code's subagent format), which is not "
            f"read: put description, tools and model in agents.json {field}, and only the prompt in the file",
        )
    prompt = prompt.strip()
    if not prompt:  # as for system_prompt.md: the subagent would run with no instructions
        raise ClaudeConfigError(str(file), f"{field}.prompt_file", f"{prompt_file!r} is empty")
    return prompt


def _prompts_no_agent_names(base: Path, agents_raw: Mapping[str, Any]) -> list[Path]:
    """The ``agents/*.md`` files no agent's ``prompt_file`` names: Claude Code makes a subagent of
    each such file, this runtime only of what agents.json defines. The file of an agent of the
    same name is left to that agent's own checks (its prompt_file may be what is wrong)."""
    named = {
        (base / spec["prompt_file"]).resolve()
        for spec in agents_raw.values()
        if isinstance(spec, dict)
        and isinstance(spec.get("prompt_file"), str)
        and "\x00" not in spec["prompt_file"]
    }
    return sorted(
        p
        for p in (base / "agents").glob("*.md")
        if p.resolve() not in named and p.stem not in agents_raw and not _notes(p)
    )


def _notes(path: Path) -> bool:
    """Whether ``path`` is the folder's notes (README.md), which Claude Code does not take for a
    subagent either: it has no front matter."""
    return path.stem.upper() == "README"


# msgspec's names of JSON types, as an operator reads them
_JSON_KINDS = {
    "array": "a list",
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "null": "null",
}


# What was found, where "a number" would read as if a whole one were wanted (1.0 is one too)
_GOT_KINDS = {"float": "a decimal number"}


def _choices_of(struct: type[msgspec.Struct], name: str) -> list[str]:
    """The values a ``Literal`` field of ``struct`` allows, in declared order (maybe optional)."""
    kind = typing.get_type_hints(struct).get(name)
    kinds = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    return [str(v) for k in kinds if typing.get_origin(k) is Literal for v in typing.get_args(k)]


def _problem_of(exc: msgspec.ValidationError, prefix: str, struct: type[msgspec.Struct]) -> tuple[str, str]:
    """(field, reason) of a msgspec validation error, worded for whoever edits the file."""
    text, _, at = str(exc).partition(" - at `$")
    path = at.rstrip("`").lstrip(".")
    field = f"{prefix}.{path}" if path else prefix
    if unknown := re.fullmatch(r"Object contains unknown field `(.+)`", text):
        known = ", ".join(struct.__struct_fields__)
        return f"{prefix}.{unknown.group(1)}", f"unknown field (known: {known})"
    if expected := re.fullmatch(r"Expected `(.+)`, got `(.+)`", text):
        wanted = [_JSON_KINDS.get(kind.strip(), kind.strip()) for kind in expected.group(1).split("|")]
        wanted = [kind for kind in wanted if kind != "null"] or ["null"]
        got = _GOT_KINDS.get(expected.group(2)) or _JSON_KINDS.get(expected.group(2), expected.group(2))
        return field, f"must be {' or '.join(wanted)}, not {got}"
    if (enum := re.fullmatch(r"Invalid enum value (.+)", text)) and (choices := _choices_of(struct, path)):
        return field, f"must be one of {', '.join(choices)}, not {enum.group(1)}"
    if bound := re.fullmatch(r"Expected `int` >= (\d+)", text):
        return field, f"must be a whole number of at least {bound.group(1)}"
    return field, text


def _load_skills(directory: Path, problems: ConfigProblems) -> tuple[SkillConfig, ...]:
    if not directory.exists():
        return ()
    skill_dirs: list[Path] = []
    with problems.part():
        skill_dirs = _skill_dirs(directory)
    skills = []
    for skill_dir in skill_dirs:
        with problems.part():
            skills.append(_skill(skill_dir))
    for loose in sorted(directory.glob("*.md")) if directory.is_dir() else ():
        # the CLI finds a skill only as <name>/SKILL.md: this one would never be used
        if loose.is_file() and not _notes(loose):
            name = loose.stem.lower() if loose.name != "SKILL.md" else "<name>"
            problems.found.append(
                ClaudeConfigError(
                    str(loose),
                    None,
                    f"is no skill: a skill is a directory, move it to skills/{name}/SKILL.md",
                )
            )
    return tuple(skills)


def _skill_dirs(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ClaudeConfigError(str(directory), None, "must be a directory of <name>/SKILL.md")
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir())
    except OSError as exc:
        raise ClaudeConfigError(str(directory), None, f"cannot be read: {exc}") from exc


def _named_alike(directory: Path, name: str) -> str | None:
    """A file of ``directory`` whose name is ``name`` in other letter cases."""
    try:
        return next((p.name for p in directory.iterdir() if p.name.lower() == name.lower()), None)
    except OSError:
        return None


def _skill(skill_dir: Path) -> SkillConfig:
    file = skill_dir / "SKILL.md"
    if not file.exists() and (other := _named_alike(skill_dir, file.name)):
        # a case-insensitive disk (macOS) found it; the runtime's Linux does not
        raise ClaudeConfigError(str(file), None, f"file does not exist (rename {other} to SKILL.md)")
    text = read_text(file, None)
    match = FRONT_MATTER.match(text)
    if match is None and text.lstrip("\ufeff").startswith("---"):
        raise ClaudeConfigError(str(file), "front matter", "has no closing '---' line after its YAML")
    if match is None:
        raise ClaudeConfigError(
            str(file), "front matter", "must start with '---', YAML (name, description), '---'"
        )
    try:
        meta = load_front_matter(match.group(1))
    except yaml.YAMLError as exc:
        raise ClaudeConfigError(str(file), "front matter", f"invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ClaudeConfigError(str(file), "front matter", "must be a YAML mapping")
    name = meta.get("name", skill_dir.name)
    if not isinstance(name, str) or not _SKILL_NAME.fullmatch(name):
        raise ClaudeConfigError(str(file), "name", "must be lowercase letters, digits and '-'")
    if name != skill_dir.name:
        raise ClaudeConfigError(str(file), "name", f"{name!r} differs from its directory {skill_dir.name!r}")
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ClaudeConfigError(str(file), "description", "is required (when should the agent use it?)")
    _refuse_links_the_copy_cannot_follow(skill_dir, {skill_dir.resolve()}, skill_dir.parent.parent.resolve())
    return SkillConfig(name=name, description=description.strip(), directory=str(skill_dir))


def _refuse_links_the_copy_cannot_follow(directory: Path, above: set[Path], inside: Path) -> None:
    """A skill's directory is copied for every turn, links followed (_skills_plugin): a link
    back to a directory it is in would make the copy repeat without end, failing every turn.
    ``above``: where the links followed so far really are. Links that lead nowhere or out of
    claude-config are named by _config_links, and not followed here."""
    for path in sorted(directory.iterdir()):
        if not path.is_dir():
            continue
        real = path.resolve()
        if not real.is_relative_to(inside):
            continue
        if any(seen.is_relative_to(real) for seen in above):
            raise ClaudeConfigError(
                str(path),
                None,
                f"is a link to {os.readlink(path)!r}, a directory it is in: the copy of the skill made "
                "for each turn would never end; link to the files themselves, or remove it",
            )
        _refuse_links_the_copy_cannot_follow(path, above | {real}, inside)
