"""A fault-injecting HTTP proxy in front of a local AWS endpoint (moto, LocalStack).

Requests are forwarded unchanged; the ones a `AwsFault` matches are answered with the error
AWS would give (DynamoDB's JSON, S3's XML, Lambda's REST-JSON), or forwarded first and then
answered with the error (a lost response). boto3 is never patched: point a client at
``proxy.endpoint`` (or take one from ``proxy.client(...)``).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_stack import LoopbackServer, local_client

Reply = tuple[int, list[tuple[str, str]], bytes]

# Hop-by-hop or recomputed headers, never copied between the two connections.
_SKIPPED_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})
_SIGNING_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_LAMBDA_INVOKE = re.compile(r"^/[^/]+/functions/[^/]+/invocations$")
_S3_OBJECT_OPERATIONS = {
    "GET": "GetObject",
    "PUT": "PutObject",
    "DELETE": "DeleteObject",
    "HEAD": "HeadObject",
}


@dataclass
class AwsFault:
    """Which requests to fail and how to answer them.

    ``operation`` is ``"service:Operation"`` (``"dynamodb:TransactWriteItems"``,
    ``"s3:GetObject"``, ``"lambda:Invoke"``) and may use shell wildcards (``"dynamodb:*"``).
    ``times`` is how many matching requests to fail (-1: every one, until removed); ``when``,
    if given, is asked ``when(operation, body)`` and only requests it accepts match (so a
    fault can hold while a predicate does). ``code`` defaults to the service's own error for
    ``status`` (InternalServerError, InternalError/SlowDown, ServiceException). With
    ``forward_first`` the request reaches the upstream and only its response is lost.
    """

    operation: str
    times: int = -1
    status: int = 500
    code: str | None = None
    message: str = "injected fault"
    when: Callable[[str, bytes], bool] | None = None
    forward_first: bool = False

    def matches(self, operation: str, body: bytes) -> bool:
        """Whether this fault hits a request for ``operation`` with ``body`` (it has times left)."""
        if self.times == 0 or not fnmatchcase(operation, self.operation):
            return False
        return self.when is None or self.when(operation, body)


class FaultProxy(LoopbackServer):
    """Forward every request to ``upstream``, failing those the listed ``faults`` match.

    ``services`` sends some services to another upstream (``{"s3": localstack_url}``), for a
    local AWS whose services answer at different endpoints.

    ``seen`` lists every request's operation in arrival order and ``failed`` the ones answered
    with a fault. Use as a context manager (or ``start()``/``stop()``); ``faults`` may be
    changed while it runs.
    """

    def __init__(
        self,
        upstream: str,
        faults: list[AwsFault] | None = None,
        *,
        services: Mapping[str, str] | None = None,
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.service_upstreams = {s: urllib.parse.urlsplit(u) for s, u in (services or {}).items()}
        self.faults: list[AwsFault] = list(faults or [])
        self.seen: list[str] = []
        self.failed: list[str] = []
        self._lock = threading.Lock()
        super().__init__()
        # bound now: the endpoint is known before the proxy serves
        self.bind()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = operation_of(self.command, self.path, self.headers)
                fault = proxy.take_fault(operation, body)
                if fault is None or fault.forward_first:
                    status, headers, payload = proxy.forward(
                        self.command, self.path, self.headers, body, service=operation.split(":", 1)[0]
                    )
                if fault is not None:
                    status, headers, payload = error_response(operation, fault)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if self.command != "HEAD":  # a HEAD answer keeps the upstream's Content-Length
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler

    @property
    def endpoint(self) -> str:
        """The proxy's URL, to use as a client's ``endpoint_url``."""
        return self.base_url

    def client(self, service: str, *, config: Any = None) -> Any:
        """A boto3 client for ``service`` that goes through this proxy (local credentials)."""
        return local_client(service, self.endpoint, config=config)

    def take_fault(self, operation: str, body: bytes) -> AwsFault | None:
        """Record the request; return the first fault that hits it (using up one of its times)."""
        with self._lock:
            self.seen.append(operation)
            for fault in self.faults:
                if fault.matches(operation, body):
                    if fault.times > 0:
                        fault.times -= 1
                    self.failed.append(operation)
                    return fault
        return None

    def forward(self, method: str, path: str, headers: Any, body: bytes, service: str = "") -> Reply:
        """Send one request to the upstream (of ``service``); its status, headers and body."""
        upstream = self.service_upstreams.get(service, self.upstream)
        if upstream.hostname is None:
            raise ValueError(f"upstream URL has no host: {upstream.geturl()!r}")
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _SKIPPED_HEADERS}
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            payload = response.read()
            skipped = _SKIPPED_HEADERS - ({"content-length"} if method == "HEAD" else set())
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in skipped]
            return response.status, kept, payload
        finally:
            conn.close()


def operation_of(method: str, path: str, headers: Any) -> str:
    """``"service:Operation"`` of one AWS request, from its signature, target header or path."""
    signed = _SIGNING_SERVICE.search(headers.get("Authorization") or "")
    target = headers.get("X-Amz-Target")
    service = signed.group(1) if signed else ("dynamodb" if target else "s3")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    url = urllib.parse.urlsplit(path)
    if service == "lambda":
        return "lambda:Invoke" if _LAMBDA_INVOKE.match(url.path) else f"lambda:{method}"
    if service != "s3":
        return f"{service}:{method}"
    segments = [s for s in url.path.split("/") if s]
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    if len(segments) >= 2:
        return "s3:" + _s3_object_operation(method, query, headers)
    if method == "POST" and "delete" in query:
        return "s3:DeleteObjects"
    if method == "GET" and "list-type" in query:
        return "s3:ListObjectsV2"
    return f"s3:{method}"


def _s3_object_operation(method: str, query: dict[str, list[str]], headers: Any) -> str:
    """An object request's operation; a multipart upload's steps are told apart by query."""
    if "uploads" in query:
        return "CreateMultipartUpload"
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if headers.get("x-amz-copy-source") else "UploadPart"
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(method, method)
    return _S3_OBJECT_OPERATIONS.get(method, method)


def error_response(operation: str, fault: AwsFault) -> Reply:
    """The error answer the service of ``operation`` gives, in its own protocol."""
    service = operation.split(":", 1)[0]
    if service == "s3":
        code = fault.code or ("SlowDown" if fault.status == 503 else "InternalError")
        xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{fault.message}</Message></Error>"
        return fault.status, [("Content-Type", "application/xml")], xml.encode()
    if service == "dynamodb":
        code = fault.code or "InternalServerError"
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": fault.message}
        return fault.status, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(body).encode()
    if service in ("transcribe", "ssm"):  # JSON 1.1, as DynamoDB's 1.0: the code travels in the body
        code = fault.code or ("InternalServerError" if service == "ssm" else "InternalFailureException")
        body = {"__type": code, "Message": fault.message}
        return fault.status, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(body).encode()
    # REST-JSON services (Lambda): the code travels in a header.
    code = fault.code or "ServiceException"
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    return fault.status, headers, json.dumps({"Type": "User", "message": fault.message}).encode()
