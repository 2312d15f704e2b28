"""The files the agent sends, end to end: producer → moto FIFO → consumer → runtime stub (which
puts them in S3 under the session's outbox, as the real runtime does) → local Bot API. What is
asserted is what the user sees: the answer's text, then each file once, in the message's topic."""

from __future__ import annotations

from typing import Any

from agentbot_testing import AwsFault, FaultProxy
from agentbot_testing.telegram_support import BOT_USERNAME, OUTBOX_FILE_CONTENT, as_read, update
from botocore.config import Config
from local_stack import TelegramFault
from session_core import MAX_RECEIVE_COUNT, SessionKey, UnsentFile
from sqs_consumer import FAILED_NOTICE, FAILURE_WORDING, MAX_REQUEUES, REQUEUES_ATTRIBUTE

CHAT = 501
GROUP = -100300


def shown(stack: Any, chat_id: int) -> list[str]:
    """What the chat shows, in order: each text, and each file as "<method> <name>"."""
    files = {f.message["message_id"]: f for f in stack.telegram.sent_files(chat_id)}
    return [
        f"{files[m['message_id']].method} {files[m['message_id']].file_name}"
        if m["message_id"] in files
        else m["text"]
        for m in stack.replies(chat_id)
    ]


def test_a_photo_and_a_document_arrive_after_the_text_in_the_messages_topic(stack) -> None:
    text = f"@{BOT_USERNAME} files:2"
    stack.post(update(600, message_id=61, text=text, chat_id=GROUP, chat_type="supergroup", thread_id=9))
    stack.drain(stack.consumer())
    answer, *files = shown(stack, GROUP)
    assert answer.startswith("Answer to: ") and files == ["sendPhoto chart.png", "sendDocument data.csv"]
    photo, document = stack.telegram.sent_files(GROUP)
    assert photo.content() == OUTBOX_FILE_CONTENT["chart.png"] and photo.mime_type == "image/png"
    assert document.content() == OUTBOX_FILE_CONTENT["data.csv"] and document.mime_type == "text/csv"
    assert document.message["document"]["file_name"] == "data.csv"
    assert all(m["message_thread_id"] == 9 for m in stack.replies(GROUP))
    # only the text quotes the user's message; the files follow it
    assert [bool(m.get("reply_to_message")) for m in stack.replies(GROUP)] == [True, False, False]
    assert len(stack.runs()) == 1


def test_a_record_retried_after_a_fault_on_the_second_file_sends_nothing_twice(stack) -> None:
    # Telegram refuses the CSV (the second file) for longer than the client waits.
    stack.telegram.inject("sendDocument", TelegramFault.retry_after_seconds(60))
    stack.post(update(601, text="files:2"))
    responses = stack.drain(stack.consumer())
    assert responses[0]["batchItemFailures"] and not responses[-1]["batchItemFailures"]
    assert shown(stack, CHAT) == ["Answer to: files:2", "sendPhoto chart.png", "sendDocument data.csv"]
    assert len(stack.telegram.calls("sendPhoto")) == 1 and len(stack.runs()) == 1  # replayed, not re-run


def test_the_files_that_were_not_sent_are_named_under_the_answer(stack) -> None:
    stack.post(update(602, text="files:big"))
    stack.drain(stack.consumer())
    assert shown(stack, CHAT) == [
        "Answer to: files:big\n\n(report.zip was not sent: it is larger than 50 MB, the most a bot can send)"
    ]


def test_when_the_files_that_did_not_arrive_cannot_be_noted_for_the_agent_the_user_is_told(stack) -> None:
    """The agent would not learn that report.zip never went, and might say "I sent it": the
    user hears so instead, once, and the answer is not retried for it."""
    noting_fails = AwsFault("dynamodb:UpdateItem", when=lambda _, body: b"undelivered_files" in body)
    with FaultProxy(stack.aws.endpoint, [noting_fails]) as proxy:
        dynamodb = proxy.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
        stack.post(update(609, text="files:big"))
        responses = stack.drain(stack.consumer(dynamodb=dynamodb))
    assert proxy.failed and [r["batchItemFailures"] for r in responses] == [[]]
    assert shown(stack, CHAT) == [
        "Answer to: files:big\n\n(report.zip was not sent: it is larger than 50 MB, the most a bot can send)",
        "(I could not make a note that the files above did not reach you, so later I may wrongly "
        "say I sent them.)",
    ]
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    assert record is not None and record.undelivered_files is None


