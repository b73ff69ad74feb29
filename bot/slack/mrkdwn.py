"""Slack's markup: sections within Slack's limits, mentions, and database text made inert.

The few rules every Slack message of rollbot obeys, kept apart from what the messages say.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any, TypeVar

from bot.core.redact import inert_controls

T = TypeVar("T")

Block = dict[str, Any]
SECTION_LIMIT = 3000


def section(text: str) -> Block:
    """A mrkdwn section within Slack's limit; a cut says how much it left out."""
    if len(text) > SECTION_LIMIT:
        left = f"… ({len(text) - SECTION_LIMIT + 40:,} more characters)"
        cut = _PARTIAL_ENTITY.sub("", text[: SECTION_LIMIT - 40])
        text = cut + left
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def listed(head: str, lines: list[str] | tuple[str, ...], *, more: str = "more") -> Block:
    """`head` and one bullet per line, as many as fit; the rest counted, never cut silently.

    What does not fit ends as `… and 12 more`, so a reader knows the list goes on; a first
    line too long for a section on its own is shortened, with an ellipsis.
    """
    text = head
    for shown, line in enumerate(lines):
        after = len(lines) - shown - 1
        reserve = len(f"\n… and {after} {more}") if after else 0
        bullet = f"\n• {line}"
        if len(text) + len(bullet) + reserve > SECTION_LIMIT:
            if shown == 0:
                room = SECTION_LIMIT - len(text) - reserve - 1
                text += _PARTIAL_ENTITY.sub("", bullet[:room]) + "…"
                return section(text + (f"\n… and {after} {more}" if after else ""))
            return section(f"{text}\n… and {len(lines) - shown} {more}")
        text += bullet
    return section(text)


def fits(head: str, lines: list[str] | tuple[str, ...]) -> bool:
    """Whether `listed` would show every line."""
    return len(head) + sum(len(line) + 3 for line in lines) <= SECTION_LIMIT


def context(text: str) -> Block:
    """Small grey text under a message."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def user(ident: str) -> str:
    """A Slack mention for user ids (U…/W…), a group mention for S…, else the name."""
    if ident[:1] in {"U", "W"} and ident.isalnum():
        return f"<@{ident}>"
    if ident[:1] == "S" and ident.isalnum():
        return f"<!subteam^{ident}>"
    return ident


def people(idents: tuple[str, ...]) -> str:
    """Mentions for a list of people, comma-separated."""
    return ", ".join(user(a) for a in idents)


def escape(text: str) -> str:
    """Slack's own rule for literal text: `&`, `<` and `>` as entities, so nothing is markup.

    Control characters (a carriage return, a bidirectional override) are shown as escapes.
    """
    return inert_controls(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def escaped(value: T) -> T:
    """A view with every string in it escaped: what it holds is data, never Slack markup.

    Every text a run's view carries comes from outside rollbot's own wording at some point (a
    runbook's description and SQL, object and table names, PostgreSQL's messages, lock holders,
    application names), so the whole view is escaped once, before any markup is added, and a
    `<!channel>` anywhere in it reads as written instead of notifying anyone.
    """
    if isinstance(value, Enum):
        return value
    if isinstance(value, str):
        return escape(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(escaped(item) for item in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: escaped(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def inert(text: str, limit: int) -> str:
    """Escaped database text (a statement, a holder, a query) cut to `limit` for a code span.

    A cut never leaves half an entity behind, and backticks, which would end the code span,
    become quotes, as `quoted` does for user input.
    """
    return _PARTIAL_ENTITY.sub("", text[:limit]).replace("`", "'")
