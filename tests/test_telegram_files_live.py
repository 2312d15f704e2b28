"""The agent sends files, with nothing stubbed between the user and the model: the real
runtime runs the real CLI, whose Bash tool writes a chart and a table into ``outbox/``; the
user gets the answer, then the chart as a photo and the table as a document, once."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing.telegram_support import update
from local_stack import TelegramFault, ToolCall, last_user_text, tool_results

pytestmark = pytest.mark.slow
CHAT = 501
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))  # what the fake Bot API takes for an image
MAKE_FILES = (
    "mkdir -p outbox && printf 'city,people\\nOslo,709037\\n' > outbox/table.csv"
    f" && echo {base64.b64encode(PNG).decode()} | base64 -d > outbox/chart.png"
)


# A search that found nothing leaves an empty file: Telegram sends no empty file.
MAKE_EMPTY_LOG = "mkdir -p outbox && : > outbox/errors.log && printf 'all good' > outbox/summary.txt"
# An agent that keeps its charts together: a folder is not sent, and the user must learn how to get it.
MAKE_FOLDER = (
    "mkdir -p outbox/charts && printf 'a,b' > outbox/charts/sales.csv"
    " && printf 'all good' > outbox/summary.txt"
)
# One file too large for Telegram (sparse: nothing is written), one that goes, one more.
MAKE_BIG_AND_SMALL = f"{MAKE_FILES} && truncate -s 51M outbox/archive.zip"
COMMANDS = {
    "chart the populations": MAKE_FILES,
    "send me everything": MAKE_BIG_AND_SMALL,
    "send me the logs": MAKE_EMPTY_LOG,
    "send me the charts": MAKE_FOLDER,
}


def responder(request: dict[str, Any]) -> Any:
    command = COMMANDS.get(last_user_text(request))
    if command is None:
        return "You are welcome."
    if not tool_results(request):
        return [ToolCall(name="Bash", input={"command": command, "description": "make the files"})]
    return "Here they are."


@pytest.fixture
def stack(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import real_runtime_stack

    with real_runtime_stack(aws, tmp_path, monkeypatch, config=tools_config, responder=responder) as stack:
        yield stack


def test_files_the_agent_makes_reach_the_user_after_its_answer(stack) -> None:
    stack.post(update(700, text="chart the populations"))
    stack.post(update(701, text="thanks"))
    stack.drain(stack.consumer())

    texts = [m["text"] for m in stack.replies(CHAT) if "text" in m]
    assert texts == ["Here they are.", "You are welcome."], texts
    photo, table = stack.telegram.sent_files(CHAT)
    assert (photo.method, photo.file_name, photo.content()) == ("sendPhoto", "chart.png", PNG)
    assert (table.method, table.file_name) == ("sendDocument", "table.csv")
    assert table.content() == b"city,people\nOslo,709037\n"
    # the second answer sends no file again: each turn starts with an empty outbox
    assert len(stack.telegram.sent_files(CHAT)) == 2


def test_an_empty_file_the_agent_makes_is_named_empty_under_the_answer_and_the_rest_goes(stack) -> None:
    stack.post(update(702, text="send me the logs"))
    stack.drain(stack.consumer())

    texts = [m["text"] for m in stack.replies(CHAT) if "text" in m]
    assert texts == ["Here they are.\n\n(errors.log was not sent: it is empty)"], texts
    [summary] = stack.telegram.sent_files(CHAT)
    assert (summary.file_name, summary.content()) == ("summary.txt", b"all good")


def test_a_folder_the_agent_makes_is_named_as_a_folder_the_user_can_ask_for_as_a_zip(stack) -> None:
    stack.post(update(703, text="send me the charts"))
    stack.drain(stack.consumer())

    texts = [m["text"] for m in stack.replies(CHAT) if "text" in m]
    assert texts == [
        "Here they are.\n\n(charts was not sent: it is a folder, and only files can be sent: "
        "ask me for it as a zip)"
    ], texts
    [summary] = stack.telegram.sent_files(CHAT)
    assert summary.file_name == "summary.txt"
    # the agent knows it from the start: what it saves in folders never reaches the user
    assert "a folder there is not sent" in json.dumps(stack.model.model_calls[0].body["system"])


def test_the_agent_is_told_each_document_by_the_name_the_user_sees(stack) -> None:
    """A name in another script is written as "file.pdf" (safe_file_name): the agent is told
    the name the chat shows too, or "which one is the lease?" has no answer."""
    names = ["Договор аренды.pdf", 'Счёт "март" [итог].pdf']
    for n, name in enumerate(names):
        file_id = stack.telegram.add_file(b"%PDF-1.4 " + bytes(n + 1), file_path=f"documents/file_{n}.pdf")
        document = {
            "file_id": file_id,
            "file_unique_id": f"d{n}",
            "file_name": name,
            "mime_type": "application/pdf",
        }
        stack.post(update(710 + n, message_id=80 + n, text=None, document=document, caption="which is this?"))
    stack.drain(stack.consumer())

    told = [last_user_text(call.body or {}) for call in stack.model.model_calls]
    assert "attachments/file.pdf (application/pdf, 10 bytes, sent as “Договор аренды.pdf”)" in told[0]
    # the sender chose it: it cannot close the quote or the line
    assert "attachments/file.pdf (application/pdf, 11 bytes, sent as “Счёт март итог .pdf”)" in told[1]


def test_the_next_turn_is_told_once_which_files_never_reached_the_user(stack) -> None:
    """The user is told under the answer; the agent, whose outbox is cleared, is told with the
    next message (in whatever container runs it), once: else "where is the zip?" gets "I sent it"."""
    stack.telegram.inject("sendDocument", TelegramFault.served_then_dropped())  # table.csv's answer is lost
    stack.post(update(720, text="send me everything"))
    stack.drain(stack.consumer())
    assert [f.file_name for f in stack.telegram.sent_files(CHAT)] == ["chart.png", "table.csv"]

    stack.kill_the_runtime()
    stack.post(update(721, text="where is the zip?"))
    stack.post(update(722, text="thanks"))
    stack.drain(stack.consumer())

    told = {
        last_user_text(call.body or {}).rsplit("\n\n", 1)[-1]: last_user_text(call.body or {})
        for call in stack.model.model_calls
    }
    note = told["where is the zip?"]
    assert '"archive.zip": larger than 50 MB' in note, note
    assert '"table.csv": the upload went out but Telegram did not confirm it' in note, note
    assert "chart.png" not in note
    assert told["thanks"] == "thanks"  # told once
