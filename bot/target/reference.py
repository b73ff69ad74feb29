"""The schema at N-1, rebuilt by replaying the migrations folder on a scratch database.

The folder is the one account of what Drizzle's schema is at each migration that does not
depend on the target's history: replaying migrations 0…N-1 exactly as Drizzle's migrator does
(`bot.target.migrator`) builds what `drizzle-kit migrate` would build, and so what a rollback
of N must leave. The replay runs as a throwaway role when rollbot may create one (as the
rehearsal does), in a database of its own that is dropped at once; only the catalog read from
it is kept, in memory, keyed by the hash of the migrations replayed and the server's major
version (a catalog renders differently across majors). The next plan of the same rollback, or
of any rollback to the same N-1, reuses it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

import psycopg
import structlog

from bot.core.durations import format_duration
from bot.target.database import TargetUnreachableError, postgres_message
from bot.target.migrator import migrate
from bot.target.schema import read_schema
from bot.target.scratch import (
    ScratchRefusedError,
    as_throwaway,
    create_role,
    create_scratch,
    drop_role,
    drop_scratch,
    scratch_lease,
    throwaway_password,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from bot.core.schema import Schema
    from bot.drizzle.folder import Migration
    from bot.target.database import TargetDatabase

log = structlog.get_logger()
# How long replaying the chain may take: seconds for a real chain on an empty database.
REPLAY_LIMIT = timedelta(minutes=3)
PURPOSE = "reference"


@dataclass(frozen=True)
class Reference:
    """The schema at N-1, or why it could not be built (`skipped`)."""

    label: str  # "0022", or "no migration" for the first one's rollback
    schema: Schema | None
    forward: Schema | None = None  # the schema at N, to tell the chain's objects from others
    exclude: tuple[str, ...] = ()  # schemas left out of both sides (rollbot's, the journal's)
    skipped: str | None = None
    cached: bool = False
    built_s: float = 0.0


def content_hash(migrations: Sequence[Migration], server_major: int) -> str:
    """What the reference depends on: each replayed file, its `when`, and the server major."""
    digest = hashlib.sha256(f"server {server_major}\n".encode())
    for migration in migrations:
        digest.update(f"{migration.tag}\n{migration.when}\n{migration.hash}\n".encode())
    return digest.hexdigest()


class ReferenceCache:
    """References by content hash, for the life of the process; `builds` counts replays."""

    def __init__(self) -> None:
        self._schemas: dict[str, tuple[Schema, Schema]] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def reference(
        self,
        server: TargetDatabase,
        migrations: Sequence[Migration],
        *,
        label: str,
        exclude: Sequence[str],
        name_prefix: str = "rollbot_reference",
    ) -> Reference:
        """The schemas at N-1 and N that `migrations` (0…N) build on `server`'s server.

        From the cache when they are there.
        """
        try:
            major = _server_major(server)
        except TargetUnreachableError as exc:
            why = f"the server cannot be reached ({exc.message})"
            return Reference(label=label, schema=None, skipped=why, exclude=tuple(exclude))
        key = content_hash(migrations, major) + "\n" + ",".join(sorted(exclude))
        with self._lock:
            cached = self._schemas.get(key)
        if cached is not None:
            previous, forward = cached
            return Reference(
                label=label, schema=previous, forward=forward, cached=True, exclude=tuple(exclude)
            )
        started = time.monotonic()
        self.builds += 1
        built, skipped = build(server, migrations, exclude=exclude, name_prefix=name_prefix)
        if built is not None:
            with self._lock:
                self._schemas[key] = built
        return Reference(
            label=label,
            schema=built[0] if built else None,
            forward=built[1] if built else None,
            skipped=skipped,
            exclude=tuple(exclude),
            built_s=time.monotonic() - started,
        )


def build(
    server: TargetDatabase,
    migrations: Sequence[Migration],
    *,
    exclude: Sequence[str],
    name_prefix: str,
    limit: timedelta = REPLAY_LIMIT,
) -> tuple[tuple[Schema, Schema] | None, str | None]:
    """Replay `migrations` (0…N) on a new scratch database, reading its schema at N-1 and at N.

    One replay gives both; the scratch database is dropped whatever happens.
    """
    with scratch_lease(server, name_prefix) as name:
        password = throwaway_password()
        refused = create_role(server, name, password)
        role = None if refused else name
        try:
            try:
                scratch = create_scratch(server, name, owner=role)
            except ScratchRefusedError as exc:
                return None, exc.reason
            # The migrations run in a session of the throwaway role's own (RESET ROLE in a
            # migration cannot reach rollbot's), or as rollbot where no role could be made.
            replay = as_throwaway(server, name, password) if role is not None else scratch
            watchdog: _Watchdog | None = None
            try:
                with (
                    _replay_session(replay, scratch) as conn,
                    _Watchdog(conn, limit) as watchdog,
                ):
                    migrate(conn, list(migrations[:-1]))
                    previous = read_schema(conn, exclude)
                    migrate(conn, list(migrations[-1:]))
                    forward = read_schema(conn, exclude)
            except TargetUnreachableError as exc:
                return None, f"the scratch database cannot be reached ({exc.message})"
            except psycopg.Error as exc:
                if watchdog is not None and watchdog.fired:
                    return None, (
                        f"replaying the migrations took longer than {format_duration(limit)} "
                        "and was stopped (does a migration wait or loop?)"
                    )
                said = postgres_message(exc, server.secrets)
                return None, f"replaying the migrations on a scratch database failed ({said})"
            finally:
                left = drop_scratch(server, name)
                if left is not None:
                    log.warning("reference.scratch_left", database=name, problem=left)
        finally:
            if role is not None:
                role_left = drop_role(server, name)
                if role_left is not None:
                    log.warning("reference.role_left", role=name, problem=role_left)
    return (previous, forward), None


class _Watchdog:
    """Cancels the replay's statements once `limit` has passed, until the replay is over.

    A migration runs on the scratch copy as it was written: one that sleeps, waits or loops
    there (on purpose or not) must not hold a plan, or a worker of `rollbot serve`, for good.
    A statement_timeout would not do: the migration's own SQL may change it.
    """

    def __init__(self, conn: psycopg.Connection[Any], limit: timedelta) -> None:
        self._conn = conn
        self._limit = limit.total_seconds()
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="reference-watchdog", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        if self._done.wait(self._limit):
            return
        self.fired = True
        while not self._done.is_set():
            with suppress(psycopg.Error):
                self._conn.cancel_safe(timeout=5)
            self._done.wait(0.5)


@contextmanager
def _replay_session(
    replay: TargetDatabase, scratch: TargetDatabase
) -> Iterator[psycopg.Connection[Any]]:
    """A session as the throwaway role; as rollbot's own if the server will not log it in."""
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(replay.connect(PURPOSE))
        except TargetUnreachableError as exc:
            if replay is scratch:
                raise
            log.warning("reference.role_login_refused", problem=exc.message)
            conn = stack.enter_context(scratch.connect(PURPOSE))
        yield conn


def _server_major(server: TargetDatabase) -> int:
    with server.connect(PURPOSE, autocommit=True) as conn:
        return conn.info.server_version // 10000
