"""A long text Telegram's apps split into several messages is one question: one turn that sees
the whole text, in order, and one answer.

The apps split a text over 4,096 characters into messages sent back to back. Before, each part
was a paid turn of its own, and the first answer saw only the beginning of the log or code
the user pasted.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from session_core import PasteParts, StorageError

CHAT = 501
GROUP = -100777
JOINED = "paste part: answered with its paste"


def _log_lines(first: int, count: int) -> str:
    return "\n".join(
        f"2026-12-06 03:{i % 60:02d} worker[{i}] request {i} took {i % 97} ms"
        for i in range(first, first + count)
    )


def _paste(total_lines: int) -> list[str]:
    """A log as an app sends it: cut at a line break before 4,096 characters (the break
    itself is not sent: Telegram trims each message)."""
    lines = _log_lines(0, total_lines).split("\n")
    parts, current = [], ""
    for line in lines:
        if current and len(current) + 1 + len(line) > 4096:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [*parts, current]


def _send(stack: Any, first_update: int, texts: list[str], **fields: Any) -> list[str]:
    """Post each text as one message, back to back; the producer's outcome for each."""
    outcomes = []
    for i, text in enumerate(texts):
        part = update(first_update + i, message_id=first_update + i, text=text, **fields)
        response = stack.producer.handle_event(webhook_event(part))
        assert response["statusCode"] == 200, response
        outcomes.append(json.loads(response["body"])["outcome"])
    return outcomes


def _answers(stack: Any, chat_id: int) -> list[str]:
    return [m["text"] for m in stack.replies(chat_id) if m["text"].startswith("Answer to:")]


def test_a_paste_split_in_three_is_one_turn_that_sees_the_whole_text_in_order(stack) -> None:
    parts = _paste(190)
    assert len(parts) == 3 and len(parts[-1]) < 3500  # 9,000-odd characters, as the app cuts them

    outcomes = _send(stack, 1000, parts)
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", JOINED, JOINED]
    [run] = stack.runs()
    assert run["prompt"] == "\n".join(parts) == _log_lines(0, 190)
    assert len(_answers(stack, CHAT)) == 1


def test_a_short_message_is_queued_on_its_own_with_nothing_to_wait_for(stack) -> None:
    assert _send(stack, 1010, ["what does this error mean?"]) == ["enqueued"]
    [queued] = stack.receive()

    assert json.loads(queued["Body"])["message"].get("album_id") is None


def test_a_message_after_a_paste_is_complete_is_answered_on_its_own(stack) -> None:
    parts = _paste(120)
    outcomes = _send(stack, 1020, [*parts, "and why is it slow?"])
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", JOINED, "enqueued"]
    first, second = stack.runs()
    assert first["prompt"] == "\n".join(parts) and second["prompt"] == "and why is it slow?"


def test_a_part_that_comes_after_its_paste_was_answered_is_answered_on_its_own(stack) -> None:
    first_part, last_part = _paste(120)
    _send(stack, 1030, [first_part])
    stack.drain(stack.consumer())  # waits for more parts a while, then answers what came
    late = _send(stack, 1031, [last_part])
    stack.drain(stack.consumer())

    assert late == ["enqueued"]
    first, second = stack.runs()
    assert first["prompt"] == first_part and second["prompt"] == last_part


def test_a_part_telegram_sends_again_changes_nothing(stack) -> None:
    parts = _paste(120)
    _send(stack, 1040, parts)
    again = _send(stack, 1040, [parts[0]]) + _send(stack, 1041, [parts[1]])
    stack.drain(stack.consumer())
    after = _send(stack, 1041, [parts[1]]) + _send(stack, 1040, [parts[0]])
    stack.drain(stack.consumer())

    assert again == ["duplicate", JOINED] and after == [JOINED, JOINED]
    [run] = stack.runs()
    assert run["prompt"] == "\n".join(parts)


