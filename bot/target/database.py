"""One target database, and the only way rollbot connects to it.

Every connection to a target goes through `TargetDatabase.connect`, so each one has the
configured connect timeout, an `application_name` that says what rollbot is doing (what a DBA
sees in `pg_stat_activity`), and failures that name the target but never its password. The
object is built once per target when rollbot starts and handed to the use cases, which never
see a driver. Scratch databases next to the target are reached through `sibling`, so they get
the same timeout and the same client tools, which are probed once per server and kept.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from bot.core.dbfailures import connection_cause, denied_object, privilege_error
from bot.core.errors import DatabaseUnavailableError, PrivilegeError
from bot.core.redact import mask_row_values, redact, secrets_of
from bot.core.targets import DEFAULT, TargetConfig
from bot.drizzle.folder import JOURNAL_SCHEMA, JOURNAL_TABLE
from bot.pgclient.conninfo import ChildConnection, child_connection
from bot.pgclient.tools import PgTools, find_pg_tools
from bot.target.catalog import describe_target, read_facts
from bot.target.journal import read_journal
from bot.target.locks import advisory_holder

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from bot.core.facts import Facts, Target
    from bot.core.journal import JournalRow
    from bot.core.runbook import Runbook

_TIMEOUT = timedelta(seconds=10)  # ROLLBOT_CONNECT_TIMEOUT's default


def postgres_message(exc: psycopg.Error, hidden: Iterable[str] = ()) -> str:
    """PostgreSQL's primary message (and detail), or the first line of a client-side error."""
    diag = exc.diag
    lines = str(exc).strip().splitlines()
    text = diag.message_primary or (lines[0] if lines else type(exc).__name__)
    if diag.message_detail:
        text += f" ({mask_row_values(diag.message_detail)})"
    return redact(text, hidden)


class TargetUnreachableError(DatabaseUnavailableError):
    """A connection to a target could not be opened.

    Callers that report in their own words (an execution outcome, a skipped rehearsal) need
    PostgreSQL's, so they are kept here, with the target's secrets already taken out.
    """

    def __init__(
        self, name: str, exc: psycopg.Error, hidden: Iterable[str], conninfo: str = ""
    ) -> None:
        cause = connection_cause(redact(str(exc), hidden), conninfo)
        super().__init__(
            f"Target {name} cannot be reached",
            why=cause.why,
            todo=f"{cause.todo}; target {name}'s URL is set in DATABASE_URL or "
            "ROLLBOT_TARGETS; nothing was changed",
            lasting=cause.lasting,
        )
        self.primary = redact(exc.diag.message_primary or type(exc).__name__, hidden)
        self.message = postgres_message(exc, hidden)
        self.sqlstate = exc.sqlstate


class _ToolBox:
    """The client tools found for a server, shared by a target and its scratch databases.

    Probing runs every candidate's `--version`: once per server major is enough, and a
    failure is not kept, so installing the tools takes effect without a restart.
    """

    def __init__(self, pg_bin: Path | None) -> None:
        self._pg_bin = pg_bin
        self._lock = threading.Lock()
        self._found: dict[int, PgTools] = {}

    def for_server(self, server_major: int) -> PgTools:
        with self._lock:
            if server_major not in self._found:
                self._found[server_major] = find_pg_tools(server_major, pg_bin=self._pg_bin)
            return self._found[server_major]


