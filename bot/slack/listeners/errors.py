"""The one place unexpected errors end: logged with a reference, never shown raw."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog

from bot.core import texts
from bot.slack.blocks import refusal

if TYPE_CHECKING:
    from slack_bolt import App, Respond

log = structlog.get_logger()


def register(app: App) -> None:
    """The error handler: a reference id for the user, the traceback for the logs."""

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        reference = uuid.uuid4().hex[:8]
        log.error("slack.unhandled_error", reference=reference, exc_info=error)
        if respond is not None and body.get("response_url"):
            text = texts.unexpected(reference)
            respond(text=text, blocks=refusal(text), response_type="ephemeral")
