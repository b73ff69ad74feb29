"""Derived rollbacks run on real databases: they return the schema to the previous migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from bot.core.runbook import parse_runbook
from bot.core.schema import diff_schemas
from bot.drizzle.derive import Before, derive_runbook
from bot.drizzle.folder import JOURNAL_SCHEMA, JOURNAL_TABLE, Migration, read_migrations
from bot.drizzle.journal import journal_row_for
from bot.target.journal import read_journal
from bot.target.schema import read_schema
from demo.sample import MIGRATIONS_DIR
from tests.fix_drizzle import REVERSIBLE, chain_migration, migrate_to, read_chain, schema_dump

if TYPE_CHECKING:
    from collections.abc import Callable


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


MOVED_BEFORE = """
CREATE SCHEMA archive;
CREATE TYPE status AS ENUM ('open', 'held');
CREATE SEQUENCE numbers START 10;
CREATE TABLE notes (id int PRIMARY KEY, state status, n bigint DEFAULT nextval('numbers'));
CREATE INDEX notes_state_idx ON notes (state);
CREATE VIEW open_notes AS SELECT id FROM notes WHERE state = 'open';
CREATE MATERIALIZED VIEW note_counts AS SELECT state, count(*) FROM notes GROUP BY state;
CREATE MATERIALIZED VIEW held_notes AS SELECT id FROM notes WHERE state = 'held';
INSERT INTO notes (id, state) VALUES (1, 'open'), (2, 'held');
"""
MOVED = """ALTER TYPE "public"."status" RENAME VALUE 'held' TO 'on_hold';--> statement-breakpoint
ALTER VIEW "public"."open_notes" RENAME TO "unfinished_notes";--> statement-breakpoint
ALTER MATERIALIZED VIEW "public"."held_notes" RENAME TO "notes_on_hold";--> statement-breakpoint
ALTER SEQUENCE "public"."numbers" RENAME TO "note_numbers";--> statement-breakpoint
ALTER TABLE "notes" SET SCHEMA "archive";--> statement-breakpoint
ALTER MATERIALIZED VIEW "public"."note_counts" SET SCHEMA "archive";--> statement-breakpoint
ALTER TYPE "public"."status" SET SCHEMA "archive";
"""


def test_renamed_and_moved_objects_go_back_to_their_n_minus_1_names_and_schemas(
    scratch_db: str,
) -> None:
    """Enum value, view, materialized view and sequence renamed, three moved: all come back."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(MOVED_BEFORE)
        before = Before(schema=read_schema(conn, ()))
        for forward in MOVED.split("--> statement-breakpoint"):
            conn.execute(forward.encode())
    migration = Migration(tag="0042_moved", when=0, text=MOVED)
    book = parse_runbook(derive_runbook(migration, before=before), file="runbooks/0042.md")
    assert all(statement.restores for statement in book.statements)
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
        states = conn.execute("SELECT state::text FROM notes ORDER BY id").fetchall()
    assert before.schema is not None
    assert diff_schemas(after, before.schema, reference_label="N-1") == []
    assert states == [("open",), ("held",)]


SECURED_BEFORE = """
CREATE TABLE ledger (id int PRIMARY KEY, amount int);
ALTER TABLE ledger ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY ledger_positive ON ledger FOR SELECT TO public USING (amount > 0);
"""
SECURED = (
    'CREATE POLICY "ledger_small" ON "ledger" AS PERMISSIVE FOR SELECT TO public'
    ' USING ("ledger"."amount" < 10);--> statement-breakpoint\n'
    'ALTER TABLE "ledger" DISABLE ROW LEVEL SECURITY;--> statement-breakpoint\n'
    'ALTER TABLE "ledger" NO FORCE ROW LEVEL SECURITY;\n'
)


