"""[H] Stop requests: `/stop` (sent, or a message edited into one), a draft's stop control
(``stopped_message_generation``) and the Stop button of a group's progress message
(``callback_query`` with ``stop:<turn>``).

The producer handles them itself instead of queueing them: the FIFO group of the chat is busy
with the very turn to stop. It writes the request into the session's live item (the runtime
reads it within about a second) and answers in the webhook reply (no bot token needed). A
/stop while a message waits and no turn runs yet (queued, or taken by a consumer still
starting) is kept for that message's turn: the chat's backlog count (``ChatBacklog``) says
one waits, so queueing a message writes nothing more for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from session_core import SessionKey, StopOutcome, Stopper
from telegram_core import (
    Attachment,
    GroupMessage,
    for_another_bot,
    nothing_running,
    parse_command,
    stopped_turn_of,
    this_place,
    unread_files_note,
    unsupported_notice,
)

from ._attachments import attachments_of
from ._config import ProducerConfig
from ._opening_command import opening_command
from ._reply_context import replies_to_another_bot
from ._updates import Message, Update, on_behalf_of_a_chat, passed_on, sender_of, shown_name, topic_of

StopVia = Literal["command", "draft", "button"]

STOPPING_TEXT = "Stopping…"
NOTHING_TO_STOP_TEXT = nothing_running("this chat")
# A call held for approval is not running: what the user may mean is to drop it. A new message
# does, whether or not the question (and its Deny) is still there: the user may have deleted it.
WAITING_CALL_TEXT = " A tool call is waiting for your answer; a new message to me drops it."
# In a group only whoever asked (or an approver) may press Deny; any member's message drops it.
WAITING_CALL_IN_GROUP_TEXT = (
    " A tool call is waiting for the answer of whoever asked for it; a new message to me drops it."
)


class StopRequests(Protocol):
    """The verbs of session_core.LiveTurns the producer uses."""

    def request_stop(
        self,
        key: SessionKey,
        *,
        turn_id: int | None = None,
        update_id: int | None = None,
        by: Stopper | None = None,
    ) -> StopOutcome: ...

    def keep_stop_for_message(
        self, key: SessionKey, message_id: int, *, by: Stopper | None = None
    ) -> None: ...


@dataclass(frozen=True)
class StopRequest:
    """A user's request to stop the running turn of a chat (or topic)."""

    key: SessionKey
    via: StopVia
    chat_id: int
    thread_id: int = 0
    forum: bool = False  # the chat is a forum (its General topic is a topic too)
    user_id: int | None = None
    # Who asked, as a group's stopped answer names them when they are not whoever asked for it
    # (None in a private chat, where only one person can stop, and for a draft's stop control,
    # which names nobody).
    stopper: Stopper | None = None
    turn_id: int | None = None  # the turn the control belonged to (draft, button)
    callback_query_id: str | None = None
    message_id: int | None = None  # the /stop message of a group, whose answer quotes it
    # The photo or file whose caption the /stop was (it starts no turn), and its album's id
    # when it is one part of an album.
    files: tuple[Attachment, ...] = ()
    unsupported: str | None = None  # content sent with the /stop the bot does not handle (a GIF)
    album_id: str | None = None
    # The /stop message itself (any chat), recorded so that an edit of it stops nothing more;
    # ``edited``: it became a /stop by an edit, sent at ``sent_at``.
    command_message: GroupMessage | None = None
    edited: bool = False
    sent_at: int = 0


