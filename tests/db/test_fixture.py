"""The asset_forge fixture: 0023 builds exactly what the seed runbook drops, 0022 none of it."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from demo.sample import (
    BASELINE_TABLES,
    MIGRATION_0023_TABLES,
    MIGRATIONS_DIR,
    apply_migrations,
    insert_sample_rows,
)
from tests.fix_db import SAMPLE_COUNTS, SAMPLE_COUNTS_0022

if TYPE_CHECKING:
    from collections.abc import Callable

RUNBOOK = Path(__file__).parents[2] / "runbooks" / "0023_loud_shen.md"
NEVER_CREATED_FK = "error_aggregations_resolved_by_users_id_fk"
BASELINE_INDEXES = {
    "idx_projects_owner",
    "idx_assets_owner",
    "idx_assets_project",
    "idx_assets_status",
    "idx_sessions_user",
    "idx_sessions_expires",
}
BASELINE_FKS = {
    "projects_owner_id_users_id_fk",
    "assets_owner_id_users_id_fk",
    "assets_project_id_projects_id_fk",
    "sessions_user_id_users_id_fk",
}


def _runbook_names(pattern: str) -> set[str]:
    return set(re.findall(pattern, RUNBOOK.read_text(encoding="utf-8")))


SEED_INDEXES = _runbook_names(r"DROP INDEX IF EXISTS (\w+);")
SEED_FKS = _runbook_names(r"DROP CONSTRAINT IF EXISTS (\w+);")
SEED_TABLES = _runbook_names(r"DROP TABLE IF EXISTS (\w+);")
SEED_ENUMS = _runbook_names(r"DROP TYPE IF EXISTS (\w+);")

# Indexes that back no constraint of their own table: the ones a migration creates by name.
INDEXES = """
    SELECT i.relname FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    WHERE n.nspname = 'public' AND NOT EXISTS (
        SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid AND c.conrelid = t.oid)
"""
FOREIGN_KEYS = """
    SELECT c.conname, t.relname, a.attname, r.relname FROM pg_constraint AS c
    JOIN pg_class AS t ON t.oid = c.conrelid
    JOIN pg_class AS r ON r.oid = c.confrelid
    JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND t.relnamespace = 'public'::regnamespace
"""
TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
ENUMS = "SELECT typname FROM pg_type WHERE typtype = 'e' AND typnamespace = 'public'::regnamespace"
JOURNAL = "SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id"


def _column(conninfo: str, query: LiteralString, params: list[Any] | None = None) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        return {str(row[0]) for row in conn.execute(query, params).fetchall()}


def _foreign_keys(conninfo: str) -> list[tuple[str, str, str, str]]:
    """(name, table, column, referenced table) of every foreign key, sorted for comparison."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(FOREIGN_KEYS).fetchall()
    return sorted((str(a), str(b), str(c), str(d)) for a, b, c, d in rows)


