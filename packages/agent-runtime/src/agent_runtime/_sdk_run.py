"""Driving the Claude Agent SDK for one run: its options (CLI, sandboxed environment, agents,
MCP servers, the timed transcript store), reading its messages into the run's outcome, and
catching the store up after a dropped mirror batch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from claude_agent_sdk import (
    AgentDefinition,
    AssistantMessage,
    ClaudeAgentOptions,
    HookMatcher,
    MirrorErrorMessage,
    ProcessError,
    ResultError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    import_session_to_store,
    project_key_for_directory,
    query,
)
from session_core import get_logger

from ._builtin_tools import NOT_LISTED, TOOL_ALIASES
from ._claude_config import ClaudeConfig, MainAgentPolicy
from ._cli_input import as_words
from ._environment import (
    ModelAccess,
    build_cli_environment,
    install_cli_launcher,
    sandbox_connect_ports,
    tool_shell_path,
)
from ._errors import UntrustedCliOutputError
from ._file_notes import with_file_notes
from ._held_mirror import HeldMirror
from ._mcp_rest import REST_S, Absence, McpServersAtRest, unavailable_servers_note
from ._mcp_secrets import HeaderRefusal, McpSecretProxies
from ._model_proxy import MCP_SERVER_UNREACHABLE
from ._prompt_marks import prompt_stream
from ._restore import is_session_id
from ._save_before_tools import SaveBeforeTools
from ._settings import RuntimeSettings
from ._skills_plugin import install_skills_plugin
from ._timed_store import TimedStore
from ._turn_events import events_of
from ._turn_state import (
    RunOutcome,
    SdkRun,
)
from ._workspace import SessionWorkspace

log = get_logger("agent_runtime._turn")


class SdkRunSteps:
    """The SDK-facing steps of ``Runtime`` (which sets these attributes)."""

    settings: RuntimeSettings
    config: ClaudeConfig
    model: ModelAccess
    cli_path: str
    stderr_tail: list[str]
    mcp_proxies: McpSecretProxies | None
    mcp_at_rest: McpServersAtRest
    _timed_store: TimedStore | None

    def _refused_headers(self) -> dict[str, HeaderRefusal]:
        return self.mcp_proxies.refused_their_headers() if self.mcp_proxies is not None else {}

    def _options(
        self, run: SdkRun, workspace: SessionWorkspace, saver: SaveBeforeTools
    ) -> ClaudeAgentOptions:
        config, main = self.config, self.config.main
        model_env = self.model.cli_environment(max_cost_usd=run.max_cost_usd)
        mcp_servers, left_out = self._mcp_servers(run, workspace)
        system_prompt = with_file_notes(config.system_prompt)
        if left_out:
            system_prompt += "\n\n" + unavailable_servers_note(left_out)
        launcher = self.cli_launcher
        env = build_cli_environment(
            home=workspace.home,
            tmp=workspace.tmp,
            config_dir=workspace.config_dir,
            model_env=model_env,
            settings=self.settings,
            cli_path=self.cli_path,
            writable=[workspace.cwd, workspace.config_dir, workspace.home, workspace.tmp],
            connect_ports=sandbox_connect_ports(model_env, mcp_servers),
            tool_shell=tool_shell_path(launcher),
        )
        tail = self.stderr_tail
        tail.clear()

        def keep_stderr(line: str) -> None:
            tail.append(line[:500])
            del tail[:-20]

        gate = run.gate if run.gate is not None and run.gate.needed else None
        before_tool = _first_decision(saver, gate) if gate is not None else saver
        before_tools = [HookMatcher(matcher=None, hooks=[cast(Any, before_tool)])]
        return ClaudeAgentOptions(
            cwd=workspace.cwd,
            cli_path=launcher,
            env=env,
            # Not the snapshot a session records on its first request (the CLI's default): that
            # keeps the system prompt and tool list a chat began with across every later deploy.
            # Rebuilt from this deploy, the text is the same on every request, so caching holds.
            system_prompt={
                "type": "custom",
                "prompt": system_prompt,
                "snapshot": False,
            },
            tools=list(main.tools) if main.tools is not None else None,
            allowed_tools=list(main.allowed_tools),
            disallowed_tools=list(main.disallowed_tools),
            hooks={"PreToolUse": before_tools},
            permission_mode=main.permission_mode,
            max_turns=main.max_turns,
            model=main.model,
            agents={
                a.name: AgentDefinition(
                    description=a.description,
                    prompt=a.prompt,
                    tools=list(a.tools) if a.tools is not None else None,
                    model=a.model,
                )
                for a in config.agents
            },
            mcp_servers={name: cast(Any, spec) for name, spec in mcp_servers.items()},
            # No settings file: every one the CLI would read (the cwd's .claude/, the config
            # dir) is writable by tools, and the CLI reloads them mid-turn, running their hooks
            # (and helpers) itself, outside the tools' nested sandbox domain. claude-config
            # comes through these options, its skills as a plugin (_skills_plugin).
            setting_sources=[],
            skills=[s.name for s in config.skills],
            plugins=[{"type": "local", "path": self._skills_plugin()}] if config.skills else [],
            # Every frame handed over at once: the held mirror batches them (see _held_mirror).
            session_store=cast(Any, saver.held),
            session_store_flush="eager",
            resume=run.resume,
            resume_session_at=run.resume_at,
            max_budget_usd=run.max_cost_usd,
            stderr=keep_stderr,
            include_partial_messages=True,  # text deltas for the live progress
            max_buffer_size=LARGEST_CLI_MESSAGE_BYTES,
        )

    def _mcp_servers(
        self, run: SdkRun, workspace: SessionWorkspace
    ) -> tuple[dict[str, Any], dict[str, Absence]]:
        """The MCP servers ``run``'s CLI starts, and those resting (left out, see _mcp_rest)."""
        if run.command:
            # A command of the CLI's own (/compact) uses no tool: a server started for it would
            # only slow it, and one failing there would rest through the message's own run.
            return {}, {}
        servers = (
            self.mcp_proxies.cli_servers() if self.mcp_proxies is not None else dict(self.config.mcp_servers)
        )
        return self.mcp_at_rest.split(servers, str(workspace.cwd))

    def _skills_plugin(self) -> str:
        return install_skills_plugin(
            Path(self.settings.sessions_root) / ".bin" / "skills-plugin", self.config
        )

    @property
    def cli_launcher(self) -> str:
        return install_cli_launcher(Path(self.settings.sessions_root) / ".bin")

    async def _run_sdk(
        self, run: SdkRun, workspace: SessionWorkspace, outcome: RunOutcome, saver: SaveBeforeTools
    ) -> None:
        """Run the SDK; what the CLI wrote reaches the store by the end (not when cancelled:
        see ``_run_until_stopped``)."""
        project_key = project_key_for_directory(workspace.cwd)
        try:
            options = self._options(run, workspace, saver)
            try:
                if run.command:
                    stream = prompt_stream(run.prompt, run.turn_id, command=True)
                else:
                    stream = prompt_stream(as_words(run.prompt, workspace.cwd), run.turn_id)
                messages = query(prompt=stream, options=options)
                await self._consume(messages, outcome, project_key, workspace, saver.held)
            except (ResultError, ProcessError):
                # The CLI exits non-zero after an error result (ResultError, or ProcessError
                # with a streamed prompt); that result is the outcome.
                if outcome.result is None:
                    raise
            await saver.held.send()
            await self._catch_up(outcome, project_key, workspace, saver.held)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified by the caller, with the partial outcome at hand
            outcome.failure = exc
            await saver.held.send()  # what the CLI wrote before it failed is kept
        finally:
            for tool in sorted(outcome.tools_added):
                self._lift_server_of(tool, str(workspace.cwd))

    def _lift_late_server(self, tool: str, result: ToolResultBlock, session: str) -> None:
        """A server still "pending" when the turn began may connect later in it (one that needs
        12 s, past MCP_STARTUP_TIMEOUT_MS): a call it answered shows it works, so it is not
        left out of the next turns."""
        if result.is_error and "No such tool available" in _result_text(result):
            return  # the CLI's answer: the server never took the call
        self._lift_server_of(tool, session)

    def _lift_server_of(self, tool: str, session: str) -> None:
        """The server ``tool`` belongs to connected after all (it answered a call of it, or
        the CLI offered it once the server connected, called or not): the next turns start it."""
        for name in self.config.mcp_servers:
            if tool.startswith(f"mcp__{name}__") and self.mcp_at_rest.lift(
                name, self.config.mcp_servers, session
            ):
                log.info("turn.mcp_server_connected_late", server=name, tool=tool)

    async def _consume(
        self,
        messages: Any,
        outcome: RunOutcome,
        project_key: str,
        workspace: SessionWorkspace,
        held: HeldMirror,
    ) -> None:
        mcp_calls: dict[str, str] = {}  # id → name of each MCP tool call, to read its result
        async for message in messages:
            for event in events_of(message, streamed_text=True):
                outcome.sink.emit(event)
            if isinstance(message, MirrorErrorMessage):
                outcome.mirror_errors += 1
                log.warning("turn.mirror_error")
            elif isinstance(message, SystemMessage) and message.subtype == "init":
                outcome.session_id = _checked_session_id(message.data.get("session_id"))
                self.mcp_at_rest.rest(
                    _log_unavailable_mcp_servers(message.data, self.config, self._refused_headers()),
                    self.config.mcp_servers,
                    str(workspace.cwd),
                )
                _log_unknown_tools(message.data, self.config.main, self.config.root)
            elif isinstance(message, SystemMessage) and message.subtype == "compact_boundary":
                outcome.summarised = True
                metadata = message.data.get("compact_metadata")
                trigger = metadata.get("trigger") if isinstance(metadata, dict) else None
                log.info("turn.history_summarised", trigger=trigger)
            elif isinstance(message, AssistantMessage):
                outcome.spent = True
                outcome.tool_calls.update(b.id for b in message.content if isinstance(b, ToolUseBlock))
                mcp_calls.update(
                    (b.id, b.name)
                    for b in message.content
                    if isinstance(b, ToolUseBlock) and b.name.startswith("mcp__")
                )
                if message.error is not None:  # the CLI's own message about a failed call
                    outcome.api_error = message.error
                text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
                if text and message.parent_tool_use_id is None:
                    outcome.texts.append(text)
            elif isinstance(message, UserMessage) and isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, ToolResultBlock) and block.tool_use_id in mcp_calls:
                        tool = mcp_calls.pop(block.tool_use_id)
                        _log_lost_mcp_server(tool, block, self.config)
                        self._lift_late_server(tool, block, str(workspace.cwd))
            elif isinstance(message, ResultMessage):
                # A background subagent that finishes wakes the session for another turn
                # inside this run: every result is part of the answer.
                outcome.session_id = _checked_session_id(message.session_id)
                outcome.result = message
                if message.result:
                    outcome.answers.append(message.result.strip())
                # The store holds the turn so far before anyone reads the result (as the
                # SDK's own flush at a result did).
                await held.send()
                # Still inside the query: the SDK's resume copy of the transcript exists.
                await self._catch_up(outcome, project_key, workspace, held)

    async def _catch_up(
        self,
        outcome: RunOutcome,
        project_key: str,
        workspace: SessionWorkspace,
        held: HeldMirror | None = None,
    ) -> None:
        """After a MirrorErrorMessage (or a failed send of the run's ``held`` mirror) the store
        misses a batch: replay the local transcript (duplicate-safe by entry uuid) before the
        turn may be recorded as done."""
        if outcome.mirror_errors <= outcome.caught_up_after or not outcome.session_id:
            return
        errors_seen = outcome.mirror_errors
        name = f"{outcome.session_id}.jsonl"
        candidates = [
            Path(workspace.config_dir),
            *sorted(
                Path(tempfile.gettempdir()).glob("claude-resume-*"),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            ),
        ]
        for config_dir in candidates:
            if (config_dir / "projects" / project_key / name).is_file():
                replaying = held.catching_up() if held is not None else contextlib.nullcontext()
                async with replaying:
                    with _process_config_dir(str(config_dir)):
                        # TimedStore has the SDK's SessionStore verbs (duck-typed, like _options)
                        await import_session_to_store(
                            outcome.session_id, cast(Any, self._timed_store), directory=workspace.cwd
                        )
                outcome.caught_up_after = errors_seen
                log.info("turn.store_caught_up")
                return
        log.error("turn.catch_up_no_local_transcript")


