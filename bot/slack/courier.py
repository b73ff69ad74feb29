"""Delivers the outbox to Slack: each message on its own, in order where order matters, never twice.

The database work never waits for Slack: transitions only write to the outbox. The courier
delivers in the background, and a message that fails is that message's problem only: whatever
it raises is recorded on it, it is retried with exponential backoff and jitter, and it is given
up once `ROLLBOT_DELIVERY_DEADLINE` has passed since it was written. Order is kept only where a
reader needs it, in lanes per run and role: the post first, then its edits (in order, a newer
edit making older ones pointless) and, separately, its thread (in order). A stuck reply holds
back the replies after it in the same thread and nothing else.

A message Slack accepted is never posted twice. Before each call that could post it, the row is
marked as maybe sent; Slack's answer (channel and ts, checked to be there) is recorded before
anything else happens, and kept in memory until it is, so a database error right after Slack
accepted is healed by recording the answer later, not by posting again. A message still marked
maybe sent without an answer in hand (the process stopped mid-call, the answer was cut off or
unreadable) is given up rather than posted again: rollbot cannot look in the channel to check,
as it holds no scope that reads messages. Edits are the exception, since sending one twice is
harmless. Only one courier delivers at a time across replicas (an advisory lock).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from enum import Enum
from http.client import IncompleteRead, RemoteDisconnected
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

import structlog
from slack_sdk.errors import SlackApiError

from bot.core import texts
from bot.core.errors import RollbotError
from bot.core.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from slack_sdk import WebClient

    from bot.core.outbox import Message, Pending, Role
    from bot.state.deliveries import Deliveries

log = structlog.get_logger()
_COURIER_LOCK = 0x526F6C70
DEFAULT_DEADLINE_S = 3600.0
_BACKOFF_CAP_S = 300.0
_ERROR_CHARS = 300
# Slack refuses every call into a channel the bot is not in (private ones it cannot even see).
CHANNEL_REFUSED = frozenset({"not_in_channel", "channel_not_found"})
# Errors retrying cannot fix: the message is given up at once instead of holding its lane.
PERMANENT = CHANNEL_REFUSED | {
    "is_archived",
    "msg_too_long",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "message_not_found",
    "cant_update_message",
    "restricted_action",
    "no_text",
}
# slack_sdk's wording when Slack (or a proxy in front of it) answered with something not JSON.
_NOT_JSON = "Received a response in a non-JSON format"


class NotPostedError(RollbotError):
    """The message an edit or reply refers to was never posted (its post was given up)."""


class MalformedAnswerError(RollbotError):
    """Slack said `ok` but left out where the message is: it may be in Slack, unfindable."""


@dataclass(frozen=True)
class GivenUp:
    """A message the courier stopped trying to deliver, for whoever must act on it."""

    outbox_id: int
    run_id: int
    message: Message
    error: str
    refused_channel: str | None = None  # Slack refused the channel itself (not in it, unknown)
    follows: bool = False  # a consequence of an earlier give-up (its post never made it)


class _Outcome(Enum):
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"
    LATER = "later"


_Lane = tuple[int, str, str]


class Courier:
    """A background thread draining the outbox; `deliver_pending()` is one round."""

    def __init__(
        self,
        deliveries: Deliveries,
        client: WebClient,
        *,
        interval_s: float = 2.0,
        deadline_s: float = DEFAULT_DEADLINE_S,
        on_given_up: Callable[[GivenUp], None] | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._client = client
        self._interval = interval_s
        self._deadline = deadline_s
        self._on_given_up = on_given_up
        # Slack's answers not yet recorded (the database failed right after Slack accepted).
        self._receipts: dict[int, tuple[str, str]] = {}
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
        held: set[_Lane] = set()
        delivered = 0
        for index, item in enumerate(pending):
            lane = _lane(item)
            if not item.due or any(wait in held for wait in _waits_on(item)):
                held.add(lane)
                continue
            outcome = self._isolated(item, pending[index + 1 :])
            if outcome is _Outcome.DELIVERED:
                delivered += 1
            elif outcome is _Outcome.LATER:
                held.add(lane)
        return delivered

    def _isolated(self, item: Pending, later: list[Pending]) -> _Outcome:
        """One message, whatever it raises: the others are delivered regardless."""
        with structlog.contextvars.bound_contextvars(run_id=item.run_id, outbox_id=item.id):
            try:
                if _superseded(item, later):
                    self._deliveries.delivered(item.id)
                    return _Outcome.GAVE_UP
                return self._attempt(item)
            except Exception as exc:
                log.exception("courier.message_failed", error=type(exc).__name__)
                return self._note_failure(item, exc, sent=item.id in self._receipts)

    def _attempt(self, item: Pending) -> _Outcome:
        receipt = self._receipts.get(item.id)
        if receipt is None:
            if item.uncertain and item.message.action != "update":
                return self._give_up(item, texts.DELIVERY_UNCERTAIN)
            began: list[bool] = []

            def mark() -> None:
                self._deliveries.sending(item.id)
                began.append(True)

            try:
                receipt = self._send(item, mark)
            except Exception as exc:  # noqa: BLE001 - classified, then recorded on the message
                return self._failed(item, exc, sent=bool(began) and _may_have_posted(exc))
            self._receipts[item.id] = receipt
        self._deliveries.accepted(item, *receipt)
        self._receipts.pop(item.id, None)
        return _Outcome.DELIVERED

    def _failed(self, item: Pending, exc: Exception, *, sent: bool) -> _Outcome:
        if isinstance(exc, NotPostedError):
            return self._give_up(item, exc.what, follows=True)
        if sent:
            log.warning("courier.maybe_posted", error=_describe(exc))
            return self._give_up(item, f"{_describe(exc)}; {texts.DELIVERY_NOT_REPEATED}")
        if isinstance(exc, SlackApiError):
            error = str(exc.response.get("error", "unknown_error"))
            if error in PERMANENT:
                refused = self._channel_of(item) if error in CHANNEL_REFUSED else None
                log.warning("courier.refused", error=error)
                return self._give_up(item, error, refused_channel=refused)
            retry_after = exc.response.headers.get("Retry-After") if exc.response else None
            delay = float(retry_after) if retry_after else _backoff(item.attempts)
            return self._later(item, error, delay)
        log.warning("courier.retry_later", error=_describe(exc))
        return self._later(item, _describe(exc), _backoff(item.attempts))

    def _note_failure(self, item: Pending, exc: Exception, *, sent: bool) -> _Outcome:
        """Record an unexpected failure on the message, if the database lets us."""
        try:
            if self._deliveries.failed(
                item.id,
                _describe(exc),
                delay_s=_backoff(item.attempts),
                deadline_s=self._deadline,
                sent=sent,
            ):
                self._receipts.pop(item.id, None)
                self._tell(GivenUp(item.id, item.run_id, item.message, _describe(exc)))
                return _Outcome.GAVE_UP
        except Exception:
            log.exception("courier.failure_not_recorded")
        return _Outcome.LATER

    def _later(self, item: Pending, error: str, delay: float) -> _Outcome:
        if self._deliveries.failed(
            item.id, error, delay_s=delay, deadline_s=self._deadline, sent=False
        ):
            log.warning("courier.gave_up", error=error, after="deadline")
            self._tell(GivenUp(item.id, item.run_id, item.message, error))
            return _Outcome.GAVE_UP
        return _Outcome.LATER

    def _give_up(
        self,
        item: Pending,
        error: str,
        *,
        refused_channel: str | None = None,
        follows: bool = False,
    ) -> _Outcome:
        self._deliveries.give_up(item.id, error)
        log.warning("courier.gave_up", error=error)
        self._tell(GivenUp(item.id, item.run_id, item.message, error, refused_channel, follows))
        return _Outcome.GAVE_UP

    def _tell(self, given_up: GivenUp) -> None:
        if self._on_given_up is None:
            return
        try:
            self._on_given_up(given_up)
        except Exception:
            log.exception("courier.given_up_not_handled")

    def _channel_of(self, item: Pending) -> str | None:
        if item.message.action == "post":
            return item.message.channel
        where = self._deliveries.slack_message(item.run_id, item.message.role)
        return where[0] if where else None

    def _send(self, item: Pending, mark: Callable[[], None]) -> tuple[str, str]:
        """Make the call; (channel, ts) where Slack put the message. `mark` comes just before."""
        message = item.message
        if message.action == "post":
            return self._post(item.run_id, message, mark)
        where = self._deliveries.slack_message(item.run_id, message.role)
        if where is None:
            raise NotPostedError(f"run {item.run_id} has no {message.role} message to act on")
        channel, ts = where
        mark()
        if message.action == "update":
            answer = self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
            return _where("chat.update", answer.data)
        if message.action == "reply":
            answer = self._client.chat_postMessage(
                channel=channel, thread_ts=ts, text=message.text, blocks=message.blocks
            )
            return _where("chat.postMessage", answer.data)
        self._client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            content=message.content or "",
            filename=message.filename or "rollback.sql",
            title=message.filename,
            initial_comment=message.text,
        )
        return channel, ""  # the file is shared in the thread; rollbot needs no ts for it

    def _post(self, run_id: int, message: Message, mark: Callable[[], None]) -> tuple[str, str]:
        blocks: list[dict[str, Any]] | None = message.blocks
        if message.link_to is not None:
            link = self._permalink(run_id, message.link_to)
            blocks = [
                {"type": "section", "text": {"type": "mrkdwn", "text": message.text}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]},
            ]
        mark()
        answer = self._client.chat_postMessage(
            channel=message.channel or "", text=message.text, blocks=blocks
        )
        return _where("chat.postMessage", answer.data)

    def _permalink(self, run_id: int, role: Role) -> str:
        where = self._deliveries.slack_message(run_id, role)
        if where is None:
            return "request thread: not posted"
        try:
            answer = self._client.chat_getPermalink(channel=where[0], message_ts=where[1])
            return f"<{answer['permalink']}|request thread>"
        except (SlackApiError, KeyError) as exc:  # a link is a nicety; the post matters
            log.warning("courier.no_permalink", error=_describe(exc))
            return "request thread: link unavailable"


def _where(method: str, answer: object) -> tuple[str, str]:
    """(channel, ts) from Slack's answer, which must name both."""
    body = answer if isinstance(answer, dict) else {}
    channel, ts = body.get("channel"), body.get("ts")
    missing = [name for name, value in (("channel", channel), ("ts", ts)) if not value]
    if missing or not isinstance(channel, str) or not isinstance(ts, str):
        raise MalformedAnswerError(texts.answer_without(method, missing or ["channel", "ts"]))
    return channel, ts