def requeued_as_often_as_it_may(stack, text: str, update_id: int) -> None:
    """Queue the message as a copy requeued ``MAX_REQUEUES`` times: its last failure dead-letters it."""
    stack.post(update(update_id, text=text))
    [raw] = stack.receive()
    stack.aws.sqs.delete_message(QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"])
    stack.aws.sqs.send_message(
        QueueUrl=stack.aws.resources.queue_url,
        MessageBody=raw["Body"],
        MessageGroupId=f"default/{CHAT}/0",
        MessageDeduplicationId="requeued-often",
        MessageAttributes={REQUEUES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(MAX_REQUEUES)}},
    )


def test_a_file_whose_delivery_failed_for_good_is_kept_for_the_agents_next_turn(stack) -> None:
    """Telegram refuses the CSV on every try, and the record was requeued as often as it may:
    it is dead-lettered, and the agent, which wrote "here are your files", learns that the CSV
    never went (the photo did)."""
    requeued_as_often_as_it_may(stack, "files:2", 610)
    stack.telegram.inject("sendDocument", TelegramFault.retry_after_seconds(60), times=MAX_RECEIVE_COUNT)
    stack.drain(stack.consumer())
    assert shown(stack, CHAT) == ["Answer to: files:2", "sendPhoto chart.png", FAILED_NOTICE]
    assert len(stack.dead_letters()) == 1
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    assert record is not None and record.undelivered_files is not None
    assert record.undelivered_files.files == (UnsentFile(file_name="data.csv", reason="failed"),)


def test_an_answer_whose_last_try_failed_reading_its_delivery_record_keeps_its_text_as_read(stack) -> None:
    """Each earlier try sent the text and the photo and was refused the CSV; the last one
    failed reading the delivery record before sending anything: the user read the text, so
    the agent is told only that the CSV never went, not that its answer may be unread."""
    requeued_as_often_as_it_may(stack, "files:2", 614)
    stack.telegram.inject("sendDocument", TelegramFault.retry_after_seconds(60), times=MAX_RECEIVE_COUNT - 1)

    reads_after_the_last_refusal: list[bytes] = []

    def on_the_last_try(_: str, body: bytes) -> bool:
        if b"delivery|614" in body and len(stack.telegram.calls("sendDocument")) == MAX_RECEIVE_COUNT - 1:
            reads_after_the_last_refusal.append(body)
        # the first is the refused try's own look at what it lost, the second the last try's
        return len(reads_after_the_last_refusal) == 2

    with FaultProxy(
        stack.aws.endpoint, [AwsFault("dynamodb:GetItem", times=1, when=on_the_last_try)]
    ) as proxy:
        dynamodb = proxy.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
        stack.drain(stack.consumer(dynamodb=dynamodb))
    assert proxy.failed and len(stack.dead_letters()) == 1
    assert shown(stack, CHAT) == ["Answer to: files:2", "sendPhoto chart.png", FAILED_NOTICE]
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    kept = None if record is None else record.undelivered_files
    assert kept is not None and not kept.text_lost
    assert kept.files == (UnsentFile(file_name="data.csv", reason="failed"),)


