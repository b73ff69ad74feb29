"""What happens when a message will not reach Slack: the run and the people are told.

A run lives in Slack through two messages: its plan message (where approvers react) and its
incident channel message (the audit trail the on-call reads). If Slack refuses either channel
(`not_in_channel`, `channel_not_found`) or either post is given up, the run cannot be approved
as it should be, so it is cancelled with the reason (stored before anyone is told) and the
requester is told at once, ephemerally, how to fix it. Any other message given up gets a note
in the run's thread, so readers know something is missing.

The requester is reached where Slack still lets rollbot speak: an ephemeral message in the
request channel (when that channel is not the one refused), else the slash command's
`response_url` (which works in any channel for 30 minutes; kept in this process's memory only,
never stored), else a direct message.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import structlog
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.core import texts
from bot.core.outbox import Message
from bot.core.states import state_predicate

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.core.run import Run
    from bot.service.rollback import Rollbot
    from bot.slack.courier import GivenUp
    from bot.state.deliveries import Deliveries

log = structlog.get_logger()
RESPONSE_URL_TTL_S = 30 * 60  # Slack accepts posts to a response_url for 30 minutes


class Responders:
    """The latest slash command's `response_url` per channel and person, while it is valid."""

    def __init__(self, ttl_s: float = RESPONSE_URL_TTL_S) -> None:
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._urls: dict[tuple[str, str], tuple[float, str]] = {}

    def remember(self, channel: str, user: str, url: str) -> None:
        """Keep a command's response URL; older ones are forgotten."""
        now = time.monotonic()
        with self._lock:
            self._urls = {k: v for k, v in self._urls.items() if now - v[0] < self._ttl}
            self._urls[channel, user] = (now, url)

    def latest(self, channel: str, user: str) -> str | None:
        """The response URL of `user`'s latest command in `channel`, if still valid."""
        with self._lock:
            hit = self._urls.get((channel, user))
        if hit is None or time.monotonic() - hit[0] >= self._ttl:
            return None
        return hit[1]


class Undelivered:
    """Handles the courier's given-up messages (called from the courier's thread)."""

    def __init__(
        self,
        service: Rollbot,
        deliveries: Deliveries,
        client: WebClient,
        responders: Responders,
        *,
        incident_channel: str | None,
    ) -> None:
        self._service = service
        self._deliveries = deliveries
        self._client = client
        self._responders = responders
        self._incident_channel = incident_channel
        self._told: set[tuple[int, str]] = set()

    def __call__(self, given_up: GivenUp) -> None:
        """Cancel the run, tell the requester, or note it in the thread, as fits."""
        message = given_up.message
        if message.about is not None:
            return  # a note about an earlier give-up: nothing more to say
        with structlog.contextvars.bound_contextvars(run_id=given_up.run_id):
            run = self._service.run(given_up.run_id)
            channel = given_up.refused_channel
            if channel is not None:
                reason = texts.channel_refused(channel, given_up.error)
                self._withdraw(run, reason, channel, refused=True)
            elif message.action == "post":
                reason = texts.announcement_lost(message.role, given_up.error)
                self._withdraw(run, reason, message.channel or "", refused=False)
            elif not given_up.follows:
                self._note(run, given_up)

    def _withdraw(self, run: Run, reason: str, channel: str, *, refused: bool) -> None:
        """Cancel the run (if it can still be), then tell its requester once per channel."""
        cancelled = self._service.withdraw(run.id, reason)
        if (run.id, channel) in self._told:
            return
        self._told.add((run.id, channel))
        now = cancelled or run
        text = self._requester_text(
            now, reason, channel, refused=refused, cancelled=bool(cancelled)
        )
        self._tell_requester(now, text, avoid=channel if refused else "")

    def _requester_text(
        self, run: Run, reason: str, channel: str, *, refused: bool, cancelled: bool
    ) -> str:
        if refused:
            where = f"<#{channel}>"
            fix = f"Type `/invite @rollbot` in {where}"
            if channel == self._incident_channel:
                fix += " (the incident channel, ROLLBOT_INCIDENT_CHANNEL)"
            head = f"rollbot cannot post in {where}"
        else:
            fix = "Request it again"
            head = f"Slack did not take run {run.id}'s message: {reason}"
        if cancelled:
            return f"{head}, so run {run.id} was cancelled. {fix}, then request it again."
        now = state_predicate(run.state)
        return f"{head}; run {run.id} {now} and its messages there are lost. {fix}."

    def _tell_requester(self, run: Run, text: str, *, avoid: str) -> None:
        user = run.requested_by
        if run.channel and run.channel != avoid and self._ephemeral(run.channel, user, text):
            return
        url = self._responders.latest(run.channel, user) if run.channel else None
        if url is not None and self._respond(url, text):
            return
        try:
            self._client.chat_postMessage(channel=user, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("undelivered.requester_not_told", error=type(exc).__name__)

    def _ephemeral(self, channel: str, user: str, text: str) -> bool:
        try:
            self._client.chat_postEphemeral(channel=channel, user=user, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.info("undelivered.no_ephemeral", error=type(exc).__name__)
            return False
        return True

    def _respond(self, url: str, text: str) -> bool:
        try:
            answer = WebhookClient(url, timeout=10).send(text=text, response_type="ephemeral")
        except (SlackClientError, OSError) as exc:
            log.info("undelivered.no_response_url", error=type(exc).__name__)
            return False
        return answer.status_code == 200  # noqa: PLR2004 - HTTP OK

    def _note(self, run: Run, given_up: GivenUp) -> None:
        """A reply in the run's request thread (or incident thread) naming what is missing."""
        message = given_up.message
        what = {
            "update": f"edit of its {message.role} message",
            "reply": f"reply in its {message.role} thread",
            "upload": f"SQL file in its {message.role} thread",
        }.get(message.action, f"{message.role} message")
        text = texts.delivery_given_up(run.id, what, given_up.error)
        for role in ("plan", "incident"):
            if self._deliveries.slack_message(run.id, role) is not None:
                note = Message(action="reply", role=role, text=text, about=given_up.outbox_id)
                self._deliveries.add(run.id, note)
                return
