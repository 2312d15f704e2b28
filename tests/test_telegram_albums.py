"""Photos sent together (a Telegram album) are one question: one turn that sees them all.

Telegram sends an album as one message per photo, the caption on one of them only. Before,
each photo was a paid turn of its own with an answer of its own, and in a group only the
captioned (addressed) photo reached the agent at all.
"""

from __future__ import annotations

import json
import time
from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from local_stack import TelegramFault
from session_core import LiveTurns, SessionKey, StorageError

CHAT = 501
GROUP = -100777


def _send_album(
    stack: Any,
    first_update: int,
    count: int,
    *,
    caption: str,
    album: str = "13579",
    later_captions: dict[int, str] | None = None,
    dates: dict[int, int] | None = None,
    **fields: Any,
) -> list[str]:
    """Post the album's parts as Telegram does (the caption on the first; ``later_captions``:
    by the part's place from 0, as the apps let each photo carry one; ``dates``: when each
    was sent, by its place, else now); the producer's outcome for each (or the text it
    answers with in its reply)."""
    captions = {0: caption, **(later_captions or {})}
    outcomes = []
    for i in range(count):
        content = f"photo {first_update + i}".encode() * 50
        file_id = stack.telegram.add_file(content, file_path=f"photos/a{first_update + i}.jpg")
        photo = [{"file_id": file_id, "file_unique_id": f"u{first_update + i}", "width": 8, "height": 6}]
        extra: dict[str, Any] = {"caption": captions[i]} if captions.get(i) else {}
        if dates and i in dates:
            extra["date"] = dates[i]
        part = update(
            first_update + i,
            message_id=60 + first_update + i,
            text=None,
            photo=photo,
            media_group_id=album,
            **extra,
            **fields,
        )
        response = stack.producer.handle_event(webhook_event(part))
        assert response["statusCode"] == 200, response
        body = json.loads(response["body"])
        outcomes.append(body.get("outcome") or body["text"])
    return outcomes


def test_an_album_in_a_private_chat_is_one_turn_with_every_photo_and_the_caption(stack) -> None:
    outcomes = _send_album(stack, 700, 3, caption="compare these photos")
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued"] + ["album part: answered with its album"] * 2
    [run] = stack.runs()
    assert run["prompt"] == "compare these photos"
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == [
        "photo-760.jpg",
        "photo-761.jpg",
        "photo-762.jpg",
    ]
    assert len(stack.replies(CHAT)) == 1  # one answer


