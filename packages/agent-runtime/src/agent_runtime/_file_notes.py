"""What the main agent is always told about files, after the operator's system_prompt.md:
where the user's files are and how to send one back. The runtime and the consumer work so
whatever that prompt says, so an operator's own prompt without these lines must not leave
the agent unaware that it can send a chart or a PDF."""

from __future__ import annotations

from ._outbox import MAX_FILE_BYTES, MAX_FILES

FILE_NOTES = (
    "About files in this chat:\n"
    "- Files the user sends are saved in `attachments/` of your working directory (each "
    "message names the ones it brings), there only while you answer that message: they are "
    "gone by the next message, as may be other files of your working directory. Read what you "
    "need from a file when it arrives; if the user refers to an earlier file you no longer "
    "have, ask them to send it again.\n"
    "- To send the user a file (a chart, a document, an image), save it in `outbox/` of your "
    "working directory, not in a folder inside it (a folder there is not sent: zip it into a "
    f"file): each file there is sent after your answer (at most {MAX_FILES}, up to "
    f"{MAX_FILE_BYTES // (1024 * 1024)} MB each; PNG, JPEG and WebP images show as photos). Say in "
    "your answer what you are sending. Finish writing a file before you answer: one still being "
    "written when your turn ends is not sent."
)


def with_file_notes(system_prompt: str) -> str:
    """The operator's ``system_prompt`` followed by ``FILE_NOTES``."""
    return f"{system_prompt.rstrip()}\n\n{FILE_NOTES}" if system_prompt.strip() else FILE_NOTES