def test_in_a_group_the_rest_of_an_addressed_paste_joins_it_without_a_mention(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    first, rest = _paste(120)
    outcomes = _send(stack, 1050, [f"@{BOT_USERNAME} {first}", rest], **group)
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", JOINED]
    [run] = stack.runs()
    assert run["prompt"] == f"[From @alice]\n\n{first}\n{rest}"


def test_in_a_group_a_paste_not_addressed_to_the_bot_starts_no_turn(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    outcomes = _send(stack, 1060, _paste(120), **group)
    stack.drain(stack.consumer())

    assert all(outcome.startswith("ignored") for outcome in outcomes)
    assert stack.runs() == []


def test_another_members_message_right_after_a_long_one_is_not_taken_for_a_part(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    long_one = _paste(60)[0]
    bob = _send(stack, 1070, [f"@{BOT_USERNAME} {long_one}"], user_id=42, **group)
    alice = _send(stack, 1071, [f"@{BOT_USERNAME} unrelated question"], **group)
    aside = _send(stack, 1072, ["lunch?"], **group)
    stack.drain(stack.consumer())

    assert bob == alice == ["enqueued"] and aside[0].startswith("ignored")
    prompts = sorted(run["prompt"] for run in stack.runs())
    assert prompts == sorted([f"[From @alice]\n\n{long_one}", "[From @alice]\n\nunrelated question"])


def test_a_part_the_producer_could_not_keep_is_answered_on_its_own(stack) -> None:
    """A failed write (DynamoDB throttled, say) must not lose the part."""
    pastes = stack.producer._pastes
    keep = pastes.record

    def throttled_for_the_last(session_key: str, sender_id: int, update_id: int, part: str, **kw: Any) -> Any:
        if update_id == 1081:
            raise StorageError("pastes.record", "DynamoDB UpdateItem throttled")
        return keep(session_key, sender_id, update_id, part, **kw)

    pastes.record = throttled_for_the_last
    first, rest = _paste(120)
    outcomes = _send(stack, 1080, [first, rest])
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", "enqueued"]
    assert sorted(run["prompt"] for run in stack.runs()) == sorted([first, rest])


def test_a_text_message_costs_one_request_on_its_senders_paste_item_and_other_messages_none(stack) -> None:
    """The producer answers Telegram within milliseconds: telling a continuation from a new
    message is one UpdateItem on the sender's small item, and only for plain text; a part
    that starts or joins a paste writes itself to that paste's item too."""
    calls: list[tuple[str, str]] = []

    def note(params: dict[str, Any], model: Any, **_: Any) -> None:
        pk = params.get("Key", {}).get("pk", {}).get("S", "")
        if pk.startswith("album|"):
            calls.append((model.name, pk))

    stack.producer._pastes._table.dynamodb.meta.events.register("before-parameter-build.dynamodb", note)
    sender_item = f"album|default/{CHAT}/0|paste-{CHAT}"
    parts_item = f"{sender_item}-1091"
    first, rest = _paste(120)

    _send(stack, 1090, ["hi"])
    assert calls == [("UpdateItem", sender_item)]
    calls.clear()
    _send(stack, 1091, [first, rest])
    assert calls == [("UpdateItem", sender_item), ("UpdateItem", parts_item)] * 2
    calls.clear()
    _send(stack, 1093, ["/status"])
    file_id = stack.telegram.add_file(b"%PDF" * 20, file_path="documents/a.pdf")
    document = {"file_id": file_id, "file_unique_id": "d1", "file_name": "a.pdf"}
    stack.post(update(1094, message_id=1094, text=None, document=document, caption="x" * 1000))
    assert calls == []


def test_a_paste_never_queued_does_not_split_its_senders_next_paste(stack) -> None:
    """The producer wrote a paste's first part and never queued it (it crashed, or the part
    was too large for the queue): the sender's next paste, minutes later, is one turn still."""
    minutes_ago = PasteParts(
        dynamodb=stack.aws.dynamodb,
        table=stack.aws.resources.table,
        retention_days=1,
        clock=lambda: time.time() - 600,
    )
    minutes_ago.record(f"default/{CHAT}/0", CHAT, 1099, "{}", near_limit=True, addressed=True)
    parts = _paste(190)

    outcomes = _send(stack, 1100, parts)
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", JOINED, JOINED]
    [run] = stack.runs()
    assert run["prompt"] == "\n".join(parts)


def test_a_first_part_telegram_sends_again_after_a_503_is_queued_once_with_every_part(stack) -> None:
    """The queue failed for the first part (503): Telegram sends it again, and the chat's
    next updates only once the webhook took it."""
    parts = _paste(190)
    config = stack.producer._config
    stack.producer._config = dataclasses.replace(config, queue_url=f"{config.queue_url}-unreachable")
    failed = stack.producer.handle_event(webhook_event(update(1110, message_id=1110, text=parts[0])))
    stack.producer._config = config

    again = _send(stack, 1110, parts[:1])
    rest = _send(stack, 1111, parts[1:])
    again += _send(stack, 1110, parts[:1])  # and once more, its 200 lost
    stack.drain(stack.consumer())

    assert failed["statusCode"] == 503 and rest == [JOINED, JOINED] and again == ["enqueued", "duplicate"]
    [run] = stack.runs()
    assert run["prompt"] == "\n".join(parts)
    assert len(_answers(stack, CHAT)) == 1


def _item_bytes(item: dict[str, Any]) -> int:
    """The size DynamoDB bills an item by (its documented rules): each attribute's name in UTF-8
    plus its value (a string in UTF-8, a number ≈1 byte per two significant digits plus 1, a
    set the sum of its members)."""

    def value_bytes(value: dict[str, Any]) -> int:
        ((kind, data),) = value.items()
        if kind == "S":
            return len(data.encode())
        if kind == "N":
            return (len(data.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
        if kind in ("SS", "NS"):
            return sum(value_bytes({kind[0]: member}) for member in data)
        if kind in ("BOOL", "NULL"):
            return 1
        raise AssertionError(f"no size rule here for {kind}")

    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def test_after_a_long_paste_an_ordinary_message_still_writes_about_one_unit(stack) -> None:
    """DynamoDB bills a write (a failed conditional one too) by the size of the item it touches,
    1 write unit per KB: what every plain text message writes must stay small after a paste of
    40,000 characters, not weigh as much as the paste for the day its parts are kept."""
    touched: list[dict[str, Any]] = []

    def note(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "UpdateItem" and params["Key"]["pk"]["S"].startswith("album|"):
            touched.append(params["Key"])

    dynamodb = stack.producer._pastes._table.dynamodb
    dynamodb.meta.events.register("before-parameter-build.dynamodb", note)
    parts = _paste(800)
    assert sum(map(len, parts)) > 40_000
    assert _send(stack, 1200, parts) == ["enqueued"] + [JOINED] * (len(parts) - 1)
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"] == "\n".join(parts)

    for update_id in (1300, 1301, 1302):
        touched.clear()
        assert _send(stack, update_id, [f"thanks, and question {update_id}?"]) == ["enqueued"]
        [key] = touched  # one request on the sender's paste item, and only that one
        item = dynamodb.get_item(TableName=stack.aws.resources.table, Key=key, ConsistentRead=True)["Item"]
        # 1 write unit: under 1 KB (moto reports a fixed capacity, not one by size). Before
        # the parts had items of their own, this item held them: 46 KB, 46 units.
        assert _item_bytes(item) < 1024, item
