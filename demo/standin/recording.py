"""The log of calls the stand-in received, and waiting for one to arrive.

Bolt acknowledges a request first and calls the Web API afterwards from a worker thread, so a
test cannot look for the call right after sending a command: it has to wait for it. Waiting
is done on a condition variable, not by sleeping, so a test takes as long as the bot does.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from demo.standin.model import Call

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.standin.model import JSON


class CallLog:
    """Every call, in arrival order; safe to append from server threads while tests read."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._changed = threading.Condition()

    def add(
        self,
        method: str,
        params: JSON,
        headers: dict[str, str],
        status: int,
        response: JSON | str | None,
        *,
        fault: str | None = None,
        raw: bytes = b"",
    ) -> Call:
        """Record a call and wake whoever waits for one."""
        with self._changed:
            call = Call(
                seq=len(self._calls) + 1,
                method=method,
                params=params,
                headers=headers,
                at=time.time(),
                status=status,
                response=response,
                fault=fault,
                raw=raw,
            )
            self._calls.append(call)
            self._changed.notify_all()
            return call

    def calls(self, method: str | None = None, *, since: int = 0) -> list[Call]:
        """Calls of one method (or all), oldest first, after the first `since` calls."""
        with self._changed:
            return [c for c in self._calls[since:] if method is None or c.method == method]

    def mark(self) -> int:
        """How many calls there are now, to pass as `since` and ignore what came before."""
        with self._changed:
            return len(self._calls)

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> Call:
        """The first call of `method` (after `since`) that satisfies `predicate`, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for call in self._calls[since:]:
                    if call.method == method and (predicate is None or predicate(call)):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{c.method} -> {c.status} {c.error or 'ok'}" for c in self._calls]
                    raise TimeoutError(
                        f"no matching {method} call within {timeout:.1f}s; calls so far: {seen}"
                    )
                self._changed.wait(remaining)
