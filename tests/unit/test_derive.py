"""Deriving a rollback from a forward migration: what is undone, in what order, what is refused."""

from __future__ import annotations

import pytest

from bot.core.errors import IrreversibleError, MigrationFileError
from bot.core.runbook import parse_runbook
from bot.drizzle.derive import derive_rollback, derive_runbook
from bot.drizzle.folder import Migration, read_migrations
from bot.drizzle.lint import lint_runbook
from demo.sample import MIGRATIONS_DIR
from tests.fix_drizzle import REVERSIBLE, chain_migration


def rollback_sql(sql: str) -> list[str]:
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    return [statement for undo in derive_rollback(migration) for statement in undo.statements]


def refusal(sql: str) -> IrreversibleError:
    with pytest.raises(IrreversibleError) as caught:
        rollback_sql(sql)
    return caught.value


@pytest.mark.parametrize("migration_id", REVERSIBLE)
def test_derived_runbook_parses_and_says_derived(migration_id: str) -> None:
    """Every reversible migration of the chain yields a runbook rollbot's parser accepts."""
    migration = chain_migration(migration_id)
    text = derive_runbook(migration)
    book = parse_runbook(text, file=f"runbooks/{migration.tag}.md")
    assert text.startswith(f"# Derived rollback of {migration.tag}\n")
    assert "**Derived rollback.**" in text
    assert book.migration_file == f"{migration.tag}.sql"
    assert book.description == "derived from the forward migration"
    assert book.date is not None
    assert book.statements
    assert lint_runbook(book, migration).clean


def test_date_defaults_to_the_journal_day_and_can_be_given() -> None:
    """The runbook's date is the journal's `when` unless the caller passes one."""
    migration = chain_migration("0006")
    assert "**Date**: 2025-11-06\n" in derive_runbook(migration)
    assert "**Date**: 2025-12-01\n" in derive_runbook(migration, date="2025-12-01")


def test_rollback_runs_in_reverse_order() -> None:
    """Indexes and foreign keys go before their tables, tables before the enums they use."""
    assert [s for undo in derive_rollback(chain_migration("0002")) for s in undo.statements] == [
        "DROP INDEX IF EXISTS users_created_at_idx",
        "DROP INDEX IF EXISTS tasks_project_status_idx",
        "ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_project_id_projects_id_fk",
        "DROP TABLE IF EXISTS tasks",
        "DROP TYPE IF EXISTS public.task_status",
    ]


def test_each_undo_names_the_line_it_undoes() -> None:
    """The runbook says which forward line each statement reverses."""
    undos = derive_rollback(chain_migration("0003"))
    assert [u.line for u in undos] == [11, 10, 9, 8, 1]
    assert '-- undoes line 9: ALTER TABLE "users" ADD COLUMN "team_id" integer\n' in (
        derive_runbook(chain_migration("0003"))
    )


def test_dropping_a_column_is_refused_with_its_line() -> None:
    """0004 drops users.name: refused at line 2, naming the statement, counting the rest."""
    with pytest.raises(IrreversibleError) as caught:
        derive_runbook(chain_migration("0004"))
    error = caught.value
    assert (error.file, error.line, error.more) == ("0004_faded_cable.sql", 2, 1)
    assert error.statement == 'ALTER TABLE "users" DROP COLUMN "name"'
    assert "drops a column" in error.reason
    assert str(error).startswith(
        '0004_faded_cable.sql:2: \'ALTER TABLE "users" DROP COLUMN "name"\' cannot be undone'
    )


