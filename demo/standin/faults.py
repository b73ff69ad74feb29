"""Failures a test asks for: Slack errors on chosen calls, or Slack being unreachable.

The bot's retry and outbox logic only runs when Slack misbehaves, so the stand-in must be able
to misbehave on cue, for a given number of calls (or only for calls whose arguments match), and
then recover. Besides Slack's own error codes it can answer the way a busy or broken Slack
does: slowly, with bytes that are not JSON, or with `ok: true` and fields missing. A channel can
also be refused as a whole, as Slack refuses every call into a channel the bot is not in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from demo.standin.methods import Reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.standin.model import JSON

Outage: TypeAlias = Literal["disconnect", "503"]
FaultKind: TypeAlias = Literal["error", "garbage", "malformed", "slow"]
# Where a Web API call names its conversation(s).
CHANNEL_ARGS = ("channel", "channel_id", "channels")
GARBAGE = "<html><body>upstream request timeout</body></html>"


@dataclass
class Script:
    """One scripted misbehaviour, used up call by call."""

    kind: FaultKind
    remaining: int
    error: str = ""
    status: int = 200
    retry_after: int | None = None
    drop: tuple[str, ...] = ()  # `malformed`: top-level fields left out of a successful answer
    delay_s: float = 0.0  # `slow`: how long to wait before answering as usual
    match: Callable[[JSON], bool] | None = None  # only calls whose arguments satisfy it

    def reply(self, *, as_json: bool) -> Reply:
        """The answer for `error` and `garbage` (the other kinds answer as the method does)."""
        if self.kind == "garbage":
            return Reply(200, GARBAGE, content_type="text/html; charset=utf-8")
        headers: tuple[tuple[str, str], ...] = ()
        if self.retry_after is not None:
            headers = (("Retry-After", str(self.retry_after)),)
        body = {"ok": False, "error": self.error} if as_json else self.error
        return Reply(self.status, body, headers)

    def spoil(self, reply: Reply) -> Reply:
        """A successful answer with the `drop` fields left out (what `malformed` returns)."""
        if not isinstance(reply.body, dict) or not reply.body.get("ok"):
            return reply
        body = {k: v for k, v in reply.body.items() if k not in self.drop}
        return Reply(reply.status, body, reply.headers)


class Faults:
    """Scripted misbehaviour per method, refused channels and an outage switch.

    Safe to change while serving.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Script]] = {}
        self._refused: dict[str, str] = {}
        self._outage: Outage | None = None

    def add(self, method: str, script: Script) -> None:
        """Misbehave on the next calls of `method`, after any earlier scripts."""
        with self._lock:
            self._scripts.setdefault(method, []).append(script)

    def script(
        self, method: str, error: str, *, status: int, retry_after: int | None, times: int
    ) -> None:
        """Answer the next `times` calls of `method` with `error`, after any earlier scripts."""
        self.add(method, Script("error", times, error, status, retry_after))

    def refuse_channel(self, channel: str, error: str | None) -> None:
        """Answer every call naming `channel` with `error` (None lets the channel be again)."""
        with self._lock:
            if error is None:
                self._refused.pop(channel, None)
            else:
                self._refused[channel] = error

    def refusal(self, params: JSON) -> Reply | None:
        """Slack's answer to a call into a refused channel, or None."""
        with self._lock:
            refused = dict(self._refused)
        for key in CHANNEL_ARGS:
            for channel in str(params.get(key) or "").split(","):
                if channel in refused:
                    return Reply(200, {"ok": False, "error": refused[channel]})
        return None

    def set_outage(self, outage: Outage | None) -> None:
        """Start (or with None, end) an outage of every endpoint."""
        with self._lock:
            self._outage = outage

    @property
    def outage(self) -> Outage | None:
        """The outage in force, if any."""
        with self._lock:
            return self._outage

    def clear(self) -> None:
        """No more scripted misbehaviour, refused channels or outage."""
        with self._lock:
            self._scripts.clear()
            self._refused.clear()
            self._outage = None

    def take(self, method: str, params: JSON) -> Script | None:
        """The script for this call of `method` (the first that matches), using it up."""
        with self._lock:
            queue = self._scripts.get(method, [])
            for script in queue:
                if script.match is None or script.match(params):
                    script.remaining -= 1
                    if script.remaining <= 0:
                        queue.remove(script)
                    return script
        return None