class TargetDatabase:
    """A configured target: its name, how to reach it, its client tools and its facts."""

    def __init__(
        self,
        config: TargetConfig,
        *,
        connect_timeout: timedelta,
        journal_schema: str = JOURNAL_SCHEMA,
        journal_table: str = JOURNAL_TABLE,
        pg_bin: Path | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._connect_timeout = connect_timeout
        self._timeout = max(1, int(connect_timeout.total_seconds()))
        self._journal = (journal_schema, journal_table)
        self._tools = _ToolBox(pg_bin)

    @classmethod
    def at(
        cls, conninfo: str, *, name: str = DEFAULT, connect_timeout: timedelta = _TIMEOUT
    ) -> TargetDatabase:
        """A target known only by its connection string (tools, tests, benchmarks)."""
        config = TargetConfig(name=name, url=SecretStr(conninfo))
        return cls(config, connect_timeout=connect_timeout)

    @property
    def conninfo(self) -> str:
        """The secret connection string, for a client tool's environment only (`child`)."""
        return self.config.url.get_secret_value()

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message about this database."""
        return secrets_of([self.conninfo])

    def sibling(
        self, dbname: str, *, user: str | None = None, password: str | None = None
    ) -> TargetDatabase:
        """Another database on the same server (a scratch copy): same timeout, same tools.

        With `user` and `password` its sessions log in as that role (a scratch copy's
        throwaway role), not as rollbot's; the password is a secret of the sibling's.
        """
        login = {"user": user, "password": password} if user is not None else {}
        url = SecretStr(make_conninfo(self.conninfo, dbname=dbname, **login))
        sibling = TargetDatabase(
            TargetConfig(name=f"{self.name}/{dbname}", url=url),
            connect_timeout=self._connect_timeout,
            journal_schema=self._journal[0],
            journal_table=self._journal[1],
        )
        sibling._tools = self._tools  # one server, one probe
        return sibling

    def tools(self, server_major: int) -> PgTools:
        """pg_dump and pg_restore for this server, probed on first use and then kept."""
        return self._tools.for_server(server_major)

    def child(self, purpose: str) -> ChildConnection:
        """How a client tool reaches this database: the password in its environment only."""
        return child_connection(self.conninfo, f"rollbot {purpose}", os.environ)

    @contextmanager
    def connect(
        self, purpose: str, *, autocommit: bool = False, read_only: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection named `rollbot <purpose>`; unreachable becomes TargetUnreachableError."""
        try:
            conn = psycopg.connect(
                self.conninfo,
                connect_timeout=self._timeout,
                application_name=f"rollbot {purpose}",
                autocommit=autocommit,
            )
        except psycopg.Error as exc:
            raise TargetUnreachableError(self.name, exc, self.secrets, self.conninfo) from None
        with conn:
            if read_only:
                conn.read_only = True
            yield conn

    @contextmanager
    def reading(self, purpose: str) -> Iterator[psycopg.Connection[Any]]:
        """A read-only connection whose refused reads name the object and the GRANT.

        Reading needs only SELECT on tables and USAGE on schemas, so a "permission denied"
        here always has one fix, which the error spells out (for the requester in Slack too)
        instead of a driver traceback.
        """
        with self.connect(purpose, read_only=True) as conn:
            try:
                yield conn
            except psycopg.errors.InsufficientPrivilege as exc:
                raise self._refused_read(conn, exc, purpose) from None

    def journal_rows(self) -> list[JournalRow] | None:
        """Drizzle's journal rows, or None when the target has no journal table."""
        with self.reading("history") as conn:
            return self._read_journal(conn)

    def plan_facts(
        self, runbook: Runbook, *, count_budget: timedelta | None
    ) -> tuple[Facts, list[JournalRow] | None]:
        """What a plan is built on, read in one read-only connection: catalog facts and journal."""
        with self.reading("plan") as conn:
            described: Target = describe_target(conn, name=self.name)
            rows = self._read_journal(conn)
            facts = read_facts(conn, runbook, described, count_budget=count_budget)
        return facts, rows

    def xact_status(self, xid: int) -> str | None:
        """`committed`, `aborted`, `in progress`, or None when the server no longer knows.

        Asked when a COMMIT's answer was lost (a dropped connection, a restart): None also
        when the server cannot be asked, since "unknown" is all rollbot can then say.
        """
        try:
            with self.connect("recovery", autocommit=True) as conn:
                row = conn.execute("SELECT pg_xact_status(%s::text::xid8)", (xid,)).fetchone()
        except (psycopg.Error, DatabaseUnavailableError):
            return None
        return str(row[0]) if row and row[0] else None

    def end_run_sessions(self, run_id: int) -> int:
        """End what a dead run's process left running here; how many sessions were ended.

        A process killed mid-execution leaves its backend queued on a lock or mid-statement
        until PostgreSQL notices the client is gone, and the application waits behind it
        meanwhile; "nothing changed" is only true once that session is gone. Only rollbot's
        own sessions of this run (named `rollbot run N`, and its final backup's) are ended.
        Each is waited for (up to 10 s): a session told to end is still aborting its
        transaction for a moment, and asked too early, PostgreSQL says "in progress".
        """
        try:
            with self.connect("recovery", autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND (application_name = %(name)s OR application_name LIKE %(prefix)s)",
                    {"name": f"rollbot run {run_id}", "prefix": f"rollbot run {run_id} %"},
                ).fetchall()
        except (psycopg.Error, DatabaseUnavailableError):
            return 0
        return sum(1 for (ended,) in rows if ended)

    def advisory_holder(self) -> str:
        """Which session holds rollbot's per-database advisory lock (its name says which run)."""
        with self.connect("lock holder", autocommit=True) as conn:
            return advisory_holder(conn)

    def _refused_read(
        self, conn: psycopg.Connection[Any], exc: psycopg.Error, purpose: str
    ) -> PrivilegeError:
        message = postgres_message(exc, self.secrets)
        kind, name = denied_object(message) or ("table", "?")
        conn.rollback()  # the failed statement aborted the transaction; the catalog is readable
        role = _scalar(conn, "SELECT quote_ident(current_user)", ())
        if kind == "schema":
            objects, privileges = [quote_ident(conn, name)], "USAGE"
        else:
            objects, privileges = _unreadable(conn, name, kind), "SELECT"
        return privilege_error(
            f"Target {self.name}",
            message,
            role=role,
            kind=kind,
            objects=objects or [name],
            privileges=privileges,
            needed_for=f"rollbot's {purpose} reads the catalog, Drizzle's journal and the "
            "row counts of every table the runbook changes",
        )

    def _read_journal(self, conn: psycopg.Connection[Any]) -> list[JournalRow] | None:
        schema, table = self._journal
        return read_journal(conn, schema=schema, table=table)


def quote_ident(conn: psycopg.Connection[Any], name: str) -> str:
    """A name as SQL needs it (the server's own quoting rules)."""
    return _scalar(conn, "SELECT quote_ident(%s)", (name,)) or name


def _scalar(conn: psycopg.Connection[Any], query: str, params: tuple[str, ...]) -> str:
    row = conn.execute(query.encode(), params).fetchone()
    return str(row[0]) if row and row[0] is not None else ""


def _unreadable(conn: psycopg.Connection[Any], name: str, kind: str) -> list[str]:
    """The qualified relations called `name` that the current role may not read.

    PostgreSQL names the refused relation without its schema; the catalog (readable by
    every role) says which schema's is meant.
    """
    query = (
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = %s AND NOT"
        + (
            " has_sequence_privilege(c.oid, 'SELECT')"
            if kind == "sequence"
            else " has_table_privilege(c.oid, 'SELECT')"
        )
        + " ORDER BY 1"
    )
    rows = conn.execute(query.encode(), (name,)).fetchall()
    return [str(r[0]) for r in rows]