def test_a_data_change_is_refused_with_its_line() -> None:
    """0005 writes rows into an older table: refused at its INSERT on line 2."""
    with pytest.raises(IrreversibleError) as caught:
        derive_rollback(chain_migration("0005"))
    assert caught.value.line == 2
    assert caught.value.statement.startswith('INSERT INTO "teams"')
    assert "changes rows of an existing table" in caught.value.reason


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP TABLE users;", "drops a table"),
        ("DROP INDEX users_email_idx;", "drops an index"),
        ("ALTER TABLE users ALTER COLUMN name SET DATA TYPE varchar(9);", "changes a column's"),
        ("ALTER TABLE users ALTER COLUMN name SET NOT NULL;", "NOT NULL"),
        ("ALTER TABLE users ALTER COLUMN name DROP NOT NULL;", "hold NULL"),
        ("ALTER TABLE users ALTER COLUMN name SET DEFAULT 'x';", "default"),
        ("ALTER TABLE users DROP CONSTRAINT users_email_unique;", "drops a constraint"),
        ("ALTER TABLE users RENAME COLUMN name TO full_name;", "renames"),
        ("ALTER TABLE users RENAME TO people;", "renames"),
        ("ALTER TYPE user_role ADD VALUE 'guest';", "cannot remove an enum value"),
        ("UPDATE users SET name = lower(name);", "changes rows"),
        ("DELETE FROM users WHERE name IS NULL;", "deletes rows"),
        ("DO $$ BEGIN PERFORM 1; END $$;", "DO block"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';", "function"),
        ("CREATE SCHEMA billing;", "schema"),
        ('CREATE EXTENSION IF NOT EXISTS "pgcrypto";', "extension"),
        ("CREATE TABLE IF NOT EXISTS t (id int);", "IF NOT EXISTS"),
        ("ALTER TABLE users ADD COLUMN IF NOT EXISTS age int;", "IF NOT EXISTS"),
        ("CREATE INDEX IF NOT EXISTS i ON users (name);", "IF NOT EXISTS"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1;", "replaced a view"),
        ("CREATE INDEX ON users (name);", "no name"),
        ("ALTER TABLE users ADD UNIQUE (name);", "no name"),
        ("ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_name_idx;", "existing index"),
        ("GRANT SELECT ON users TO reporting;", "only undoes CREATE"),
    ],
)
def test_changes_to_what_existed_are_refused(sql: str, reason: str) -> None:
    """A statement that changes existing objects or data cannot be derived, and says why."""
    error = refusal(f"CREATE TABLE t0 (id int);--> statement-breakpoint\n{sql}")
    assert error.line == 2
    assert reason in error.reason


def test_changes_confined_to_new_objects_need_no_undo() -> None:
    """Rows, enum values and column changes on objects the migration created go with them."""
    sql = """CREATE TYPE "public"."tier" AS ENUM('free');--> statement-breakpoint
ALTER TYPE "public"."tier" ADD VALUE 'pro';--> statement-breakpoint
CREATE TABLE "plans" ("id" serial PRIMARY KEY, "tier" "tier" NOT NULL);--> statement-breakpoint
INSERT INTO "plans" ("tier") VALUES ('free'), ('pro');--> statement-breakpoint
ALTER TABLE "plans" ALTER COLUMN "tier" SET DEFAULT 'free';--> statement-breakpoint
CREATE INDEX ON "plans" ("tier");--> statement-breakpoint
ALTER TABLE "plans" ADD CHECK ("id" > 0);--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "plan_id" integer;--> statement-breakpoint
UPDATE "users" SET "plan_id" = 1;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "plan_id" SET NOT NULL;"""
    assert rollback_sql(sql) == [
        "ALTER TABLE users DROP COLUMN IF EXISTS plan_id",
        "DROP TABLE IF EXISTS plans",
        "DROP TYPE IF EXISTS public.tier",
    ]


def test_an_update_of_old_columns_is_still_refused() -> None:
    """Setting a new column together with an old one changes existing data: refused."""
    error = refusal(
        'ALTER TABLE "users" ADD COLUMN "plan_id" integer;--> statement-breakpoint\n'
        'UPDATE "users" SET "plan_id" = 1, "name" = \'x\';'
    )
    assert error.line == 2


def test_identifiers_are_quoted_only_when_needed() -> None:
    """Mixed-case and keyword names keep their quotes; plain names are written plain."""
    assert rollback_sql('CREATE TABLE "Order Items" ("id" int);CREATE TABLE "user" (id int);') == [
        'DROP TABLE IF EXISTS "user"',
        'DROP TABLE IF EXISTS "Order Items"',
    ]


def test_a_migration_that_creates_nothing_is_refused() -> None:
    """A file of comments has nothing to undo, and rollbot says so rather than run nothing."""
    with pytest.raises(MigrationFileError, match="creates nothing"):
        rollback_sql("-- nothing yet\n")


def test_0023_derived_undoes_what_the_seed_undoes() -> None:
    """The derived rollback of 0023 drops exactly the seed's objects but the phantom FK."""
    migration = read_migrations(MIGRATIONS_DIR)[1]
    derived = parse_runbook(derive_runbook(migration), file="runbooks/0023_loud_shen.md")
    report = lint_runbook(derived, migration)
    assert report.clean
    assert len(derived.statements) == 4 + 6 + 9 + 34
    assert derived.statements[-1].sql == "DROP TYPE IF EXISTS public.error_category"
