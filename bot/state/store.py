"""Where runs live: PostgreSQL, so that nothing a run needs is held in memory.

Every state change is a compare-and-set (`UPDATE … WHERE id = … AND state = …`) committed
together with its audit event and the messages announcing it, before anyone is told about it.
The messages are rendered by the caller from the moved run before the write: nothing here
calls back out while a transaction is open. Zero rows updated means someone else moved the
run first, and the caller gets a ConflictError instead of acting twice.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
from pydantic import BaseModel

from bot.core.dbfailures import connection_cause, denied_object, privilege_error
from bot.core.errors import ConflictError, DatabaseUnavailableError, NotFoundError, PrivilegeError
from bot.core.plan import Plan
from bot.core.redact import Redactor
from bot.core.restore import RestorePlan
from bot.core.run import RESTORE_KINDS, AuditEvent, Run, changed_fields, next_state
from bot.core.states import ACTIVE, RunEvent, RunState
from bot.state.schema import MIGRATIONS

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager
    from datetime import datetime

    from bot.core.outbox import Message

log = structlog.get_logger()

STATE_SCHEMA = "rollbot"


def _os_user() -> str:
    """The operating system's user of this process: a CLI's identity flags are only recorded.

    `--as U02BOB` proves nothing; the login that typed it is what an auditor can follow up.
    """
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container UID)
        return f"uid {os.getuid()}"


def _process() -> dict[str, str]:
    """Which process writes an event: with replicas and CLI commands, who acted is half the story.

    Asked at each write, not once at import: a process forked after the import (a server that
    pre-forks workers) is another process and must not sign with its parent's pid.
    """
    return {"process": f"{socket.gethostname()}:{os.getpid()}", "os_user": _os_user()}


_LOCK_KEY = 0x526F6C6D  # serialises schema upgrades across replicas
_RUN_LOCK_CLASS = 0x526F6C72  # pg_advisory_lock(class, run id): a live process works on the run
_UNIQUE_VIOLATION = "23505"
ONCE_KINDS = frozenset({"approval_reminded"})  # run_events_once makes these once per run
_STAMPED = frozenset({"created_at", "updated_at"})  # the database's clock, not the caller's
# Columns written as given: keys that find runs again must never be rewritten, and a plan's SQL
# must be stored exactly as it will run (the planner blocks a plan holding a known secret, so
# masking the known secrets in it changes only plans that never run).
_KEYS = frozenset(
    {
        "id", "kind", "migration_id", "runbook_name", "target_name", "target_identity",
        "state", "requested_by", "channel", "approvers", "plan_hash", "xid", "expires_at",
    }
)  # fmt: skip
_MESSAGE_KEYS = frozenset({"action", "role", "channel", "link_to"})


class RunStore:
    """Runs and their audit trail, in the `rollbot` schema of the state database."""

    def __init__(
        self,
        conninfo: str,
        *,
        variable: str = "DATABASE_URL",
        timeout: float = 10.0,
        redactor: Redactor | None = None,
    ) -> None:
        self._variable = variable
        self._conninfo = conninfo
        # Set by `attach` when the schema is not there: reads answer as for a store with no runs.
        self._absent = False
        # Every run, event and message is cleaned as it is written: whatever a target, a
        # tool or Slack said, no secret is stored, so none can be shown from the store.
        self.redactor = redactor or Redactor([conninfo])
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=12,
            open=False,
            kwargs={
                "autocommit": True,
                "application_name": "rollbot store",
                "row_factory": dict_row,
            },
            name="rollbot-store",
            # A session the server ended while idle in the pool (a restart, an administrator's
            # pg_terminate_backend) is replaced on checkout instead of failing the next command.
            check=ConnectionPool.check_connection,
        )
        self._probe(timeout)
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise DatabaseUnavailableError(
                "The state database cannot be reached",
                why=f"no connection within {timeout:.0f} s",
                todo=f"check {variable} (host, port, credentials) and that the server is up",
            ) from exc

    def _probe(self, timeout: float) -> None:
        """One direct connection first: the pool only says "no connection within 10 s".

        A wrong port, a bad URL, a missing database or a refused password is named at once.
        """
        try:
            psycopg.connect(
                self._conninfo,
                connect_timeout=max(1, int(timeout)),
                application_name="rollbot store",
            ).close()
        except psycopg.Error as exc:
            cause = connection_cause(self.redactor.text(str(exc)), self._conninfo)
            raise DatabaseUnavailableError(
                f"The state database ({self._variable}) cannot be reached",
                why=cause.why,
                todo=f"{cause.todo}; nothing was changed",
                lasting=cause.lasting,
            ) from None

    def close(self) -> None:
        """Release every connection."""
        self._pool.close()

    def attach(self) -> bool:
        """Use the schema if it is there (upgraded if older); never create it.

        For the commands that only look: they must leave a database rollbot never wrote to as
        they found it. Without the schema every read answers as for a store with no runs, and
        False says there is nothing to settle either.
        """
        with self._connection() as conn:
            # The catalog, not to_regclass: a schema this role may not use must still be found,
            # so that the refusal (and its GRANT) is reported instead of "no runs yet".
            row = conn.execute(
                "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s) AS e", (STATE_SCHEMA,)
            ).fetchone()
        self._absent = not (row and row["e"])
        if self._absent:
            return False
        self.migrate()
        return True

    def migrate(self) -> int:
        """Create or upgrade the schema; safe to run from several processes at once."""
        schema = sql.Identifier(STATE_SCHEMA)
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
            # exists: a schema an administrator made for rollbot must not need that.
            exists = conn.execute(
                "SELECT to_regnamespace(%s) IS NOT NULL AS e", (STATE_SCHEMA,)
            ).fetchone()
            if not (exists and exists["e"]):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            versioned = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS e", (f"{STATE_SCHEMA}.schema_version",)
            ).fetchone()
            if not (versioned and versioned["e"]):
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {}.schema_version "
                        "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(schema)
                )
            row = conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) AS v FROM {}.schema_version").format(
                    schema
                )
            ).fetchone()
            current = int(row["v"]) if row else 0
            for version, ddl in MIGRATIONS:
                if version > current:
                    conn.execute(ddl.format(schema=schema.as_string(conn)).encode())
                    conn.execute(
                        sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(
                            schema
                        ),
                        (version,),
                    )
                    current = version
        return current

    def reserve_id(self) -> int:
        """A fresh run id, taken before the run exists so its announcement can name it.

        An id reserved and never used leaves a gap, as a failed insert always did.
        """
        with self._connection() as conn:
            row = conn.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS id", (f"{STATE_SCHEMA}.runs",)
            ).fetchone()
        if row is None:
            msg = "nextval returned no row"
            raise NotFoundError(msg)
        return int(row["id"])

    def create(self, run: Run, *, messages: Sequence[Message] = ()) -> Run:
        """Insert a new run in state `requested`, or point to the active one it duplicates.

        The run, its `requested` event and the messages announcing it are written in one
        transaction, so they exist together or not at all. Timestamps are the database's.
        """
        if run.state is not RunState.REQUESTED:
            msg = f"a new run starts as requested, not {run.state}"
            raise ValueError(msg)
        fields = {k: getattr(run, k) for k in Run.model_fields if k not in _STAMPED}
        columns = sql.SQL(", ").join(sql.Identifier(k) for k in fields)
        values = sql.SQL(", ").join(sql.Placeholder(k) for k in fields)
        query = sql.SQL("INSERT INTO {}.runs ({}) VALUES ({}) RETURNING *").format(
            sql.Identifier(STATE_SCHEMA), columns, values
        )
        params = {k: self._column(k, v) for k, v in fields.items()}
        try:
            with self._connection() as conn, conn.transaction():
                created = run_from_row(conn.execute(query, params).fetchone())
                self._event(
                    conn,
                    run_id=created.id,
                    kind="requested",
                    from_state=None,
                    to_state=created.state,
                    actor=run.requested_by,
                    data={},
                )
                self._insert_messages(conn, created.id, messages)
        except psycopg.errors.UniqueViolation:
            active = self.active_for(run.target_identity, run.migration_id)
            raise ConflictError(
                f"Migration {run.migration_id} already has an active rollback on "
                f"{run.target_label}"
                + (f": {active.label()}, {active.state.replace('_', ' ')}" if active else ""),
                todo="follow that run (status, approve or cancel it) instead of starting another",
            ) from None
        return created

    def get(self, run_id: int) -> Run:
        """One run, or NotFoundError naming it."""
        row = None
        if not self._absent:
            with self._connection() as conn:
                query = sql.SQL("SELECT * FROM {}.runs WHERE id = %s")
                row = conn.execute(query.format(sql.Identifier(STATE_SCHEMA)), (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"There is no run {run_id}",
                todo="check the run number: each run's message and the list of runs show it",
            )
        return run_from_row(row)

    def recent(
        self,
        *,
        limit: int = 20,
        states: Sequence[RunState] | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[Run]:
        """Newest runs first, optionally only some states, one target, or created since."""
        if self._absent:
            return []
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT * FROM {}.runs"
                    " WHERE (%(states)s::text[] IS NULL OR state = ANY (%(states)s))"
                    " AND (%(target)s::text IS NULL OR target_name = %(target)s)"
                    " AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)"
                    " ORDER BY id DESC LIMIT %(limit)s"
                ).format(sql.Identifier(STATE_SCHEMA)),
                {
                    "states": [s.value for s in states] if states else None,
                    "target": target,
                    "since": since,
                    "limit": limit,
                },
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def with_backups(self) -> list[Run]:
        """Every run that recorded a backup, and every restore (which says what is restored).

        Retention is decided over all of them: a file is only ever judged against the whole
        history of its target, never a page of it.
        """
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT * FROM {}.runs"
                    " WHERE kind = 'restore' OR backup IS NOT NULL"
                    " OR jsonb_typeof(outcome -> 'final_backup') = 'object'"
                    " ORDER BY id DESC"
                ).format(sql.Identifier(STATE_SCHEMA))
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def record_pruned(
        self, run: Run, *, kind: str, path: str, reason: str, actor: str, at: datetime
    ) -> Run:
        """Mark one of a run's backups as pruned, with an audit event, before the file goes.

        Stored first, so that no moment exists in which the file is gone and the run still
        claims it; a file that then fails to go is reported, and stays marked. Only while the
        run is still in the state it was read in (a compare-and-set), like every write here.
        """
        changes: dict[str, Any] = {}
        if kind == "final" and run.outcome is not None and run.outcome.final_backup is not None:
            final = run.outcome.final_backup.model_copy(update={"pruned_at": at})
            changes["outcome"] = run.outcome.model_copy(update={"final_backup": final})
        elif run.backup is not None:
            full = run.backup.full.model_copy(update={"pruned_at": at})
            changes["backup"] = run.backup.model_copy(update={"full": full})
        else:
            msg = f"{run.label()} has no {kind} backup to mark as pruned"
            raise ValueError(msg)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in changes
        )
        params = {k: self._column(k, v) for k, v in changes.items()}
        params |= {"_id": run.id, "_from": run.state.value, "_at": run.updated_at}
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "UPDATE {}.runs SET {}, updated_at = now()"
                    " WHERE id = %(_id)s AND state = %(_from)s AND updated_at = %(_at)s"
                    " RETURNING *"
                ).format(sql.Identifier(STATE_SCHEMA), assignments),
                params,
            ).fetchone()
            if row is None:
                raise ConflictError(
                    f"{run.label()} changed while its backups were being pruned",
                    todo="run the prune again; nothing was deleted",
                )
            self._event(
                conn,
                run_id=run.id,
                kind="backup_pruned",
                from_state=None,
                to_state=None,
                actor=actor,
                data={"backup": kind, "path": path, "reason": reason},
            )
        return run_from_row(row)

    def active_for(self, target_identity: str, migration_id: str) -> Run | None:
        """The active run for this migration on this target, if any."""
        with self._connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT * FROM {}.runs WHERE target_identity = %s AND migration_id = %s"
                    " AND state = ANY (%s) ORDER BY id DESC LIMIT 1"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (target_identity, migration_id, sorted(s.value for s in ACTIVE)),
            ).fetchone()
        return run_from_row(row) if row else None

    def move(
        self,
        run: Run,
        moved: Run,
        event: RunEvent,
        *,
        actor: str | None,
        data: dict[str, Any] | None = None,
        messages: Sequence[Message] = (),
        exact: bool = False,
    ) -> Run:
        """Write a move computed by `transition`: compare-and-set, audit row and messages.

        With `exact`, the compare is on the whole run as read (its `updated_at`), not only on
        its state.

        Only what the move changed is written, and only if the run is still in the state the
        move started from; otherwise ConflictError, and neither the event nor the messages
        are stored. The database stamps `updated_at`, as for every write.
        """
        if moved.id != run.id or moved.state is not next_state(run.state, event):
            msg = f"{moved.label()} as {moved.state} is not {run.label()} after {event}"
            raise ValueError(msg)
        updates = changed_fields(run, moved) | {"state": moved.state}
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in updates
        )
        query = sql.SQL(
            "UPDATE {}.runs SET {}, updated_at = now()"
            " WHERE id = %(_id)s AND state = %(_from)s"
            " AND (NOT %(_exact)s OR updated_at = %(_at)s) RETURNING *"
        ).format(sql.Identifier(STATE_SCHEMA), assignments)
        params = {k: self._column(k, v) for k, v in updates.items()}
        params |= {
            "_id": run.id,
            "_from": run.state.value,
            "_exact": exact,
            "_at": run.updated_at,
        }
        with self._connection() as conn, conn.transaction():
            row = conn.execute(query, params).fetchone()
            if row is None:
                current = self._state(conn, run.id)
                raise ConflictError(
                    f"{run.label()} was already moved on: it is now {current.replace('_', ' ')}",
                    todo="nothing was done twice; check its status",
                )
            self._event(
                conn,
                run_id=run.id,
                kind=event.value,
                from_state=run.state,
                to_state=moved.state,
                actor=actor,
                data=data or {},
            )
            self._insert_messages(conn, run.id, messages)
        return run_from_row(row)

    def add_approval(self, run: Run, user: str, *, messages: Sequence[Message] = ()) -> Run:
        """Record one approver, atomically: same state, same plan, same approvers so far.

        The approvers are compared too, because the messages were rendered from them: an
        approval racing another one is refused here and retried by the caller on the new run.
        """
        query = sql.SQL(
            "UPDATE {}.runs SET approvers = array_append(approvers, %(user)s), updated_at = now()"
            " WHERE id = %(id)s AND state = 'awaiting_approval' AND plan_hash = %(hash)s"
            " AND approvers = %(before)s::text[] AND NOT %(user)s = ANY (approvers) RETURNING *"
        ).format(sql.Identifier(STATE_SCHEMA))
        params = {"user": user, "id": run.id, "hash": run.plan_hash, "before": list(run.approvers)}
        with self._connection() as conn, conn.transaction():
            row = conn.execute(query, params).fetchone()
            if row is None:
                raise ConflictError(
                    f"The approval by {user} of {run.label()} was not recorded",
                    why="the run moved on, or this approval was already counted",
                    todo="check its status",
                )
            self._event(
                conn,
                run_id=run.id,
                kind="approval_added",
                from_state=None,
                to_state=None,
                actor=user,
                data={},
            )
            self._insert_messages(conn, run.id, messages)
        return run_from_row(row)

    def record_refusal(
        self, run_id: int, actor: str, why: str, messages: Sequence[Message] = ()
    ) -> bool:
        """Record a refusal and its messages unless this person got this answer already.

        Atomic (a unique index), so two reactions racing are still answered once.
        """
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {}.run_events (run_id, kind, actor, data)"
                    " VALUES (%s, 'approval_refused', %s, %s)"
                    " ON CONFLICT (run_id, actor, (data ->> 'why'))"
                    " WHERE kind = 'approval_refused' DO NOTHING RETURNING id"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (run_id, actor, Jsonb({"why": self.redactor.text(why)} | _process())),
            ).fetchone()
            if row is None:
                return False
            self._insert_messages(conn, run_id, messages)
        return True

    def record_once(
        self, run: Run, kind: str, *, actor: str, messages: Sequence[Message] = ()
    ) -> bool:
        """Record a one-off note about a run and its messages, if none was recorded before.

        Only while the run is still in the state it was read in (a compare-and-set on the
        run), and only once per run and kind (a unique index): two replicas deciding at the
        same moment, or a restart deciding again, store it and its messages once.
        """
        if kind not in ONCE_KINDS:
            msg = f"{kind} is not a once-per-run note (the unique index covers {ONCE_KINDS})"
            raise ValueError(msg)
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {schema}.run_events"
                    " (run_id, kind, from_state, to_state, actor, data)"
                    " SELECT id, %(kind)s, NULL, NULL, %(actor)s, %(data)s FROM {schema}.runs"
                    " WHERE id = %(id)s AND state = %(state)s"
                    " ON CONFLICT (run_id, kind) WHERE kind = 'approval_reminded' DO NOTHING"
                    " RETURNING id"
                ).format(schema=sql.Identifier(STATE_SCHEMA)),
                {
                    "kind": kind,
                    "actor": actor,
                    "id": run.id,
                    "state": run.state.value,
                    "data": Jsonb(_process()),
                },
            ).fetchone()
            if row is None:
                return False
            self._insert_messages(conn, run.id, messages)
        return True

    def update(
        self,
        run: Run,
        *,
        messages: Sequence[Message] = (),
        **changes: Any,  # noqa: ANN401
    ) -> Run:
        """Store facts about a run without moving it (e.g. its transaction id before COMMIT).

        `messages` (what tells of them) are stored in the same transaction.
        """
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in changes
        )
        query = sql.SQL(
            "UPDATE {}.runs SET {}, updated_at = now() WHERE id = %(_id)s AND state = %(_from)s"
            " RETURNING *"
        ).format(sql.Identifier(STATE_SCHEMA), assignments)
        params = {k: self._column(k, v) for k, v in changes.items()} | {
            "_id": run.id,
            "_from": run.state.value,
        }
        with self._connection() as conn, conn.transaction():
            row = conn.execute(query, params).fetchone()
            if row is None:
                raise ConflictError(f"{run.label()} was moved on by someone else")
            self._insert_messages(conn, run.id, messages)
        return run_from_row(row)

    def events(self, run_id: int) -> list[dict[str, Any]]:
        """The audit trail of one run, oldest first."""
        if self._absent:
            return []
        with self._connection() as conn:
            return conn.execute(
                sql.SQL(
                    "SELECT at, kind, from_state, to_state, actor, data FROM {}.run_events"
                    " WHERE run_id = %s ORDER BY id"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (run_id,),
            ).fetchall()

    def audit(self, run_id: int) -> list[AuditEvent]:
        """The audit trail of one run as typed events, oldest first (NotFound if no run)."""
        self.get(run_id)
        return [AuditEvent.model_validate(row) for row in self.events(run_id)]

    def add_message(self, run_id: int, message: Message) -> None:
        """One outbox message for a run that does not move (a delivery given up), cleaned."""
        with self._connection() as conn:
            self._insert_messages(conn, run_id, [message])

    def add_messages_while(self, run: Run, messages: Sequence[Message]) -> bool:
        """Store messages about a run that does not move, only while it is still in its state.

        A backup's progress edits the plan message; stored after a cancellation it would
        show the run backing up again, so the row lock and the state check come first.
        """
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                sql.SQL("SELECT 1 FROM {}.runs WHERE id = %s AND state = %s FOR SHARE").format(
                    sql.Identifier(STATE_SCHEMA)
                ),
                (run.id, run.state.value),
            ).fetchone()
            if row is None:
                return False
            self._insert_messages(conn, run.id, messages)
        return True

    def _insert_messages(
        self, conn: psycopg.Connection[Any], run_id: int, messages: Sequence[Message]
    ) -> None:
        for message in messages:
            conn.execute(
                sql.SQL("INSERT INTO {}.outbox (run_id, message) VALUES (%s, %s)").format(
                    sql.Identifier(STATE_SCHEMA)
                ),
                (run_id, Jsonb(self._clean(message.model_dump(mode="json", exclude_none=True)))),
            )

    @contextmanager
    def working_on(self, run_id: int) -> Iterator[None]:
        """Hold the run's liveness lock while this process moves, backs up or executes it.

        It is taken before the run enters an in-flight state (even before its row exists)
        and released after it leaves one, so a free lock on an in-flight run always means
        its process is gone: recovery needs no grace period. Never waits: a lock held by
        someone else means another process is already on this run.
        """
        with self._connection() as conn:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s::int) AS mine", (_RUN_LOCK_CLASS, run_id)
            ).fetchone()
            if not (row and row["mine"]):
                raise ConflictError(
                    f"Run {run_id} is being worked on by another rollbot process",
                    todo="nothing was done twice; check its status",
                )
            try:
                yield
            finally:
                try:
                    conn.execute(
                        "SELECT pg_advisory_unlock(%s, %s::int)", (_RUN_LOCK_CLASS, run_id)
                    )
                except psycopg.OperationalError:
                    # The session is gone, and a session's advisory locks go with it.
                    log.warning("store.liveness_lock_lost", run_id=run_id)

    def connection(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """A pooled autocommit connection (rows as dicts), for adapters sharing this store."""
        return self._connection()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection whose lost session or refused privilege explains itself.

        Every read and write of the state goes through here, so this is where the driver's
        errors become messages that name the state database, the object and the fix.
        """
        try:
            with self._pool.connection() as conn:
                try:
                    yield cast("psycopg.Connection[dict[str, Any]]", conn)
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise self._refused(conn, exc) from None
        except PoolTimeout as exc:  # before OperationalError, which it is a kind of
            raise DatabaseUnavailableError(
                f"The state database ({self._variable}) cannot be reached",
                why=str(exc),
                todo="check that the server is up and not out of connections",
            ) from None
        except PoolClosed:
            raise  # this process closed the store: a bug here, not the server's doing
        except psycopg.OperationalError as exc:
            cause = connection_cause(self.redactor.text(str(exc)), self._conninfo)
            raise DatabaseUnavailableError(
                f"The connection to the state database ({self._variable}) was lost",
                why=cause.why,
                todo=f"{cause.todo}; a run this command was on is "
                "settled by the next rollbot command or sweep, and `rollbot runs` shows it",
                lasting=cause.lasting,
            ) from None

    def _refused(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> PrivilegeError:
        message = self.redactor.text(exc.diag.message_primary or str(exc).strip())
        kind, name = denied_object(message) or ("schema", STATE_SCHEMA)
        row = conn.execute(
            "SELECT quote_ident(current_user) AS role, quote_ident(current_database()) AS db"
        ).fetchone()
        role, db = (str(row["role"]), str(row["db"])) if row else ("rollbot", name)
        also = (
            f"; rollbot keeps its runs in schema {STATE_SCHEMA} of {self._variable}'s database "
            f"and reads and writes every table in it (`GRANT SELECT, INSERT, UPDATE, DELETE ON "
            f"ALL TABLES IN SCHEMA {STATE_SCHEMA} TO {role};` and `GRANT USAGE ON ALL "
            f"SEQUENCES IN SCHEMA {STATE_SCHEMA} TO {role};`), or let role {role} own it"
        )
        if kind == "database":
            kind, objects, privileges = "database", [db], "CREATE"
            also = (
                f" (rollbot creates its schema {STATE_SCHEMA} on first use), or create it for "
                f"rollbot: `CREATE SCHEMA {STATE_SCHEMA} AUTHORIZATION {role};`"
            )
        elif kind == "schema":
            objects, privileges = [STATE_SCHEMA], "USAGE, CREATE"
        elif kind == "sequence":
            objects, privileges = [f"{STATE_SCHEMA}.{name}"], "USAGE"
        else:
            objects, privileges = [f"{STATE_SCHEMA}.{name}"], "SELECT, INSERT, UPDATE, DELETE"
        return privilege_error(
            f"The state database ({self._variable})",
            message,
            role=role,
            kind=kind,
            objects=objects,
            privileges=privileges,
            needed_for="rollbot keeps its runs there",
            also=also,
        )

    def _state(self, conn: psycopg.Connection[Any], run_id: int) -> str:
        row = conn.execute(
            sql.SQL("SELECT state FROM {}.runs WHERE id = %s").format(sql.Identifier(STATE_SCHEMA)),
            (run_id,),
        ).fetchone()
        return str(row["state"]) if row else "gone"

    def _event(
        self,
        conn: psycopg.Connection[Any],
        *,
        run_id: int,
        kind: str,
        from_state: RunState | None,
        to_state: RunState | None,
        actor: str | None,
        data: dict[str, Any],
    ) -> None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.run_events (run_id, kind, from_state, to_state, actor, data)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(sql.Identifier(STATE_SCHEMA)),
            (
                run_id,
                kind,
                from_state.value if from_state else None,
                to_state.value if to_state else None,
                actor,
                Jsonb(self._clean(json.loads(json.dumps(data | _process(), default=str)))),
            ),
        )

    def redact(self, text: str) -> str:
        """`text` as the store would keep it, for adapters writing to rollbot's schema."""
        return self.redactor.text(text)

    def _clean(self, value: dict[str, Any]) -> Any:  # noqa: ANN401 - JSON
        return self.redactor.value(value, keep=_MESSAGE_KEYS)

    def _column(self, name: str, value: Any) -> Any:  # noqa: ANN401
        """A run's column as stored: keys as given, the plan's known secrets masked.

        The rest (reasons, outcomes, rehearsals, backups) is cleaned whole.
        """
        adapted = _adapt(value)
        if name in _KEYS:
            return adapted
        if name == "plan":
            return Jsonb(self.redactor.value(adapted.obj, shapes=False))
        if isinstance(adapted, Jsonb):
            return Jsonb(self.redactor.value(adapted.obj))
        if isinstance(adapted, str):
            return self.redactor.text(adapted)
        return adapted


def _adapt(value: Any) -> Any:  # noqa: ANN401
    if isinstance(value, BaseModel):
        return Jsonb(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return Jsonb(json.loads(json.dumps(value, default=str)))
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, RunState):
        return value.value
    return value


def run_from_row(row: dict[str, Any] | None) -> Run:
    """A run from a `runs` row (shared with the deliveries, which join on runs).

    The JSON columns become their models here and nowhere else. Which plan a row holds is
    told by its kind, not guessed from the plan's keys: a restore plan and a rollback plan
    must never be mistaken for each other.
    """
    if row is None:
        msg = "expected a run row"
        raise NotFoundError(msg)
    plan = RestorePlan if row.get("kind") in RESTORE_KINDS else Plan
    return Run.model_validate({**row, "plan": plan.model_validate(row["plan"])})
