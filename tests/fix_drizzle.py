"""A Drizzle migrations chain for the tests, and databases Drizzle's migrator built from it.

`tests/fixtures/drizzle_chain` is a drizzle-kit folder of twenty-two migrations: enums, tables,
foreign keys between new and old tables, columns added to old tables, a dropped column, a data
backfill, views, a sequence, a materialized view, a custom `CREATE TABLE IF NOT EXISTS` of a
table an earlier migration made (its rollback must not drop it), a dropped view and table, an
enum value added, then on top a dropped index with `IF NOT EXISTS` creates (one there before,
one not), dropped FK and CHECK constraints, DROP/SET NOT NULL, default changes, renames of a
table, column, constraint and index, comments, then an enum and two views (one reading the
other, one with options) created and, with the materialized view, dropped again, and last
columns widened (a varchar longer, integers to bigint: one under a CHECK, one under an
index and a foreign key), then an enum value and a sequence renamed and that sequence's
increment and cache changed, and row-level security enabled on a table with a policy. Each
database is migrated with `bot.target.migrator.migrate`, which applies the files and writes
the journal rows exactly as Drizzle does, so what rollbot reads is what it would read in
production.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.drizzle.folder import Migration, read_migrations, select_upto
from bot.target.migrator import migrate
from tests.fix_rollbot import schema_of

if TYPE_CHECKING:
    from collections.abc import Callable

CHAIN_DIR = Path(__file__).parent / "fixtures" / "drizzle_chain"
# Migrations of the chain whose rollback can be derived from the file alone, those whose
# undo reads the schema at N-1 (dropped index and constraints, NOT NULL, defaults, renames,
# comments, IF NOT EXISTS, dropped views and types, widened columns, sequence options,
# row-level security, an enum value added), and those that lose data and must be refused.
# 0017 is derived from its file alone too; the walk from the top covers it.
REVERSIBLE = ("0000", "0001", "0002", "0003", "0006", "0007")
FROM_REFERENCE = (
    "0008",
    "0011",
    "0012",
    "0013",
    "0014",
    "0015",
    "0016",
    "0017",
    "0018",
    "0019",
    "0020",
    "0021",
    "0010",
)
IRREVERSIBLE = ("0004", "0005", "0009")
TOP = "0021"


def read_chain() -> list[Migration]:
    """The chain as the migrator reads it, in journal order."""
    return read_migrations(CHAIN_DIR)


def chain_migration(migration_id: str) -> Migration:
    """One migration of the chain by its number ("0003")."""
    return select_upto(read_chain(), migration_id)[-1]


def migrate_to(conninfo: str, upto: str | None) -> list[str]:
    """Run Drizzle's migrator with the chain up to `upto` (None: no migration); tags applied."""
    migrations = select_upto(read_chain(), upto) if upto is not None else []
    with psycopg.connect(conninfo) as conn:
        return migrate(conn, migrations)


@pytest.fixture
def drizzle_db(make_database: Callable[..., str]) -> Callable[[str | None], str]:
    """Factory: `drizzle_db("0003")` -> conninfo of a new database Drizzle migrated to 0003."""

    def make(upto: str | None) -> str:
        conninfo = make_database(prefix="rollbot_dz")
        migrate_to(conninfo, upto)
        return conninfo

    return make


def schema_dump(conninfo: str) -> str:
    """The application schema, without Drizzle's journal (and rollbot's state)."""
    return schema_of(conninfo, exclude=("drizzle", "rollbot"))