def test_policies_and_row_security_go_back_to_n_minus_1_and_are_compared(
    scratch_db: str,
) -> None:
    """A new policy is dropped, RLS and FORCE come back; the schema read holds all three."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(SECURED_BEFORE)
        before = Before(schema=read_schema(conn, ()))
        for forward in SECURED.split("--> statement-breakpoint"):
            conn.execute(forward.encode())
        assert before.schema is not None
        left = diff_schemas(read_schema(conn, ()), before.schema, reference_label="N-1")
    assert left == [
        "left behind: policy ledger.ledger_small",
        "differs: table ledger force row security: none (N-1: true)",
        "differs: table ledger row security: false (N-1: true)",
    ]
    migration = Migration(tag="0042_secured", when=0, text=SECURED)
    book = parse_runbook(derive_runbook(migration, before=before), file="runbooks/0042.md")
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
    assert diff_schemas(after, before.schema, reference_label="N-1") == []


def test_a_dropped_materialized_view_comes_back_with_its_indexes(scratch_db: str) -> None:
    """Its indexes went with it: recreated from N-1 after it, filled as it was, equal to N-1."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE visits (id int PRIMARY KEY, page text);"
            "CREATE MATERIALIZED VIEW page_counts AS SELECT page, count(*) AS n FROM visits"
            " GROUP BY page;"
            "CREATE UNIQUE INDEX page_counts_page_idx ON page_counts (page);"
            "CREATE INDEX page_counts_n_idx ON page_counts (n);"
        )
        before = Before(schema=read_schema(conn, ()))
        conn.execute('DROP MATERIALIZED VIEW "page_counts"')
    migration = Migration(tag="0042_fewer", when=0, text='DROP MATERIALIZED VIEW "page_counts";')
    book = parse_runbook(derive_runbook(migration, before=before), file="runbooks/0042.md")
    assert [s.kind for s in book.statements] == [
        "CREATE MATERIALIZED VIEW",
        "CREATE INDEX",
        "CREATE INDEX",
    ]
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
    assert before.schema is not None
    assert diff_schemas(after, before.schema, reference_label="N-1") == []


def test_definitions_come_back_after_the_renames_they_name(scratch_db: str) -> None:
    """Renamed, then stripped of an index and a CHECK: the rollback lands exactly on N-1."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text,"
            " CONSTRAINT users_email_check CHECK (email <> ''));"
            "CREATE INDEX users_email_idx ON users (email);"
            "INSERT INTO users VALUES (1, 'a@x');"
        )
        before = Before(schema=read_schema(conn, ()))
        forward = (
            'ALTER TABLE "users" RENAME COLUMN "email" TO "mail";--> statement-breakpoint\n'
            'ALTER TABLE "users" RENAME TO "members";--> statement-breakpoint\n'
            'DROP INDEX "users_email_idx";--> statement-breakpoint\n'
            'ALTER TABLE "members" DROP CONSTRAINT "users_email_check";'
        )
        for part in forward.split("--> statement-breakpoint"):
            conn.execute(part.encode())
    migration = Migration(tag="0042_renamed", when=0, text=forward)
    book = parse_runbook(derive_runbook(migration, before=before), file="runbooks/0042.md")
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
        rows = conn.execute("SELECT id, email FROM users").fetchall()
    assert before.schema is not None
    assert diff_schemas(after, before.schema, reference_label="N-1") == []
    assert rows == [(1, "a@x")]


def test_a_renamed_type_and_domain_get_their_names_back(scratch_db: str) -> None:
    """drizzle-kit renames an enum with ALTER TYPE … RENAME TO: undone, rows keep their values."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TYPE status AS ENUM ('open', 'done'); CREATE DOMAIN label AS text;"
            "CREATE TABLE tasks (id int PRIMARY KEY, state status, tag label);"
            "INSERT INTO tasks VALUES (1, 'done', 'x')"
        )
        before = Before(schema=read_schema(conn, ()))
        forward = (
            'ALTER TYPE "public"."status" RENAME TO "task_state";--> statement-breakpoint\n'
            'ALTER DOMAIN "public"."label" RENAME TO "tag_text";'
        )
        for part in forward.split("--> statement-breakpoint"):
            conn.execute(part.encode())
    migration = Migration(tag="0042_types", when=0, text=forward)
    book = parse_runbook(derive_runbook(migration, before=before), file="runbooks/0042.md")
    assert [s.kind for s in book.statements] == ["ALTER DOMAIN … RENAME", "ALTER TYPE … RENAME"]
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for statement in book.statements:
            conn.execute(statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
        rows = conn.execute("SELECT state::text, tag::text FROM tasks").fetchall()
    assert before.schema is not None
    assert diff_schemas(after, before.schema, reference_label="N-1") == []
    assert rows == [("done", "x")]
