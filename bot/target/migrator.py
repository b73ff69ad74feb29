"""Drizzle's PostgreSQL migrator, reproduced faithfully: the folder applied to a database.

Test, demo and scratch databases are built the way Drizzle builds them, so that a rollback is
checked against the journal Drizzle itself would leave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from bot.drizzle.folder import JOURNAL_SCHEMA, JOURNAL_TABLE

if TYPE_CHECKING:
    import psycopg

    from bot.drizzle.folder import Migration


def _journal_table() -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(JOURNAL_SCHEMA), sql.Identifier(JOURNAL_TABLE))


def migrate(conn: psycopg.Connection[Any], migrations: list[Migration]) -> list[str]:
    """Apply what Drizzle would apply, in one transaction; return the tags applied.

    Drizzle compares each migration's `when` with the `created_at` of the newest journal row
    only, read once before applying. That rule (not "is this hash recorded?") decides what is
    pending, and a rollback that forgets to delete the journal row makes Drizzle skip the
    migration forever; mirroring the rule exactly is what lets tests catch that.
    """
    with conn.transaction():
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(JOURNAL_SCHEMA))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)"
            ).format(_journal_table())
        )
        newest = conn.execute(
            sql.SQL("SELECT created_at FROM {} ORDER BY created_at DESC LIMIT 1").format(
                _journal_table()
            )
        ).fetchone()
        last = None if newest is None or newest[0] is None else int(newest[0])
        applied = []
        for migration in migrations:
            if last is not None and migration.when <= last:
                continue
            for statement in migration.statements:
                # The file is trusted DDL from our own package; bytes skip psycopg's
                # literal-string typing, and without parameters nothing is interpolated.
                conn.execute(statement.encode())
            conn.execute(
                sql.SQL("INSERT INTO {} (hash, created_at) VALUES (%s, %s)").format(
                    _journal_table()
                ),
                (migration.hash, migration.when),
            )
            applied.append(migration.tag)
    return applied
