"""[I] The PreToolUse hook that holds back a tool call needing the user's approval.

A call the operator's rules (approvals.json) want approved, and no grant of the chat covers,
is refused with a reason that tells the agent it waits for the user; the runtime keeps the
call (session_core.Approvals) and the chat shows it with buttons. The user's answer starts a
later turn whose prompt says what they decided; an allowed call, made again, gets through
this hook once.

Why not the SDK's ``permissionDecision: "defer"`` (docs/approvals.md): with the
installed CLI, resuming a deferred call is not under the caller's control (the CLI ran it
unasked, asked the hook, or refused it, from one run to the next), so a "Deny" could not be
guaranteed. A refused call leaves an ordinary, complete transcript that any container resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from session_core import (
    counted,
    get_logger,
    mask_secrets,
    shown_command,
    utf16_len,
    visible_text,
    within_utf16,
)

from ._approval_rules import ApprovalRules, grant_rule_for, granted

log = get_logger("agent_runtime._approvals")

# Counted as Telegram counts a message (UTF-16 units: an emoji is two), so a summary shown
# whole always fits in the chat's message with room for the rest of it.
MAX_SUMMARY_CHARS = 2000
WAITING_REASON = (
    "Not run: this call needs the user's approval, which has now been asked for in the chat. "
    "Do not retry it or work around it. End your turn with one short sentence saying what "
    "you asked to do; the user's decision will come as their next message."
)
TOO_LONG_REASON = (
    "Not run: this call needs the user's approval, and it is too long to show them in full. "
    "Split it into shorter commands."
)
USED_REASON = "Not run: the user allowed this call once, and it has run already."
ONE_AT_A_TIME_REASON = (
    "Not run: another call is already waiting for the user's approval, and one is asked at a "
    "time. Do not retry it now; end your turn."
)
# Input fields that describe a call without changing what it does: a call made again with
# another description is still the call the user allowed.
_DESCRIPTIVE_FIELDS = frozenset({"description"})


@dataclass(frozen=True)
class HeldCall:
    """A tool call held back for approval: as the model made it."""

    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]
    view: CallView  # how the chat shows it


@dataclass
class ApprovalGate:
    """The hook of one run. ``held`` is the call it held back (at most one per run)."""

    rules: ApprovalRules
    grants: Sequence[str] = ()
    allowed_once: str | None = None  # the fingerprint of the call the user allowed: it runs once
    # Takes the allowance in the store before the call runs (False: a retried turn ran it)
    claim: Callable[[], Awaitable[bool]] | None = None
    held: HeldCall | None = None
    # The allowed call was made again in this run (let through or not), and let through (its
    # allowance taken in the store)
    allowed_call_made: bool = False
    allowance_taken: bool = False

    @property
    def active(self) -> bool:
        return bool(self.rules.rules)

    @property
    def needed(self) -> bool:
        """Whether a run needs this hook: rules to apply, or an allowed call whose one run it
        takes in the store (its rules may be gone since: a deploy while the call waited)."""
        return self.active or self.allowed_once is not None

    async def __call__(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        name = str(hook_input.get("tool_name") or "")
        tool_input = hook_input.get("tool_input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        # Before the rules (a deploy may have dropped them while the call waited) and the
        # grants (which hold an "Always" answered now): the allowed call takes its allowance,
        # so the store knows it ran (a retry or a /stop then does not run it again or say it
        # did not) and a /stop that declined it first keeps it from running.
        allowed = self.allowed_once is not None and not self.allowed_call_made
        if allowed and call_fingerprint(name, tool_input) == self.allowed_once:
            self.allowed_call_made = True
            if self.claim is not None and not await self.claim():
                log.warning("approval.allowance_used_already", tool=name)
                return _decision("deny", USED_REASON)
            self.allowance_taken = True
            log.info("approval.allowed_call_runs", tool=name)
            # No "allow": that would override agents.json, and the user's answer only lifts the
            # wait for approval. A tool the operator's policy refuses (redeployed while the call
            # waited) stays refused, as a granted call is (below).
            return {}
        if not self.rules.needs_approval(name, tool_input):
            return {}
        if granted(self.grants, name, tool_input):
            return {}
        if self.held is not None or tool_use_id is None:
            return _decision("deny", ONE_AT_A_TIME_REASON)
        view = describe_call(name, tool_input)
        if not view.complete:
            return _decision("deny", TOO_LONG_REASON)
        self.held = HeldCall(tool_use_id, name, dict(tool_input), view)
        log.info("approval.held", tool=name)
        return _decision("deny", WAITING_REASON)


def call_fingerprint(name: str, tool_input: Mapping[str, Any]) -> str:
    """What a call does (descriptive fields aside), hashed: stored instead of its input, which
    may be a whole file, and compared when the allowed call is made again."""
    kept = {k: v for k, v in tool_input.items() if k not in _DESCRIPTIVE_FIELDS}
    what = json.dumps({"tool": name, "input": kept}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(what.encode()).hexdigest()


def _decision(decision: str, reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


@dataclass(frozen=True)
class CallView:
    """What the chat shows of a call: ``summary`` (masked; whole unless ``complete`` is False,
    then it says how much is left out) and the rule "Always in this chat" would grant."""

    summary: str
    grant_rule: str
    complete: bool = True


def describe_call(name: str, tool_input: Mapping[str, Any]) -> CallView:
    """How a call is shown for approval. A Bash command is shown whole, its whitespace made
    visible, secrets masked without hiding any of the shell's syntax (a ``;`` after a masked
    value stays in sight); one too long to show is not ``complete`` (the gate refuses it)."""
    rule = grant_rule_for(name, tool_input)
    if name == "Bash":
        shown = shown_command(str(tool_input.get("command") or ""))
        return CallView(shown, rule, complete=utf16_len(shown) <= MAX_SUMMARY_CHARS)
    if name in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
        path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
        summary = f"{path}\n{_change_summary(name, tool_input)}"
    else:
        summary = json.dumps(_without_secret_fields(tool_input), ensure_ascii=False, sort_keys=True)
    # As a command is shown: a path or argument must not be reordered (bidi controls) or hidden
    # (zero-width characters, blank lines) on the user's screen.
    return CallView(_bounded(mask_secrets(visible_text(summary), keep_paths=True)), rule)


def _bounded(summary: str) -> str:
    if utf16_len(summary) <= MAX_SUMMARY_CHARS:
        return summary
    kept = within_utf16(summary, MAX_SUMMARY_CHARS)
    return f"{kept}… ({counted(len(summary) - len(kept), 'more character')} not shown)"


_SECRET_FIELD = re.compile(
    r"(?i)pass(word|wd)?|secret|token|api[_-]?key|auth|bearer|cookie|session|credential|private[_-]?key"
)


def _without_secret_fields(value: Any) -> Any:
    """An MCP call's arguments with the values of secret-named fields masked, at any depth."""
    if isinstance(value, Mapping):
        return {
            k: "…" if _SECRET_FIELD.search(str(k)) else _without_secret_fields(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_secret_fields(v) for v in value]
    return value


_PREVIEW_CHARS = 400


def _change_summary(name: str, tool_input: Mapping[str, Any]) -> str:
    if name == "Write":
        content = str(tool_input.get("content") or "")
        size = f"{counted(_count_lines(content), 'line')}, {counted(len(content.encode()), 'byte')}"
        return f"write ({size}):\n{_preview(content)}"
    edits = tool_input.get("edits") if name == "MultiEdit" else [tool_input]
    removed = added = 0
    shown = []
    for edit in edits if isinstance(edits, list) else []:
        if isinstance(edit, dict):
            old = str(edit.get("old_string") or "")
            new = str(edit.get("new_string") or edit.get("new_source") or "")
            removed += _count_lines(old)
            added += _count_lines(new)
            shown.append(f"replace:\n{_preview(old)}\nwith:\n{_preview(new)}")
    return f"-{counted(removed, 'line')}, +{counted(added, 'line')}\n" + "\n".join(shown)


def _preview(text: str) -> str:
    if len(text) <= _PREVIEW_CHARS:
        return text
    return f"{text[:_PREVIEW_CHARS]}… ({counted(len(text) - _PREVIEW_CHARS, 'more character')} not shown)"


def _count_lines(text: str) -> int:
    return len(text.splitlines()) if text else 0
