"""Socket Mode's front door: the websocket's envelopes get the checks HTTP requests get.

Over the websocket there is no signature to check (the connection is rollbot's own), but an
envelope can still be malformed: a frame that is not JSON, a payload that is an array, an
event that is a string. slack_sdk logs a traceback for each and Bolt raises on some; neither
must cost the connection or leave a traceback without a reference. A malformed envelope is
acknowledged (so Slack does not deliver it again) and logged by its reason only; anything that
still fails in Bolt is logged with a reference and acknowledged too.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.shapes import envelope_refusal

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest

log = structlog.get_logger()

REQUESTS = frozenset({"events_api", "slash_commands", "interactive"})


class CheckedSocketModeHandler(SocketModeHandler):
    """Bolt's Socket Mode handler with malformed envelopes refused before they reach it."""

    def __init__(self, app: App, app_token: str) -> None:
        super().__init__(app, app_token=app_token)
        client = self.client
        enqueue, run_listeners = client.enqueue_message, client.run_message_listeners

        def enqueue_checked(raw: str) -> None:
            # slack_sdk parses a frame starting with `{` on its one reader loop and logs a
            # traceback when that fails; such a frame has no envelope id to acknowledge.
            if raw.startswith("{"):
                try:
                    json.loads(raw)
                except ValueError:
                    log.warning("slack.envelope_refused", why="the frame is not valid JSON")
                    return
            enqueue(raw)

        def run_checked(message: dict[str, Any], raw: str) -> None:
            if self._refused(message):
                return
            run_listeners(message, raw)

        client.enqueue_message = enqueue_checked  # type: ignore[method-assign,assignment]
        client.run_message_listeners = run_checked  # type: ignore[method-assign,assignment]

    def _refused(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        envelope_id = message.get("envelope_id")
        if kind not in REQUESTS and envelope_id is None:
            return False  # hello, disconnect and the like: slack_sdk's own business
        why = (
            "the envelope has no envelope_id"
            if not isinstance(envelope_id, str) or not envelope_id
            else envelope_refusal(str(kind), message.get("payload"))
        )
        if why is None:
            return False
        log.warning("slack.envelope_refused", why=why, envelope_type=kind)
        if isinstance(envelope_id, str) and envelope_id:
            self.client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))
        return True

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Bolt's handling, with a reference logged (and the envelope acked) if it raises."""
        try:
            super().handle(client, req)
        except Exception:  # an envelope Bolt cannot handle must not go unanswered
            reference = uuid.uuid4().hex[:8]
            log.exception("slack.envelope_failed", reference=reference, envelope_type=req.type)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
