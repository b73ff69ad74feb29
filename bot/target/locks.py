"""Taking the locks a rollback needs, and who is in the way when they do not come.

When rollbot gives up on a lock the on-call engineer needs names, not "lock timeout": which
session, which application, how long it has been open and what it is doing. PostgreSQL only
knows the blockers while we wait, so a watcher on its own connection samples
`pg_blocking_pids()` during the wait and keeps the last answer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Self

import psycopg

from bot.core.durations import format_duration
from bot.core.errors import DatabaseUnavailableError
from bot.core.plan import ADVISORY_CLASS, ADVISORY_KEY
from bot.core.redact import mask_literals
from bot.core.results import Blocker

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

    from bot.target.database import TargetDatabase

_BLOCKERS = """
SELECT pid, coalesce(application_name, ''), coalesce(state, ''),
       extract(epoch FROM now() - coalesce(xact_start, query_start))::float8,
       left(coalesce(query, ''), 300)
FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids(%s)) ORDER BY pid
"""


class LockTimeoutError(Exception):
    """An attempt that could not get its locks in time."""

    def __init__(self, blockers: tuple[Blocker, ...], statement: str) -> None:
        super().__init__(statement)
        self.blockers = blockers
        self.statement = statement


_BLOCKERS_OF_APPLICATION = """
SELECT pid, coalesce(application_name, ''), coalesce(state, ''),
       extract(epoch FROM now() - coalesce(xact_start, query_start))::float8,
       left(coalesce(query, ''), 300)
FROM pg_stat_activity
WHERE pid IN (SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_stat_activity w
              WHERE w.application_name = %s AND w.datname = current_database())
  AND application_name IS DISTINCT FROM %s
ORDER BY pid
"""


class BlockerWatch:
    """Samples the sessions blocking `pid` (or every session named `application`) meanwhile.

    By name, because a backup's waits happen in pg_dump's own session, whose pid rollbot
    never learns; rollbot names all sessions of one task alike.
    """

    def __init__(
        self,
        target: TargetDatabase,
        pid: int | None = None,
        interval_s: float = 0.05,
        *,
        application: str | None = None,
    ) -> None:
        self._target = target
        self._query = _BLOCKERS if pid is not None else _BLOCKERS_OF_APPLICATION
        self._params: tuple[object, ...] = (pid,) if pid is not None else (application,) * 2
        self._interval = interval_s
        self._stop = threading.Event()
        self._seen: tuple[Blocker, ...] = ()
        self._thread = threading.Thread(target=self._watch, name="rollbot-blockers", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def blockers(self) -> tuple[Blocker, ...]:
        """The last non-empty set of blockers seen."""
        return self._seen

    def _watch(self) -> None:
        try:
            with self._target.connect("lock watch", autocommit=True) as conn:
                while not self._stop.wait(self._interval):
                    rows = conn.execute(self._query, self._params).fetchall()
                    if rows:
                        self._seen = tuple(_blocker(row) for row in rows)
        except (psycopg.Error, DatabaseUnavailableError):
            return  # the watcher is best effort: the lock timeout still bounds the wait


def take_locks(
    conn: psycopg.Connection[Any],
    target: TargetDatabase,
    statement: str,
    *,
    bound: timedelta,
    statement_timeout: timedelta,
) -> None:
    """Take table locks within `bound` in all, noting who blocks us while we wait.

    PostgreSQL applies lock_timeout to each lock: a LOCK of eight tables whose holders let go
    in turn can wait eight times as long, and every application query queued behind it waits
    too. A statement_timeout of the same length around the LOCK bounds the whole acquisition;
    the plan's own statement_timeout is put back once the locks are held.
    """
    conn.execute(_set_statement_timeout(bound))
    with BlockerWatch(target, conn.info.backend_pid) as watch:
        try:
            conn.execute(statement.encode())
        except (
            psycopg.errors.LockNotAvailable,
            psycopg.errors.QueryCanceled,
            # Chosen as a deadlock's victim while queuing (another plan's pg_dump holds one
            # table and waits for one we hold): the other side goes on, so a retry succeeds.
            psycopg.errors.DeadlockDetected,
        ):
            # The caller rolls back: to its savepoint (and tries again), or the transaction.
            raise LockTimeoutError(watch.blockers(), statement) from None
    conn.execute(_set_statement_timeout(statement_timeout))


def _set_statement_timeout(value: timedelta) -> bytes:
    # format_duration gives digits and a unit only, never a quote: safe to inline.
    return f"SET LOCAL statement_timeout = '{format_duration(value)}'".encode()


def _blocker(row: tuple[Any, ...]) -> Blocker:
    pid, application, state, age, query = row
    return Blocker(
        pid=pid,
        application=application,
        state=state,
        age_s=age or 0.0,
        query=mask_literals(str(query)),
    )


def advisory_holder(conn: psycopg.Connection[Any]) -> str:
    """Which session holds rollbot's per-database advisory lock (its application names the run)."""
    row = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l"
        " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (ADVISORY_CLASS, ADVISORY_KEY),
    ).fetchone()
    if row is None:
        return "a session that has since finished"
    pid, application = row
    return f"{application or 'a session'} (pid {pid})"
