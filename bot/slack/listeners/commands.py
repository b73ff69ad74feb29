"""`/rollback`: ack at once (Slack's 3 seconds), then answer the person who typed it.

Slow commands are queued for rollbot's workers and acked with what happens next; the rest are
answered on this thread, which they hold only for a moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.slack.chatops import ChatOps, Reply


def register(app: App, chatops: ChatOps) -> None:
    """The slash command listener."""

    @app.command("/rollback")
    def rollback(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        def answer(reply: Reply) -> None:
            respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

        text = str(command.get("text", ""))
        user_id, channel_id = str(command["user_id"]), str(command["channel_id"])
        trigger_id = str(command.get("trigger_id") or "") or None
        response_url = str(command.get("response_url") or "") or None
        queued = chatops.enqueue(
            text,
            user_id=user_id,
            channel_id=channel_id,
            trigger_id=trigger_id,
            respond=answer,
            response_url=response_url,
        )
        if queued is not None:  # slow work went to rollbot's workers: say so in the ack
            if queued.text:
                ack(text=queued.text, blocks=queued.blocks)
            else:
                ack()  # a replayed request: nothing to say
            return
        ack()
        reply = chatops.command(
            text,
            user_id=user_id,
            channel_id=channel_id,
            trigger_id=trigger_id,
            response_url=response_url,
        )
        if reply is None:
            return  # the same command again (a replayed request): answered the first time
        answer(reply)
