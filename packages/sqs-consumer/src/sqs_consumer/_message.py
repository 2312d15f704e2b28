"""Answering one inbound message: "not supported yet", a command, the budget's refusal, or a
turn on the runtime (typing shown, attachments staged) whose reply is delivered: its text,
then the files the agent sends, then the buttons of a call waiting for approval.

Time: the runtime gets a deadline (the invocation's remaining time minus a reserve for
delivery), so the consumer never times out after the turn. A session busy with another live
turn is waited for inside the invocation, then invoked again (the runtime replays the other
run's answer or runs the turn once the lease is free).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from session_core import (
    TURN_VERSION,
    BudgetExceeded,
    BudgetHold,
    SessionKey,
    StagedAttachment,
    StorageError,
    TurnRequest,
    TurnResult,
    UnsentFile,
    get_logger,
)
from telegram_core import (
    COMMANDS,
    InboundMessage,
    parse_command,
    this_place,
    unread_files_note,
    unsupported_notice,
)

from ._album import first_sent_at, with_its_album
from ._approval_messages import ApprovalMessages
from ._approval_view import (
    permissions_html,
    permissions_keyboard,
    permissions_page,
)
from ._attachments import asks_without_its_files, fetched_only, stage_attachments
from ._budget import refusal_text, report_deployment_spend
from ._busy_wait import BusyWait
from ._chat_holds import ChatHolds
from ._chat_move import move_conversation
from ._commands import TAKES_NO_WORDS, run_command
from ._config import ConsumerConfig
from ._config_report import tell_bot_token_refused
from ._delivery import Delivery, ReadFile, files_not_delivered
from ._deps import ConsumerDeps
from ._errors import DeferredError, DeliveryFailedError, RuntimeInvokeError, TurnFailedError
from ._forward_comment import with_its_forwards
from ._live_view import LiveView
from ._outbox import read_outbox_file
from ._outcomes import MessageStatus
from ._progress_cleanup import ProgressCleanup
from ._progress_render import stopped_markdown
from ._prompt import prompt_of, with_not_fetched, with_unread_parts
from ._render import escape_html, render_reply, with_note
from ._stop_while_hearing import StopWhileHearing
from ._timing import ConsumerTiming, RemainingTimeMs
from ._turn_limits import limit_setting, stopped_by_turn_limit, timeout_cut_by, told_as_a_wait
from ._typing import TypingIndicator
from ._undelivered import keep_undelivered
from ._usage_footer import usage_footer
from ._voice import TranscriptionStopped, VoiceNotTranscribed, check_voice, hears_recordings, transcripts_of
from ._wording import (
    EMPTY_ANSWER,
    UNDELIVERED_NOT_NOTED_NOTICE,
    failure_text,
    history_notice,
    none_fetched_notice,
    unread_words_note,
    unsent_files_notice,
)

log = get_logger(__name__)

# Where the parts after the text go in an answer's delivery record (the text: 0, 1, ...; at
# most ~25 chunks, as the model writes at most ~100,000 characters; at most 10 files).
FIRST_FILE_CHUNK = 1000
FILES_SKIPPED_CHUNK = 1500  # the line naming files that could not be sent after all
UNDELIVERED_NOT_NOTED_CHUNK = 1600  # the line saying the agent could not be told of them


class MessageHandler:
    """Answers one inbound message; raises on failure (``retryable`` says whether to retry)."""

    def __init__(
        self, *, config: ConsumerConfig, deps: ConsumerDeps, timing: ConsumerTiming, delivery: Delivery
    ) -> None:
        self._config = config
        self._deps = deps
        self._timing = timing
        self._delivery = delivery
        self._approvals = ApprovalMessages(deps=deps, timing=timing, delivery=delivery)

    def process(
        self,
        msg: InboundMessage,
        key: SessionKey,
        remaining: RemainingTimeMs,
        *,
        progress_cleanup: ProgressCleanup,
        chat_holds: ChatHolds,
        enqueued_at: float = 0.0,
        first_try: bool = True,
        batch_began_with_ms: int,
    ) -> MessageStatus:
        """Answer ``msg``; ``remaining`` bounds the turn (the runtime's deadline) and busy waiting.
        ``progress_cleanup`` gets the turn's live view, whose progress message goes once the
        record's outcome is out; ``chat_holds``: the 429s the invocation's live views share.
        ``enqueued_at``: when the producer queued it; ``first_try``: no attempt of its record
        ran before (see ``with_its_forwards``). ``batch_began_with_ms``: ``remaining`` when the
        invocation's batch began, to tell how long the turn waited."""
        if msg.kind == "chat_moved":  # Telegram tells the chat itself; nothing to answer
            move_conversation(msg, key, self._deps, self._timing, remaining)
            return "chat_moved"
        # One turn for the photos sent (or forwarded) together, and for a text the app split.
        album = with_its_album(msg, self._deps.albums, self._deps.pastes, self._deps.sleep)
        if album is None:  # the comment typed before these forwards was answered with them
            return "answered_with_comment"
        msg, parts, message_ids = album
        registry, budgets = self._deps.registry, self._deps.budgets
        command, msg = self._command_in(msg, parts)
        # A GIF captioned "/new" is the command still (its answer says the GIF went unread); a
        # video of an album with photos is named in the photos' turn (``with_its_album``).
        if msg.kind == "unsupported" and command is None:
            self._delivery.deliver(msg, key, [unsupported_notice(msg.unsupported_what)], remaining=remaining)
            return "unsupported"
        if command == "stop" and len(parts) > 1:
            # A part of this album was captioned /stop: the producer stopped and answered it
            # (saying the album's photos went unread); a second answer would repeat it.
            return "command"
        if command == "permissions":  # with revoke buttons (agentbot dev's terminal: /revoke <n>)
            self._show_permissions(msg, key, remaining)
            return "command"
        if command is not None:
            if not self._deps.deliveries.delivered_chunks(key, msg.update_id):  # not done on a retry
                if command == "new":
                    self._approvals.drop_waiting_call(msg, key, remaining, progress_cleanup, chat_holds)
                reply = run_command(
                    command,
                    key,
                    registry=registry,
                    chat_settings=self._deps.chat_settings,
                    retention_days=self._config.retention_days,
                    clock=self._deps.clock,
                    budgets=budgets,
                    turn_cap_usd=self._config.budgets.turn_usd,
                    user_id=msg.user_id,
                    channel=self._config.channel,
                    argument=_command_argument(msg.text),
                    voice=self._deps.voices is not None,
                    mention=self._mention_needed(msg),
                    forum=msg.forum,
                )
                self._delivery.deliver(msg, key, [reply + _unread_note(msg, command)], remaining=remaining)
            return "command"
        hold = BudgetHold()
        if budgets is not None:
            admitted = budgets.hold(chat_id=msg.chat_id, user_id=msg.user_id)
            if isinstance(admitted, BudgetExceeded):
                log.warning(
                    "turn_over_budget", scope=admitted.scope, period=admitted.period, cap_usd=admitted.cap_usd
                )
                refused = refusal_text(
                    admitted,
                    budgets.now(),
                    approval_answer=msg.kind == "approval",
                    for_another=self._approvals.answered_for_another(msg, key),
                )
                self._delivery.deliver(msg, key, [escape_html(refused)], remaining=remaining)
                return "over_budget"
            hold = admitted
        settled = False

        def settle(result: TurnResult | None) -> None:
            nonlocal settled
            if budgets is not None:
                # A recorded answer counts once: here, or on a retry that replays it when this
                # attempt never settled (it died, or the runtime's reply was lost on the way).
                # A failed run is not recorded: a retry runs (and pays) afresh.
                answer = f"{result.session_key}|{result.turn_id}" if result and result.ok else None
                budgets.settle(hold, result.cost_usd if result else 0.0, answer=answer)
                report_deployment_spend(budgets, self._config.tenant)
            settled = True

        calls = _RuntimeCalls(batch_began_with_ms=batch_began_with_ms)
        try:
            # Settled as soon as the runtime answers, before delivery: a reply that cannot be
            # delivered (the user blocked the bot, Telegram failed) is retried as a replay,
            # which costs nothing, so the run that paid must count here.
            result = self._answer(
                msg,
                parts,
                key,
                remaining,
                on_result=settle,
                message_ids=message_ids,
                calls=calls,
                progress_cleanup=progress_cleanup,
                chat_holds=chat_holds,
                enqueued_at=enqueued_at,
                first_try=first_try,
            )
        except Exception:
            if not settled and not calls.may_have_run:
                settle(None)  # nothing ran (refused, shut out, throttled): the hold goes back at once
            elif not settled and budgets is not None:
                # The turn may have spent up to its cap: the hold stays until its deadline (20 min).
                log.warning("budget_hold_kept", held_usd=hold.held_usd)
            raise
        if not settled:
            settle(result)
        if result is None:
            return "refused"
        # A wait before the turn that took its time is told as that, not as a message too big.
        had_s = calls.batch_began_with_ms / 1000
        cut_by = timeout_cut_by(result, waited_s=calls.waited_s, had_s=had_s)
        after_a_wait = told_as_a_wait(cut_by, waited_s=calls.waited_s, had_s=had_s)
        if result.error_reason in ("history_too_large", "context_full"):
            # Expected, and the same for every message until the user sends /new: an answer,
            # not a failure for the dead-letter queue and its alarm.
            log.warning("turn_history_too_large", reason=result.error_reason)
            self._delivery.deliver(msg, key, [escape_html(_failure_words(result))], remaining=remaining)
            return "history_too_large"
        if result.error_reason == "request_too_large":
            # The user's big file, not the operator's setup: told what to send instead; a dead
            # letter would raise the alarm, and its redrive be refused again. The runtime's
            # turn.request_too_large line has the size.
            log.warning("turn_request_too_large")
            self._delivery.deliver(msg, key, [escape_html(_failure_words(result))], remaining=remaining)
            return "request_too_large"
        if result.error_reason is not None and stopped_by_turn_limit(
            result.error_reason, retryable=result.retryable
        ):
            # The turn's cost cap, the agent's step limit, its time or its disk stopped the run
            # before it wrote anything: the operator's own limit at work, answered like a
            # budget's refusal. A dead letter would raise the alarm, and its redrive pay the
            # model again for a run the limit stops again.
            log.warning(
                "turn_stopped_by_limit",
                limit=result.error_reason,
                timed_out_by=result.timed_out_by,
                waited_s=round(calls.waited_s, 1),
                setting=limit_setting(result.error_reason, cut_by=cut_by),
                cost_usd=result.cost_usd,
            )
            self._tell_limit_stop(msg, key, result, remaining, after_a_wait=after_a_wait)
            return "stopped_by_limit"
        if result.error_reason == "model_silent":
            # The model's outage, not the message's fault: the user sends it again later, and
            # the operator has the runtime's log line and metric, not a dead letter.
            log.warning("turn_model_silent")
            self._delivery.deliver(msg, key, [escape_html(_failure_words(result))], remaining=remaining)
            return "model_silent"
        if not result.ok:
            raise TurnFailedError(
                str(result.error_kind),
                failure_text(result, after_a_wait=after_a_wait),
                retryable=result.retryable,
                retry_after=result.retry_after_s,
            )
        return "replied"

    def _tell_limit_stop(
        self,
        msg: InboundMessage,
        key: SessionKey,
        result: TurnResult,
        remaining: RemainingTimeMs,
        *,
        after_a_wait: bool,
    ) -> None:
        """Tell the user which limit stopped the run. Its answer is not recorded, so a retry of
        the record would run (and pay) the turn again for the same limit to stop it: a notice
        Telegram would not take after the local retries is only logged, as a failure's is; one
        it refused for the bot token too (a refused answer is retried, as it is replayed), the
        operator told which parameter to fix. ``after_a_wait``: see ``failure_text``."""
        try:
            words = _failure_words(result, after_a_wait=after_a_wait)
            self._delivery.deliver(msg, key, [escape_html(words)], remaining=remaining)
        except DeliveryFailedError as exc:
            if exc.chat_unreachable:
                raise  # acknowledged as such
            if exc.token_refused:
                tell_bot_token_refused(
                    self._deps.bot, self._config.bot_token_parameter, tenant=self._config.tenant
                )
            log.warning("limit_notice_not_sent", limit=result.error_reason, error=type(exc.cause).__name__)

    def _mention_needed(self, msg: InboundMessage) -> str | None:
        """The bot's username when ``msg`` comes from a group where only what addresses the
        bot is answered (GROUP_REPLY_MODE=mention): /help says so there."""
        if msg.chat_type == "private" or self._config.group_reply_mode != "mention":
            return None
        return self._config.bot_username

    def _answer(
        self,
        msg: InboundMessage,
        parts: tuple[InboundMessage, ...],
        key: SessionKey,
        remaining: RemainingTimeMs,
        on_result: Callable[[TurnResult], None],
        *,
        message_ids: tuple[int, ...],
        calls: _RuntimeCalls,
        progress_cleanup: ProgressCleanup,
        chat_holds: ChatHolds,
        enqueued_at: float,
        first_try: bool,
    ) -> TurnResult | None:
        """Run the turn and deliver its answer; None when an attachment is refused, the
        runtime's failed result (not raised here, so its cost is still counted). ``parts``:
        the messages ``msg`` joins, ``message_ids`` their ids (see ``with_its_album``).
        ``on_result`` gets the runtime's result before anything is delivered; ``calls`` learns
        whether the runtime may have run it. ``enqueued_at``, ``first_try``: see
        ``with_its_forwards``."""
        bot = self._deps.bot
        deps = self._deps
        with TypingIndicator(
            bot,
            msg.chat_id,
            thread_id=msg.thread_id,
            interval_s=self._timing.typing_interval_s,
            first_answer_wait_s=self._timing.first_typing_wait_s,
            on_shut_out=lambda: self._stop_turn(key, msg.update_id),
        ) as typing:
            # The comment typed in Telegram's forward dialog, with what it forwards: "typing…"
            # shows while it waits for them.
            forwarded = with_its_forwards(
                msg,
                key,
                deps.albums,
                enqueued_at=enqueued_at,
                first_try=first_try,
                clock=deps.clock,
                sleep=deps.sleep,
            )
            msg, parts = forwarded or (msg, parts)
            # Removed from the group, blocked, the topic closed: no file is fetched, no
            # recording heard, no model paid for an answer nobody there can get.
            typing.raise_if_shut_out()
            # Writing recordings down takes a while: a Stop meanwhile must find the turn.
            hears = hears_recordings(parts, deps.voices)
            with StopWhileHearing(
                deps.live_turns, key, msg.update_id, hears=hears, message_ids=message_ids
            ) as hearing:
                try:
                    check_voice(msg, self._deps.voices)
                    staged, not_fetched = stage_attachments(
                        msg.attachments,
                        key=key,
                        update_id=msg.update_id,
                        bot=bot,
                        s3=self._deps.s3,
                        bucket=self._config.bucket,
                    )
                    if not_fetched and not staged and not asks_without_its_files(parts, not_fetched):
                        # nothing left to answer: each is named
                        typing.stop()
                        self._delivery.deliver(
                            msg, key, [none_fetched_notice(not_fetched)], remaining=remaining
                        )
                        return None
                    parts = fetched_only(parts, not_fetched)
                    # Transcribe may take what the turn and its delivery would not need.
                    timing = self._timing
                    wait_s = remaining() / 1000 - timing.delivery_reserve_s - timing.turn_reserve_s
                    heard = transcripts_of(
                        parts,
                        staged,
                        self._deps.voices,
                        prefix=key.s3_prefix,
                        wait_s=wait_s,
                        stopped=hearing.requested,
                    )
                except VoiceNotTranscribed as exc:
                    typing.stop()
                    self._delivery.deliver(msg, key, [escape_html(exc.notice)], remaining=remaining)
                    return None
                except TranscriptionStopped:
                    # Told as a turn stopped before it wrote anything; the agent never sees it.
                    typing.stop()
                    stopped = stopped_markdown(
                        "", stopped_by=self._stopped_by_another(msg, key, msg.update_id)
                    )
                    self._delivery.deliver(msg, key, render_reply(stopped), remaining=remaining)
                    return None
                # A refusal that came while the files were fetched or heard (a slow Telegram
                # answers the first "typing…" late) stops the turn before the model is paid.
                typing.raise_if_shut_out(wait_s=0)
                prompt = with_not_fetched(
                    with_unread_parts(
                        prompt_of(
                            msg, staged=bool(staged), parts=parts, heard=heard, not_fetched=not_fetched
                        ),
                        parts,
                    ),
                    not_fetched,
                    files=len(msg.attachments),
                )
                hearing.hand_over()  # the view expects the turn again, keeping a stop, and ends it
            # Drafts or a group's progress message while the turn runs.
            view = self._live_view(msg, key, chat_holds, message_ids)
            progress_cleanup.add(view)  # its progress message goes once the outcome is out
            with view:
                result = self._run_turn_when_free(
                    TurnRequest(
                        version=TURN_VERSION,
                        session_key=key.canonical,
                        turn_id=msg.update_id,
                        prompt=prompt,
                        attachments=staged,
                        max_cost_usd=self._config.budgets.turn_usd,
                        resume_approval=msg.approval_id if msg.kind == "approval" else None,
                        user_id=msg.user_id,
                        sent_at_epoch_s=first_sent_at(msg, parts),
                    ),
                    remaining,
                    calls,
                )
            on_result(result)
            if result.approval_outcome is not None:  # a refused turn may have declined one too
                self._approvals.show_outcome(
                    msg, result.approval_outcome, remaining, progress_cleanup, chat_holds
                )
            if not result.ok:
                return result
            log.info(
                "turn_answered",
                replayed=result.replayed,
                cost_usd=result.cost_usd,
                duration_ms=result.duration_ms,
                stopped=result.stopped,
            )
            typing.stop()
            if result.stopped:
                # Cut short because the chat shut the bot out (see on_shut_out): what it wrote
                # is for nobody there, even once the bot is back, and nobody pressed Stop.
                typing.raise_if_shut_out(wait_s=0)
            self._deliver_answer(msg, key, result, view, remaining)
        return result

    def _deliver_answer(
        self,
        msg: InboundMessage,
        key: SessionKey,
        result: TurnResult,
        view: LiveView,
        remaining: RemainingTimeMs,
    ) -> None:
        """Deliver a turn's answer: its text, then the files the agent sends, then the buttons
        of a call waiting for approval; the first of them quotes the user's message. A failed
        delivery carries the answer (``DeliveryFailedError.answer``: see ``answer_not_delivered``),
        as does one the invocation's ``remaining`` time cut short (the record's retry sends the rest)."""
        try:
            self._deliver_answer_parts(msg, key, result, view, remaining)
        except DeliveryFailedError as exc:
            exc.answer = result
            raise

    def answer_not_delivered(
        self, msg: InboundMessage, key: SessionKey, result: TurnResult, failed: DeliveryFailedError
    ) -> None:
        """The delivery of ``result`` failed at ``failed`` (its record retried, requeued or
        dead-lettered): keep its files that never went, and whether its text did not, for the
        agent's next turn, which would otherwise think them sent and read (a later try that
        delivers them forgets it; one that fails before delivering leaves it). Both are judged
        from the delivery record, not from where the last try failed: an earlier try may have
        sent the text. When they cannot be kept at the dead letter, the user's failure notice
        at least says the answer failed."""
        delivered = failed.delivered
        try:
            if delivered is None or result.files:  # files: the record as it is now, their last word
                delivered = self._delivery.delivered_chunks(msg, key)
        except StorageError as exc:
            log.warning("undelivered_files_unknown", error_code=exc.error_code)
            return
        # The text goes first, as chunks below the files': once the files were begun, it was
        # all recorded; before, it is lost when one of its chunks is not.
        text = failed.parts if failed.chunk_index < FIRST_FILE_CHUNK else range(0)
        text_lost = any(index not in delivered for index in text)
        missing = files_not_delivered(result.files, delivered, first_index=FIRST_FILE_CHUNK)
        keep_undelivered(self._deps.registry, key, result, missing, text_lost=text_lost)

    def _deliver_answer_parts(
        self,
        msg: InboundMessage,
        key: SessionKey,
        result: TurnResult,
        view: LiveView,
        remaining: RemainingTimeMs,
    ) -> None:
        chunks = self._answer_chunks(msg, key, result)
        files = result.files
        asking = result.approval_request
        # progress yields to answers in groups
        # (+ a rare notice; a question is sent, then given its buttons)
        view.spend_on_answer(len(chunks) + len(files) + 2 * (asking is not None))
        # Each part has its place in the delivery record whatever the text's length (a retry
        # sends the text as its first try rendered it, but an older consumer's try kept none).
        chunks = self._delivery.deliver_answer(msg, key, chunks, remaining=remaining)
        skipped: list[UnsentFile] = []
        if files:
            skipped = self._delivery.deliver_files(
                msg,
                key,
                files,
                first_index=FIRST_FILE_CHUNK,
                read=self._outbox_reader(key),
                quote_first=not chunks,
                remaining=remaining,
            )
            if skipped:  # gone from the bucket, refused by Telegram, unconfirmed: said, not left silent
                [notice] = render_reply(unsent_files_notice(skipped))  # one line: one chunk
                alone = not chunks and len(skipped) == len(files)  # nothing went before it
                self._delivery.deliver_notice(
                    msg, key, FILES_SKIPPED_CHUNK, notice, quote=alone, remaining=remaining
                )
        if not keep_undelivered(self._deps.registry, key, result, skipped):  # for the agent's next turn
            [notice] = render_reply(UNDELIVERED_NOT_NOTED_NOTICE)
            self._delivery.deliver_notice(msg, key, UNDELIVERED_NOT_NOTED_CHUNK, notice, remaining=remaining)
        if asking is not None:
            self._approvals.ask(msg, key, asking, quote=not (chunks or files), remaining=remaining)

    def _answer_chunks(self, msg: InboundMessage, key: SessionKey, result: TurnResult) -> list[str]:
        """The reply's HTML chunks, with a line naming the files that were not sent. A turn
        that sends files, ends asking for approval, or resumes one, may have written nothing:
        then it sends no text (the files, the buttons, or the edited message, say what
        happened; an empty resume is one the runtime found nothing to resume for)."""
        text = (
            stopped_markdown(
                result.text,
                reason=result.stop_reason,
                duration_ms=result.duration_ms,
                sends_files=bool(result.files),
                stopped_by=None
                if result.stop_reason is not None
                else self._stopped_by_another(msg, key, result.turn_id),
            )
            if result.stopped
            else result.text
        )
        unsent = unsent_files_notice(result.files_not_sent, more_too_many=result.more_files_not_sent)
        if unsent:
            text = with_note(text, unsent)
        quiet = msg.kind == "approval" or result.approval_request is not None or bool(result.files)
        if quiet and not text.strip():
            return []
        if self._wants_usage_footer(key):
            text = with_note(text.strip() or EMPTY_ANSWER, usage_footer(result))
        if result.history is not None:
            text = with_note(text.strip() or EMPTY_ANSWER, history_notice(result.history))
        return render_reply(text) or [EMPTY_ANSWER]

    def _stopped_by_another(self, msg: InboundMessage, key: SessionKey, turn_id: int) -> str | None:
        """In a group, the name of whoever stopped turn ``turn_id`` (``msg``'s) when it was not
        the asker: else a bare "Stopped." reads as if the asker had. None in a private chat, or
        when nobody said, or when the asker spoke as a chat (an anonymous admin): a press always
        comes from the person, who may be that admin, and naming them would say who asked."""
        if msg.chat_type == "private" or self._deps.live_turns is None:
            return None
        if msg.user_id is not None and msg.user_id < 0:  # a chat's id: the group, its channel
            return None
        try:
            stopper = self._deps.live_turns.stopped_by(key, turn_id)
        except StorageError as exc:  # the answer matters more than who stopped it
            log.warning("stopper_unreadable", error_code=exc.error_code)
            return None
        return None if stopper is None or stopper.user_id == msg.user_id else stopper.name

    def _outbox_reader(self, key: SessionKey) -> ReadFile:
        def read(file: StagedAttachment) -> bytes | None:
            return read_outbox_file(file, s3=self._deps.s3, bucket=self._config.bucket, key=key)

        return read

    def _command_in(
        self, msg: InboundMessage, parts: tuple[InboundMessage, ...]
    ) -> tuple[str | None, InboundMessage]:
        """The bot command ``msg`` gives, and ``msg`` as that command reads it. Each part of an
        album has a caption of its own: a command captioned on any part is the album's (the
        first such part's, its text the command's alone), as it is on the first: a question
        on another part does not turn "/new" or "/stop" into words for the model."""
        for part in parts if len(parts) > 1 else ():
            command = self._command_of(part)
            if command is not None:
                return command, msgspec.structs.replace(msg, text=part.text)
        return self._command_of(msg), msg

    def _command_of(self, msg: InboundMessage) -> str | None:
        """The bot command ``msg`` gives, if any: one its sender typed (a forwarded "/new" is
        someone else's words, and resets nothing), as the producer read Telegram's mark of it
        (a "/stop" shown as code is words for the agent, as the producer queued it)."""
        if msg.kind == "approval" or msg.forwarded:
            return None
        if msg.command is not None:
            return msg.command if msg.command in COMMANDS else None
        return parse_command(msg.text, self._config.bot_username)  # an older producer's message

    def _show_permissions(self, msg: InboundMessage, key: SessionKey, remaining: RemainingTimeMs) -> None:
        """[I] /permissions: the chat's grants, each with a revoke button."""
        grants = [] if self._deps.approvals is None else self._deps.approvals.grants(key)
        page = permissions_page(_command_argument(msg.text))  # /permissions 2: the next page
        markup = permissions_keyboard(grants, page=page)
        listing = permissions_html(grants, where=this_place(key.thread_id, forum=msg.forum), page=page)
        listing += _unread_note(msg, "permissions")
        if markup is None:
            self._delivery.deliver(msg, key, [listing], remaining=remaining)
        else:
            self._delivery.deliver_with_buttons(msg, key, 0, listing, markup, quote=True, remaining=remaining)

    def _stop_turn(self, key: SessionKey, turn_id: int) -> None:
        """Stop the turn as Stop does: the chat shut the bot out, nobody can get its answer."""
        if self._deps.live_turns is not None:
            outcome = self._deps.live_turns.request_stop(key, turn_id=turn_id)
            log.warning("turn_stopped_chat_unreachable", outcome=outcome)

    def _live_view(
        self, msg: InboundMessage, key: SessionKey, chat_holds: ChatHolds, message_ids: tuple[int, ...]
    ) -> LiveView:
        """The live view of this message's turn, which answers the messages ``message_ids``
        (shows nothing without live turns)."""
        return LiveView(
            bot=self._deps.bot,
            source=self._deps.live_turns,
            key=key,
            turn_id=msg.update_id,
            chat_id=msg.chat_id,
            private=msg.chat_type == "private",
            thread_id=msg.thread_id,
            reply_to=msg.message_id,  # a group's progress message quotes whose request runs
            message_ids=message_ids,
            budget=self._deps.progress_budget,
            chat_holds=chat_holds,
            poll_s=self._timing.progress_poll_s,
        )

    def _wants_usage_footer(self, key: SessionKey) -> bool:
        try:
            return self._deps.chat_settings.usage_footer(key)
        except StorageError as exc:  # the answer matters more than its footer
            log.warning("usage_setting_unreadable", error_code=exc.error_code)
            return False

    def _run_turn_when_free(
        self, request: TurnRequest, remaining_time_ms: RemainingTimeMs, calls: _RuntimeCalls
    ) -> TurnResult:
        """Invoke the runtime with a deadline that leaves time for delivery; while another
        live turn holds the session ("busy"), wait and invoke again: the runtime replays the
        other run's answer to this update, or runs the turn once the lease is free. ``calls``
        learns of an invocation that may have run the turn and not answered."""
        timing = self._timing
        wait = BusyWait(timing, self._deps.sleep)
        while True:
            left_ms = remaining_time_ms()
            calls.invoked_with(left_ms)
            budget_s = left_ms / 1000 - timing.delivery_reserve_s
            if budget_s < 1:
                raise DeferredError(
                    "out_of_time",
                    f"{budget_s + timing.delivery_reserve_s:.0f} s "
                    "left of the invocation, not enough for a turn and its delivery",
                )
            deadline_ms = int((self._deps.clock() + budget_s) * 1000)
            try:
                result = self._deps.runtime.run_turn(
                    msgspec.structs.replace(request, deadline_epoch_ms=deadline_ms)
                )
            except RuntimeInvokeError as exc:
                calls.may_have_run = calls.may_have_run or exc.may_have_run
                raise
            except Exception:
                calls.may_have_run = True
                raise
            if result.error_kind != "busy":
                if wait.polls:
                    log.info("session_free_again", polls=wait.polls, replayed=result.replayed)
                return result
            wait.pause(budget_s - timing.turn_reserve_s, holder="another turn")


class _RuntimeCalls:
    """What the runtime invocations of one message tell about its spending and its time;
    ``batch_began_with_ms``: what the invocation had left when its batch began."""

    def __init__(self, *, batch_began_with_ms: int) -> None:
        # An invocation failed without an answer, and may have run (and paid for) the turn.
        self.may_have_run = False
        self.batch_began_with_ms = batch_began_with_ms
        # How much of the invocation had gone when the runtime was last invoked: a voice
        # transcription, a busy chat's wait, the chat's earlier records in the batch.
        self.waited_s = 0.0

    def invoked_with(self, remaining_ms: int) -> None:
        """The runtime is invoked for the message with ``remaining_ms`` left."""
        self.waited_s = max(0.0, (self.batch_began_with_ms - remaining_ms) / 1000)


def _failure_words(result: TurnResult, *, after_a_wait: bool = False) -> str:
    # By its reason, with the note that its tools' work stands when they ran (the context
    # filled, or the model went silent, after a tool had sent a mail).
    words = failure_text(result, after_a_wait=after_a_wait)
    assert words is not None  # a result with a reason has its words
    return words


def _unread_note(msg: InboundMessage, command: str) -> str:
    """What a command's answer adds of what came with it and reached no turn: the message's
    own files (a replied message's are not the command's to look at), content the bot does
    not handle (a GIF), or words after a command that takes none; "" for none of these."""
    if msg.own_attachments:
        return "\n\n" + unread_files_note(msg.own_attachments, command)
    if msg.kind == "unsupported":
        return "\n\n" + unsupported_notice(msg.unsupported_what)
    if command in TAKES_NO_WORDS and _command_argument(msg.text):
        return "\n\n" + unread_words_note(command)
    return ""


def _command_argument(text: str) -> str:
    # What follows the command word after any whitespace ("/permissions\n2" as "/permissions 2").
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""
