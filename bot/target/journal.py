"""Drizzle's journal table as it stands in a target: the rows, read with their optional columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from bot.core.journal import JournalRow
from bot.drizzle.folder import JOURNAL_SCHEMA, JOURNAL_TABLE

if TYPE_CHECKING:
    import psycopg

# The columns every journal has, then the ones drizzle-orm v1 adds; read when present.
_BASE_COLUMNS = ("id", "hash", "created_at")
_V1_COLUMNS = ("name", "applied_at")


def read_journal(
    conn: psycopg.Connection[Any],
    *,
    schema: str = JOURNAL_SCHEMA,
    table: str = JOURNAL_TABLE,
) -> list[JournalRow] | None:
    """Every journal row in id order, or None when the journal table does not exist."""
    present = {
        str(name)
        for (name,) in conn.execute(
            "SELECT a.attname FROM pg_catalog.pg_attribute AS a"
            " JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid"
            " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s"
            " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
            (schema, table),
        )
    }
    if not present:
        return None
    columns = [*_BASE_COLUMNS, *(c for c in _V1_COLUMNS if c in present)]
    query = sql.SQL("SELECT {} FROM {}.{} ORDER BY id").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    with conn.cursor(row_factory=dict_row) as cursor:
        return [JournalRow.model_validate(row) for row in cursor.execute(query)]
