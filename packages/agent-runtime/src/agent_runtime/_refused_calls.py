"""Which tool calls never ran, as the CLI records them on a call's result entry in the
transcript (inspected in real transcripts of the bundled CLI).

Every call the CLI ran went through its permission check first, and the entry of its result
says so: ``"permissionDecision": {"decision": "accept", ...}`` (a tool that failed too). A call
it did not run has either:

- ``"decision": "reject"``: a PreToolUse hook refused it (``"source": "hook"``: the approval
  gate, the save before tools), or the CLI's permission policy did (``"source": "config"``: a
  tool outside ``allowed_tools`` with ``permission_mode`` ``dontAsk``);
- no decision at all, and the CLI's own error in place of a result (wrapped in
  ``<tool_use_error>``): the call never reached the check (a tool in ``disallowed_tools``, which
  the CLI takes away, an unknown tool, input the tool does not take).

The entry's fields are the CLI's: no tool's output writes them, so a result that merely reads
like a refusal (a script printing one) is not taken for one. An entry with more than one result
is not taken for a refusal either: the record would not say which."""

from __future__ import annotations

from typing import Any

from ._approval_gate import WAITING_REASON

_CLI_ERROR = ("<tool_use_error>", "</tool_use_error>")


def refused_call(entry: dict[str, Any]) -> str | None:
    """The id of the call a transcript entry records as refused before it ran, else None."""
    result = _only_result(entry)
    if result is None or result.get("is_error") is not True or not isinstance(result.get("tool_use_id"), str):
        return None
    decision = entry.get("permissionDecision")
    if isinstance(decision, dict):
        refused = decision.get("decision") == "reject"
    else:
        content = result.get("content")
        refused = "permissionDecision" not in entry and isinstance(content, str) and _is_cli_error(content)
    return result["tool_use_id"] if refused else None


def held_for_approval(entry: dict[str, Any]) -> bool:
    """Whether the entry records the approval gate's refusal of a call it held for the user:
    a hook's refusal (the CLI's record) whose reason, the hook's own words, is the gate's."""
    result = _only_result(entry)
    decision = entry.get("permissionDecision")
    content = result.get("content") if result is not None else None
    return (
        refused_call(entry) is not None
        and isinstance(decision, dict)
        and decision.get("source") == "hook"
        and isinstance(content, str)
        and content.endswith(WAITING_REASON)
    )


def _only_result(entry: dict[str, Any]) -> dict[str, Any] | None:
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if entry.get("type") != "user" or not isinstance(content, list) or len(content) != 1:
        return None
    block = content[0]
    return block if isinstance(block, dict) and block.get("type") == "tool_result" else None


def _is_cli_error(content: str) -> bool:
    start, end = _CLI_ERROR
    return content.startswith(start) and content.rstrip().endswith(end)