def _first_decision(*hooks: Callable[[Any, str | None, Any], Awaitable[dict[str, Any]]]) -> Any:
    """One PreToolUse hook asking ``hooks`` in turn, up to the first that decides. The CLI asks
    every hook of a call whatever another decided: as hooks of their own, the approval gate took
    the user's allowance for a call the save before it had refused (the retry was told it ran)."""

    async def before_tool(hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        for hook in hooks:
            decision = await hook(hook_input, tool_use_id, context)
            if decision:
                return decision
        return {}

    return before_tool


@contextlib.contextmanager
def _process_config_dir(path: str) -> Iterator[None]:
    # import_session_to_store finds the transcript through this process's CLAUDE_CONFIG_DIR.
    before = os.environ.get("CLAUDE_CONFIG_DIR")
    os.environ["CLAUDE_CONFIG_DIR"] = path
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CLAUDE_CONFIG_DIR", None)
        else:
            os.environ["CLAUDE_CONFIG_DIR"] = before


# The longest line of the CLI's output the SDK reads (its default, 1 MiB, failed the turn of a
# ~400 KB photo the agent read: the CLI sends a tool's result twice, as base64, in one line, as
# the model reads it and as the tool returned it). A model request holds at most 32 MB (the
# Messages API's limit), so no tool result the CLI keeps is longer than that, twice over.
# Measured (test_largest_attachment): a 20 MB PDF, the most a bot downloads, is a ~56 MB line.
LARGEST_CLI_MESSAGE_BYTES = 64 * 1024 * 1024
# A server's status in the CLI's init message: "pending" is one that had not connected when
# the CLI's startup wait (MCP_STARTUP_TIMEOUT_MS) ran out, read as the operator would.
_NOT_CONNECTED = {"failed": "failed", "needs-auth": "needs authorisation", "pending": "not connected"}
# The CLI's whole answer to a call whose command server exited while it ran (not a server's
# own error that happens to say so).
_CONNECTION_LOST = re.compile(r"(MCP error -?\d+: )?Connection closed")
# Its whole answer to a call whose HTTP server's connection failed (reset mid-call, refused):
# the code and advice of the CLI's fetch, which no server's own error carries; or, for a
# server behind the secret headers' proxy, the proxy's own 502.
_HTTP_CONNECTION_FAILED = re.compile(
    r"(E[A-Z]+): .*(in the second argument to fetch\(\)|Is the computer able to access the url\?)"
    rf"|Error POSTing to endpoint: .*{re.escape(MCP_SERVER_UNREACHABLE)}.*",
    re.DOTALL,
)


def _log_unavailable_mcp_servers(
    init: dict[str, Any], config: ClaudeConfig, refused_headers: Mapping[str, HeaderRefusal]
) -> dict[str, Absence]:
    """The CLI goes on without an MCP server it could not start or reach in its startup wait
    (the agent only lacks its tools, and says nothing): the operator reads which one here, and
    what to fix. Returns them with why, to leave out for a while (_mcp_rest): so each is
    logged once per rest, not every turn. A server that refused its secret headers
    (``refused_headers``) and did not ask for a sign-in is one the CLI tells "failed": it is
    up, and needs a new value in SSM, not a look for a crash."""
    absences: dict[str, Absence] = {}
    for server in init.get("mcp_servers") or []:
        status = _NOT_CONNECTED.get(str(server.get("status"))) if isinstance(server, dict) else None
        if status is None:
            continue
        name = str(server.get("name"))
        if status == "failed" and name in refused_headers:
            status = "needs authorisation"
        fix = f"{Path(config.root) / 'mcp.json'}: mcpServers.{name}"
        if status == "needs authorisation":
            fix += ": " + _authorisation_fix(name, config, refused_headers.get(name))
        log.warning(
            "turn.mcp_server_unavailable", server=name, status=status, left_out_for_s=int(REST_S), fix=fix
        )
        absences[name] = "needs authorisation" if status == "needs authorisation" else "did not start"
    return absences


def _authorisation_fix(name: str, config: ClaudeConfig, refusal: HeaderRefusal | None) -> str:
    """What the operator does for a server that asked for a sign-in (OAuth), which the CLI
    cannot do without a person: give the runtime a token the server takes. For one whose new
    value SSM refused to the role, the config.invalid line says what to fix."""
    parameters = sorted(config.mcp_secret_headers.get(name, {}).values())
    if refusal == "unreadable":
        return (
            f"the server refused the old value, and SSM refuses {', '.join(parameters)} to the "
            "runtime's role: fix what its config.invalid line names"
        )
    if parameters:
        return (
            f"the server refused the value of SSM parameter {', '.join(parameters)} (revoked or "
            "expired?): put a valid one in it (it is read again at the server's next refusal)"
        )
    return (
        "the server asks for a sign-in the runtime cannot do: put a token for it in SSM and "
        "name it in headers_from_ssm"
    )


def _result_text(result: ToolResultBlock) -> str:
    content = result.content
    if isinstance(content, list):
        content = "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return str(content or "")


def _log_lost_mcp_server(tool: str, result: ToolResultBlock, config: ClaudeConfig) -> None:
    """A command server that exits during a call (it crashed, or was killed for its memory)
    gives the agent only "Connection closed", an HTTP server that dies during one only the
    CLI's fetch error: the operator reads which server here (never its headers: only the
    error's code is logged)."""
    if not result.is_error:
        return
    text = _result_text(result).strip()
    failed = _HTTP_CONNECTION_FAILED.fullmatch(text)
    if failed is not None:
        code = failed.group(1) or "the proxy that adds its secret headers could not reach it"
        status = f"its connection failed during a call ({code})"
    elif _CONNECTION_LOST.fullmatch(text):
        status = "closed the connection during a call"
    else:
        return
    for name in config.mcp_servers:
        if tool.startswith(f"mcp__{name}__"):
            log.warning(
                "turn.mcp_server_unavailable",
                server=name,
                status=status,
                tool=tool,
                fix=f"{Path(config.root) / 'mcp.json'}: mcpServers.{name}",
            )


def _log_unknown_tools(init: dict[str, Any], main: MainAgentPolicy, config_root: str) -> None:
    """A built-in tool ``main.tools`` names that the CLI does not give in this run is left out
    without a word: the operator reads which one here. A name the bundled CLI does not have at
    all (a misspelt "Bassh") stops the start instead (_claude_config); only the run knows of a
    known tool the CLI withholds under the runtime's settings (WebSearch on Bedrock) or for
    want of what it needs (the MCP resource tools, without a server that offers resources)."""
    present = init.get("tools")
    if main.tools is None or not isinstance(present, list):
        return
    for index, tool in enumerate(main.tools):
        if (
            tool.startswith("mcp__")
            or tool in present
            or TOOL_ALIASES.get(tool) in present
            or tool in NOT_LISTED
            or tool in main.disallowed_tools  # left out on purpose
        ):
            continue
        where = f"{Path(config_root) / 'agents.json'}: main.tools[{index}]"
        log.warning("turn.tool_unavailable", tool=tool, fix=where)


def _checked_session_id(value: Any) -> str:
    """The session id the CLI reported; it names files the runtime writes, so anything but the
    CLI's own kind of id fails the run."""
    if not is_session_id(value):
        raise UntrustedCliOutputError(f"session id {str(value)[:80]!r} is not a UUID")
    return cast(str, value)
