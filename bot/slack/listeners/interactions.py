"""The approval buttons and the rejection form: ack at once (Slack's 3 seconds), then act.

A button press is acked before anything is looked up, like the slash command. The form is the
exception Slack makes: its ack is the only way to keep it open with an error, so the reason is
checked (pure, instant) before the ack, and everything else happens after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.buttons import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_VIEW,
    form_target,
)
from bot.slack.interactions import Form, Interactions, form_errors, reason_of

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond
    from slack_sdk import WebClient

    from bot.slack.chatops import ChatOps, Reply

log = structlog.get_logger()
FORM_NOT_OPENED = "Slack did not open the rejection form in time; press Reject again."


def register(app: App, chatops: ChatOps) -> None:
    """The button and form listeners."""
    buttons = Interactions(
        chatops.service, chatops.deliveries, chatops.directory, workers=chatops.approvals
    )

    @app.action(APPROVE_ACTION)
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()

        def answer(reply: Reply) -> None:
            respond(text=reply.text, response_type="ephemeral", replace_original=False)

        buttons.approve(**_pressed(body), respond=answer)

    @app.action(REJECT_ACTION)
    def reject(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        answer = buttons.reject_pressed(**_pressed(body))
        if isinstance(answer, Form):
            try:
                client.views_open(trigger_id=str(body.get("trigger_id", "")), view=answer.view)
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.warning("slack.form_not_opened", error=type(exc).__name__)
                respond(text=FORM_NOT_OPENED, response_type="ephemeral", replace_original=False)
        elif answer is not None:
            respond(text=answer.text, response_type="ephemeral", replace_original=False)

    @app.view(REJECT_VIEW)
    def rejected(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        values = (view.get("state") or {}).get("values") or {}
        errors = form_errors(values, REASON_BLOCK, REASON_INPUT)
        if errors is not None:
            ack(response_action="errors", errors=errors)
            return
        ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        metadata = str(view.get("private_metadata") or "")
        reply = buttons.reject(
            trigger_id=str(body.get("trigger_id") or f"{view.get('id')}:{view.get('hash')}"),
            user_id=user_id,
            metadata=metadata,
            reason=reason_of(values, REASON_BLOCK, REASON_INPUT),
        )
        target = form_target(metadata)
        if reply is not None and target is not None:
            client.chat_postEphemeral(channel=target[1], user=user_id, text=reply.text)


def _pressed(body: dict[str, Any]) -> dict[str, str]:
    """Who pressed, and on which message: the message, not the button's value, names the run."""
    container = body.get("container") or {}
    return {
        "trigger_id": str(body.get("trigger_id", "")),
        "user_id": str((body.get("user") or {}).get("id", "")),
        "channel": str(container.get("channel_id") or (body.get("channel") or {}).get("id", "")),
        "ts": str(container.get("message_ts") or (body.get("message") or {}).get("ts", "")),
    }
