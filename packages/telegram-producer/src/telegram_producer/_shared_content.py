"""What a user shares without typing it (a location, a place, a contact, a poll, a checklist,
a dice roll, a sticker), written as the text of the turn, so the agent can answer it: "what is near
here?" right after sharing a location works as it does with a person.

The parts are read leniently: one whose shape is not what the Bot API documents is treated as
content the bot does not handle ("not supported yet"), never as a bad update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from ._updates import MessageContent


class _Location(msgspec.Struct, frozen=True, kw_only=True):
    latitude: float
    longitude: float
    horizontal_accuracy: float | None = None


class _Venue(msgspec.Struct, frozen=True, kw_only=True):
    location: _Location
    title: str = ""
    address: str = ""


class _Contact(msgspec.Struct, frozen=True, kw_only=True):
    phone_number: str = ""
    first_name: str = ""
    last_name: str | None = None


class _PollOption(msgspec.Struct, frozen=True, kw_only=True):
    text: str = ""


class _Poll(msgspec.Struct, frozen=True, kw_only=True):
    question: str = ""
    options: tuple[_PollOption, ...] = ()
    type: str = "regular"


class _ChecklistTask(msgspec.Struct, frozen=True, kw_only=True):
    text: str = ""
    completion_date: int = 0  # set once someone marked the task done


class _Checklist(msgspec.Struct, frozen=True, kw_only=True):
    title: str = ""
    tasks: tuple[_ChecklistTask, ...] = ()


class _Dice(msgspec.Struct, frozen=True, kw_only=True):
    emoji: str = "🎲"
    value: int = 0


class _Sticker(msgspec.Struct, frozen=True, kw_only=True):
    emoji: str | None = None


# The kinds described here, in the order a message is looked at (Telegram sends a venue with
# its location as well: the venue says more).
SHARED_KINDS = ("venue", "location", "contact", "poll", "checklist", "dice", "sticker")


def shared_content_text(msg: MessageContent) -> str | None:
    """The turn's text for what ``msg`` shares; None when it shares nothing, or its shape is
    not the Bot API's."""
    for kind in SHARED_KINDS:
        raw = getattr(msg, kind)
        if raw is None:
            continue
        try:
            return _describe(kind, raw)
        except msgspec.ValidationError:
            return None
    return None


def _describe(kind: str, raw: Any) -> str:
    if kind == "venue":
        venue = msgspec.convert(raw, _Venue)
        where = ", ".join(part for part in (venue.title, venue.address) if part)
        return f"[Shared place: {where} ({_coordinates(venue.location)})]"
    if kind == "location":
        return f"[Shared location: {_coordinates(msgspec.convert(raw, _Location))}]"
    if kind == "contact":
        contact = msgspec.convert(raw, _Contact)
        name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
        return f"[Shared contact: {', '.join(part for part in (name, contact.phone_number) if part)}]"
    if kind == "poll":
        poll = msgspec.convert(raw, _Poll)
        options = "; ".join(option.text for option in poll.options)
        return f"[Shared {'quiz' if poll.type == 'quiz' else 'poll'}: {poll.question} Options: {options}]"
    if kind == "checklist":
        checklist = msgspec.convert(raw, _Checklist)
        tasks = "; ".join(
            f"{task.text} (done)" if task.completion_date else task.text for task in checklist.tasks
        )
        title = checklist.title if checklist.title.endswith((".", "!", "?", "…")) else f"{checklist.title}."
        return f"[Shared checklist: {title} Tasks: {tasks}]"
    if kind == "dice":
        dice = msgspec.convert(raw, _Dice)
        return f"[Rolled {dice.emoji}: {dice.value}]"
    sticker = msgspec.convert(raw, _Sticker)
    return f"[Sticker {sticker.emoji}]" if sticker.emoji else "[Sticker]"


def _coordinates(location: _Location) -> str:
    text = f"{location.latitude:.6f}, {location.longitude:.6f}"
    if location.horizontal_accuracy:
        text += f", within {location.horizontal_accuracy:.0f} m"
    return text
