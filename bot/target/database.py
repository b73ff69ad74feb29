"""One target database, and the only way rollbot connects to it.

Every connection to a target goes through `TargetDatabase.connect`, so each one has the
configured connect timeout, an `application_name` that says what rollbot is doing (what a DBA
sees in `pg_stat_activity`), and failures that name the target but never its password. The
object is built once per target when rollbot starts and handed to the use cases, which never
see a driver.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from bot.core.errors import DatabaseUnavailableError
from bot.target.catalog import describe_target, read_facts
from bot.target.journal import read_journal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import timedelta

    from bot.core.facts import Facts, Target
    from bot.core.journal import JournalRow
    from bot.core.runbook import Runbook
    from bot.core.targets import TargetConfig


class TargetDatabase:
    """A configured target: its name, how to reach it, and the facts read from it."""

    def __init__(
        self,
        config: TargetConfig,
        *,
        connect_timeout: timedelta,
        journal_schema: str,
        journal_table: str,
    ) -> None:
        self.config = config
        self.name = config.name
        self._timeout = max(1, int(connect_timeout.total_seconds()))
        self._journal = (journal_schema, journal_table)

    @property
    def conninfo(self) -> str:
        """The secret connection string, for the client tools' environment only."""
        return self.config.url.get_secret_value()

    @contextmanager
    def connect(
        self, purpose: str, *, autocommit: bool = False, read_only: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection named `rollbot <purpose>`; unreachable becomes DatabaseUnavailableError."""
        try:
            conn = psycopg.connect(
                self.conninfo,
                connect_timeout=self._timeout,
                application_name=f"rollbot {purpose}",
                autocommit=autocommit,
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(
                f"Target {self.name} cannot be reached",
                why=type(exc).__name__,
                todo=f"check the connection of target {self.name} (DATABASE_URL or "
                "ROLLBOT_TARGETS) and that the server is up; nothing was changed",
            ) from None
        with conn:
            if read_only:
                conn.read_only = True
            yield conn

    def journal_rows(self) -> list[JournalRow] | None:
        """Drizzle's journal rows, or None when the target has no journal table."""
        with self.connect("history", read_only=True) as conn:
            return self._read_journal(conn)

    def plan_facts(
        self, runbook: Runbook, *, count_budget: timedelta | None
    ) -> tuple[Facts, list[JournalRow] | None]:
        """What a plan is built on, read in one read-only connection: catalog facts and journal."""
        with self.connect("plan", read_only=True) as conn:
            described: Target = describe_target(conn, name=self.name)
            rows = self._read_journal(conn)
            facts = read_facts(conn, runbook, described, count_budget=count_budget)
        return facts, rows

    def _read_journal(self, conn: psycopg.Connection[Any]) -> list[JournalRow] | None:
        schema, table = self._journal
        return read_journal(conn, schema=schema, table=table)
