"""Slack's front door in HTTP mode: only well-formed, signed requests reach Bolt.

Anyone who can reach `/slack/events` can send it anything. Bolt verifies signatures, but a
timestamp that is not a number or a body that is not UTF-8 makes it raise (a 500), and a refused
request is logged with its whole body. So before Bolt sees a request, the gate checks its size,
its timestamp and signature (logging a refusal by length and hash, never by content) and its
encoding, then that the body has a shape Slack sends (`bot/slack/shapes.py`): anything signed
but malformed is a 400 with a short reason, never a 500. Whatever still makes Bolt raise is
caught here too, logged with a reference (never with the body) and answered 400. It touches
no database: the ack must not wait for one. A signed request replayed
inside the signature window is caught after the ack, by the ids Slack puts in it (an event's
`event_id`, a slash command's `trigger_id`).
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from slack_sdk.signature import SignatureVerifier

from bot.core import texts
from bot.slack.shapes import http_refusal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = structlog.get_logger()

# Slack's own requests are a few kilobytes; anything near this is not from Slack.
MAX_BODY_BYTES = 1 << 20
SIGNATURE_WINDOW_S = 5 * 60  # Slack's, and slack_sdk's, limit on a timestamp's age


class RequestGate:
    """WSGI middleware in front of Bolt's handler for one path."""

    def __init__(
        self,
        app: Wsgi,
        signing_secret: str,
        *,
        path: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._verifier = SignatureVerifier(signing_secret)
        self._path = path
        self._clock = clock

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Refuse what is malformed or forged; pass the rest on unchanged."""
        if environ.get("PATH_INFO") != self._path or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, "400 Bad Request", "Content-Length is not a number")
        if length < 0 or length > MAX_BODY_BYTES:
            return _answer(start_response, "413 Content Too Large", "the body is too large")
        body = environ["wsgi.input"].read(length) if length else b""
        refusal = self._refusal(environ, body)
        if refusal is not None:
            status, why = refusal
            log.warning("slack.request_refused", why=why, **_fingerprint(body))
            return _answer(start_response, status, why)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        try:
            # Bolt's adapter answers only once it has a response, so nothing was sent yet.
            return self._app(environ, start_response)
        except Exception:  # a signed request Bolt cannot handle is not a 500
            reference = uuid.uuid4().hex[:8]
            log.exception("slack.request_failed", reference=reference, **_fingerprint(body))
            return _answer(start_response, "400 Bad Request", texts.unhandled_request(reference))

    def _refusal(self, environ: dict[str, Any], body: bytes) -> tuple[str, str] | None:
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
        if not timestamp.isascii() or not timestamp.isdigit():
            return "401 Unauthorized", "X-Slack-Request-Timestamp is missing or not a number"
        if abs(self._clock() - int(timestamp)) > SIGNATURE_WINDOW_S:
            return "401 Unauthorized", "the request is older than Slack's signature window"
        try:
            body.decode("utf-8")  # Slack sends UTF-8; slack_sdk's verifier assumes it
        except UnicodeDecodeError:
            return "400 Bad Request", "the body is not UTF-8"
        if not self._verifier.is_valid(body, timestamp, signature):
            return "401 Unauthorized", "the signature does not match the signing secret"
        # Only a signed body is worth reading; Bolt compares the content type the same way.
        content_type = str(environ.get("CONTENT_TYPE") or "").split(";")[0] or None
        malformed = http_refusal(body.decode("utf-8"), content_type)
        if malformed is not None:
            return "400 Bad Request", malformed
        return None


def _fingerprint(body: bytes) -> dict[str, Any]:
    """A body in a log line: its size and hash, never its content (it may carry anything)."""
    return {"body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()[:16]}


def _answer(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    payload = (text + "\n").encode() if text else b""
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))],
    )
    return [payload]