def test_an_answer_whose_last_try_failed_before_its_delivery_keeps_the_text_an_earlier_try_lost(
    stack, monkeypatch
) -> None:
    """The first try sent the answer's first part and Telegram refused its second for now; every
    later try, the last one too, found the runtime throttled and never got to delivery. The
    record is dead-lettered with the user's failure notice, and the agent, whose answer the
    user read only in part, learns it was not read."""
    requeued_as_often_as_it_may(stack, "long:6000", 615)
    fail_nth(stack, "sendMessage", 2)  # the answer's second part, on the first try
    invokes = {"n": 0}

    def after_the_first(_: str, __: bytes) -> bool:
        invokes["n"] += 1
        return invokes["n"] > 1

    throttled = AwsFault(
        "lambda:Invoke",
        status=429,
        code="TooManyRequestsException",
        message="Rate exceeded",
        when=after_the_first,
    )
    with FaultProxy(stack.runtime.endpoint, [throttled]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        stack.drain(stack.consumer())
    assert proxy.failed and len(stack.dead_letters()) == 1
    shows = shown(stack, CHAT)
    assert len(shows) == 2 and shows[1] == FAILED_NOTICE  # the answer's first part, then the notice
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    kept = None if record is None else record.undelivered_files
    assert kept is not None and kept.text_lost and not kept.files


# Telegram refuses the answer for good (not worth a retry): its record is dead-lettered at once.
REFUSED = TelegramFault(400, "Bad Request: message text is empty")


def test_an_answer_whose_text_failed_for_good_is_kept_as_unread_for_the_agents_next_turn(stack) -> None:
    """Telegram refuses the answer (it sent no file): the user has the failure notice, and the
    agent, which would otherwise go on as if its answer was read, learns it was not."""
    stack.telegram.inject("sendMessage", REFUSED)
    stack.post(update(612, text="hi"))
    stack.drain(stack.consumer())
    assert shown(stack, CHAT) == [FAILED_NOTICE] and len(stack.dead_letters()) == 1
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    kept = None if record is None else record.undelivered_files
    assert kept is not None and kept.text_lost and not kept.files


def test_a_later_try_that_delivers_the_whole_answer_forgets_what_a_failed_dead_letter_kept(stack) -> None:
    """The answer failed for good and its loss was kept for the agent, but the dead-letter
    queue refused the record, so it was tried again, and this time everything went: the agent
    must not be told of a loss the user did not have."""
    stack.telegram.inject("sendMessage", REFUSED)
    dlq_name = stack.aws.resources.dlq_url.rsplit("/", 1)[-1].encode()
    dlq_down = AwsFault("sqs:SendMessage", times=1, when=lambda _, body: dlq_name in body)
    key = SessionKey(tenant="default", chat_id=CHAT)
    with FaultProxy(stack.aws.endpoint, [dlq_down]) as proxy:
        consumer = stack.consumer(sqs=proxy.client("sqs", config=Config(retries={"total_max_attempts": 1})))
        stack.post(update(613, text="files:2"))
        [first] = stack.drain(consumer, rounds=1)
        record = stack.registry().get_session(key)
        assert first["batchItemFailures"] and record is not None and record.undelivered_files is not None
        stack.drain(consumer)
    assert proxy.failed and not stack.dead_letters()
    assert shown(stack, CHAT) == [
        FAILED_NOTICE,
        "Answer to: files:2",
        "sendPhoto chart.png",
        "sendDocument data.csv",
    ]
    record = stack.registry().get_session(key)
    assert record is not None and record.undelivered_files is None


def test_an_answer_without_files_dead_lettered_reads_its_delivery_record_once_per_try(stack) -> None:
    """Its agent sent no file that could have gone missing: dead-lettering it costs no read
    of the delivery record beyond the one each try makes before sending."""
    delivery_reads: list[bytes] = []

    def counts_delivery_reads(_: str, body: bytes) -> bool:
        if b"delivery|611" in body:
            delivery_reads.append(body)
        return False  # fails nothing

    with FaultProxy(stack.aws.endpoint, [AwsFault("dynamodb:GetItem", when=counts_delivery_reads)]) as proxy:
        requeued_as_often_as_it_may(stack, "hi", 611)
        stack.telegram.inject("sendMessage", TelegramFault.retry_after_seconds(60), times=MAX_RECEIVE_COUNT)
        stack.drain(stack.consumer(dynamodb=proxy.client("dynamodb")))
    assert shown(stack, CHAT) == [FAILED_NOTICE] and len(stack.dead_letters()) == 1
    tries = [call for call in stack.telegram.calls("sendMessage") if call.status != 200]
    assert len(tries) == MAX_RECEIVE_COUNT
    assert len(delivery_reads) == len(tries)


def test_a_file_whose_answer_was_lost_after_upload_is_not_sent_again_and_is_named(stack) -> None:
    """Telegram took the CSV but the connection broke before its answer: sent again it would
    show twice (up to once per retry), so it is not; the user is told it may be missing."""
    stack.telegram.inject("sendDocument", TelegramFault.served_then_dropped())
    stack.post(update(607, text="files:2"))
    responses = stack.drain(stack.consumer())
    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert shown(stack, CHAT) == [
        "Answer to: files:2",
        "sendPhoto chart.png",
        "sendDocument data.csv",
        "(data.csv may not have arrived: Telegram did not confirm it, so ask me for it again if it "
        "is missing)",
    ]
    assert len(stack.telegram.calls("sendDocument")) == 1


def test_a_file_telegram_took_but_answered_with_a_502_shows_once_and_is_named(stack) -> None:
    """A 5xx may come after the file was posted (the proxy in front of the Bot API gave up
    waiting): sent again it would show twice, so it is not; the user is told it may be missing."""
    stack.telegram.inject("sendDocument", TelegramFault.served_then_server_error(502))
    stack.post(update(608, text="files:2"))
    responses = stack.drain(stack.consumer())
    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert shown(stack, CHAT) == [
        "Answer to: files:2",
        "sendPhoto chart.png",
        "sendDocument data.csv",
        "(data.csv may not have arrived: Telegram did not confirm it, so ask me for it again if it "
        "is missing)",
    ]


def test_a_photo_telegram_refuses_goes_again_as_a_document(stack) -> None:
    stack.telegram.inject("sendPhoto", TelegramFault.photo_invalid_dimensions())
    stack.post(update(603, text="files:1"))
    responses = stack.drain(stack.consumer())
    assert not responses[0]["batchItemFailures"]
    assert shown(stack, CHAT) == ["Answer to: files:1", "sendDocument chart.png"]
    [document] = stack.telegram.sent_files(CHAT)
    assert document.content() == OUTBOX_FILE_CONTENT["chart.png"]
    assert [c.status for c in stack.telegram.calls("sendPhoto")] == [400]


def test_a_file_gone_from_the_bucket_is_skipped_named_once_and_the_answer_still_succeeds(stack) -> None:
    stack.post(update(604, text="files:gone"))
    responses = stack.drain(stack.consumer())
    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert shown(stack, CHAT) == [
        "Answer to: files:gone",
        "sendDocument data.csv",
        "(expired.csv was not sent: something went wrong while preparing it)",
    ]


def test_a_file_telegram_refuses_is_said_to_be_refused_and_kept_for_the_agents_next_turn(stack) -> None:
    """Telegram would not take the CSV (a 400 that no retry cures): the user read "something
    went wrong while preparing it", the words of a file gone from the bucket, though it was
    Telegram that said no."""
    stack.telegram.inject(
        "sendDocument", TelegramFault(400, "Bad Request: wrong file identifier/HTTP URL specified")
    )
    stack.post(update(613, text="files:2"))
    responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert shown(stack, CHAT) == [
        "Answer to: files:2",
        "sendPhoto chart.png",
        "(data.csv was not sent: Telegram refused it)",
    ]
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    assert record is not None and record.undelivered_files is not None
    assert record.undelivered_files.files == (UnsentFile(file_name="data.csv", reason="refused"),)


def test_a_file_telegram_refuses_as_too_large_is_named_with_its_size_and_the_limit(stack) -> None:
    """413 Request Entity Too Large: the user learns the file was too large for Telegram, how
    large it is and what a bot may send, so they can ask for it smaller or split."""
    stack.telegram.inject("sendDocument", TelegramFault(413, "Request Entity Too Large"))
    stack.post(update(614, text="files:2"))
    responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]
    size = len(OUTBOX_FILE_CONTENT["data.csv"])
    assert shown(stack, CHAT) == [
        "Answer to: files:2",
        "sendPhoto chart.png",
        f"(data.csv ({size} bytes) was not sent: Telegram refused it as too large, and a bot can "
        "send files of up to 50 MB)",
    ]
    record = stack.registry().get_session(SessionKey(tenant="default", chat_id=CHAT))
    assert record is not None and record.undelivered_files is not None
    assert record.undelivered_files.files == (
        UnsentFile(file_name="data.csv", reason="refused_too_large", size=size),
    )


