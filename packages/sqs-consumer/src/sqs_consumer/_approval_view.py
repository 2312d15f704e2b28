"""[I] How a tool call waiting for approval looks in the chat: the message with its three
buttons, the same message once answered (buttons gone, who decided), and /permissions with a
revoke button per grant. Telegram HTML; every text from the runtime or the store is escaped."""

from __future__ import annotations

from typing import Any

from session_core import (
    APPROVAL_CHOICES,
    Approval,
    ApprovalOutcome,
    ApprovalRequest,
    Grant,
    shown_grant_rule,
    visible_text,
)
from telegram_core import approval_callback_data, revoke_callback_data

from ._person_names import person_html
from ._render import escape_html, shortened
from ._wording import (
    ALLOWED_DROPPED_BY_NEW,
    ALLOWED_DROPPED_BY_NEW_FROM,
    APPROVAL_ALWAYS_WOULD_ALLOW,
    APPROVAL_ASKS,
    APPROVAL_BUTTON_TEXT,
    APPROVAL_DECIDED,
    APPROVAL_DECLINED,
    APPROVAL_DECLINED_BY,
    APPROVAL_DROPPED_BY_NEW,
    APPROVAL_DROPPED_BY_NEW_FROM,
    APPROVAL_STOPPED,
    GRANT_LINE,
    GRANTS_HEADING,
    GRANTS_MORE,
    GRANTS_NO_SUCH_PAGE,
    GRANTS_ONE_PAGE,
    GRANTS_PAGE_HEADING,
    NO_GRANTS,
    REVOKE_BUTTON_TEXT,
)

# Telegram's limit is 4096 characters after entity parsing, counted in UTF-16 units (an emoji
# is two); so are these bounds. The runtime shortens the summary already (to 2000), these keep
# any message of ours well inside the limit whatever it sends.
_MAX_SUMMARY_CHARS = 3000
_MAX_RULE_CHARS = 300
# A button's label is cut by Telegram anyway; a /permissions message lists at most this many
# (a page: `/permissions 2` shows the next ones).
_MAX_BUTTON_LABEL_CHARS = 60
GRANTS_PER_PAGE = 30


def approval_request_html(request: ApprovalRequest, *, where: str = "this chat") -> str:
    """The message that asks: the tool, exactly what would run, and what "always" allows
    (``where``: "this chat" or "this topic", where a grant holds)."""
    rule = shown_grant_rule(request.grant_rule, _MAX_RULE_CHARS, command_above=True)
    return (
        f"{APPROVAL_ASKS}\n"
        f"<b>{escape_html(shortened(request.tool_name, _MAX_RULE_CHARS))}</b>\n"
        f"<pre>{escape_html(shortened(request.summary, _MAX_SUMMARY_CHARS))}</pre>\n"
        f"{APPROVAL_ALWAYS_WOULD_ALLOW.format(where=where)}: "
        f"<code>{escape_html(rule)}</code>"
    )


def approval_keyboard(approval_id: str, *, where: str = "this chat") -> dict[str, Any]:
    """One row: Allow once, Always in this chat (or topic), Deny (``ap:<id>:<o|a|d>``)."""
    return {
        "inline_keyboard": [
            [
                {
                    "text": APPROVAL_BUTTON_TEXT[choice].format(where=where),
                    "callback_data": approval_callback_data(approval_id, choice),
                }
                for choice in APPROVAL_CHOICES
            ]
        ]
    }


def approval_outcome_html(
    outcome: ApprovalOutcome, *, new_message_from: str | None = None, where: str = "this chat"
) -> str:
    """The asking message once answered, e.g. "✅ Allowed once by ada: Bash <code>ls</code>"
    (``new_message_from``: in a group, who sent the message that declined it)."""
    if outcome.answered_by == "new_message" and new_message_from:
        head = APPROVAL_DECLINED_BY.format(who=person_html(new_message_from))
    elif outcome.answered_by == "new_message":
        head = APPROVAL_DECLINED
    elif outcome.answered_by == "stop":
        head = APPROVAL_STOPPED
    else:
        head = APPROVAL_DECIDED[outcome.choice].format(who=person_html(outcome.decided_by), where=where)
    return approval_settled_html(head, outcome.tool_name, outcome.summary)


