"""Delivers the outbox to Slack: in order per run, retried while Slack is down, never twice.

The database work never waits for Slack: transitions only write to the outbox. The courier
delivers in the background, in id order per run (an edit must not overtake the post it
edits), skips edits a newer edit makes pointless, and keeps a failed message for a later round
with backoff. Only one courier delivers at a time across replicas (an advisory lock), so a
message is not posted twice by two processes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.errors import RollbotError

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.core.outbox import Message, Pending
    from bot.state.deliveries import Deliveries

log = structlog.get_logger()
_COURIER_LOCK = 0x526F6C70
# Errors retrying cannot fix: the message is dropped (and logged) instead of blocking its run.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "restricted_action",
        "no_text",
    }
)


class NotPostedError(RollbotError):
    """The message an edit or reply refers to was never posted (its post was given up)."""


class Courier:
    """A background thread draining the outbox; `deliver_pending()` is one round."""

    def __init__(
        self, deliveries: Deliveries, client: WebClient, *, interval_s: float = 2.0
    ) -> None:
        self._deliveries = deliveries
        self._client = client
        self._interval = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rollbot-courier", daemon=True)

    def start(self) -> None:
        """Begin delivering in the background."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current round and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Deliver now instead of at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.deliver_pending()
            except Exception:
                log.exception("courier.round_failed")

    def deliver_pending(self) -> int:
        """One round over the outbox; returns how many messages Slack accepted."""
        with self._deliveries.exclusive(_COURIER_LOCK) as mine:
            if not mine:
                return 0
            return self._round()

    def _round(self) -> int:
        pending = self._deliveries.pending()
        held: set[int] = set()
        delivered = 0
        for index, item in enumerate(pending):
            if item.run_id in held:
                continue
            if not item.due:
                held.add(item.run_id)
                continue
            if _superseded(item, pending[index + 1 :]):
                self._deliveries.delivered(item.id)
                continue
            if self._attempt(item):
                delivered += 1
            else:
                held.add(item.run_id)
        return delivered

    def _attempt(self, item: Pending) -> bool:
        try:
            self._send(item.run_id, item.message)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if error in PERMANENT:
                log.exception("courier.gave_up", run_id=item.run_id, error=error)
                self._deliveries.give_up(item.id, error)
                return True
            retry_after = exc.response.headers.get("Retry-After") if exc.response else None
            delay = float(retry_after) if retry_after else _backoff(item.attempts)
            log.warning("courier.retry_later", run_id=item.run_id, error=error, delay_s=delay)
            self._deliveries.retry_later(item.id, error, delay)
            return False
        except NotPostedError as exc:
            self._deliveries.give_up(item.id, exc.what)
            return True
        except (SlackClientError, OSError) as exc:
            log.warning("courier.unreachable", run_id=item.run_id, error=type(exc).__name__)
            self._deliveries.retry_later(item.id, type(exc).__name__, _backoff(item.attempts))
            return False
        self._deliveries.delivered(item.id)
        return True

    def _send(self, run_id: int, message: Message) -> None:
        if message.action == "post":
            self._post(run_id, message)
            return
        where = self._deliveries.slack_message(run_id, message.role)
        if where is None:
            raise NotPostedError(f"run {run_id} has no {message.role} message to act on")
        channel, ts = where
        if message.action == "update":
            self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
        elif message.action == "reply":
            self._client.chat_postMessage(
                channel=channel, thread_ts=ts, text=message.text, blocks=message.blocks
            )
        else:
            self._client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                content=message.content or "",
                filename=message.filename or "rollback.sql",
                title=message.filename,
                initial_comment=message.text,
            )

    def _post(self, run_id: int, message: Message) -> None:
        if self._deliveries.slack_message(run_id, message.role) is not None:
            return  # posted before a crash, not yet marked delivered: do not post twice
        blocks: list[dict[str, Any]] | None = message.blocks
        if message.link_to is not None:
            link = self._permalink(run_id, message)
            blocks = [
                {"type": "section", "text": {"type": "mrkdwn", "text": message.text}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
            ]
        response = self._client.chat_postMessage(
            channel=message.channel or "", text=message.text, blocks=blocks
        )
        self._deliveries.remember_message(
            run_id, message.role, str(response["channel"]), str(response["ts"])
        )

    def _permalink(self, run_id: int, message: Message) -> str:
        where = self._deliveries.slack_message(run_id, message.link_to or "plan")
        if where is None:
            return "request thread: not posted"
        answer = self._client.chat_getPermalink(channel=where[0], message_ts=where[1])
        return f"<{answer['permalink']}|request thread>"


def _superseded(item: Pending, later: list[Pending]) -> bool:
    """An edit followed by a newer edit of the same message need not be sent."""
    return item.message.action == "update" and any(
        o.run_id == item.run_id
        and o.message.action == "update"
        and o.message.role == item.message.role
        for o in later
    )


def _backoff(attempts: int) -> float:
    return float(min(60, 2 ** min(attempts, 6)))