def test_files_a_group_does_not_let_the_bot_send_are_named_under_its_answer(stack) -> None:
    """An admin turned off photos and files for members (the bot among them): the answer's
    text still arrives, with a line saying which files did not and why, so someone can change
    the group's permissions and ask again."""
    stack.telegram.inject(
        "sendPhoto", TelegramFault(400, "Bad Request: not enough rights to send photos to the chat")
    )
    stack.telegram.inject(
        "sendDocument",
        TelegramFault(400, "Bad Request: not enough rights to send documents to the chat"),
        times=2,
    )
    text = f"@{BOT_USERNAME} files:2"
    stack.post(update(609, message_id=62, text=text, chat_id=GROUP, chat_type="supergroup", thread_id=9))
    responses = stack.drain(stack.consumer())
    assert [r["batchItemFailures"] for r in responses] == [[]]
    answer, note = shown(stack, GROUP)
    assert answer.startswith("Answer to: ")
    assert note == "(chart.png and data.csv were not sent: this chat does not let me send files)"
    assert stack.telegram.sent_files(GROUP) == [] and len(stack.runs()) == 1


def test_files_come_before_the_approval_buttons_whose_allow_still_works(stack) -> None:
    stack.post(update(605, text="ask:Bash ls files:2"))
    stack.drain(stack.consumer())
    assert shown(stack, CHAT)[:3] == [
        "I need to use Bash for this.",
        "sendPhoto chart.png",
        "sendDocument data.csv",
    ]
    [*_, asking] = stack.replies(CHAT)
    assert asking["reply_markup"]["inline_keyboard"] and "May I run this?" in asking["text"]
    approval = stack.approvals().current(SessionKey(tenant="default", chat_id=CHAT))
    assert approval is not None and approval.message_id == asking["message_id"]

    stack.post(stack.telegram.press_button(asking, text="Allow once", username="ada"))
    stack.drain(stack.consumer())
    assert shown(stack, CHAT)[-1] == "Ran Bash: ls files:2"
    [edited] = [m for m in stack.replies(CHAT) if m["message_id"] == asking["message_id"]]
    assert as_read(edited["text"]).startswith("✅ Allowed once by @ada") and not edited.get("reply_markup")
    assert len(stack.telegram.sent_files(CHAT)) == 2  # the resumed turn sends no file again


