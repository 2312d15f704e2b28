"""Secrets the operator rotates in SSM reach warm containers without a redeploy: the bot token
(read again when Telegram refuses it) and the webhook secret (read again when a call's secret
does not match), each at most once per interval, whoever keeps sending a wrong one. Through
the real handlers' builders, against moto (SSM requests counted by a proxy in front of it),
the Bot API server on 127.0.0.1 and the runtime stub."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import AwsFault, FakeClock, FaultProxy
from agentbot_testing.telegram_stack import telegram_stack
from agentbot_testing.telegram_support import WEBHOOK_SECRET, envelopes, update, webhook_event
from local_stack import TEST_BOT_TOKEN
from session_core import SECRET_REREAD_INTERVAL_S, ConfigError, configure_logging
from sqs_consumer import handler as consumer_handler
from telegram_producer import Producer
from telegram_producer import handler as producer_handler

CHAT = 501
NEW_TOKEN = "123456789:LOCAL-rotated-token-not-a-real-one"
NEW_SECRET = "rotated-webhook-secret_9876543210"


@contextmanager
def counted_ssm(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The handlers' SSM client goes through a proxy that lists each request (``seen``)."""
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", proxy.endpoint)
        yield proxy


def ssm_reads(proxy: FaultProxy) -> int:
    return proxy.seen.count("ssm:GetParameter")


def rotate(aws: Any, setting: str, value: str) -> None:
    """The operator puts a new value in the parameter ``setting`` names (straight to SSM)."""
    ssm = aws.client("ssm")
    ssm.put_parameter(Name=os.environ[setting], Value=value, Type="SecureString", Overwrite=True)


def test_a_warm_consumer_answers_with_the_bot_token_the_operator_rotated(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch) as stack:
        consumer = consumer_handler.build_consumer()
        stack.post(update(100, text="before"))
        stack.drain(consumer)
        reads = ssm_reads(ssm)

        # A new token from BotFather revokes the old one; the operator puts it in SSM.
        stack.telegram.token = NEW_TOKEN
        rotate(aws, "BOT_TOKEN_PARAMETER", NEW_TOKEN)
        stack.post(update(101, text="after"))
        stack.post(update(102, text="and again"))
        stack.drain(consumer)

        assert [m["text"] for m in stack.replies(CHAT)] == [
            "Answer to: before",
            "Answer to: after",
            "Answer to: and again",
        ]
        assert ssm_reads(ssm) == reads + 1  # one re-read, on the first refusal
        assert stack.dead_letters() == []


