"""Reading Drizzle's journal table from a database Drizzle's migrator built."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from bot.drizzle.journal import latest_applied, match_journal
from bot.target.journal import read_journal
from tests.fix_drizzle import read_chain

if TYPE_CHECKING:
    from collections.abc import Callable


def test_rows_match_the_migrations_applied(drizzle_db: Callable[[str | None], str]) -> None:
    """A database at 0003 reads as 0000-0002 applied, 0003 current, the rest pending."""
    chain = read_chain()
    with psycopg.connect(drizzle_db("0003")) as conn:
        rows = read_journal(conn)
    assert rows is not None
    assert [(r.id, r.hash, r.created_at) for r in rows] == [
        (i + 1, m.hash, m.when) for i, m in enumerate(chain[:4])
    ]
    assert all(r.name is None and r.applied_at is None for r in rows)
    statuses = match_journal(chain, rows)
    assert [s.status for s in statuses] == ["applied"] * 3 + ["current"] + ["pending"] * (
        len(chain) - 4
    )
    assert not any(s.problems for s in statuses)
    current = latest_applied(statuses)
    assert current is not None
    assert current.tag == "0003_steady_harbor"


def test_an_edited_file_is_reported_against_the_database(
    drizzle_db: Callable[[str | None], str],
) -> None:
    """Editing an applied file after the fact shows as a hash mismatch on its row."""
    chain = read_chain()
    chain[1] = dataclasses.replace(chain[1], text=chain[1].text.replace("255", "200"))
    with psycopg.connect(drizzle_db("0002")) as conn:
        rows = read_journal(conn)
    assert rows is not None
    status = match_journal(chain, rows)[1]
    assert status.hash_matches is False
    assert status.problems == [
        "the file 0001_brisk_storm.sql was edited after it was applied (hash differs)"
    ]


def test_rows_read_without_a_folder(drizzle_db: Callable[[str | None], str]) -> None:
    """Without the folder the rows still say what was applied and which is current."""
    with psycopg.connect(drizzle_db("0005")) as conn:
        rows = read_journal(conn)
    assert rows is not None
    statuses = match_journal(None, rows)
    assert len(statuses) == 6
    assert statuses[-1].status == "current"
    assert statuses[-1].tag == f"unknown (created_at {read_chain()[5].when})"


def test_missing_journal_table_reads_as_none(scratch_db: str) -> None:
    """A database Drizzle never migrated has no journal: None, not an empty list."""
    with psycopg.connect(scratch_db) as conn:
        assert read_journal(conn) is None


def test_an_empty_journal_reads_as_no_rows(drizzle_db: Callable[[str | None], str]) -> None:
    """A journal table Drizzle created without applying anything reads as an empty list."""
    with psycopg.connect(drizzle_db(None)) as conn:
        assert read_journal(conn) == []


def test_v1_name_and_applied_at_are_read(scratch_db: str) -> None:
    """The columns a v1 journal adds come back when the table has them."""
    applied = datetime(2025, 11, 13, 10, 30, tzinfo=UTC)
    with psycopg.connect(scratch_db) as conn:
        conn.execute("CREATE SCHEMA drizzle")
        conn.execute(
            "CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL,"
            " created_at bigint, name text, applied_at timestamptz)"
        )
        conn.execute(
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at, name, applied_at)"
            " VALUES (%s, %s, %s, %s)",
            ("ab" * 32, 1763028534771, "0023_loud_shen", applied),
        )
        rows = read_journal(conn)
    assert rows is not None
    (row,) = rows
    assert (row.name, row.applied_at, row.created_at) == ("0023_loud_shen", applied, 1763028534771)


def test_configured_schema_and_table_are_quoted(scratch_db: str) -> None:
    """A journal under Drizzle's `migrationsSchema`/`migrationsTable` options is read by name."""
    with psycopg.connect(scratch_db) as conn:
        conn.execute('CREATE SCHEMA "Ops Log"')
        conn.execute(
            'CREATE TABLE "Ops Log"."drizzle-journal" '
            "(id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)"
        )
        conn.execute(
            """INSERT INTO "Ops Log"."drizzle-journal" (hash, created_at) VALUES ('h', 7)"""
        )
        rows = read_journal(conn, schema="Ops Log", table="drizzle-journal")
        assert read_journal(conn) is None
    assert rows is not None
    assert [(r.id, r.hash, r.created_at) for r in rows] == [(1, "h", 7)]