def test_a_turn_that_failed_sends_no_file(stack) -> None:
    stack.post(update(606, text="fail:bad_request files:2"))
    stack.drain(stack.consumer())
    assert shown(stack, CHAT) == [FAILURE_WORDING["bad_request"]]
    assert stack.telegram.sent_files() == []


def fail_nth(stack: Any, method: str, nth: int) -> None:
    """Make Telegram refuse the ``nth`` call of ``method`` (1-based) for longer than the client
    waits (a 429: it did not take the call), so the record is retried."""
    seen = {"n": 0}

    def on_call(called: str, params: dict[str, Any]) -> None:
        if called == method:
            seen["n"] += 1
            if seen["n"] == nth:
                stack.telegram.inject(method, TelegramFault.retry_after_seconds(60))

    stack.telegram.on_call = on_call


def test_a_retry_after_a_failure_at_each_point_of_the_answer_sends_each_part_once(stack) -> None:
    # text, data.csv, the notice naming expired.csv, the buttons: each in turn fails once
    expected = [
        "I need to use Bash for this.",
        "sendDocument data.csv",
        "(expired.csv was not sent: something went wrong while preparing it)",
    ]
    for point, (method, nth) in enumerate(
        [("sendMessage", 1), ("sendDocument", 1), ("sendMessage", 2), ("sendMessage", 3)]
    ):
        chat = CHAT + 10 + point
        fail_nth(stack, method, nth)
        stack.post(update(700 + point, text="ask:Bash ls files:gone", chat_id=chat))
        responses = stack.drain(stack.consumer())
        assert responses[0]["batchItemFailures"] and not responses[-1]["batchItemFailures"], point
        shows = shown(stack, chat)
        assert shows[:3] == expected and len(shows) == 4, (point, shows)
        assert "May I run this?" in shows[3]
        replies = stack.replies(chat)
        assert [bool(m.get("reply_to_message")) for m in replies] == [True, False, False, False], point
        approval = stack.approvals().current(SessionKey(tenant="default", chat_id=chat))
        assert approval is not None and approval.message_id == replies[3]["message_id"]
