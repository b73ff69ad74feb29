"""`/rollback`: ack at once (Slack's 3 seconds), then answer the person who typed it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.slack.chatops import ChatOps


def register(app: App, chatops: ChatOps) -> None:
    """The slash command listener."""

    @app.command("/rollback")
    def rollback(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        reply = chatops.command(
            str(command.get("text", "")),
            user_id=str(command["user_id"]),
            channel_id=str(command["channel_id"]),
            trigger_id=str(command.get("trigger_id") or "") or None,
            response_url=str(command.get("response_url") or "") or None,
        )
        if reply is None:
            return  # the same command again (a replayed request): answered the first time
        respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
