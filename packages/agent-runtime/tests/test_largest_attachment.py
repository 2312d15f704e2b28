"""The biggest file a user can send (the 20 MB a bot may download from Telegram), read by the
agent with the real CLI's Read tool: the CLI hands the SDK the tool's result as one stdout line
holding the file's base64 twice, far past the SDK's default line buffer (1 MiB)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from agentbot_testing import noise_pdf, noise_png
from local_stack import ToolCall, tool_results

from .conftest import staged_file

pytestmark = pytest.mark.slow
LARGEST_FILE = 20 * 1024 * 1024  # getFile's limit: a larger file never reaches the runtime
PNG_SIDE = 2643  # pixels: the largest noise PNG within LARGEST_FILE
# The Messages API refuses a larger request (413), which the scripted model would accept.
LARGEST_MODEL_REQUEST = 32_000_000


def reads(file_name: str) -> Any:
    """A model that Reads ``file_name`` from attachments/ (asking Bash where it works first:
    Read takes an absolute path) and then answers."""

    def respond(request: dict[str, Any]) -> Any:
        results = tool_results(request)
        if not results:
            return [ToolCall(name="Bash", input={"command": "pwd", "description": "where am I"})]
        if results[-1].startswith("/"):
            return [
                ToolCall(name="Read", input={"file_path": f"{results[-1].strip()}/attachments/{file_name}"})
            ]
        return "I have read it."

    return respond


def test_the_largest_pdf_a_user_can_send_reaches_the_model_whole(
    make_runtime, model_server, turn_request, aws
) -> None:
    """A scan that does not compress: its result line is ~56 MB (past 1 MiB, 32 MiB, not 64)."""
    pdf = noise_pdf(LARGEST_FILE)
    assert LARGEST_FILE - 100_000 < len(pdf) <= LARGEST_FILE
    model_server.responder = reads("scan.pdf")

    result = make_runtime().run_turn(
        turn_request(
            "what is in it?", turn_id=9, attachments=staged_file(aws, 9, "scan.pdf", "application/pdf", pdf)
        )
    )

    assert result.ok and result.text == "I have read it.", result
    [*_, answered] = model_server.model_calls
    assert len(json.dumps(answered.body, separators=(",", ":"))) < LARGEST_MODEL_REQUEST
    [document] = [
        block
        for message in answered.body["messages"]
        if isinstance(message["content"], list)
        for result_block in message["content"]
        if result_block.get("type") == "tool_result" and isinstance(result_block["content"], list)
        for block in result_block["content"]
        if block.get("type") == "document"
    ]
    assert base64.b64decode(document["source"]["data"]) == pdf  # the model got every byte


def test_the_largest_png_a_user_can_send_as_a_document_is_seen_by_the_model(
    make_runtime, model_server, turn_request, aws
) -> None:
    """The CLI shrinks a large image for the model (a ~0.5 MB JPEG): its line is ~1.3 MB."""
    png = noise_png(PNG_SIDE)
    assert LARGEST_FILE - 100_000 < len(png) <= LARGEST_FILE
    model_server.responder = reads("big.png")

    result = make_runtime().run_turn(
        turn_request(
            "what is in it?", turn_id=9, attachments=staged_file(aws, 9, "big.png", "image/png", png)
        )
    )

    assert result.ok and result.text == "I have read it.", result
    [*_, answered] = model_server.model_calls
    assert json.dumps(answered.body).count('"type": "image"') == 1
