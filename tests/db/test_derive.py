"""Derived rollbacks run on real databases: they return the schema to the previous migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from bot.core.runbook import parse_runbook
from bot.drizzle.derive import derive_runbook
from bot.drizzle.folder import JOURNAL_SCHEMA, JOURNAL_TABLE, read_migrations
from bot.drizzle.journal import journal_row_for
from bot.target.journal import read_journal
from demo.sample import MIGRATIONS_DIR
from tests.fix_drizzle import REVERSIBLE, chain_migration, migrate_to, read_chain, schema_dump

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.drizzle.folder import Migration


def roll_back(conninfo: str, migration: Migration) -> None:
    """Run the derived runbook's statements (those between BEGIN and COMMIT) in one transaction."""
    book = parse_runbook(derive_runbook(migration), file=f"runbooks/{migration.tag}.md")
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())


def previous_id(migration_id: str) -> str | None:
    tags = [m.tag.split("_")[0] for m in read_chain()]
    position = tags.index(migration_id)
    return tags[position - 1] if position else None


@pytest.mark.parametrize("migration_id", REVERSIBLE)
def test_rollback_restores_the_previous_schema(
    migration_id: str, drizzle_db: Callable[[str | None], str]
) -> None:
    """Chain at N, then N's derived rollback, dumps the same schema as the chain at N-1."""
    rolled_back = drizzle_db(migration_id)
    before = schema_dump(rolled_back)
    roll_back(rolled_back, chain_migration(migration_id))
    after = schema_dump(rolled_back)
    assert after != before
    assert after == schema_dump(drizzle_db(previous_id(migration_id)))


def test_drizzle_reapplies_a_rolled_back_migration(
    drizzle_db: Callable[[str | None], str],
) -> None:
    """With its journal row deleted too, Drizzle applies the migration again without error."""
    conninfo = drizzle_db("0003")
    migration = chain_migration("0003")
    roll_back(conninfo, migration)
    with psycopg.connect(conninfo) as conn:
        row = journal_row_for(migration, read_journal(conn) or [])
        assert row is not None
        table = sql.Identifier(JOURNAL_SCHEMA, JOURNAL_TABLE)
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(table), (row.id,))
    assert migrate_to(conninfo, "0003") == [migration.tag]
    assert schema_dump(conninfo) == schema_dump(drizzle_db("0003"))


def test_0023_derived_rollback_restores_0022(db_0023: str, readonly_db_0022: str) -> None:
    """On asset_forge with its sample rows, the derived 0023 rollback leaves 0022's schema."""
    roll_back(db_0023, read_migrations(MIGRATIONS_DIR)[1])
    assert schema_dump(db_0023) == schema_dump(readonly_db_0022)
