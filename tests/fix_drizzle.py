"""A Drizzle migrations chain for the tests, and databases Drizzle's migrator built from it.

`tests/fixtures/drizzle_chain` is a drizzle-kit folder of eight migrations: enums, tables,
foreign keys between new and old tables, columns added to old tables, a dropped column, a data
backfill, views, a sequence and a materialized view. Each database is migrated with
`bot.drizzle.migrate`, which applies the files and writes the journal rows exactly as Drizzle
does, so what rollbot reads is what it would read in production.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.drizzle import Migration, migrate, read_migrations, select_upto
from bot.pgtools import find_pg_tools

if TYPE_CHECKING:
    from collections.abc import Callable

CHAIN_DIR = Path(__file__).parent / "fixtures" / "drizzle_chain"
# Migrations of the chain whose rollback can be derived, and those that must be refused.
REVERSIBLE = ("0000", "0001", "0002", "0003", "0006", "0007")
IRREVERSIBLE = ("0004", "0005")


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


@functools.cache
def _pg_dump(server_major: int) -> Path:
    """Looking for pg_dump runs every candidate's `--version`: once per session is enough."""
    return find_pg_tools(server_major).pg_dump


def schema_dump(conninfo: str) -> str:
    """The application schema as pg_dump prints it, without Drizzle's journal or comments."""
    with psycopg.connect(conninfo) as conn:
        major = conn.info.server_version // 10000
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    dump = subprocess.run(
        [
            str(_pg_dump(major)),
            "--schema-only",
            "--no-owner",
            "--exclude-schema=drizzle",
            f"--dbname={make_conninfo(**params)}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump 15.14+ brackets the script with \restrict / \unrestrict and a random key.
    return "\n".join(
        line
        for line in dump.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )
