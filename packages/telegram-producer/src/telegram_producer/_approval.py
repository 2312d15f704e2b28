"""[I] Presses of the approval buttons (Allow once / Always in this chat / Deny) and of the
revoke buttons of /permissions: the ``callback_query`` updates whose data starts ``ap:`` or
``rv:``.

Like a stop, the producer answers them itself, in the webhook reply (no bot token needed): it
records the decision with the store's conditional write (a double press or a stale button
changes nothing) and queues an ``approval`` message for the chat's FIFO group, whose turn
resumes the deferred call. Who may answer: the person whose message led to the call
(``requested_by``) or anyone on the producer's APPROVER_USER_IDS (whom the allow-list
admits for these presses); a request made on behalf of a chat (an anonymous admin) only an
approver. A press by someone off the allow-list is answered ``NOT_ALLOWED_TEXT`` (only they
see it; unanswered, the button would show loading) and changes nothing. Who may
revoke: anyone the bot answers in the chat: revoking only makes the bot ask again, so it needs
no more trust than writing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from session_core import (
    Approval,
    ApprovalChoice,
    Grant,
    SessionKey,
    shown_grant_rule,
    utf16_len,
    within_utf16,
)
from telegram_core import (
    ApprovalButton,
    InvalidButton,
    RevokeButton,
    approval_button_of,
    revoke_button_of,
    this_place,
)

from ._config import ProducerConfig
from ._updates import Update, in_reply_thread, shown_name, topic_of

NOT_VALID_TEXT = "This button is not valid."
NOT_WAITING_TEXT = "This request is no longer waiting for an answer."
NOT_YOURS_TEXT = "Only the person who asked can answer this."
NOT_ALLOWED_TEXT = "Only people allowed to use this bot can press its buttons."
# The group itself is an allowed sender (its anonymous admins): a press is always a person's.
STOP_AS_THE_GROUP_TEXT = "To stop it as the group, send /stop while posting anonymously."
# Asked on behalf of a chat (an anonymous admin, a channel post): no press comes from its id.
NEEDS_APPROVER_TEXT = "This was asked anonymously: only an approver of this bot can answer it."
# ... and the bot has none (APPROVER_USER_IDS is empty): nobody can, so say what ends the wait.
NO_APPROVER_TEXT = (
    "This was asked anonymously, and this bot has no approvers to answer it: a new message to me drops it."
)
ALREADY_REVOKED_TEXT = "Already revoked."
# Who answered a request made on behalf of a chat, as the chat is told ("Allowed once by …").
ANONYMOUS_REQUEST_ANSWERER = "an approver"
TOPIC_UNKNOWN_TEXT = (
    "This message is too old: Telegram no longer says which topic it is in, so its buttons do"
    " nothing. Send /permissions (or your request) in the topic again."
)
STOPPED_TEXT = "Already answered: stopped before it ran."
NEW_MESSAGE_TEXT = "Already answered: declined by a new message."
# A grant holds in the session only: a forum topic's is that topic's (``this_place``).
_DECIDED: dict[ApprovalChoice, str] = {
    "once": "Allowed once.",
    "always": "Always allowed in {where}.",
    "deny": "Denied.",
}
DECIDED_TEXT = {choice: text.format(where="this chat") for choice, text in _DECIDED.items()}
_ANSWERED_AS: dict[ApprovalChoice, str] = {
    "once": "Allowed once",
    "always": "Always allowed",
    "deny": "Denied",
}
# answerCallbackQuery shows at most 200 characters, as Telegram counts them (UTF-16 units).
_MAX_ANSWER_CHARS = 200
_REVOKED_TEXT = "Revoked: {rule}. It will ask again."


class ApprovalStore(Protocol):
    """The verbs of session_core.Approvals the producer uses."""

    def current(self, key: SessionKey) -> Approval | None: ...

    def decide(
        self,
        key: SessionKey,
        approval_id: str,
        choice: ApprovalChoice,
        *,
        decided_by: str,
        decided_by_id: int | None = None,
        reason: str = "",
    ) -> Approval: ...

    def revoke(self, key: SessionKey, token: str) -> Grant | None: ...


@dataclass(frozen=True)
class ButtonPress:
    """A press of an approval or revoke button on a message of chat ``chat_id``."""

    key: SessionKey
    button: ApprovalButton | RevokeButton | InvalidButton
    chat_id: int
    chat_type: str
    message_id: int
    user_id: int
    user_name: str
    callback_query_id: str
    thread_id: int = 0
    forum: bool = False  # the chat is a forum (its General topic is a topic too)
    in_reply_thread: bool = False  # the question is in a channel post's comments (see InboundMessage)
    # The message is a forum's but Telegram no longer names its topic (it is days old): the
    # press must change nothing, as taken for the General topic it would act on another session.
    topic_unknown: bool = False


def button_press(update: Update, config: ProducerConfig) -> ButtonPress | None:
    """The approval or revoke press an update carries, if any; pure, so tests call it directly."""
    query = update.callback_query
    if query is None or query.message is None:
        return None
    button: ApprovalButton | RevokeButton | InvalidButton | None = approval_button_of(query.data)
    if button is None:
        button = revoke_button_of(query.data)
    if button is None:
        return None
    thread_id = topic_of(query.message)
    chat = query.message.chat
    return ButtonPress(
        key=SessionKey(tenant=config.tenant, chat_id=chat.id, thread_id=thread_id),
        button=button,
        chat_id=chat.id,
        chat_type=chat.type,
        message_id=query.message.message_id,
        user_id=query.from_.id,
        user_name=shown_name(query.from_),
        callback_query_id=query.id,
        thread_id=thread_id,
        forum=chat.is_forum,
        in_reply_thread=in_reply_thread(query.message),
        topic_unknown=query.message.topic_unknown,
    )


def refusal(
    approval: Approval | None, button: ApprovalButton, press: ButtonPress, config: ProducerConfig
) -> str | None:
    """Why ``press`` may not answer ``approval`` (the text to answer with), or None: it may."""
    if approval is None or approval.approval_id != button.approval_id:
        return NOT_WAITING_TEXT
    if approval.state in ("decided", "used", "settled"):  # settled: its turn is over, the call ran or not
        return already_answered_text(approval)
    asker = approval.requested_by
    if asker is not None and press.user_id != asker and press.user_id not in config.approver_user_ids:
        if asker >= 0:
            return NOT_YOURS_TEXT
        return NEEDS_APPROVER_TEXT if config.approver_user_ids else NO_APPROVER_TEXT
    return None


def presser_name(approval: Approval | None, press: ButtonPress) -> str:
    """How the chat names who answered ``approval``: never by name when it was asked on behalf
    of a chat (an anonymous admin): the presser may be that admin, and naming them would say
    who asked (as a stop of such a request names nobody)."""
    return _answerer_shown(approval, press.user_name)


def _answerer_shown(approval: Approval | None, name: str) -> str:
    # Decided at display time too: an older producer stored the presser's own name.
    if approval is not None and approval.requested_by is not None and approval.requested_by < 0:
        return ANONYMOUS_REQUEST_ANSWERER
    return name


def decided_text(choice: ApprovalChoice, press: ButtonPress) -> str:
    """The answer to a press that decided: "Always allowed in this topic." in a forum topic."""
    return _DECIDED[choice].format(where=this_place(press.thread_id, forum=press.forum))


def already_answered_text(approval: Approval) -> str:
    """ "Already answered: Allowed once by ada.", or how else it was declined ("no longer
    waiting" without a choice)."""
    if approval.choice is None:
        return NOT_WAITING_TEXT
    if approval.answered_by == "stop":  # declined by a /stop (of anyone), not by who pressed
        return STOPPED_TEXT
    if approval.answered_by == "new_message":  # nobody pressed: "Denied by a new message" reads odd
        return NEW_MESSAGE_TEXT
    answerer = approval.decided_by or "someone"
    # Hidden only when a person pressed: an older runtime recorded a new message's decline as
    # the presser "a new message" (nobody's id), which names nobody and says how it went.
    if approval.decided_by_id is not None:
        answerer = _answerer_shown(approval, answerer)
    return f"Already answered: {_ANSWERED_AS[approval.choice]} by {answerer}."


def revoked_text(grant: Grant | None) -> str:
    """The answer to a revoke press."""
    if grant is None:
        return ALREADY_REVOKED_TEXT
    room = _MAX_ANSWER_CHARS - len(_REVOKED_TEXT.format(rule=""))
    return _REVOKED_TEXT.format(rule=shown_grant_rule(grant.rule, room))


def callback_answer(press: ButtonPress, text: str) -> dict[str, Any]:
    """The answerCallbackQuery the webhook replies with (Telegram makes the call for us)."""
    if utf16_len(text) > _MAX_ANSWER_CHARS:  # longer: refused (MESSAGE_TOO_LONG), no toast at all
        text = within_utf16(text, _MAX_ANSWER_CHARS - 1) + "…"
    return {"method": "answerCallbackQuery", "callback_query_id": press.callback_query_id, "text": text}