def _counts(conninfo: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        counts = {}
        for table in tables:
            stmt = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            row = conn.execute(stmt).fetchone()
            assert row is not None
            counts[table] = int(row[0])
        return counts


def _journal() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(
        (MIGRATIONS_DIR / "meta" / "_journal.json").read_text(encoding="utf-8")
    )["entries"]
    return entries


def _expected_journal(upto: int) -> list[tuple[str, int]]:
    return [
        (hashlib.sha256((MIGRATIONS_DIR / f"{e['tag']}.sql").read_bytes()).hexdigest(), e["when"])
        for e in _journal()[:upto]
    ]


def test_runbook_names_what_the_fixture_is_checked_against() -> None:
    """The seed runbook yields 34 indexes, 10 foreign keys, 6 tables and 4 enums."""
    assert (len(SEED_INDEXES), len(SEED_FKS), len(SEED_TABLES), len(SEED_ENUMS)) == (34, 10, 6, 4)
    assert set(MIGRATION_0023_TABLES) == SEED_TABLES


def test_0023_has_the_runbooks_tables_and_enums(readonly_db_0023: str) -> None:
    """After 0023 the six tables and four enums exist beside the baseline ones."""
    assert _column(readonly_db_0023, TABLES) == SEED_TABLES | set(BASELINE_TABLES)
    assert _column(readonly_db_0023, ENUMS) == SEED_ENUMS | {"user_role"}


def test_0023_has_exactly_the_runbooks_indexes(readonly_db_0023: str) -> None:
    """The named indexes on 0023's tables are exactly the 34 the runbook drops, no more."""
    on_new_tables = _column(
        readonly_db_0023, INDEXES + " AND t.relname = ANY(%s)", [list(SEED_TABLES)]
    )
    assert on_new_tables == SEED_INDEXES
    assert _column(readonly_db_0023, INDEXES) == SEED_INDEXES | BASELINE_INDEXES


def test_0023_has_the_runbooks_foreign_keys_but_one(readonly_db_0023: str) -> None:
    """All of the runbook's foreign keys exist except the one 0023 never created."""
    names = {fk[0] for fk in _foreign_keys(readonly_db_0023)}
    assert NEVER_CREATED_FK in SEED_FKS
    assert names == (SEED_FKS - {NEVER_CREATED_FK}) | BASELINE_FKS


def test_foreign_keys_point_where_their_names_say(readonly_db_0023: str) -> None:
    """Each foreign key is named table_column_target_id_fk, as drizzle-kit names them."""
    for name, table, column, target in _foreign_keys(readonly_db_0023):
        assert name == f"{table}_{column}_{target}_id_fk"


def test_0022_has_none_of_0023(readonly_db_0022: str) -> None:
    """Before 0023 none of its tables, enums, indexes or foreign keys exist, the rest does."""
    assert _column(readonly_db_0022, TABLES) == set(BASELINE_TABLES)
    assert _column(readonly_db_0022, ENUMS) == {"user_role"}
    assert _column(readonly_db_0022, INDEXES) == BASELINE_INDEXES
    assert {fk[0] for fk in _foreign_keys(readonly_db_0022)} == BASELINE_FKS
    assert _counts(readonly_db_0022, list(BASELINE_TABLES)) == SAMPLE_COUNTS_0022


@pytest.mark.parametrize(("fixture", "entries"), [("readonly_db_0022", 1), ("readonly_db_0023", 2)])
def test_journal_rows_are_drizzles(
    fixture: str, entries: int, request: pytest.FixtureRequest
) -> None:
    """The journal holds one row per applied migration: sha256 of its file and its `when`."""
    conninfo: str = request.getfixturevalue(fixture)
    with psycopg.connect(conninfo) as conn:
        rows = [(str(h), int(c)) for h, c in conn.execute(JOURNAL).fetchall()]
    assert rows == _expected_journal(entries)


def test_reapplying_applies_nothing(db_0023: str) -> None:
    """A second migrate run finds nothing newer than the newest journal row."""
    with psycopg.connect(db_0023, autocommit=True) as conn:
        assert apply_migrations(conn) == []
        assert len(conn.execute(JOURNAL).fetchall()) == 2


def test_0022_migrates_forward_to_0023(db_0022: str, readonly_db_0023: str) -> None:
    """Migrating a 0022 database applies 0023 alone and yields 0023's schema and journal."""
    with psycopg.connect(db_0022, autocommit=True) as conn:
        assert apply_migrations(conn) == ["0023_loud_shen"]
    assert _column(db_0022, TABLES) == _column(readonly_db_0023, TABLES)
    assert _column(db_0022, INDEXES) == _column(readonly_db_0023, INDEXES)
    assert _foreign_keys(db_0022) == _foreign_keys(readonly_db_0023)


@pytest.mark.parametrize(
    ("upto", "expected"), [("0022", SAMPLE_COUNTS_0022), ("0023", SAMPLE_COUNTS)]
)
def test_reported_counts_are_real(upto: str, expected: dict[str, int], scratch_db: str) -> None:
    """`insert_sample_rows` reports exactly the rows `count(*)` finds, table by table."""
    with psycopg.connect(scratch_db) as conn:
        apply_migrations(conn, upto=upto)
        reported = insert_sample_rows(conn)
        conn.commit()
    assert reported == expected
    assert _counts(scratch_db, list(reported)) == reported


def test_clones_are_isolated(
    make_database: Callable[..., str], asset_forge_0023_template: str
) -> None:
    """Deleting rows in one clone of the template leaves another clone untouched."""
    first = make_database(template=asset_forge_0023_template)
    second = make_database(template=asset_forge_0023_template)
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("DELETE FROM api_errors")
    assert _counts(first, ["api_errors"]) == {"api_errors": 0}
    assert _counts(second, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_seed_sql_rolls_0023_back_but_keeps_its_journal_row(
    db_0023: str, readonly_db_0022: str
) -> None:
    """The runbook's SQL leaves 0022's schema and rows, yet Drizzle still records 0023."""
    block = re.search(r"```sql\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), re.DOTALL)
    assert block is not None
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute(block.group(1).encode())
        journal = conn.execute(JOURNAL).fetchall()
    assert _column(db_0023, TABLES) == _column(readonly_db_0022, TABLES)
    assert _column(db_0023, ENUMS) == _column(readonly_db_0022, ENUMS)
    assert _column(db_0023, INDEXES) == _column(readonly_db_0022, INDEXES)
    assert _foreign_keys(db_0023) == _foreign_keys(readonly_db_0022)
    assert _counts(db_0023, list(BASELINE_TABLES)) == SAMPLE_COUNTS_0022
    assert len(journal) == 2
