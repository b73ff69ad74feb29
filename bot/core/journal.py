"""Drizzle's journal as a plan sees it: its rows, what a rollback does to them, and the lint.

These are the values `bot.drizzle` computes from the migrations folder and the journal rows and
the plan carries; they live in the core so that the plan needs nothing from the rules that
made them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bot.core.names import always_quoted, quote_literal


class JournalRow(BaseModel):
    """One row of Drizzle's journal table."""

    model_config = ConfigDict(frozen=True)

    id: int
    hash: str
    # bigint and nullable in Drizzle's DDL. A NULL sorts first in its `ORDER BY created_at
    # DESC`, so such a row would make Drizzle re-run everything: kept, and reported.
    created_at: int | None
    name: str | None = None  # v1 journals only
    applied_at: datetime | None = None  # v1 journals only


class LintReport(BaseModel):
    """What the runbook leaves behind, and what it drops that the migration did not create."""

    model_config = ConfigDict(frozen=True)

    created_not_dropped: list[str]  # labels like "index users_team_idx", in migration order
    dropped_not_created: list[str]  # labels like "constraint fk on api_errors", in runbook order

    @property
    def clean(self) -> bool:
        """True when the runbook undoes exactly what the migration created."""
        return not self.created_not_dropped and not self.dropped_not_created


class JournalPlan(BaseModel):
    """What the rollback does to Drizzle's journal table, or why it cannot."""

    model_config = ConfigDict(frozen=True)

    schema_name: str
    table: str
    row: JournalRow | None = None  # the row to delete (and, on restore, to put back)
    blocker: str | None = None
    note: str | None = None

    def delete_sql(self) -> str | None:
        """The exact DELETE the rollback runs (id and hash both, so a changed row is missed)."""
        if self.row is None:
            return None
        # Whatever the hash holds (Drizzle writes hex, but the row is the database's): a plan
        # that says the row is deleted must delete it.
        return (
            f"DELETE FROM {always_quoted(self.schema_name, self.table)}"
            f" WHERE id = {int(self.row.id)} AND hash = {quote_literal(self.row.hash)}"
        )