def test_a_bot_token_rotated_as_botfather_makes_it_loses_no_answer_and_needs_no_redrive(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BotFather's /revoke kills the old token before the operator can put the new one in SSM:
    a message answered in between meets the refusal, and the parameter read again then still
    holds the old token. That answer is tried again once the parameter may be read again, and
    a message that came after the operator put the new one is answered too. Before, both went
    to the dead-letter queue (the second as the container would not read again for 30 s)."""
    with telegram_stack(aws, tmp_path, monkeypatch) as stack:
        clock = FakeClock()
        consumer = consumer_handler.build_consumer(secret_clock=clock)
        stack.post(update(120, text="before"))
        stack.drain(consumer)

        stack.telegram.token = NEW_TOKEN  # /revoke: the old token is refused from now on
        stack.post(update(121, text="while the operator copies the new token"))
        [tried] = stack.drain(consumer, rounds=1)
        assert len(tried["batchItemFailures"]) == 1  # tried again later, not dead-lettered

        rotate(aws, "BOT_TOKEN_PARAMETER", NEW_TOKEN)
        stack.post(update(122, text="after"))
        clock.now += SECRET_REREAD_INTERVAL_S
        stack.drain(consumer)

        assert [m["text"] for m in stack.replies(CHAT)] == [
            "Answer to: before",
            "Answer to: while the operator copies the new token",
            "Answer to: after",
        ]
        assert stack.dead_letters() == []
        assert len(stack.runs()) == 3  # the retried answer was replayed, not run again


def test_a_bot_token_still_refused_after_a_reread_names_its_parameter_to_the_operator(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch) as stack:
        consumer = consumer_handler.build_consumer()
        configure_logging(json_lines=True)
        reads = ssm_reads(ssm)
        stack.telegram.token = NEW_TOKEN  # revoked, and no new token in SSM yet
        for update_id in range(110, 115):
            stack.post(update(update_id, chat_id=CHAT + update_id, text="hello"))
        stack.drain(consumer)

        assert stack.telegram.sent_messages() == []
        assert ssm_reads(ssm) == reads + 1  # five chats refused, one re-read
        assert len(stack.dead_letters()) == 5  # tried until the queue's last receive
        captured = capsys.readouterr()
        lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
        metrics = [json.loads(line) for line in captured.out.splitlines() if '"ConfigurationErrors"' in line]
        fixes = {line.get("fix") for line in lines if line["event"] == "config.invalid"}
        assert fixes == {f"{os.environ['BOT_TOKEN_PARAMETER']} (BOT_TOKEN_PARAMETER)"}
        assert len(metrics) == 5 * 5  # one per refused try: the configuration alarm fires
        logged = json.dumps(lines)
        assert NEW_TOKEN not in logged and TEST_BOT_TOKEN not in logged


def test_a_warm_producer_accepts_the_webhook_secret_the_operator_rotated(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch):
        clock = FakeClock()
        producer = producer_handler.build_producer(secret_clock=clock)
        assert producer.handle_event(webhook_event(update(200), secret=WEBHOOK_SECRET))["statusCode"] == 200
        reads = ssm_reads(ssm)
        clock.now += SECRET_REREAD_INTERVAL_S  # warm: the secret was read an interval ago

        # `agentbot webhook set` gives Telegram the new secret the operator put in SSM.
        rotate(aws, "WEBHOOK_SECRET_PARAMETER", NEW_SECRET)
        assert producer.handle_event(webhook_event(update(201), secret=NEW_SECRET))["statusCode"] == 200
        assert producer.handle_event(webhook_event(update(202), secret=NEW_SECRET))["statusCode"] == 200
        assert producer.handle_event(webhook_event(update(203), secret=WEBHOOK_SECRET))["statusCode"] == 403

        assert ssm_reads(ssm) == reads + 1
        queued = envelopes(aws.sqs, aws.resources.queue_url)
        assert sorted(e.message.update_id for e in queued) == [200, 201, 202]


def test_a_producer_started_with_an_unusable_secret_takes_the_one_the_operator_fixed(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container that read a value Telegram cannot send (a space in it) answers 5xx; once the
    operator puts a valid one in SSM it accepts Telegram's calls, without waiting to be recycled
    (it kept the unusable value from its process cache)."""
    with telegram_stack(aws, tmp_path, monkeypatch):
        monkeypatch.setattr(producer_handler, "_producer", None)  # a new container
        monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", f"{os.environ['WEBHOOK_SECRET_PARAMETER']}-new")
        rotate(aws, "WEBHOOK_SECRET_PARAMETER", "not a valid secret")
        with pytest.raises(ConfigError):
            producer_handler.handle(webhook_event(update(210), secret=NEW_SECRET), None)

        rotate(aws, "WEBHOOK_SECRET_PARAMETER", NEW_SECRET)
        answer = producer_handler.handle(webhook_event(update(211), secret=NEW_SECRET), None)

        assert answer["statusCode"] == 200, answer
        assert [e.message.update_id for e in envelopes(aws.sqs, aws.resources.queue_url)] == [211]


def forged_calls(producer: Producer, first_id: int) -> set[int]:
    """The statuses 50 calls with guessed secrets get."""
    guesses = [f"guess-{i:04d}-of-an-attacker" for i in range(50)]
    calls = [webhook_event(update(first_id + i), secret=guess) for i, guess in enumerate(guesses)]
    return {producer.handle_event(call)["statusCode"] for call in calls}


def test_wrong_webhook_secrets_cost_at_most_one_ssm_read_per_interval(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch) as stack:
        # Cold: the stack's producer read the secret from SSM as it started; no wrong one is
        # worth another read so soon.
        assert ssm_reads(ssm) == 1
        assert forged_calls(stack.producer, 300) == {403}
        assert ssm_reads(ssm) == 1

        clock = FakeClock()
        producer = producer_handler.build_producer(secret_clock=clock)
        clock.now += SECRET_REREAD_INTERVAL_S  # warm: the secret was read an interval ago
        reads = ssm_reads(ssm)
        assert forged_calls(producer, 400) == {403}
        assert ssm_reads(ssm) == reads + 1  # the first wrong one is checked against SSM, no other


def test_a_rotated_bot_token_the_role_may_not_decrypt_names_the_key_setting_and_is_answered_once_fixed(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator put the new token under a customer managed KMS key the consumer's role may
    not decrypt (SecretsKmsKeyArn empty): the re-read is refused, and the operator reads which
    parameter and which setting to fix, not only that Telegram refuses the old token. The
    message is tried again, and answered once the role may decrypt the new token."""
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch) as stack:
        clock = FakeClock()
        consumer = consumer_handler.build_consumer(secret_clock=clock)
        configure_logging(json_lines=True)
        stack.telegram.token = NEW_TOKEN
        rotate(aws, "BOT_TOKEN_PARAMETER", NEW_TOKEN)
        ssm.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]
        stack.post(update(130, text="hello"))
        [tried] = stack.drain(consumer, rounds=1)
        captured = capsys.readouterr()

        ssm.faults = []  # the stack's SecretsKmsKeyArn deployed, and its grant arrived
        clock.now += SECRET_REREAD_INTERVAL_S
        stack.drain(consumer)

        assert len(tried["batchItemFailures"]) == 1  # tried again later
        lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
        denied = [
            line
            for line in lines
            if line["event"] == "config.invalid" and "SecretsKmsKeyArn" in line["reason"]
        ]
        assert [line["fix"] for line in denied] == [
            f"{os.environ['BOT_TOKEN_PARAMETER']} (BOT_TOKEN_PARAMETER)"
        ]
        # One line, the accurate one: not also "Telegram refuses the bot token: put the bot's
        # current token in the parameter", which the operator has just done.
        assert [line for line in lines if line["event"] == "config.invalid"] == denied
        assert not [line for line in lines if line["event"] == "secret.reread_failed"]
        assert NEW_TOKEN not in json.dumps(lines) and TEST_BOT_TOKEN not in json.dumps(lines)
        assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: hello"]
        assert stack.dead_letters() == []


def test_a_limit_stops_notice_meeting_a_rotated_bot_token_the_role_may_not_decrypt_is_told_in_one_line(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The turn's cap stopped the run, and its notice meets Telegram refusing the old token
    while SSM refuses the rotated one to the role: the operator reads the line naming the key
    setting, not also 'put the bot's current token in the parameter', which they had just done."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    with counted_ssm(aws, monkeypatch) as ssm, telegram_stack(aws, tmp_path, monkeypatch) as stack:
        consumer = consumer_handler.build_consumer(secret_clock=FakeClock())
        configure_logging(json_lines=True)
        stack.telegram.token = NEW_TOKEN
        rotate(aws, "BOT_TOKEN_PARAMETER", NEW_TOKEN)
        ssm.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]
        stack.post(update(150, text="limit:max_budget"))
        stack.drain(consumer, rounds=1)
        captured = capsys.readouterr()

    lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert any(line["event"] == "limit_notice_not_sent" for line in lines)
    told = [line for line in lines if line["event"] == "config.invalid"]
    assert told and all("SecretsKmsKeyArn" in line["reason"] for line in told), told
    assert NEW_TOKEN not in json.dumps(lines) and TEST_BOT_TOKEN not in json.dumps(lines)