def test_an_album_addressed_to_the_bot_in_a_group_shows_it_every_photo(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    outcomes = _send_album(stack, 720, 3, caption=f"@{BOT_USERNAME} which is sharper?", **group)
    stack.drain(stack.consumer())

    assert outcomes[0] == "enqueued"
    [run] = stack.runs()
    # in a group the agent is told who asks (see test_telegram_consumer for the rest)
    assert run["prompt"] == "[From @alice]\n\nwhich is sharper?" and len(run["attachments"]) == 3


def test_an_album_answered_late_is_dated_by_its_first_photo(stack) -> None:
    """The runtime tells the agent how long ago a late message was sent (``_late_note``): an
    album is as old as its first photo, though a later one carried the question."""
    sent = int(time.time()) - 2 * 3600
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    _send_album(
        stack,
        900,
        3,
        caption="",
        later_captions={2: f"@{BOT_USERNAME} which is sharper?"},
        dates={0: sent, 1: sent + 40, 2: sent + 90},
        **group,
    )
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert len(run["attachments"]) == 3
    assert run["sent_at_epoch_s"] == sent


def test_an_album_not_addressed_to_the_bot_in_a_group_starts_no_turn(stack) -> None:
    _send_album(stack, 740, 2, caption="our holiday", chat_id=GROUP, chat_type="supergroup")
    stack.drain(stack.consumer())

    assert stack.runs() == []


def test_a_photo_of_the_album_that_comes_after_its_turn_started_is_answered_on_its_own(stack) -> None:
    _send_album(stack, 760, 2, caption="first two")
    stack.drain(stack.consumer())
    late = _send_album(stack, 762, 1, caption="one more")  # the same album, after it was answered
    stack.drain(stack.consumer())

    assert late == ["enqueued"]
    first, second = stack.runs()
    assert len(first["attachments"]) == 2 and first["prompt"] == "first two"
    assert len(second["attachments"]) == 1 and second["prompt"] == "one more"


def test_a_photo_the_producer_could_not_keep_for_its_album_is_answered_on_its_own(stack) -> None:
    """A failed write (DynamoDB throttled, say) must not leave the photo out, nor answer the
    album a second time with it."""
    albums = stack.producer._albums
    keep = albums.record

    def throttled_for_the_third(session_key: str, album_id: str, update_id: int, part: str, **kw: Any) -> Any:
        if update_id == 802:
            raise StorageError("albums.record", "DynamoDB UpdateItem throttled")
        return keep(session_key, album_id, update_id, part, **kw)

    albums.record = throttled_for_the_third
    outcomes = _send_album(stack, 800, 3, caption="compare")
    stack.drain(stack.consumer())

    assert outcomes == ["enqueued", "album part: answered with its album", "enqueued"]
    assert sorted(len(run["attachments"]) for run in stack.runs()) == [1, 2]


def test_an_album_captioned_stop_stops_the_running_turn_and_none_of_its_photos_is_a_turn(stack) -> None:
    """Telegram sends the caption with one photo only; the others went with the /stop too, and
    are not a paid turn once it stopped the one running."""
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    key = SessionKey.parse(f"default/{CHAT}/0")
    live.begin(key, 42)
    outcomes = _send_album(stack, 880, 3, caption="/stop")
    stack.drain(stack.consumer())

    assert outcomes == [
        "Stopping…\n\n(I did not look at the photos sent with /stop: send them again without the command.)",
        *["album part: answered with its album"] * 2,
    ]
    assert live.stop_requested(key, 42)
    assert stack.runs() == [] and stack.replies(CHAT) == []


def test_an_album_whose_stop_comes_after_its_turn_was_queued_is_no_turn_and_answered_once(stack) -> None:
    """The caption on a later part, the album's turn queued already: it reads the /stop, which
    the producer answered (in its reply to Telegram); a second answer would only repeat it."""
    answers = []
    for i, caption in enumerate([None, None, "/stop"]):
        file_id = stack.telegram.add_file(b"photo" * 50, file_path=f"photos/s{i}.jpg")
        photo = [{"file_id": file_id, "file_unique_id": f"s{i}", "width": 8, "height": 6}]
        extra = {"caption": caption} if caption else {}
        part = update(890 + i, message_id=90 + i, text=None, photo=photo, media_group_id="S1", **extra)
        body = json.loads(stack.producer.handle_event(webhook_event(part))["body"])
        answers += [body["text"]] if "text" in body else []
    stack.drain(stack.consumer())

    assert stack.runs() == []
    [answer] = answers + [reply["text"] for reply in stack.replies(CHAT)]
    assert answer.endswith(
        "(I did not look at the photos sent with /stop: send them again without the command.)"
    )


def test_an_album_with_a_question_on_one_photo_and_stop_on_another_is_no_turn(stack) -> None:
    """Each photo may carry its caption: the /stop's answer says the album went unread, so
    the question on the first photo must not become a paid turn that reads "…/stop"."""
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    key = SessionKey.parse(f"default/{CHAT}/0")
    live.begin(key, 42)
    outcomes = _send_album(stack, 900, 3, caption="compare these", later_captions={2: "/stop"})
    stack.drain(stack.consumer())

    assert outcomes[2] == (
        "Stopping…\n\n(I did not look at the photos sent with /stop: send them again without the command.)"
    )
    assert live.stop_requested(key, 42)
    assert stack.runs() == [] and stack.replies(CHAT) == []


def test_an_album_with_a_question_on_one_photo_and_new_on_another_starts_anew(stack) -> None:
    _send_album(stack, 910, 1, caption="remember: my cat is Tom", album="before")
    stack.drain(stack.consumer())
    _send_album(stack, 920, 3, caption="look at these", later_captions={2: "/new"}, album="N1")
    stack.drain(stack.consumer())

    assert len(stack.runs()) == 1  # the message before the album only
    assert stack.replies(CHAT)[-1]["text"] == (
        "Started a fresh conversation. I no longer draw on the previous one, and /new cannot be "
        "undone: its history is not kept to come back to, only stored until it is deleted in 25 days."
        "\n\n(I did not look at the photos sent with /new: send them again without the "
        "command.)"
    )
    record = stack.registry().get_session(SessionKey.parse(f"default/{CHAT}/0"))
    assert record is not None and record.sdk_session_id is None


def _send_photos_and_videos(
    stack: Any, first_update: int, kinds: str, caption: str, **fields: Any
) -> list[str]:
    """Post an album of photos ("p") and videos ("v") in the order of ``kinds``, the caption on
    the first (the apps mix the two in one album; videos are not read without
    VOICE_TRANSCRIPTION); the producer's outcome for each (or the text it answers with)."""
    outcomes = []
    for i, kind in enumerate(kinds):
        uid = first_update + i
        file_id = stack.telegram.add_file(f"media {uid}".encode() * 50, file_path=f"media/m{uid}")
        media = {"file_id": file_id, "file_unique_id": f"m{uid}", "width": 8, "height": 6}
        content = {"photo": [media]} if kind == "p" else {"video": {**media, "duration": 3}}
        extra = {"caption": caption} if i == 0 else {}
        part = update(
            uid, message_id=uid, text=None, media_group_id=f"PV{first_update}", **content, **extra, **fields
        )
        body = json.loads(stack.producer.handle_event(webhook_event(part))["body"])
        outcomes.append(body.get("outcome") or body["text"])
    return outcomes


def test_an_album_of_photos_and_a_video_is_one_turn_told_of_the_video(stack) -> None:
    """The caption went with the video: answered apart, the photos were a turn "without a
    message" and the question got only "videos are not supported"."""
    _send_photos_and_videos(stack, 940, "vpp", "which of these is best?")
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["photo-941.jpg", "photo-942.jpg"]
    assert run["prompt"] == (
        "which of these is best?\n\n[Not attached, as the bot cannot read it yet: 1 video. "
        "Tell the user you could not look at it.]"
    )
    assert len(stack.replies(CHAT)) == 1


def test_photos_of_an_album_in_a_group_whose_video_mentions_the_bot_are_answered(stack) -> None:
    """Only the captioned video addressed the bot: the photos were kept for an album turn that
    never came, and went unanswered without a word."""
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    _send_photos_and_videos(stack, 950, "vp", f"@{BOT_USERNAME} what is this?", **group)
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["photo-951.jpg"]
    assert run["prompt"].startswith("[From @alice]\n\nwhat is this?\n\n[Not attached")


def test_an_album_of_videos_alone_gets_one_notice(stack) -> None:
    _send_photos_and_videos(stack, 960, "vvv", "look")
    stack.drain(stack.consumer())

    assert stack.runs() == []
    assert [reply["text"] for reply in stack.replies(CHAT)] == [
        "Sorry, videos are not supported yet. Send text, a photo or a document."
    ]


def test_a_video_captioned_stop_says_the_rest_of_its_album_went_unread(stack) -> None:
    """Its photos start no turn either: the answer must say so, not only that videos are
    not supported, or the user waits for an answer about the photos."""
    live = LiveTurns(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    key = SessionKey.parse(f"default/{CHAT}/0")
    live.begin(key, 42)
    outcomes = _send_photos_and_videos(stack, 970, "vpp", "/stop")
    stack.drain(stack.consumer())

    assert outcomes[0] == (
        "Stopping…\n\nSorry, videos are not supported yet. Send text, a photo or a document.\n\n"
        "(I did not look at the rest of the album sent with /stop: send it again without the command.)"
    )
    assert live.stop_requested(key, 42)
    assert stack.runs() == [] and stack.replies(CHAT) == []


def test_files_of_an_album_with_the_same_name_are_all_staged(stack) -> None:
    for i, name in enumerate(["scan.pdf", "scan.pdf", "отчёт.pdf", "счёт.pdf"]):
        content = f"%PDF document {i}".encode() * 20
        file_id = stack.telegram.add_file(content, file_path=f"documents/file_{i}.pdf")
        doc = {
            "file_id": file_id,
            "file_unique_id": f"d{i}",
            "file_name": name,
            "mime_type": "application/pdf",
        }
        extra = {"caption": "summarise them"} if i == 0 else {}
        stack.post(update(820 + i, message_id=90 + i, text=None, document=doc, media_group_id="D1", **extra))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == [
        "scan.pdf",
        "scan-2.pdf",
        "file.pdf",
        "file-2.pdf",
    ]


def test_archives_of_an_album_with_the_same_safe_name_keep_their_archive_extension(stack) -> None:
    """Two archives named in another script both become file.tar.gz: the second was staged as
    file.tar-2.gz, which tools that read an archive by its extension (Python's
    shutil.unpack_archive) take for no archive at all."""
    for i, name in enumerate(["отчёт.tar.gz", "данные.tar.gz", "backup.tar.gz", "backup.tar.gz"]):
        file_id = stack.telegram.add_file(f"archive {i}".encode() * 20, file_path=f"documents/file_{i}.gz")
        doc = {"file_id": file_id, "file_unique_id": f"t{i}", "file_name": name}
        extra = {"caption": "unpack them"} if i == 0 else {}
        stack.post(update(860 + i, message_id=130 + i, text=None, document=doc, media_group_id="T1", **extra))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == [
        "file.tar.gz",
        "file-2.tar.gz",
        "backup.tar.gz",
        "backup-2.tar.gz",
    ]


def test_files_of_an_album_with_long_names_are_each_staged_whole(stack) -> None:
    """Two files of one 100-character name: the second, numbered, was 102 characters, cut
    again to 100 for its key, and that was the third file's name: the third overwrote it in
    S3, and the agent read the third file twice and never the second."""
    long_name = "ab" + "x" * 94 + ".pdf"
    names = [long_name, long_name, "x" * 94 + "-2.pdf"]
    for i, name in enumerate(names):
        file_id = stack.telegram.add_file(
            f"%PDF document {i}".encode() * 20, file_path=f"documents/file_{i}.pdf"
        )
        doc = {"file_id": file_id, "file_unique_id": f"l{i}", "file_name": name}
        extra = {"caption": "compare them"} if i == 0 else {}
        stack.post(update(870 + i, message_id=140 + i, text=None, document=doc, media_group_id="L1", **extra))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    bodies = [
        stack.aws.s3.get_object(Bucket=stack.aws.resources.bucket, Key=key)["Body"].read()
        for key in run["attachments"]
    ]
    assert bodies == [f"%PDF document {i}".encode() * 20 for i in range(3)], run["attachments"]


def test_files_of_an_album_with_one_name_all_extension_are_each_staged_whole(stack) -> None:
    """Two files of one 100-character name that is nearly all extension ('a.' and 98 letters):
    the second, numbered, had no stem left to give way and was 101 characters, cut again to
    '2.yyy…' for its key, the third file's name: the third overwrote it in S3."""
    long_name = "a." + "y" * 98
    names = [long_name, long_name, "2." + "y" * 98]
    for i, name in enumerate(names):
        file_id = stack.telegram.add_file(f"document {i}".encode() * 20, file_path=f"documents/file_{i}.bin")
        doc = {"file_id": file_id, "file_unique_id": f"e{i}", "file_name": name}
        extra = {"caption": "compare them"} if i == 0 else {}
        stack.post(update(880 + i, message_id=150 + i, text=None, document=doc, media_group_id="E1", **extra))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert len(set(run["attachments"])) == 3, run["attachments"]
    bodies = [
        stack.aws.s3.get_object(Bucket=stack.aws.resources.bucket, Key=key)["Body"].read()
        for key in run["attachments"]
    ]
    assert bodies == [f"document {i}".encode() * 20 for i in range(3)], run["attachments"]


def _send_documents(
    stack: Any, first_update: int, names: list[str], *, too_big: str = "", not_downloadable: str = ""
) -> None:
    """Post an album of documents named ``names`` (captioned "compare them"); the one named
    ``too_big`` is over the 20 MB a bot may download; getFile names no path for the one named
    ``not_downloadable``."""
    for i, name in enumerate(names):
        big = {"file_size": 25 * 1024 * 1024} if name == too_big else {}
        file_id = stack.telegram.add_file(
            f"%PDF {name}".encode(),
            file_path=f"documents/file_{i}.pdf",
            downloadable=name != not_downloadable,
            **big,
        )
        doc = {"file_id": file_id, "file_unique_id": f"d{first_update + i}", "file_name": name, **big}
        extra = {"caption": "compare them"} if i == 0 else {}
        stack.post(
            update(
                first_update + i,
                message_id=first_update + i,
                text=None,
                document=doc,
                media_group_id="P1",
                **extra,
            )
        )


def test_a_file_of_an_album_over_20_mb_is_named_to_the_agent_and_the_rest_answered(stack) -> None:
    """One video or scan too large for the Bot API must not sink the nine other files: the
    agent gets them and is told which one it cannot read, and why, to tell the user."""
    _send_documents(stack, 840, ["lease.pdf", "Scan «big».pdf", "bill.pdf"], too_big="Scan «big».pdf")
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["lease.pdf", "bill.pdf"]
    assert run["prompt"] == (
        "compare them\n\n[Not attached, as the bot could not fetch it: “Scan «big».pdf” (25 MB, over "
        "the 20 MB a bot may download from Telegram). Tell the user which file you could not read and why.]"
    )
    assert len(stack.replies(CHAT)) == 1  # the answer, no refusal


def test_a_file_of_an_album_telegram_will_not_give_is_named_to_the_agent_and_the_rest_answered(
    stack,
) -> None:
    stack.telegram.inject(
        "getFile", TelegramFault(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
    )  # the first part's
    _send_documents(stack, 850, ["lease.pdf", "plan.pdf", "bill.pdf"])
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["plan.pdf", "bill.pdf"]
    assert run["prompt"].endswith(
        "\n\n[Not attached, as the bot could not fetch it: “lease.pdf” (Telegram would not give it to "
        "the bot; sending it again may work). Tell the user which file you could not read and why.]"
    )


def test_a_file_of_an_album_getfile_gives_no_path_for_is_named_to_the_agent_and_the_rest_answered(
    stack,
) -> None:
    """Telegram answers getFile without a ``file_path`` for a file it cannot serve: that raised
    a KeyError, the record was retried until dead-lettered and the user read the general
    failure notice, the two good files never answered."""
    _send_documents(stack, 855, ["lease.pdf", "plan.pdf", "bill.pdf"], not_downloadable="plan.pdf")
    responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]  # answered once, not retried
    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["lease.pdf", "bill.pdf"]
    assert run["prompt"].endswith(
        "\n\n[Not attached, as the bot could not fetch it: “plan.pdf” (Telegram would not give it to "
        "the bot; sending it again may work). Tell the user which file you could not read and why.]"
    )
    assert stack.dead_letters() == []


def test_an_album_none_of_whose_files_telegram_gives_gets_the_notice_and_no_turn(stack) -> None:
    """Nothing left to answer: a turn would be paid for to say so."""
    stack.telegram.inject(
        "getFile",
        TelegramFault(400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
        times=3,
    )
    _send_documents(stack, 860, ["lease.pdf", "plan.pdf", "bill.pdf"])
    stack.drain(stack.consumer())

    assert stack.runs() == []
    [reply] = stack.replies(CHAT)
    assert reply["text"] == (
        "Sorry, I could not read any of the 3 files: Telegram would not give me “lease.pdf”, "
        "“plan.pdf” and “bill.pdf”. Please send them again."
    )


def test_an_album_none_of_whose_files_can_be_read_names_each_and_why(stack) -> None:
    """One file too large, the others refused: the user learns which to send again."""
    stack.telegram.inject(
        "getFile",
        TelegramFault(400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
        times=2,
    )  # the two asked for: the large one is known too large without asking
    _send_documents(stack, 865, ["lease.pdf", "plan.pdf", "bill.pdf"], too_big="plan.pdf")
    stack.drain(stack.consumer())

    assert stack.runs() == []
    [reply] = stack.replies(CHAT)
    assert reply["text"] == (
        "Sorry, I could not read any of the 3 files: “plan.pdf” is too large (I can read files up "
        "to 20 MB); Telegram would not give me “lease.pdf” and “bill.pdf”. Please send them again."
    )


def test_photos_of_an_album_none_of_which_telegram_gives_are_named_by_their_place(stack) -> None:
    stack.telegram.inject(
        "getFile",
        TelegramFault(400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
        times=2,
    )
    _send_album(stack, 875, 2, caption="which is sharper?", album="97531")
    stack.drain(stack.consumer())

    assert stack.runs() == []
    [reply] = stack.replies(CHAT)
    assert reply["text"] == (
        "Sorry, I could not read any of the 2 photos: Telegram would not give me photo 1 of 2 and "
        "photo 2 of 2. Please send them again."
    )


def test_photos_of_an_album_telegram_will_not_give_are_named_by_their_place(stack) -> None:
    """A photo has no name in the chat: "photo 2 of 3" is how the user can tell which."""
    stack.telegram.inject(
        "getFile",
        TelegramFault(400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
        times=2,
    )  # the first two parts'
    _send_album(stack, 870, 3, caption="which is sharper?", album="24680")
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert [key.rsplit("/", 1)[1] for key in run["attachments"]] == ["photo-932.jpg"]
    assert run["prompt"] == (
        "which is sharper?\n\n[Not attached, as the bot could not fetch them: photo 1 of 3 (Telegram "
        "would not give it to the bot; sending it again may work); photo 2 of 3 (Telegram would not "
        "give it to the bot; sending it again may work). Tell the user which files you could not "
        "read and why.]"
    )
