"""The consumer's collaborators, built once per container (``handler.build_consumer``) or by a
test; the Consumer and its parts receive them, never create them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from session_core import (
    Approval,
    AttemptMarks,
    BudgetLedger,
    ChatBacklog,
    CommentAlbums,
    Grant,
    PasteParts,
    SessionKey,
    SessionRegistry,
    TurnRequest,
    TurnResult,
)
from telegram_core import BotApi, ChatSettings, DeliveryLog, MovedChats

from ._chunk_claims import Claims
from ._failures import SqsClient
from ._live_view import GroupBudget, ProgressSource
from ._visibility_heartbeat import VisibilityClient

if TYPE_CHECKING:  # _voice reads the consumer's config, which needs these protocols first
    from ._voice import VoiceTranscriber


class QueueClient(SqsClient, VisibilityClient, Protocol):
    """The SQS calls the consumer makes (a boto3 SQS client): retries, copies, dead letters
    and, without ``heartbeat_sqs``, the heartbeat's renewals."""


class TurnRunner(Protocol):
    """Runs one turn on the agent runtime (``RuntimeClient``)."""

    def run_turn(self, request: TurnRequest) -> TurnResult:
        """The runtime's answer; raises RuntimeInvokeError when there is none."""
        ...


class ApprovalRecords(Protocol):
    """The verbs of session_core.Approvals the consumer uses ([I])."""

    def attach_message(self, key: SessionKey, approval_id: str, message_id: int) -> None:
        """Remember the chat message that carries the approval's buttons."""
        ...

    def grants(self, key: SessionKey) -> list[Grant]:
        """The chat's "always" grants (/permissions)."""
        ...

    def clear(self, key: SessionKey) -> Approval | None:
        """Forget the pending approval (/new); answers it."""
        ...

    def current(self, key: SessionKey) -> Approval | None:
        """The session's approval (who asked, who answered)."""
        ...


class ObjectStore(Protocol):
    """The sessions bucket (a boto3 S3 client): attachments are staged there for the runtime,
    and the files the agent sends are read from there."""

    def put_object(self, **kwargs: Any) -> Any: ...

    def get_object(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ConsumerDeps:
    """``registry``: sessions and turns; ``deliveries``: which chunks and notices went out;
    ``chat_settings``: per-chat choices such as /usage; ``runtime``: runs turns; ``bot``: the
    Bot API; ``s3``: staged attachments and the files the agent sends; ``sqs``: retries,
    copies and dead letters;
    ``budgets`` / ``backlog``: spending caps and the chat's queue count (None: off);
    ``live_turns``: the running turn's progress (session_core.LiveTurns; None: no live view);
    ``progress_budget``: the groups' outgoing budget for showing it (telegram_core.RateLimiter);
    ``delivery_claims``: each chunk is claimed before it is sent (None: off);
    ``approvals``: tool calls waiting for approval and the chat's grants (session_core.Approvals;
    None: no approval buttons, /permissions lists nothing);
    ``albums``: the parts of photo albums (and forwards) the producer kept, which the turn of
    a forward's comment may take too (session_core.CommentAlbums; None: each part is a
    message of its own); ``pastes``: the parts of long texts the apps split, kept
    likewise (session_core.PasteParts; None: each part is a message of its own);
    ``voices``: writes down what recordings say (None: VOICE_TRANSCRIPTION is off);
    ``heartbeat_sqs``: keeps a running batch's records hidden, with short timeouts
    (``heartbeat_client_config``; None: ``sqs``);
    ``attempts``: marks a message's try before last, so that its last try can tell the user
    when that one died (session_core.AttemptMarks; None: no word before the last try);
    ``moved_chats``: supergroups allowed as the listed groups they were, for the allow-list
    asked again before a turn (telegram_core.MovedChats; None: none are);
    ``clock`` / ``sleep``: wall-clock time, injectable."""

    registry: SessionRegistry
    deliveries: DeliveryLog
    chat_settings: ChatSettings
    runtime: TurnRunner
    bot: BotApi
    s3: ObjectStore
    sqs: QueueClient
    budgets: BudgetLedger | None = None
    backlog: ChatBacklog | None = None
    live_turns: ProgressSource | None = None
    progress_budget: GroupBudget | None = None
    delivery_claims: Claims | None = None
    approvals: ApprovalRecords | None = None
    albums: CommentAlbums | None = None
    pastes: PasteParts | None = None
    voices: VoiceTranscriber | None = None
    heartbeat_sqs: VisibilityClient | None = None
    attempts: AttemptMarks | None = None
    moved_chats: MovedChats | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
