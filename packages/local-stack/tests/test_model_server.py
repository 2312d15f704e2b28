"""The scripted model server speaks the wire formats the CLI reads: Anthropic SSE and
Bedrock's event stream (parsed here with botocore's own decoder)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from botocore.eventstream import EventStreamBuffer
from local_stack import (
    DEMO_MODEL_LABEL,
    ModelFault,
    ModelServer,
    ToolCall,
    demo_responder,
    last_user_text,
    user_turns,
)

BODY = {
    "model": "claude-test",
    "max_tokens": 100,
    "stream": True,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                {"type": "text", "text": "hi"},
            ],
        }
    ],
}


def sse_events(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


def test_sse_stream_carries_text_and_tool_use_in_the_messages_api_shape() -> None:
    reply = ["Let me check.", ToolCall(name="Bash", input={"command": "ls"})]
    with ModelServer(lambda request: reply) as server:
        response = httpx.post(
            f"{server.base_url}/v1/messages?beta=true", json=BODY, headers={"x-api-key": "k"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    text = "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    assert text == "Let me check."
    tool = json.loads(
        "".join(
            e["delta"]["partial_json"]
            for e in events
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
        )
    )
    assert tool == {"command": "ls"}
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0
    assert server.model_calls[0].body == BODY and server.model_calls[0].headers["x-api-key"] == "k"


def test_bedrock_stream_is_an_amazon_eventstream_of_base64_chunks() -> None:
    with ModelServer(lambda request: "from bedrock") as server:
        body = {k: v for k, v in BODY.items() if k not in ("model", "stream")}
        response = httpx.post(
            f"{server.base_url}/model/anthropic.claude-x/invoke-with-response-stream", json=body
        )
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)  # botocore verifies prelude and message CRCs
    events = []
    for message in buffer:
        assert message.headers[":event-type"] == "chunk"
        events.append(json.loads(base64.b64decode(json.loads(message.payload)["bytes"])))
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert (
        "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        == "from bedrock"
    )


def test_injected_faults_fail_the_next_calls_then_stop() -> None:
    with ModelServer(lambda request: "fine") as server:
        server.inject(ModelFault(status=529))
        server.inject(ModelFault(cut_after_events=2))
        url = f"{server.base_url}/v1/messages"
        first = httpx.post(url, json=BODY)
        assert first.status_code == 529 and first.json()["type"] == "error"
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url, json=BODY)
        assert httpx.post(url, json=BODY).status_code == 200
        assert len(server.model_calls) == 3


def test_an_injected_fault_words_its_error_as_the_api_does() -> None:
    """The CLI decides what kind of failure a call met from the error's type and message (an
    account out of credit is a 400 like any bad request) and waits as ``retry-after`` says."""
    with ModelServer(lambda request: "fine") as server:
        server.inject(
            ModelFault(status=429, error_type="rate_limit_error", message="slow down", retry_after_s=7)
        )
        response = httpx.post(f"{server.base_url}/v1/messages", json=BODY)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_only_models_refuses_any_other_model_id_as_bedrock_does() -> None:
    """An account that has not enabled a model (or a role not allowed it) refuses its calls:
    Bedrock names the model in the path (the colon of a version may come escaped), the Messages
    API in the body."""
    with ModelServer(lambda request: "fine") as server:
        server.only_models(["anthropic.claude-chosen-v1:0", "claude-chosen"])
        body = {k: v for k, v in BODY.items() if k not in ("model", "stream")}
        chosen = httpx.post(f"{server.base_url}/model/anthropic.claude-chosen-v1%3A0/invoke", json=body)
        other = httpx.post(f"{server.base_url}/model/us.anthropic.claude-other-v1:0/invoke", json=body)
        api_other = httpx.post(f"{server.base_url}/v1/messages", json={**BODY, "stream": False})
        api_chosen = httpx.post(
            f"{server.base_url}/v1/messages", json={**BODY, "model": "claude-chosen", "stream": False}
        )
    assert chosen.status_code == 200 and api_chosen.status_code == 200
    assert other.status_code == 403 and other.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert api_other.status_code == 403
    assert [call.model_id for call in server.refused_calls] == [
        "us.anthropic.claude-other-v1:0",
        "claude-test",
    ]


def test_a_request_over_max_request_bytes_is_refused_with_the_apis_413_every_time() -> None:
    """The Messages API refuses any request body over 32 MB (its edge does, before reading
    it): a size limit the server holds, not a fault for the next few calls."""
    answered: list[int] = []

    def respond(request: dict) -> str:
        answered.append(len(request["messages"]))
        return "fine"

    with ModelServer(respond, max_request_bytes=2_000) as server:
        small = httpx.post(f"{server.base_url}/v1/messages", json={**BODY, "stream": False})
        large_body = {**BODY, "stream": False, "messages": [{"role": "user", "content": "x" * 2_000}]}
        large = [httpx.post(f"{server.base_url}/v1/messages", json=large_body) for _ in range(3)]
        server.max_request_bytes = None
        unlimited = httpx.post(f"{server.base_url}/v1/messages", json=large_body)
    assert small.status_code == 200 and unlimited.status_code == 200
    assert [response.status_code for response in large] == [413, 413, 413]
    assert large[0].json() == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": "Request exceeds the maximum allowed number of bytes.",
        },
    }
    assert answered == [1, 1]  # the model never saw the refused requests
    assert len(server.model_calls) == 5  # but they are recorded, as every request is


def test_non_streaming_calls_and_token_counts_are_answered() -> None:
    with ModelServer(lambda request: "whole") as server:
        whole = httpx.post(f"{server.base_url}/v1/messages", json={**BODY, "stream": False}).json()
        counted = httpx.post(f"{server.base_url}/v1/messages/count_tokens", json=BODY).json()
    assert whole["content"] == [{"type": "text", "text": "whole"}] and whole["stop_reason"] == "end_turn"
    assert counted["input_tokens"] > 0


def conversation(*user_texts: str) -> dict:
    messages = []
    for text in user_texts:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return {"messages": messages[:-1]}


def test_demo_responder_labels_itself_and_counts_earlier_turns() -> None:
    reply = demo_responder(conversation("one", "two", "three"))
    assert isinstance(reply, str) and reply.startswith(DEMO_MODEL_LABEL)
    assert "2 earlier user turns" in reply and "three" in reply
    assert user_turns(conversation("a")) == 1 and last_user_text(BODY) == "hi"


def test_demo_responder_calls_bash_and_reports_the_tool_output() -> None:
    call = demo_responder(conversation("run echo hi"))
    assert isinstance(call, list) and isinstance(call[-1], ToolCall)
    assert call[-1].name == "Bash" and call[-1].input["command"] == "echo hi"
    request = conversation("run echo hi")
    request["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "hi-out"}]},
    ]
    report = demo_responder(request)
    assert isinstance(report, str) and report.startswith(DEMO_MODEL_LABEL) and "hi-out" in report


def test_demo_responder_does_not_say_a_refused_call_ran() -> None:
    request = conversation("run sleep 30")
    refusal = "<tool_use_error>Blocked: standalone sleep 30</tool_use_error>"
    request["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": refusal}]},
    ]
    report = demo_responder(request)
    assert isinstance(report, str) and "did not run" in report and "The tool ran" not in report
