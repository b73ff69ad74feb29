"""The one place unexpected errors end: logged with a reference, never shown raw."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog
from slack_bolt import BoltResponse

from bot.core import texts
from bot.slack.blocks import refusal

if TYPE_CHECKING:
    from slack_bolt import App, Respond

log = structlog.get_logger()


def register(app: App) -> None:
    """The error handler: a reference id for the user, the traceback for the logs."""

    @app.error
    def on_error(
        error: Exception,
        body: object,
        response: BoltResponse | None = None,
        respond: Respond | None = None,
    ) -> BoltResponse | None:
        reference = uuid.uuid4().hex[:8]
        log.error("slack.unhandled_error", reference=reference, exc_info=error)
        if respond is not None and isinstance(body, dict) and body.get("response_url"):
            text = texts.unexpected(reference)
            respond(text=text, blocks=refusal(text), response_type="ephemeral")
        # Bolt answers 500 when its middleware or a listener raised before the ack; the
        # request is answered 400 with the reference instead (after the ack, it is 200 already).
        if response is not None and response.status == HTTPStatus.INTERNAL_SERVER_ERROR:
            return BoltResponse(
                status=HTTPStatus.BAD_REQUEST, body=texts.unhandled_request(reference)
            )
        return None
