"""The rollback transaction itself, as both the real execution and the rehearsal send it.

A rehearsal only proves something if it sends what the execution will send, in the same way:
the plan's timeouts, the advisory lock, the runbook's statements exactly as planned, and the
check before COMMIT. Both drive this one runner on a connection of their own; what differs is
around it (the target's locks, final backup and COMMIT; the scratch copy and its ROLLBACK)
and how each reports a failure, so a failure is raised here with everything either needs.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from bot.core.verify import verification_problems
from bot.target.catalog import read_facts, relations
from bot.target.unfit import nulls_now, unfit_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.plan import Plan
    from bot.core.runbook import Runbook
    from bot.core.sql import Statement


class StatementFailedError(Exception):
    """Something the transaction sent failed; `statement` is set for the runbook's own SQL.

    `text` is what was sent, `error` PostgreSQL's (or the driver's) answer: the execution
    names the statement and keeps the SQLSTATE, the rehearsal shows the message.
    """

    def __init__(self, text: str, error: psycopg.Error, statement: Statement | None) -> None:
        super().__init__(text)
        self.text = text
        self.error = error
        self.statement = statement
        self.sqlstate = error.sqlstate

    @property
    def number(self) -> int | None:
        """Which of the runbook's statements failed, None for rollbot's own queries."""
        return self.statement.number if self.statement is not None else None

    @property
    def line(self) -> int | None:
        """The runbook line of the failing statement, None for rollbot's own queries."""
        return self.statement.line if self.statement is not None else None


class PlanTransaction:
    """One plan's transaction on one connection: sends the plan's SQL and checks the result."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        plan: Plan,
        runbook: Runbook,
        *,
        exclude_schemas: tuple[str, ...] = (),
    ) -> None:
        self.conn = conn
        self.plan = plan
        self.runbook = runbook
        self.script = plan.script
        self._exclude = exclude_schemas

    def send(self, text: str, statement: Statement | None = None) -> psycopg.Cursor[Any]:
        """Send one piece of planned SQL exactly as planned (bytes: nothing is interpolated)."""
        try:
            return self.conn.execute(text.encode())
        except psycopg.Error as exc:
            raise StatementFailedError(text, exc, statement) from None

    def scalar(self, query: str) -> Any:  # noqa: ANN401 - whatever the query returns
        """The first column of the first row, or None."""
        row = self.send(query).fetchone()
        return row[0] if row else None

    def counts(self, queries: tuple[str, ...]) -> list[int]:
        """The plan's count queries, in order."""
        return [int(self.scalar(query)) for query in queries]

    def neighbours_after(self, before: dict[int, str], after: dict[int, str]) -> list[int]:
        """The neighbours' counts again, each under the name it has now.

        A statement may rename a neighbour (a derived rollback renames a table back before
        re-adding its constraints): the planned query would then name a table that is gone,
        so the table is followed by its oid, and counted under its new name.
        """
        oids = {name: oid for oid, name in before.items()}
        counts = []
        for name, query in zip(self.plan.neighbours, self.script.count_neighbours, strict=True):
            now = after.get(oids.get(name, 0))
            renamed = now is not None and now != name
            counts.append(int(self.scalar(f"SELECT count(*) FROM {now}" if renamed else query)))
        return counts

    def begin(self) -> bool:
        """Set the plan's timeouts and ask for the per-database advisory lock; True if granted."""
        for setting in self.script.settings:
            self.send(setting)
        return bool(self.scalar(self.script.advisory_lock))

    def relations(self) -> dict[int, str]:
        """Every table, view and materialized view now, by oid (rollbot's schema left out)."""
        return relations(self.conn, self._exclude)

    def run_statements(self) -> None:
        """The runbook's statements, each failure named by its statement and line.

        A quarantined rollback first creates its quarantine schema, which the statements move
        what they would drop into.
        """
        if self.script.quarantine:
            self.send(self.script.quarantine)
        for statement, text in zip(self.runbook.statements, self.script.statements, strict=True):
            self._fits(statement)
            self.send(text, statement)

    def _fits(self, statement: Statement) -> None:
        """Before a cast back or a SET NOT NULL: lock its table, count the rows that fail it.

        PostgreSQL would fail on some of them but cut or round others without a word (a
        varchar's trailing spaces, a double precision's digits), so rows written since the
        plan counted none stop the transaction here, with their number. The lock is the
        one the ALTER takes.
        """
        for cast in statement.casts_back:
            rows = self._under_lock(
                statement, cast.namespace, cast.table, partial(unfit_now, cast=cast)
            )
            if rows:
                plural = rows != 1
                fit = (
                    f"{'hold' if plural else 'holds'} a value the enum does not have"
                    if cast.labels is not None
                    else f"{'do' if plural else 'does'} not fit {cast.type}"
                )
                error = psycopg.errors.NumericValueOutOfRange(
                    f"{rows} row{'s' * plural} of {cast.label()} written since the plan {fit}"
                )
                raise StatementFailedError(statement.sql, error, statement)
        for schema, table_name, column in statement.set_not_null:
            # The plan counted none; one written since would fail the statement with
            # PostgreSQL's words. Counted under the lock the ALTER takes, it says how many.
            count = partial(nulls_now, column=(schema, table_name, column))
            rows = self._under_lock(statement, schema, table_name, count)
            if rows:
                plural = rows != 1
                label = ".".join(filter(None, (schema, table_name, column)))
                null = psycopg.errors.NotNullViolation(
                    f"{rows} row{'s' * plural} of {label} written since the plan "
                    f"{'are' if plural else 'is'} NULL, so SET NOT NULL would fail"
                )
                raise StatementFailedError(statement.sql, null, statement)

    def _under_lock(
        self,
        statement: Statement,
        schema: str | None,
        table: str,
        count: Callable[[psycopg.Connection[Any]], int | None],
    ) -> int | None:
        """`count` run once the table holds the lock its ALTER takes; a failure names it."""
        name = sql.Identifier(*filter(None, (schema, table)))
        try:
            self.conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(name))
            return count(self.conn)
        except psycopg.Error as exc:
            raise StatementFailedError(statement.sql, exc, statement) from None

    def problems(
        self,
        tables: tuple[dict[int, str], dict[int, str]],
        neighbours: tuple[list[int], list[int]],
    ) -> list[str]:
        """The check before COMMIT: dropped objects gone, nothing else gone, neighbours intact.

        `tables` are `relations()` before and after the statements. Objects are compared by
        name, so this holds on a scratch copy whose oids differ from the target's.
        """
        facts = read_facts(self.conn, self.runbook, self.plan.target)
        return verification_problems(self.plan, facts, tables, neighbours)