def approval_dropped_html(approval: Approval, *, new_from: str | None = None) -> str:
    """The asking message of a call /new dropped (``new_from``: in a group, who sent /new):
    still waiting, or allowed but not yet passed on to the agent (the budget held it back)."""
    allowed = approval.state == "decided" and approval.choice != "deny"
    head = ALLOWED_DROPPED_BY_NEW if allowed else APPROVAL_DROPPED_BY_NEW
    if new_from:
        template = ALLOWED_DROPPED_BY_NEW_FROM if allowed else APPROVAL_DROPPED_BY_NEW_FROM
        head = template.format(who=person_html(new_from))
    return approval_settled_html(head, approval.tool_name, approval.summary)


def approval_settled_html(head: str, tool_name: str, summary: str) -> str:
    """``head`` (HTML) followed by the call it was about."""
    return (
        f"{head}: <b>{escape_html(shortened(tool_name, _MAX_RULE_CHARS))}</b> "
        f"<code>{escape_html(shortened(summary, _MAX_SUMMARY_CHARS))}</code>"
    )


def permissions_page(argument: str) -> int:
    """The page ``/permissions <argument>`` asks for: its number, 1 for anything else."""
    word = argument.strip().split(maxsplit=1)[0] if argument.strip() else ""
    # ASCII digits only: str.isdigit() also takes "²" and "①", which int() refuses.
    return int(word) if word.isascii() and word.isdigit() and 0 < int(word) < 1_000_000 else 1


def permissions_html(grants: list[Grant], *, where: str = "this chat", page: int = 1) -> str:
    """The /permissions answer: each rule of ``page`` and who granted it, then how many more
    and how to see them; or that there are none, or no such page."""
    if not grants:
        return NO_GRANTS.format(where=where)
    shown = _page_of(grants, page)
    if not shown:
        pages = _pages(grants)
        if pages == 1:
            return GRANTS_ONE_PAGE.format(where=where)
        return GRANTS_NO_SUCH_PAGE.format(total=len(grants), where=where, pages=pages)
    first = (page - 1) * GRANTS_PER_PAGE + 1
    last = first + len(shown) - 1
    heading = (
        GRANTS_HEADING.format(where=where)
        if len(grants) <= GRANTS_PER_PAGE
        else GRANTS_PAGE_HEADING.format(where=where, first=first, last=last, total=len(grants))
    )
    lines = [heading]
    for grant in shown:
        rule = f"<code>{escape_html(shown_grant_rule(grant.rule, _MAX_RULE_CHARS))}</code>"
        lines.append("• " + GRANT_LINE.format(rule=rule, who=person_html(grant.granted_by)))
    if last < len(grants):
        lines.append(GRANTS_MORE.format(count=len(grants) - last, page=page + 1))
    return "\n".join(lines)


def permissions_keyboard(grants: list[Grant], *, page: int = 1) -> dict[str, Any] | None:
    """One "Revoke <rule>" button per grant of ``page`` (``rv:<token>``); None without any."""
    shown = _page_of(grants, page)
    if not shown:
        return None
    return {
        "inline_keyboard": [
            [
                {
                    # a label, cut by Telegram anyway: the list above shows the rule whole
                    "text": shortened(
                        REVOKE_BUTTON_TEXT.format(rule=visible_text(grant.rule)), _MAX_BUTTON_LABEL_CHARS
                    ),
                    "callback_data": revoke_callback_data(grant.token),
                }
            ]
            for grant in shown
        ]
    }


def _page_of(grants: list[Grant], page: int) -> list[Grant]:
    return grants[(page - 1) * GRANTS_PER_PAGE : page * GRANTS_PER_PAGE]


def _pages(grants: list[Grant]) -> int:
    return -(-len(grants) // GRANTS_PER_PAGE)