def stop_request(update: Update, config: ProducerConfig) -> StopRequest | None:
    """The stop request an update carries, if any; pure, so tests can call it directly."""
    if update.stopped_message_generation is not None:
        stopped = update.stopped_message_generation
        thread_id = stopped.message_thread_id or 0
        return StopRequest(
            key=SessionKey(tenant=config.tenant, chat_id=stopped.chat.id, thread_id=thread_id),
            via="draft",
            chat_id=stopped.chat.id,
            thread_id=thread_id,
            user_id=stopped.chat.id if stopped.chat.type == "private" else None,
            turn_id=stopped.draft_id,
        )
    query = update.callback_query
    button_turn = None if query is None else stopped_turn_of(query.data)
    if query is not None and query.message is not None and button_turn is not None:
        thread_id = topic_of(query.message)
        return StopRequest(
            key=SessionKey(tenant=config.tenant, chat_id=query.message.chat.id, thread_id=thread_id),
            via="button",
            chat_id=query.message.chat.id,
            thread_id=thread_id,
            forum=query.message.chat.is_forum,
            user_id=query.from_.id,
            stopper=Stopper(user_id=query.from_.id, name=shown_name(query.from_)),
            turn_id=button_turn if button_turn >= 0 else None,
            callback_query_id=query.id,
        )
    # A message edited into a /stop (a typo fixed) asks what a sent /stop asks.
    edited = update.message is None and update.edited_message is not None
    msg = update.edited_message if edited else update.message
    # A photo's or file's caption holds commands as a text does (Telegram marks them alike).
    typed = None if msg is None else msg.text if msg.text is not None else msg.caption
    if msg is None or typed is None or passed_on(msg):
        return None  # a forwarded "/stop" is someone else's words, passed on: no request
    if msg.from_ is not None and msg.from_.is_bot and not on_behalf_of_a_chat(msg):
        return None  # ignored as any bot's message is
    username = config.bot_username
    # "@bot /stop" in a group, as every other command may be written.
    command = opening_command(msg, typed, username)
    if command is None or parse_command(command.word, username) != "stop":
        return None  # not a /stop, or another bot's (telegram_core reads commands for all)
    if not command.after_mention and for_another_bot(
        command.word, username, replying_to_another_bot=replies_to_another_bot(msg, username)
    ):
        return None  # a bare /stop in reply to another bot's message is that bot's
    thread_id = topic_of(msg)
    return StopRequest(
        key=SessionKey(tenant=config.tenant, chat_id=msg.chat.id, thread_id=thread_id),
        via="command",
        chat_id=msg.chat.id,
        thread_id=thread_id,
        forum=msg.chat.is_forum,
        user_id=sender_of(msg)[0],
        stopper=None if msg.chat.type == "private" else _stopper_of(msg),
        # In a private chat the answer needs no quote: there is only one person to answer.
        message_id=None if msg.chat.type == "private" else msg.message_id,
        # An edited message's files were answered (or not) when it was sent.
        files=() if edited else attachments_of(msg, voice=config.transcribes_voice),
        unsupported=None if edited else msg.unsupported_content(),
        album_id=None if edited else msg.media_group_id,
        command_message=GroupMessage(chat_id=msg.chat.id, thread_id=thread_id, message_id=msg.message_id),
        edited=edited,
        sent_at=msg.date,
    )


def _stopper_of(msg: Message) -> Stopper | None:
    """Who sent the /stop ``msg``, as ``sender_of`` tells (the group, for its anonymous admin)."""
    user_id, name = sender_of(msg)
    return None if user_id is None else Stopper(user_id=user_id, name=name or str(user_id))


def stop_reply(request: StopRequest, outcome: StopOutcome) -> dict[str, Any] | None:
    """The Bot API call the webhook answers a stop with (None: nothing to say)."""
    text = (
        STOPPING_TEXT
        if outcome == "stopping"
        else nothing_running(this_place(request.thread_id, forum=request.forum))
    )
    if outcome == "call_waiting":
        text += WAITING_CALL_IN_GROUP_TEXT if request.chat_id < 0 else WAITING_CALL_TEXT
    if request.files:
        text += "\n\n" + unread_files_note(request.files, "stop", of_an_album=request.album_id is not None)
    elif request.unsupported is not None:
        text += "\n\n" + unsupported_notice(request.unsupported)
        if request.album_id is not None:  # a video beside photos: they start no turn either
            text += "\n\n" + unread_files_note((), "stop", of_an_album=True)
    if request.callback_query_id is not None:
        return {"method": "answerCallbackQuery", "callback_query_id": request.callback_query_id, "text": text}
    if request.via == "draft":
        return None  # the draft's own control already shows the stop
    reply: dict[str, Any] = {"method": "sendMessage", "chat_id": request.chat_id, "text": text}
    if request.thread_id:
        reply["message_thread_id"] = request.thread_id
    if request.message_id is not None:  # in a group, whom it answers (a rate note says "You")
        reply["reply_parameters"] = {"message_id": request.message_id, "allow_sending_without_reply": True}
    return reply
