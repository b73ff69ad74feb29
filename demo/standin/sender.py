"""Deliver slash commands and events to an app's Request URL the way Slack's servers do.

The app's signature check is part of what the tests cover, so every request is signed like
Slack signs it (`v0=` HMAC-SHA256 over `v0:{timestamp}:{body}`), and a forged sender (wrong
secret, replayed old timestamp) exists to prove the app refuses those. Only the standard
library is used, and only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from demo.standin import interactive, payloads

if TYPE_CHECKING:
    from demo.standin.model import JSON
    from demo.standin.webapi import SlackStandIn

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class Delivery:
    """The app's answer to one delivery, and the payload that was delivered."""

    status: int
    body: str
    headers: dict[str, str]
    payload: JSON = field(default_factory=dict, repr=False)

    def json(self) -> JSON:
        """The answer parsed as a JSON object."""
        loaded = json.loads(self.body)
        if not isinstance(loaded, dict):
            raise TypeError(f"expected a JSON object, got {self.body!r}")
        return loaded


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature for a body sent at `timestamp`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Slack's side of the Events API and slash commands, aimed at one Request URL."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        standin: SlackStandIn,
        *,
        age: float = 0.0,
        timeout: float = 10.0,
    ) -> None:
        target = urlsplit(events_url)
        if target.scheme != "http" or target.hostname not in LOOPBACK:
            raise ValueError(
                f"the sender only delivers to http:// on the loopback interface, not {events_url}"
            )
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.standin = standin
        self.age = age
        self.timeout = timeout

    def forged(self, *, signing_secret: str | None = None, age: float = 0.0) -> SlackSender:
        """A sender signing with another secret, or with a timestamp `age` seconds old."""
        return SlackSender(
            self.events_url,
            self.signing_secret if signing_secret is None else signing_secret,
            self.standin,
            age=age,
            timeout=self.timeout,
        )

    def slash_command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        command: str = "/rollback",
        user_name: str | None = None,
        channel_name: str | None = None,
    ) -> Delivery:
        """Run a command as `user_id` in `channel_id`; the answer shows as Slack shows it."""
        fields = payloads.slash_command(
            self.standin,
            text,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            user_name=user_name,
            channel_name=channel_name,
        )
        body = urlencode(fields).encode()
        delivery = self.deliver(body, "application/x-www-form-urlencoded", payload=fields)
        if delivery.status == 200:  # noqa: PLR2004 - Slack shows only a successful answer
            answer: JSON | str = delivery.body
            if delivery.headers.get("content-type", "").startswith("application/json"):
                answer = delivery.json()
            self.standin.command_answered(fields["response_url"], answer)
        return delivery

    def event(
        self,
        event: JSON,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> Delivery:
        """Deliver an event; with `retry_num`, as Slack's retry of an unacknowledged delivery."""
        envelope = payloads.event_callback(
            self.standin, event, event_id=event_id, retry=retry_num is not None
        )
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return self.deliver(
            json.dumps(envelope).encode(), "application/json", headers, payload=envelope
        )

    def reaction_added(
        self,
        user: str,
        reaction: str,
        channel: str,
        ts: str,
        item_user: str | None = None,
        *,
        event_id: str | None = None,
    ) -> Delivery:
        """`user` adds `reaction` to the message at `ts`; the stand-in's message gets it too."""
        event = payloads.reaction_added(
            self.standin, user, reaction, channel, ts, item_user=item_user
        )
        return self.event(event, event_id=event_id)

    def press(self, user: str, channel: str, ts: str, action_id: str) -> Delivery:
        """`user` presses the button `action_id` on the message at `ts` (and confirms it)."""
        return self.interaction(
            interactive.block_actions(self.standin, user, channel, ts, action_id)
        )

    def submit_form(self, user: str, view_id: str, values: JSON) -> Delivery:
        """`user` sends the modal `view_id`; it closes unless the app answers with errors."""
        delivery = self.interaction(
            interactive.view_submission(self.standin, user, view_id, values)
        )
        if delivery.status == 200 and not _kept_open(delivery):  # noqa: PLR2004 - HTTP OK
            self.standin.forms.close(view_id)
        return delivery

    def interaction(self, payload: JSON) -> Delivery:
        """Deliver an interaction payload as Slack does: the form field `payload`, as JSON."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.deliver(body, "application/x-www-form-urlencoded", payload=payload)

    def url_verification(self, challenge: str) -> Delivery:
        """The handshake Slack sends when the Request URL is saved; the app echoes the challenge."""
        payload = payloads.url_verification(self.standin.identity, challenge)
        return self.deliver(json.dumps(payload).encode(), "application/json", payload=payload)

    def ssl_check(self) -> Delivery:
        """The certificate probe Slack sends to slash command URLs; apps answer 200 without work."""
        fields = {"ssl_check": "1", "token": self.standin.identity.verification_token}
        return self.deliver(
            urlencode(fields).encode(), "application/x-www-form-urlencoded", payload=fields
        )

    def deliver(
        self,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        payload: JSON | None = None,
    ) -> Delivery:
        """POST a signed body to the Request URL and return the app's answer."""
        timestamp = str(int(time.time() - self.age))
        request_headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self.signing_secret, timestamp, body),
            **(headers or {}),
        }
        target = urlsplit(self.events_url)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        connection = http.client.HTTPConnection(
            target.hostname or "", target.port or 80, timeout=self.timeout
        )
        try:
            connection.request("POST", path, body=body, headers=request_headers)
            response = connection.getresponse()
            answer = response.read().decode("utf-8", errors="replace")
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        return Delivery(response.status, answer, answer_headers, payload or {})


def _kept_open(delivery: Delivery) -> bool:
    """Whether the app's answer to a view submission keeps the modal open (errors, update)."""
    if not delivery.body.strip() or not delivery.body.lstrip().startswith("{"):
        return False
    return delivery.json().get("response_action") in {"errors", "update", "push"}
