"""What the runtime needs of the things it is handed (``Runtime(store=..., registry=..., s3=...)``):
the verbs it calls, as Protocols; session-core's classes and boto3's clients have them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from session_core import Lease, RecordedTurn, SessionKey, SessionRecord, TurnRecords


class TranscriptStoreVerbs(Protocol):
    """The Claude Agent SDK's ``SessionStore`` verbs (``session_core.TranscriptStore`` has them;
    ``load_stored``, ``load_for_restore(key, max_bytes=, into=)`` and ``known_stored`` are
    optional extras the restore uses when present)."""

    async def append(self, key: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
        """Persist a batch of transcript entries after the ones stored."""
        ...

    async def load(self, key: Mapping[str, Any]) -> list[Any] | None:
        """Every entry stored under ``key``, or None."""
        ...

    async def list_subkeys(self, key: Mapping[str, Any]) -> list[str]:
        """The subagent transcripts of a session."""
        ...

    async def list_sessions(self, project_key: str) -> Any:
        """The project's sessions with their mtimes."""
        ...

    async def list_session_summaries(self, project_key: str) -> Any:
        """The project's sessions with their folded summaries."""
        ...

    async def delete(self, key: Mapping[str, Any]) -> None:
        """Remove a transcript."""
        ...


class RuntimeRegistry(TurnRecords, Protocol):
    """The session registry's verbs the runtime calls (``session_core.SessionRegistry``)."""

    def get_session(self, key: SessionKey) -> SessionRecord | None:
        """The session's record, or None before its first turn."""
        ...

    def get_turn_record(self, key: SessionKey, turn_id: int) -> RecordedTurn | None:
        """Turn ``turn_id``'s recorded answer and when it was recorded, or None."""
        ...

    def start_new_session(self, key: SessionKey) -> SessionRecord | None:
        """Forget the current SDK session (``/new``)."""
        ...

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a lease we hold; LeaseLostError if it is no longer ours."""
        ...

    def add_failed_turn_cost(
        self,
        key: SessionKey,
        cost_usd: float,
        *,
        session_cost_usd: float | None = None,
        continued_session: bool = False,
    ) -> None:
        """Count what a run without a saved answer cost (``continued_session``: it resumed the
        recorded session, so the chat counts as in use)."""
        ...

    def keep_unfinished_session(
        self,
        lease: Lease,
        session_id: str,
        *,
        session_cost_usd: float,
        conversation_cost_usd: float | None = None,
    ) -> None:
        """Name the SDK session a run began that ended unsaved after its tools ran (and, given
        ``conversation_cost_usd``, start the conversation's figures again)."""
        ...


class S3Objects(Protocol):
    """The S3 verbs the runtime uses (a boto3 S3 client has them)."""

    def download_file(self, Bucket: str, Key: str, Filename: str) -> None:
        """Download an object to a local file (a user's attachment)."""
        ...

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> Any:
        """Store an object (a file the agent sends)."""
        ...
