"""The model proxy meters every call of a turn from the responses it forwards: SSE and JSON
from the Messages API, Bedrock's JSON and event stream; a cut stream counts what it reported."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from agent_runtime._cost import call_cost_usd
from agent_runtime._model_proxy import CALLS_IN_FLIGHT, BedrockSigner, ModelProxy
from agent_runtime._usage_meter import MeteredSpend, ResponseReader, TurnMeter
from botocore.credentials import Credentials
from local_stack import CallUsage, LocalCredentials, ModelFault, ModelServer, Streamed, eventstream_frame

# Claude Sonnet 4.5's list price: $3 per million input tokens, $15 per million output tokens.
SONNET_CALL_USD = 1000 * 3 / 1e6 + 100 * 15 / 1e6
PER_CALL = CallUsage(input_tokens=1000, output_tokens=100)
MESSAGE_START = {
    "type": "message_start",
    "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 1000, "output_tokens": 1}},
}
BODY = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_anthropic_calls_streamed_or_not_are_metered_per_turn() -> None:
    with ModelServer(lambda request: "metered answer", model="claude-sonnet-4-5", usage=PER_CALL) as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            streamed = httpx.post(f"{proxy.base_url}/v1/messages", json={**BODY, "stream": True}, headers=key)
            whole = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers=key)
            counted = httpx.post(f"{proxy.base_url}/v1/messages/count_tokens", json=BODY, headers=key)
            assert streamed.status_code == whole.status_code == counted.status_code == 200
            assert "message_stop" in streamed.text and whole.json()["content"][0]["text"] == "metered answer"
            first = proxy.close_turn()

            key = {"x-api-key": proxy.open_turn()}  # the next turn starts from nothing
            httpx.post(f"{proxy.base_url}/v1/messages", json={**BODY, "stream": True}, headers=key)
            second = proxy.close_turn()
        finally:
            proxy.stop()
    assert first.calls == 2  # counting tokens is free and no call
    assert (first.usage.input_tokens, first.usage.output_tokens) == (2000, 200)
    assert first.cost_usd == pytest.approx(2 * SONNET_CALL_USD, rel=1e-12)
    assert second.calls == 1 and second.cost_usd == pytest.approx(SONNET_CALL_USD, rel=1e-12)


def test_bedrock_calls_streamed_or_not_are_metered() -> None:
    role = LocalCredentials.generate()
    model_id = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": BODY["messages"]}
    with ModelServer(lambda request: "from bedrock", model=model_id, usage=PER_CALL) as upstream:
        signer = BedrockSigner(lambda: Credentials(role.access_key_id, role.secret_access_key), "eu-west-1")
        proxy = ModelProxy(upstream=upstream.base_url, auth=signer).start()
        try:
            key = {"Authorization": f"Bearer {proxy.open_turn()}"}
            for action in ("invoke", "invoke-with-response-stream"):
                response = httpx.post(f"{proxy.base_url}/model/{model_id}/{action}", json=body, headers=key)
                assert response.status_code == 200, action
            spend = proxy.close_turn()
        finally:
            proxy.stop()
    assert spend.calls == 2
    assert (spend.usage.input_tokens, spend.usage.output_tokens) == (2000, 200)
    assert spend.cost_usd == pytest.approx(2 * SONNET_CALL_USD, rel=1e-12)


def spend_of_a_cut_stream(reply: Any, cut_after_events: int) -> MeteredSpend:
    """What the proxy metered for one streamed call whose upstream died after that many events."""
    with ModelServer(lambda request: reply, model="claude-sonnet-4-5", usage=PER_CALL) as upstream:
        upstream.inject(ModelFault(cut_after_events=cut_after_events))
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            with pytest.raises(httpx.HTTPError):
                httpx.post(f"{proxy.base_url}/v1/messages", json={**BODY, "stream": True}, headers=key)
            return proxy.close_turn()
        finally:
            proxy.stop()


def test_a_stream_cut_off_counts_the_input_it_reported() -> None:
    spend = spend_of_a_cut_stream("never finished", 2)  # message_start and one more event, then gone
    # The input was billed as soon as the model started; the output never got reported.
    assert spend.calls == 1 and (spend.usage.input_tokens, spend.usage.output_tokens) == (1000, 0)
    assert spend.cost_usd == pytest.approx(1000 * 3 / 1e6, rel=1e-12)


def test_a_stream_cut_off_mid_answer_counts_the_output_it_streamed() -> None:
    # A stopped turn's last call never reaches message_delta: its output so far is estimated
    # from the text it streamed (~4 characters a token), not dropped.
    answer = Streamed("x" * 400, pieces=8, pause_s=0)  # 50 characters a delta
    spend = spend_of_a_cut_stream([answer], 8)  # start, block start, then 3 deltas
    assert (spend.usage.input_tokens, spend.usage.output_tokens) == (1000, 150 // 4 + 1)
    assert spend.cost_usd == pytest.approx(1000 * 3 / 1e6 + 38 * 15 / 1e6, rel=1e-12)


def test_a_cli_that_hangs_up_mid_answer_is_metered_and_leaves_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A stop kills the CLI while an answer streams: the proxy's next write finds no reader.
    What streamed is counted, and the runtime's log gets no "Exception occurred" traceback."""
    slow = Streamed("y" * 400, pieces=20, pause_s=0.1)
    with ModelServer(lambda request: [slow], model="claude-sonnet-4-5", usage=PER_CALL) as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}
            with httpx.stream(
                "POST", f"{proxy.base_url}/v1/messages", json={**BODY, "stream": True}, headers=key
            ) as answer:
                next(answer.iter_bytes())  # the answer has started; then the CLI is gone
            time.sleep(1.5)  # the proxy writes on into the closed connection
            spend = proxy.close_turn()
        finally:
            proxy.stop()
    assert spend.calls == 1 and spend.usage.input_tokens == 1000
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err[-2000:]


