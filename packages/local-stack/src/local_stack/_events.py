"""The AWS event sources of the stack, on this machine.

- `LocalHttpApi`: API Gateway HTTP API (payload format 2.0) in front of a function.
- `SqsEventSource`: Lambda's SQS event source mapping for a FIFO queue, with partial batch
  responses (`ReportBatchItemFailures`).
Both invoke functions through Lambda's Invoke API (see `local_stack._lambda`), so the
handlers receive the same events they receive in AWS.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._loopback import LoopbackServer


def http_api_event(
    *, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str = ""
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2 event, as Lambda receives it."""
    now = dt.datetime.now(dt.UTC)
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def sqs_lambda_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """Turn SQS ReceiveMessage results into the event Lambda's SQS event source delivers."""
    records = []
    for message in messages:
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class LocalHttpApi(LoopbackServer):
    """Serve `POST <path>` on 127.0.0.1 and hand each request to a function as a v2 event."""

    def __init__(
        self, *, lambda_client: Any, function_name: str, path: str = "/webhook", port: int = 0
    ) -> None:
        """``port``: where to listen on 127.0.0.1 (0: any free port)."""
        self._lambda = lambda_client
        self._function = function_name
        self._path = path
        super().__init__(port=port)

    @property
    def url(self) -> str:
        """Full URL of the route (what `setWebhook` would be given)."""
        if self._server is None:
            raise RuntimeError("LocalHttpApi is not started")
        return f"{self.base_url}{self._path}"

    # checks for a stop every 0.1 s (not socketserver's 0.5 s): `agentbot dev` stops quickly
    poll_interval_s = 0.1

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                if path != api._path:
                    self._send(404, b'{"message":"Not Found"}', {})
                    return
                status, payload, headers = api.forward(
                    http_api_event(
                        method="POST", path=path, headers=dict(self.headers), body=body, query=query
                    )
                )
                self._send(status, payload, headers)

            def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def forward(self, event: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        """Invoke the function with one event; map its answer like API Gateway does."""
        response = self._lambda.invoke(FunctionName=self._function, Payload=json.dumps(event).encode())
        raw = response["Payload"].read()
        if response.get("FunctionError"):
            return 500, b'{"message":"Internal Server Error"}', {"Content-Type": "application/json"}
        answer = json.loads(raw or b"null")
        if not isinstance(answer, dict) or "statusCode" not in answer:
            # payload v2: a bare value means 200 with that value as JSON body
            return 200, json.dumps(answer).encode(), {"Content-Type": "application/json"}
        body = answer.get("body") or ""
        data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
        return int(answer["statusCode"]), data, {k: str(v) for k, v in (answer.get("headers") or {}).items()}


@dataclass(frozen=True)
class BatchOutcome:
    """What one consumer invocation did with the records it was given."""

    message_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    function_error: bool
    seconds: float


class SqsEventSource:
    """Poll a FIFO queue and invoke a function with batches, like Lambda's event source mapping.

    Successful records are deleted. Records reported in `batchItemFailures` are left as
    they are, as Lambda's event source leaves them: they come back when their visibility
    timeout ends, which the function may have set itself (the consumer's backoff; while it
    runs, the consumer's visibility heartbeat keeps them hidden 180 s at a time). When the
    function fails as a whole (it crashed, timed out or raised) the batch comes back after
    `crash_retry_delay_s` instead of when the heartbeat's last renewal runs out (up to 3
    minutes; the queue's 90 minutes for a consumer that never started one): a deliberate
    shortcut of the local stack, so a crash is retried while you watch. Lambda's answer comes
    only once the function's process has ended or returned (a timed-out worker is killed
    first), so no renewal lands after this. SQS's redrive policy moves records to the DLQ
    after maxReceiveCount receives.
    """

    short_poll_interval_s = 0.05  # between receives while a batch is in flight

    def __init__(
        self,
        *,
        sqs_client: Any,
        lambda_client: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        batch_size: int = 10,
        pollers: int = 2,
        crash_retry_delay_s: int = 2,
        on_batch: Callable[[list[dict[str, Any]], BatchOutcome], None] | None = None,
        on_receive: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._sqs = sqs_client
        self._lambda = lambda_client
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._function = function_name
        self._batch_size = batch_size
        self._pollers = pollers
        self._crash_retry_delay_s = crash_retry_delay_s
        self._on_batch = on_batch
        self._on_receive = on_receive
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._receive_lock = threading.Lock()

    def start(self) -> SqsEventSource:
        for index in range(self._pollers):
            thread = threading.Thread(target=self._poll, name=f"sqs-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def busy(self) -> bool:
        """True while a batch is being processed."""
        with self._lock:
            return self._busy > 0

    def stop_receiving(self) -> None:
        """Take no new batches; those in flight carry on (``busy`` says when they are done)."""
        with self._lock:
            self._stopping.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling; wait at most ``timeout_s`` in all for batches in flight. A poller
        still inside an invoke then is left to end with it (its thread is a daemon): its
        records come back after their visibility timeout, as after a crash."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        self._threads.clear()

    def _poll(self) -> None:
        region = self._sqs.meta.region_name
        while not self._stopping.is_set():
            try:
                # one receive at a time: a waiting moto long poll can get a chat's next message
                # while its first is in flight (SQS holds it back; tests/test_aws_semantics.py);
                # processing still runs in parallel
                with self._receive_lock:
                    # moto's long poll fixes at its start which FIFO groups a message in flight
                    # holds back, and holds them until it returns: begun beside a batch, it
                    # kept that chat's next message up to a second after the batch was done
                    # (SQS hands it out at once). So beside a batch, short polls.
                    in_flight = self.busy
                    received = self._sqs.receive_message(
                        QueueUrl=self._queue_url,
                        MaxNumberOfMessages=self._batch_size,
                        WaitTimeSeconds=0 if in_flight else 1,
                        MessageSystemAttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    ).get("Messages", [])
                    # Counted before the next poller looks: else it finds nothing in flight
                    # and long-polls beside this batch.
                    starting = bool(received) and self._start_batch()
            except Exception:  # the endpoint is going away at shutdown; keep polling otherwise
                if self._stopping.wait(0.5):
                    return
                continue
            if not received:
                if in_flight and self._stopping.wait(self.short_poll_interval_s):
                    return
                continue
            if not starting:  # received while being stopped: not ours to start any more
                self._release(received)
                return
            try:
                self._process(received, region)
            except Exception:  # the function or its service went away: the records come back
                if self._stopping.is_set():  # after their visibility timeout, as after a crash
                    return
            finally:
                with self._lock:
                    self._busy -= 1

    def _start_batch(self) -> bool:
        """Count a received batch as in flight; False once stopping (then it is not ours to
        start). Under ``_lock``, with stop_receiving: a batch is either busy or released."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._busy += 1
            return True

    def _release(self, received: list[dict[str, Any]]) -> None:
        for message in received:
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            except Exception:  # the endpoint is going away too: it comes back after its timeout
                return

    def _process(self, received: list[dict[str, Any]], region: str) -> None:
        if self._on_receive is not None:
            self._on_receive(received)
        event = sqs_lambda_event(received, queue_arn=self._queue_arn, region=region)
        started = time.monotonic()
        response = self._lambda.invoke(FunctionName=self._function, Payload=json.dumps(event).encode())
        answer = json.loads(response["Payload"].read() or b"null")
        ids = tuple(m["MessageId"] for m in received)
        crashed = bool(response.get("FunctionError")) or not isinstance(answer, dict)
        if crashed:
            failed = ids
        else:
            failed = tuple(item["itemIdentifier"] for item in answer.get("batchItemFailures", []))
        for message in received:
            if message["MessageId"] in failed:
                if crashed:  # nobody chose when it comes back: soon, not in 90 minutes
                    self._sqs.change_message_visibility(
                        QueueUrl=self._queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self._crash_retry_delay_s,
                    )
            else:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        if self._on_batch is not None:
            self._on_batch(
                received,
                BatchOutcome(ids, failed, bool(response.get("FunctionError")), time.monotonic() - started),
            )
