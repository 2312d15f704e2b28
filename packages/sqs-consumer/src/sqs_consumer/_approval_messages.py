"""[I] An approval's question in the chat: asked with its buttons (put under it once its
delivery is recorded), edited to its answer or to its drop (/new) with the buttons gone, and
whether a press answered someone else's call. Part of answering one message (``_message``)."""

from __future__ import annotations

from session_core import ApprovalOutcome, ApprovalRequest, SessionKey, StorageError, get_logger
from telegram_core import InboundMessage, this_place

from ._approval_view import (
    approval_dropped_html,
    approval_keyboard,
    approval_outcome_html,
    approval_request_html,
)
from ._chat_holds import ChatHolds
from ._delivery import Delivery
from ._deps import ConsumerDeps
from ._progress_cleanup import ProgressCleanup
from ._question_edit import QuestionEdit
from ._timing import ConsumerTiming, RemainingTimeMs

log = get_logger(__name__)

# Where the question goes in an answer's delivery record: after the text and the files (see
# ``_message``'s numbering).
APPROVAL_CHUNK = 2000


class ApprovalMessages:
    """The approval questions of the chats one consumer answers."""

    def __init__(self, *, deps: ConsumerDeps, timing: ConsumerTiming, delivery: Delivery) -> None:
        self._deps = deps
        self._timing = timing
        self._delivery = delivery

    def ask(
        self,
        msg: InboundMessage,
        key: SessionKey,
        request: ApprovalRequest,
        *,
        quote: bool,
        remaining: RemainingTimeMs,
    ) -> None:
        """[I] Show the call waiting for approval with its buttons (once, as this reply's
        APPROVAL_CHUNK; quoting the user's message when nothing came before it; the buttons put
        under it once it is recorded), and tell the store which message carries them."""
        where = this_place(key.thread_id, forum=msg.forum)
        message_id = self._delivery.deliver_with_buttons(
            msg,
            key,
            APPROVAL_CHUNK,
            approval_request_html(request, where=where),
            approval_keyboard(request.approval_id, where=where),
            quote=quote,
            # Buttons Telegram shows under a question sent late, beside the retry's, would never
            # be edited to the answer: only the question whose message_id is known gets them.
            buttons_once_recorded=True,
            remaining=remaining,
        )
        if message_id is not None and self._deps.approvals is not None:
            self._deps.approvals.attach_message(key, request.approval_id, message_id)
        log.info("approval_asked", tool=request.tool_name)

    def show_outcome(
        self,
        msg: InboundMessage,
        outcome: ApprovalOutcome,
        remaining: RemainingTimeMs,
        later: ProgressCleanup,
        chat_holds: ChatHolds,
    ) -> None:
        """[I] Edit the buttons message of the answered approval: the call, the decision and
        who made it, buttons gone. A message deleted or edited already (a retry) changes
        nothing; an edit Telegram refused for now is tried again once the answer is out."""
        if outcome.message_id is None:
            return
        sender = None if msg.chat_type == "private" else msg.user_name
        html = approval_outcome_html(
            outcome, new_message_from=sender, where=this_place(msg.thread_id, forum=msg.forum)
        )
        self._edit_question(msg, outcome.message_id, html, remaining, later, chat_holds)

    def _edit_question(
        self,
        msg: InboundMessage,
        message_id: int,
        html: str,
        remaining: RemainingTimeMs,
        later: ProgressCleanup,
        chat_holds: ChatHolds,
    ) -> None:
        """Edit an approval's question to ``html``, buttons gone: now, leaving the reply that
        follows its delivery reserve, and again once the record's outcome is out if Telegram
        refused."""
        edit = QuestionEdit(
            bot=self._deps.bot, chat_id=msg.chat_id, message_id=message_id, html=html, chat_holds=chat_holds
        )
        if not edit.first_try(time_left_s=remaining() / 1000 - self._timing.delivery_reserve_s):
            later.add(edit)

    def answered_for_another(self, msg: InboundMessage, key: SessionKey) -> bool:
        """An approval resume whose button an approver pressed for someone else's call (the
        resume goes on as the asker's request: its user is the asker, not the presser)."""
        if msg.kind != "approval" or self._deps.approvals is None:
            return False
        try:
            current = self._deps.approvals.current(key)
        except StorageError:  # the refusal still goes out, in the asker's words
            return False
        if current is None or current.approval_id != msg.approval_id or current.decided_by_id is None:
            return False
        return current.decided_by_id != msg.user_id

    def drop_waiting_call(
        self,
        msg: InboundMessage,
        key: SessionKey,
        remaining: RemainingTimeMs,
        later: ProgressCleanup,
        chat_holds: ChatHolds,
    ) -> None:
        """[I] /new: a call still waiting belongs to the old conversation. Forget it and say so
        on its question (buttons gone, and in a group who started anew): buttons left in place
        would only answer "no longer waiting", and whoever asked would not know why. So too a
        call answered whose answer never reached the agent (the budget held it back): its
        question still asks, and will never be edited by the turn that would have run it. An
        edit Telegram refused is tried again once /new's answer is out, as an answered
        question's is."""
        if self._deps.approvals is None:
            return
        dropped = self._deps.approvals.clear(key)
        if dropped is None or dropped.state not in ("pending", "decided") or dropped.message_id is None:
            return
        sender = None if msg.chat_type == "private" else msg.user_name
        html = approval_dropped_html(dropped, new_from=sender)
        self._edit_question(msg, dropped.message_id, html, remaining, later, chat_holds)
