"""After an answer's delivery: the files of it that did not reach the user (the runtime could
not send them, Telegram refused one, or its answer to an upload was lost), and its text when
its delivery failed there (at every failed try: a last try that fails before delivering
cannot judge), are kept with the session, for the next turn's agent to be
told (see session-core's ``_undelivered_files``). A later try of a recorded answer (replayed:
the dead-letter queue refused the record, or it was redriven) keeps what it lost in place of
what an earlier try kept, and forgets that list when it lost nothing: the agent is not told
of losses that did not happen.
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
    registry: SessionRegistry,
    key: SessionKey,
    result: TurnResult,
    skipped: Sequence[UnsentFile],
    *,
    text_lost: bool = False,
) -> bool:
    """Keep the files of ``result`` that did not go: those the runtime named, and ``skipped``
    at delivery; ``text_lost``: its text did not go either. False when they could not be kept
    (storage failed, logged): the agent will not be told, so the user must be."""
    kept = undelivered_files(
        result.turn_id, [*result.files_not_sent, *skipped], result.more_files_not_sent, text_lost=text_lost
    )
    if kept is None:
        if result.replayed:  # only a replayed answer's earlier try can have kept a list
            _forget_earlier_list(registry, key, result.turn_id)
        return True
    try:
        registry.keep_undelivered_files(key, kept)
    except StorageError as exc:
        log.warning("undelivered_files_not_kept", error_code=exc.error_code)
        return False
    return True


def _forget_earlier_list(registry: SessionRegistry, key: SessionKey, turn_id: int) -> None:
    try:
        registry.forget_undelivered_files(key, turn_id)
    except StorageError as exc:  # the agent may be told of a loss the user did not have: logged
        log.warning("undelivered_files_not_forgotten", error_code=exc.error_code)