def _may_have_posted(exc: Exception) -> bool:
    """Whether Slack may have acted on a call that raised `exc` (the answer was lost)."""
    if isinstance(exc, MalformedAnswerError):
        return True
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "")).startswith(_NOT_JSON)
    if isinstance(exc, URLError) and not isinstance(exc.reason, str):
        return isinstance(exc.reason, TimeoutError | ConnectionResetError | RemoteDisconnected)
    return isinstance(
        exc, TimeoutError | ConnectionResetError | RemoteDisconnected | IncompleteRead
    )


def _lane(item: Pending) -> _Lane:
    """What a message must stay in order with: its post, its edits, or its thread."""
    action = item.message.action
    kind = "post" if action == "post" else "edit" if action == "update" else "thread"
    return item.run_id, item.message.role, kind


def _waits_on(item: Pending) -> list[_Lane]:
    """Its own lane, the post it edits or replies to, and the message it links to."""
    lanes = [_lane(item), (item.run_id, item.message.role, "post")]
    if item.message.link_to is not None:
        lanes.append((item.run_id, item.message.link_to, "post"))
    return lanes


def _superseded(item: Pending, later: list[Pending]) -> bool:
    """An edit followed by a newer edit of the same message need not be sent."""
    return item.message.action == "update" and any(
        o.run_id == item.run_id
        and o.message.action == "update"
        and o.message.role == item.message.role
        for o in later
    )


def _backoff(attempts: int) -> float:
    """Exponential, capped, with jitter so that many stuck messages do not retry in step."""
    base = min(_BACKOFF_CAP_S, 2.0 ** min(attempts, 12))
    return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


def _describe(exc: BaseException) -> str:
    """What went wrong, short and with anything credential-shaped masked."""
    said = exc.what if isinstance(exc, RollbotError) else f"{type(exc).__name__}: {exc}"
    text = redact(" ".join(said.split()))
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"
