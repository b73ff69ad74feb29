"""Slack's markup: sections within Slack's limits, mentions, and database text made inert.

The few rules every Slack message of rollbot obeys, kept apart from what the messages say.
"""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]
SECTION_LIMIT = 3000


def section(text: str) -> Block:
    """A mrkdwn section, cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


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


def inert(text: str, limit: int) -> str:
    """Text from the database (statements, application names, queries), cut, shown as typed.

    Escaping `&`, `<` and `>` is Slack's own rule for literal text: a query or application name
    holding `<!channel>` then reads as written instead of pinging anyone. Backticks would end
    the code span around it, so they become quotes, as `quoted` does for user input.
    """
    text = text[:limit].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("`", "'")
