"""After an answer's delivery: the files of it that did not reach the user (the runtime could
not send them, Telegram refused one, or its answer to an upload was lost) are kept with the
session, for the next turn's agent to be told (see session-core's ``_undelivered_files``).
Decided: when they cannot be kept (storage failed), the user is told instead, under the answer:
the answer went already, and retrying the record for a note would delay the chat's next
message and could end in a failure notice for an answer the user has."""

from __future__ import annotations

from collections.abc import Sequence

from session_core import (
    SessionKey,
    SessionRegistry,
    StorageError,
    TurnResult,
    UnsentFile,
    get_logger,
    undelivered_files,
)

log = get_logger(__name__)


def keep_undelivered(
    registry: SessionRegistry, key: SessionKey, result: TurnResult, skipped: Sequence[UnsentFile]
) -> bool:
    """Keep the files of ``result`` that did not go: those the runtime named, and ``skipped``
    at delivery. False when they could not be kept (storage failed, logged): the agent will
    not be told, so the user must be."""
    kept = undelivered_files(result.turn_id, [*result.files_not_sent, *skipped], result.more_files_not_sent)
    if kept is None:
        return True
    try:
        registry.keep_undelivered_files(key, kept)
    except StorageError as exc:
        log.warning("undelivered_files_not_kept", error_code=exc.error_code)
        return False
    return True