@pytest.mark.parametrize(
    ("model", "usage", "expected_usd"),
    [
        # Opus 4.5: $5 in, $25 out, $6.25 cache write (5 min), $10 (1 h), $0.50 cache read.
        ("claude-opus-4-5-20251101", {"input_tokens": 1_000_000}, 5.0),
        ("claude-opus-4-5", {"output_tokens": 1_000_000}, 25.0),
        (
            "claude-opus-4-5",
            {
                "cache_creation_input_tokens": 3_000_000,
                "cache_creation": {"ephemeral_1h_input_tokens": 1_000_000},
                "cache_read_input_tokens": 2_000_000,
            },
            2 * 6.25 + 10 + 2 * 0.5,
        ),
        # Opus 4.1 ($15/$75) under a Bedrock id; the "us" inference geography adds 10 %.
        (
            "us.anthropic.claude-opus-4-1-20250805-v1:0",
            {"input_tokens": 1_000_000, "inference_geo": "us"},
            16.5,
        ),
        (
            "claude-haiku-4-5",
            {"input_tokens": 1_000_000, "server_tool_use": {"web_search_requests": 3}},
            1.03,
        ),
        # Unknown: priced as the dearest model, so a guess never understates the bill.
        ("some-future-model", {"output_tokens": 1_000_000}, 75.0),
    ],
)
def test_call_prices(model: str, usage: dict, expected_usd: float) -> None:
    assert call_cost_usd(model, json.loads(json.dumps(usage))) == pytest.approx(expected_usd, rel=1e-12)


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack("!IIII", 0, 0, 0, 0),  # total 0: the frame would never be consumed
        struct.pack("!III", 12, 0, 0),  # shorter than its own prelude and CRC
        struct.pack("!III", 40, 30, 0) + bytes(28),  # headers longer than the frame holds
    ],
    ids=["zero-length", "shorter-than-prelude", "headers-past-the-end"],
)
def test_a_malformed_event_stream_frame_stops_metering_that_answer_at_once(frame: bytes) -> None:
    meter = TurnMeter()
    reader = ResponseReader(
        meter, content_type="application/vnd.amazon.eventstream", request_model="claude-sonnet-4-5"
    )
    valid = eventstream_frame(
        {":event-type": "chunk"},
        json.dumps({"bytes": base64.b64encode(json.dumps(MESSAGE_START).encode()).decode()}).encode(),
    )
    # A zero-length frame used to make the reader spin forever, holding a proxy thread.
    feeding = threading.Thread(target=reader.feed, args=(frame,), daemon=True)
    feeding.start()
    feeding.join(timeout=5)
    assert not feeding.is_alive()
    reader.feed(valid)  # after a malformed frame the stream cannot be framed: it counts nothing
    reader.finish()
    assert meter.spend().calls == 0

    control = TurnMeter()  # the same valid frame on its own is counted
    ResponseReader(
        control, content_type="application/vnd.amazon.eventstream", request_model="claude-sonnet-4-5"
    ).feed(valid)
    assert control.spend().calls == 1


