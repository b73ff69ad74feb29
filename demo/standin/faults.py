"""Failures a test asks for: Slack errors on chosen calls, or Slack being unreachable.

The bot's retry and outbox logic only runs when Slack misbehaves, so the stand-in must be able
to misbehave on cue, for a given number of calls, and then recover.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, TypeAlias

from demo.standin.methods import Reply

Outage: TypeAlias = Literal["disconnect", "503"]


@dataclass
class _Script:
    error: str
    status: int
    retry_after: int | None
    remaining: int


class Faults:
    """Scripted errors per method, and an outage switch; safe to change while serving."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[_Script]] = {}
        self._outage: Outage | None = None

    def script(
        self, method: str, error: str, *, status: int, retry_after: int | None, times: int
    ) -> None:
        """Answer the next `times` calls of `method` with `error`, after any earlier scripts."""
        with self._lock:
            self._scripts.setdefault(method, []).append(_Script(error, status, retry_after, times))

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
        """No more scripted errors, no outage."""
        with self._lock:
            self._scripts.clear()
            self._outage = None

    def take(self, method: str, *, as_json: bool) -> Reply | None:
        """The scripted answer for this call of `method`, using it up; None if none is due."""
        with self._lock:
            queue = self._scripts.get(method)
            if not queue:
                return None
            script = queue[0]
            script.remaining -= 1
            if script.remaining <= 0:
                queue.pop(0)
        headers: tuple[tuple[str, str], ...] = ()
        if script.retry_after is not None:
            headers = (("Retry-After", str(script.retry_after)),)
        body = {"ok": False, "error": script.error} if as_json else script.error
        return Reply(script.status, body, headers)
