"""The local HTTP API and SQS event source deliver the events AWS delivers, through Lambda invoke."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from botocore.config import Config
from local_stack import FunctionSpec, LocalHttpApi, LocalLambda, SqsEventSource, local_client

FIXTURES = str(Path(__file__).parent / "lambda_fixtures")


def _lambda_client(endpoint: str):
    return local_client("lambda", endpoint, config=Config(retries={"total_max_attempts": 1}))


def _event_source(aws, service: LocalLambda, **options) -> SqsEventSource:
    """An event source of the test queue in front of the function "consumer" of ``service``."""
    return SqsEventSource(
        sqs_client=aws.sqs,
        lambda_client=_lambda_client(service.endpoint),
        queue_url=aws.resources.queue_url,
        queue_arn=aws.resources.queue_arn,
        function_name="consumer",
        **options,
    )


def test_http_api_passes_a_v2_event_and_maps_the_answer() -> None:
    spec = FunctionSpec(handler="probe_handler.handle_http", env={"PYTHONPATH": FIXTURES})
    with LocalLambda({"web": spec}) as service:
        api = LocalHttpApi(lambda_client=_lambda_client(service.endpoint), function_name="web").start()
        try:
            response = httpx.post(api.url, content=b'{"a":1}', headers={"X-Probe": "p"})
            missing = httpx.post(api.url.replace("/webhook", "/other"), content=b"")
        finally:
            api.stop()
    assert response.status_code == 201
    assert response.text == 'p:{"a":1}'
    assert response.headers["x-route"] == "POST /webhook"
    assert missing.status_code == 404


def test_sqs_event_source_deletes_successes_and_keeps_the_functions_own_backoff(aws) -> None:
    """A reported failure comes back when the function said (Lambda's event source does not
    touch its visibility); a success is deleted and never seen again."""
    queue = aws.resources.queue_url
    for n, body in enumerate(["ok", "fail:4"]):
        aws.sqs.send_message(
            QueueUrl=queue, MessageBody=body, MessageGroupId=f"g{n}", MessageDeduplicationId=f"d{n}"
        )
    seen: list[tuple[str, int, float]] = []
    retried = threading.Event()

    def on_receive(messages) -> None:
        for message in messages:
            count = int(message["Attributes"]["ApproximateReceiveCount"])
            seen.append((message["Body"], count, time.monotonic()))
            if message["Body"] != "ok" and count >= 2:
                retried.set()

    spec = FunctionSpec(handler="probe_handler.handle_sqs_with_backoff", env={"PYTHONPATH": FIXTURES})
    with LocalLambda({"consumer": spec}) as service:
        source = _event_source(
            aws,
            service,
            crash_retry_delay_s=1,
            on_receive=on_receive,
        ).start()
        try:
            assert retried.wait(30), seen
        finally:
            source.stop()
    assert [b for b, _, _ in seen].count("ok") == 1  # deleted after success, never redelivered
    first, second = [at for body, _, at in seen if body == "fail:4"][:2]
    assert second - first >= 3.5, seen  # the function's 4 s, not the event source's 1 s


def _started(
    aws,
    bodies: list[str],
    *,
    sent_while_running: int | None = None,
    done: list[tuple[str, float]] | None = None,
) -> list[tuple[str, float]]:
    """When each of ``bodies`` (one FIFO group, each sent once the one before it started) was
    handed to the function; ``sent_while_running``: the one whose successor is sent 0.3 s into it;
    ``done`` gets when each batch was done (the function answered, its records deleted)."""
    queue = aws.resources.queue_url
    started: list[tuple[str, float]] = []

    def record_done(messages, outcome) -> None:
        if done is not None:
            done.extend((m["Body"], time.monotonic()) for m in messages)

    spec = FunctionSpec(handler="probe_handler.handle_sqs_sleeping", env={"PYTHONPATH": FIXTURES})
    with LocalLambda({"consumer": spec}) as service:
        source = _event_source(
            aws,
            service,
            batch_size=1,
            on_receive=lambda messages: started.extend((m["Body"], time.monotonic()) for m in messages),
            on_batch=record_done,
        ).start()
        try:
            for n, body in enumerate(bodies):
                aws.sqs.send_message(
                    QueueUrl=queue, MessageBody=body, MessageGroupId="chat", MessageDeduplicationId=f"m{n}"
                )
                deadline = time.monotonic() + 30
                while len(started) <= n and time.monotonic() < deadline:
                    time.sleep(0.01)
                if n == sent_while_running:
                    time.sleep(0.3)  # the next one is sent while this one runs
        finally:
            source.stop()
    assert [body for body, _ in started] == bodies, started
    return started


def test_a_chats_next_message_starts_as_soon_as_the_one_before_is_done(aws) -> None:
    """A message sent while the one before it in its FIFO group is in flight starts as soon as
    that one is done, as SQS hands it out then. moto's long poll decides when it starts which
    groups are held back and keeps them held until it returns, so with long polls running
    beside a batch it started up to a second later: in `agentbot dev`, every next message of
    a conversation."""
    done: list[tuple[str, float]] = []
    started = _started(aws, ["sleep:0", "sleep:1.5", "sleep:0"], sent_while_running=1, done=done)

    # From when the one before was done, not from its start plus its 1.5 s: the invoke's own
    # way to the function and back took over 0.5 s more on a loaded machine.
    [before_done] = [at for body, at in done if body == "sleep:1.5"]
    waited = started[2][1] - before_done
    assert waited < 0.4, (started, done)


def test_a_poller_that_just_got_a_batch_counts_as_busy_before_the_next_poller_looks(aws) -> None:
    """The batch a poller just received counts as in flight before the receive lock passes to
    the next poller: else that one found nothing in flight and began a long poll beside the
    batch, holding the chat's next message until it returned (here the thread switch that
    opens the gap is made to happen: in the wild it is rare, and costs up to a second)."""
    paused = threading.Event()

    def pause_in_the_gap(frame, event, arg):
        source = frame.f_locals["self"]
        gap = frame.f_locals.get("received") and not source._receive_lock.locked() and not source._busy
        if event == "line" and gap and not paused.is_set():
            paused.set()
            time.sleep(0.1)  # the other poller takes the receive lock meanwhile
        return pause_in_the_gap

    def in_poll(frame, event, arg):
        return pause_in_the_gap if frame.f_code.co_name == "_poll" else None

    # Which receives were long polls, and when the first batch came back: asserted on the
    # cause, not on the delay it makes (a busy machine stretches the fixed path's timing too).
    polls: list[tuple[float, int]] = []
    batch_returned: list[float] = []

    def record_poll(params, **_):
        polls.append((time.monotonic(), params.get("WaitTimeSeconds", 0)))

    def record_batch(parsed, **_):
        if parsed.get("Messages") and not batch_returned:
            batch_returned.append(time.monotonic())

    events = aws.sqs.meta.events
    events.register("provide-client-params.sqs.ReceiveMessage", record_poll, unique_id="poll-probe")
    events.register("after-call.sqs.ReceiveMessage", record_batch, unique_id="batch-probe")
    threading.settrace(in_poll)
    try:
        started = _started(aws, ["sleep:0.3", "sleep:0"])
    finally:
        threading.settrace(None)
        events.unregister("provide-client-params.sqs.ReceiveMessage", unique_id="poll-probe")
        events.unregister("after-call.sqs.ReceiveMessage", unique_id="batch-probe")

    # while the first batch runs (0.3 s from its start), every receive is a short poll
    beside_the_batch = [wait for at, wait in polls if batch_returned[0] < at < started[0][1] + 0.3]
    assert beside_the_batch and set(beside_the_batch) == {0}, (polls, batch_returned, started)


def test_stopping_with_every_poller_busy_takes_seconds_not_a_wait_per_poller(aws) -> None:
    queue = aws.resources.queue_url
    for n in range(3):  # one batch per group, so each of three pollers is inside a long invoke
        aws.sqs.send_message(
            QueueUrl=queue, MessageBody="slow", MessageGroupId=f"slow{n}", MessageDeduplicationId=f"s{n}"
        )
    spec = FunctionSpec(
        handler="probe_handler.handle_sqs_slowly",
        env={"PYTHONPATH": FIXTURES},
        timeout_s=120,
        max_concurrency=3,
    )
    busy = threading.Semaphore(0)
    with LocalLambda({"consumer": spec}) as service:
        source = _event_source(
            aws,
            service,
            batch_size=1,
            pollers=3,
            on_receive=lambda messages: busy.release(),
        ).start()
        for _ in range(3):
            assert busy.acquire(timeout=30)
        time.sleep(0.5)  # the invokes are running
        started = time.monotonic()
        source.stop()
        stopped_after = time.monotonic() - started
    assert stopped_after < 7, stopped_after  # one bounded wait in all (was up to 30 s each)