@contextlib.contextmanager
def answering_upstream(*, model: str, usage: dict[str, int], delay_s: float = 0.0) -> Iterator[_Asked]:
    """A Messages API upstream that answers every call with one JSON message of ``usage``
    after ``delay_s``, gzipped when the request allows it (as a CDN front does). Yields the
    Accept-Encoding of each request it got, as a list whose ``url`` is the upstream's."""
    asked = _Asked()

    class Upstream(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked.append(self.headers.get("Accept-Encoding"))
            time.sleep(delay_s)
            answer = {"type": "message", "role": "assistant", "model": model, "usage": usage}
            body = json.dumps({**answer, "content": [{"type": "text", "text": "hi"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asked.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()


class _Asked(list[str | None]):
    url = ""  # the upstream's base URL


def test_a_call_asking_for_a_compressed_answer_is_still_metered() -> None:
    """The CLI (and any tool) asks for gzip; an upstream behind a CDN front compresses what it
    may. The proxy asks for the answer uncompressed, so its usage is read all the same."""
    usage = {"input_tokens": 1000, "output_tokens": 100}
    with answering_upstream(model="claude-sonnet-4-5", usage=usage) as asked:
        proxy = ModelProxy(upstream=asked.url, api_key="sk-real").start()
        try:
            headers = {"x-api-key": proxy.open_turn(), "Accept-Encoding": "gzip, deflate, br, zstd"}
            answers = [
                httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers=headers) for _ in range(3)
            ]
            spend = proxy.close_turn()
        finally:
            proxy.stop()
    assert [a.status_code for a in answers] == [200] * 3
    assert answers[0].json()["content"][0]["text"] == "hi"
    assert asked == ["identity"] * 3
    assert spend.calls == 3 and spend.cost_usd == pytest.approx(3 * SONNET_CALL_USD, rel=1e-12)


def test_once_a_turns_calls_cost_its_cap_the_proxy_refuses_the_next() -> None:
    """The CLI stops at its own budget; a tool calling the model with the turn's key is held to
    the same cap by the proxy."""
    cap = 4.5 * SONNET_CALL_USD  # reached by the 5th call
    with ModelServer(lambda request: "metered answer", model="claude-sonnet-4-5", usage=PER_CALL) as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn(max_cost_usd=cap)}
            answers = [httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers=key) for _ in range(7)]
            spend = proxy.close_turn()
            key = {"x-api-key": proxy.open_turn(max_cost_usd=cap)}  # the next turn has its own cap
            next_turn = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers=key)
            proxy.close_turn()
        finally:
            proxy.stop()
    assert [a.status_code for a in answers] == [200] * 5 + [400] * 2
    assert "used up its cost cap" in answers[-1].json()["error"]["message"]
    assert spend.calls == 5 and spend.cost_usd == pytest.approx(5 * SONNET_CALL_USD, rel=1e-12)
    assert len(upstream.model_calls) == 6  # the refused calls never left the container
    assert next_turn.status_code == 200


def test_a_burst_of_parallel_calls_passes_the_cap_by_at_most_the_calls_in_flight() -> None:
    """Usage arrives with an answer, so the cap can only count calls that answered: a tool
    sending 30 calls at once got all 30 through a $1 cap ($117). At most CALLS_IN_FLIGHT run at
    once; the rest wait, and are refused once the ones before them used the cap up."""
    opus_call = {"input_tokens": 100_000, "output_tokens": 32_000}  # $3.90 at opus 4.1's price
    with answering_upstream(model="claude-opus-4-1", usage=opus_call, delay_s=0.5) as asked:
        proxy = ModelProxy(upstream=asked.url, api_key="sk-real").start()
        try:
            key = {"x-api-key": proxy.open_turn(max_cost_usd=1.0)}
            statuses: list[int] = []

            def call() -> None:
                body = {**BODY, "model": "claude-opus-4-1", "max_tokens": 32_000}
                answer = httpx.post(f"{proxy.base_url}/v1/messages", json=body, headers=key, timeout=60)
                statuses.append(answer.status_code)

            burst = [threading.Thread(target=call) for _ in range(30)]
            for thread in burst:
                thread.start()
            for thread in burst:
                thread.join()
            spend = proxy.close_turn()
        finally:
            proxy.stop()
    # How many were in flight when the first answer used the cap up depends on how fast the
    # threads started (on a loaded machine, fewer): never more than CALLS_IN_FLIGHT.
    answered = statuses.count(200)
    assert 1 <= answered <= CALLS_IN_FLIGHT, statuses
    assert statuses.count(400) == 30 - answered, statuses
    assert len(asked) == spend.calls == answered


def test_the_cli_figure_stands_when_an_answer_could_not_be_metered() -> None:
    """Below the proxy's count only when the proxy read every answer: an answer it could not
    read (encoded against the request, a broken frame) leaves the CLI's higher figure."""
    from agent_runtime._turn_state import billed_cost
    from session_core import Usage

    cli = Usage(input_tokens=2000, output_tokens=200)
    read_all = MeteredSpend(calls=1, usage=Usage(input_tokens=1000, output_tokens=100), cost_usd=0.0045)
    one_unread = MeteredSpend(calls=1, usage=read_all.usage, cost_usd=0.0045, unread=1)
    assert billed_cost(0.009, cli, read_all) == (0.0045, read_all.usage)
    assert billed_cost(0.009, cli, one_unread) == (0.009, cli)
    assert billed_cost(0.0045, read_all.usage, read_all) == (0.0045, read_all.usage)


def test_a_call_still_waiting_upstream_when_its_turn_ends_is_cut_there_not_left_to_run_unmetered() -> None:
    """A tool may start calls to the model (four at once) just before its turn ends. Its
    process dies with the turn, but the proxy's call upstream went on: its answer, and its
    cost, came after the turn's spend was read, so no budget ever counted it."""

    def slow(request: dict[str, Any]) -> str:
        time.sleep(3)  # the model is still writing when the turn ends
        return "late answer"

    outcome: dict[str, Any] = {}
    with ModelServer(slow, model="claude-sonnet-4-5", usage=PER_CALL) as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-ant-real").start()
        try:
            key = {"x-api-key": proxy.open_turn()}

            def call() -> None:
                try:
                    outcome["status"] = httpx.post(
                        f"{proxy.base_url}/v1/messages", json=BODY, headers=key, timeout=10
                    ).status_code
                except httpx.HTTPError as exc:
                    outcome["error"] = type(exc).__name__

            caller = threading.Thread(target=call)
            caller.start()
            time.sleep(0.5)  # the call waits for its answer upstream
            ended = time.monotonic()
            proxy.close_turn()
            caller.join(10)
            cut_after = time.monotonic() - ended
        finally:
            proxy.stop()
    assert cut_after < 1.5, cut_after  # cut as the turn ended, not answered 3 s later
    assert outcome.get("status") != 200, outcome
