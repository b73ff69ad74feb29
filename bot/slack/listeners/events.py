"""`reaction_added`: the approval path. Bolt acks events before this runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.slack.chatops import ChatOps


def register(app: App, chatops: ChatOps) -> None:
    """The reaction listener."""

    @app.event("reaction_added")
    def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message":
            return
        chatops.reaction(
            event_id=str(body.get("event_id", "")),
            user_id=str(event.get("user", "")),
            reaction=str(event.get("reaction", "")),
            channel=str(item.get("channel", "")),
            ts=str(item.get("ts", "")),
        )
