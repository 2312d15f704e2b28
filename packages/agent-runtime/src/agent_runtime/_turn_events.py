"""Channel-neutral events of a running turn and the sink they go to.

The runtime never calls a chat channel: it tells a :class:`TurnEventSink` what happens (text
so far, a tool or subagent started or finished, the turn stopped); the channel's side renders
it (see ``_live_progress.py`` for the production sink and sqs_consumer for Telegram).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from claude_agent_sdk import (
    AssistantMessage,
    StreamEvent,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from session_core import ToolActivity

from ._tool_activity import tool_activity


@dataclass(frozen=True)
class TextWritten:
    """More of the answer: ``delta`` follows what was written before."""

    delta: str


@dataclass(frozen=True)
class TextBlockEnded:
    """A block of the answer ended (the next one starts on a new paragraph)."""


@dataclass(frozen=True)
class ToolStarted:
    """A tool or subagent started (``activity.kind`` says which)."""

    activity: ToolActivity


@dataclass(frozen=True)
class ToolFinished:
    """A tool or subagent returned its result (never shown: only that it ended)."""


@dataclass(frozen=True)
class TurnStopped:
    """The user stopped the turn; nothing more will be written."""


TurnEvent = TextWritten | TextBlockEnded | ToolStarted | ToolFinished | TurnStopped


class TurnEventSink(Protocol):
    """Where a running turn's events go. ``emit`` is called on the runtime's event loop and
    must not block it (a sink that writes somewhere does so in the background)."""

    def emit(self, event: TurnEvent) -> None:
        """Take one event; never raises."""
        ...


class NoSink:
    """A sink that drops every event (a turn nobody watches)."""

    def emit(self, event: TurnEvent) -> None:
        """Drop ``event``."""


def events_of(message: Any, *, streamed_text: bool) -> Iterator[TurnEvent]:
    """The events one SDK message means for the main agent (a subagent's own messages are
    its business). With ``streamed_text`` the answer's text comes from the partial stream
    events; whole assistant messages then only add their tool calls."""
    if isinstance(message, StreamEvent):
        if message.parent_tool_use_id is not None:
            return
        event = message.event
        if event.get("type") == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield TextWritten(str(delta["text"]))
        elif event.get("type") == "content_block_stop":
            yield TextBlockEnded()
    elif isinstance(message, AssistantMessage):
        if message.parent_tool_use_id is not None:
            return
        for block in message.content:
            if isinstance(block, TextBlock) and block.text and not streamed_text:
                yield TextWritten(block.text)
                yield TextBlockEnded()
            elif isinstance(block, ToolUseBlock):
                yield ToolStarted(tool_activity(block.name, block.input))
    elif isinstance(message, UserMessage) and message.parent_tool_use_id is None:
        content = message.content if isinstance(message.content, list) else []
        if any(isinstance(block, ToolResultBlock) for block in content):
            yield ToolFinished()
