"""Deriving a rollback from a forward migration: what is undone, in what order, what is refused."""

from __future__ import annotations

import pytest

from bot.core.errors import IrreversibleError, MigrationFileError
from bot.core.runbook import parse_runbook
from bot.core.schema import Schema, SchemaObject, attributes
from bot.drizzle.derive import Before, derive_rollback, derive_runbook, needs_reference
from bot.drizzle.folder import Migration, read_migrations
from bot.drizzle.lint import lint_runbook
from demo.sample import MIGRATIONS_DIR
from tests.fix_drizzle import REVERSIBLE, chain_migration


def rollback_sql(sql: str, before: Before | None = None) -> list[str]:
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    undos = derive_rollback(migration, before)
    return [statement for undo in undos for statement in undo.statements]


def refusal(sql: str, before: Before | None = None) -> IrreversibleError:
    with pytest.raises(IrreversibleError) as caught:
        rollback_sql(sql, before)
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
    assert error.reason == "it drops column users.name, and every value in it is gone"
    assert str(error).startswith(
        '0004_faded_cable.sql:2: \'ALTER TABLE "users" DROP COLUMN "name"\' cannot be undone'
    )


def test_the_refusal_names_the_statement_that_loses_data() -> None:
    """0005's INSERT comes first, but its UPDATE is what overwrites old values: line 3 is named."""
    with pytest.raises(IrreversibleError) as caught:
        derive_rollback(chain_migration("0005"))
    assert (caught.value.line, caught.value.more) == (3, 1)
    assert caught.value.statement.startswith('UPDATE "users"')
    assert "overwrites values in users" in caught.value.reason


@pytest.mark.parametrize(
    ("migration_id", "line", "lost"),
    [
        ("0009", 2, "it drops table labels, and every row in it is gone"),
    ],
)
def test_the_chain_s_data_losing_migrations_are_refused(
    migration_id: str, line: int, lost: str
) -> None:
    """A dropped table and an added enum value are each named by line, with what is lost."""
    with pytest.raises(IrreversibleError) as caught:
        derive_rollback(chain_migration(migration_id))
    assert caught.value.line == line
    assert caught.value.reason.startswith(lost)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP TABLE users;", "drops table users, and every row in it is gone"),
        ("DROP SEQUENCE billing.n;", "drops sequence billing.n, and its current value is gone"),
        ("ALTER TABLE users ALTER COLUMN name SET DATA TYPE varchar(9);", "values were converted"),
        ("ALTER TABLE users DROP COLUMN name;", "drops column users.name"),
        ("UPDATE users SET name = lower(name);", "overwrites values in users"),
        ("DELETE FROM users WHERE name IS NULL;", "deletes rows of users"),
        ("TRUNCATE users;", "empties users, and every row is gone"),
    ],
)
def test_what_loses_data_is_refused_saying_what_is_lost(sql: str, reason: str) -> None:
    """Data-losing statements are refused even after one that is merely not derivable."""
    error = refusal(
        "CREATE TABLE t0 (id int);--> statement-breakpoint\n"
        "DO $$ BEGIN PERFORM 1; END $$;--> statement-breakpoint\n"
        f"{sql}"
    )
    assert (error.line, error.more) == (3, 1)
    assert reason in error.reason


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP INDEX users_email_idx;", "it drops index users_email_idx; recreating it"),
        ("ALTER TABLE users ALTER COLUMN name DROP NOT NULL;", "it lets users.name hold NULL"),
        ("ALTER TABLE users ALTER COLUMN name SET DEFAULT 'x';", "changes the default of"),
        ("ALTER TABLE users DROP CONSTRAINT users_email_unique;", "adding it back needs"),
        ("COMMENT ON TABLE users IS 'x';", "sets the comment of table users"),
        ("CREATE TABLE IF NOT EXISTS t (id int);", "creates table t only if it is not there"),
        ("ALTER TABLE users ADD COLUMN IF NOT EXISTS age int;", "creates column users.age"),
        ("CREATE INDEX IF NOT EXISTS i ON users (name);", "creates index i only if"),
        ("DROP VIEW v;", "drops view v; recreating it needs its definition"),
        ('DROP TYPE "public"."status";', "drops type status; recreating it needs"),
        ("ALTER TYPE user_role ADD VALUE 'guest';", "making it again needs the enum's labels"),
    ],
)
def test_without_the_reference_what_needs_it_is_refused_saying_so(sql: str, reason: str) -> None:
    """Undoing a change to what existed needs N-1; without it the refusal says what is missing."""
    error = refusal(f"CREATE TABLE t0 (id int);--> statement-breakpoint\n{sql}")
    assert error.line == 2
    assert reason in error.reason
    assert "replaying ROLLBOT_MIGRATIONS_DIR on a scratch database" in error.reason
    assert needs_reference(Migration(tag="0100_snippet", when=1, text=sql))


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP VIEW v CASCADE;", "with CASCADE"),
        ("DO $$ BEGIN PERFORM 1; END $$;", "DO block"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';", "function"),
        ("CREATE SCHEMA billing CREATE TABLE t (id int);", "inside CREATE SCHEMA"),
        ('CREATE EXTENSION "pgcrypto";', "extension"),
        ("INSERT INTO users (name) VALUES ('x');", "adds rows to an existing table"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1;", "replaced a view"),
        ("CREATE INDEX ON users (name);", "no name"),
        ("ALTER TABLE users ADD UNIQUE (name);", "no name"),
        ("ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_name_idx;", "existing index"),
        ("ALTER SCHEMA app RENAME TO application;", "renames back only tables"),
        ("GRANT SELECT ON users TO reporting;", "not this statement"),
    ],
)
def test_what_cannot_be_undone_is_refused_and_says_why(sql: str, reason: str) -> None:
    """A statement no derived rollback undoes is refused by line, with the reason."""
    error = refusal(f"CREATE TABLE t0 (id int);--> statement-breakpoint\n{sql}")
    assert error.line == 2
    assert reason in error.reason


def before_of(*objects: SchemaObject) -> Before:
    """N-1 as plain values: the objects a test needs, nothing read from a server."""
    return Before(schema=Schema(objects=objects))


USERS_BEFORE = before_of(
    SchemaObject(
        kind="index",
        name="public.users_team_idx",
        attributes=attributes(
            ("definition", "CREATE INDEX users_team_idx ON public.users USING btree (team_id)")
        ),
    ),
    SchemaObject(
        kind="constraint",
        name="public.users.users_team_fk",
        attributes=attributes(
            ("definition", "FOREIGN KEY (team_id) REFERENCES public.teams(id) ON DELETE SET NULL")
        ),
    ),
    SchemaObject(
        kind="constraint",
        name="public.users.users_email_unique",
        attributes=attributes(("definition", "UNIQUE (email)")),
    ),
    SchemaObject(kind="table", name="public.users", attributes=attributes(("comment", "It's us"))),
    SchemaObject(
        kind="column",
        name="public.users.email",
        attributes=attributes(("not null", "true"), ("default", "''::text")),
    ),
    SchemaObject(
        kind="column", name="public.users.name", attributes=attributes(("not null", "false"))
    ),
)


def test_changes_to_what_existed_are_undone_from_n_minus_1() -> None:
    """Index, constraints, NOT NULL, defaults, renames and comments go back to their N-1 state."""
    sql = """DROP INDEX "users_team_idx";--> statement-breakpoint
ALTER TABLE "users" DROP CONSTRAINT "users_team_fk";--> statement-breakpoint
ALTER TABLE "users" DROP CONSTRAINT "users_email_unique";--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "email" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "name" SET DEFAULT 'x';--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "name" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "email" SET NOT NULL;--> statement-breakpoint
COMMENT ON TABLE "users" IS 'people';--> statement-breakpoint
COMMENT ON COLUMN "users"."email" IS 'login';--> statement-breakpoint
ALTER TABLE "users" RENAME COLUMN "name" TO "full_name";--> statement-breakpoint
ALTER TABLE "users" RENAME TO "people";"""
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    assert [s for u in derive_rollback(migration, USERS_BEFORE) for s in u.statements] == [
        "ALTER TABLE people RENAME TO users",
        "ALTER TABLE users RENAME COLUMN full_name TO name",
        "COMMENT ON COLUMN public.users.email IS NULL",
        "COMMENT ON TABLE public.users IS 'It''s us'",
        "ALTER TABLE users ALTER COLUMN name DROP NOT NULL",
        "ALTER TABLE users ALTER COLUMN name DROP DEFAULT",
        "ALTER TABLE users ALTER COLUMN email SET DEFAULT ''::text",
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        "ALTER TABLE public.users ADD CONSTRAINT users_email_unique UNIQUE (email)",
        (
            "ALTER TABLE public.users ADD CONSTRAINT users_team_fk FOREIGN KEY (team_id) "
            "REFERENCES public.teams(id) ON DELETE SET NULL NOT VALID"
        ),
        "ALTER TABLE public.users VALIDATE CONSTRAINT users_team_fk",
        "CREATE INDEX users_team_idx ON public.users USING btree (team_id)",
    ]
    text = derive_runbook(migration, before=USERS_BEFORE)
    book = parse_runbook(text, file="runbooks/0100_snippet.md")
    assert all(statement.restores for statement in book.statements)
    assert [s.set_not_null for s in book.statements if s.set_not_null] == [
        ((None, "users", "email"),)
    ]
    assert "undoes each statement from the schema before it" in text


def test_if_not_exists_drops_only_what_n_minus_1_did_not_have() -> None:
    """An object N-1 had is left alone, one it lacked is dropped; a SET NOT NULL it had: no-op."""
    sql = """CREATE TABLE IF NOT EXISTS "users" ("id" int);--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "users_team_idx" ON "users" ("team_id");--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "users_name_idx" ON "users" ("name");--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "email" text;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "email" SET NOT NULL;--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "audit" ("id" int);"""
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    assert [s for u in derive_rollback(migration, USERS_BEFORE) for s in u.statements] == [
        "DROP TABLE IF EXISTS audit",
        "DROP INDEX IF EXISTS users_name_idx",
    ]


def test_a_new_schema_is_dropped_last_after_what_was_made_in_it() -> None:
    """drizzle-kit's `pgSchema`: the schema goes after its table and enum, without CASCADE."""
    sql = """CREATE SCHEMA "billing";--> statement-breakpoint
CREATE TYPE "billing"."status" AS ENUM('open', 'paid');--> statement-breakpoint
CREATE TABLE "billing"."invoices" ("id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
  "status" "billing"."status" DEFAULT 'open' NOT NULL);--> statement-breakpoint
CREATE SCHEMA IF NOT EXISTS "Ops";--> statement-breakpoint
CREATE SCHEMA IF NOT EXISTS "app";"""
    app = SchemaObject(kind="schema", name="app", attributes=())
    assert rollback_sql(sql, before_of(app)) == [
        'DROP SCHEMA IF EXISTS "Ops"',
        "DROP TABLE IF EXISTS billing.invoices",
        "DROP TYPE IF EXISTS billing.status",
        "DROP SCHEMA IF EXISTS billing",
    ]


def test_a_drop_of_what_n_minus_1_lacks_is_refused() -> None:
    """Dropping an index N-1 does not have cannot be undone from it: refused by name."""
    error = refusal('DROP INDEX "ghost_idx";', USERS_BEFORE)
    assert "which the schema before this migration does not have" in error.reason
    assert rollback_sql(
        'DROP INDEX IF EXISTS "ghost_idx";CREATE TABLE t (id int);', USERS_BEFORE
    ) == ["DROP TABLE IF EXISTS t"]


def test_without_the_reference_set_not_null_is_still_undone() -> None:
    """SET NOT NULL says the column was nullable: DROP NOT NULL needs no reference."""
    assert rollback_sql('ALTER TABLE "users" ALTER COLUMN "name" SET NOT NULL;') == [
        "ALTER TABLE users ALTER COLUMN name DROP NOT NULL"
    ]
    assert not needs_reference(chain_migration("0003"))


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
    # The backfill of users' new column fires users' triggers: N-1 says there are none.
    no_triggers = Before(schema=Schema(objects=()))
    assert rollback_sql(sql, no_triggers) == [
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
    with pytest.raises(MigrationFileError, match="changes nothing"):
        rollback_sql("-- nothing yet\n")


def test_0023_derived_undoes_what_the_seed_undoes() -> None:
    """The derived rollback of 0023 drops exactly the seed's objects but the phantom FK."""
    migration = read_migrations(MIGRATIONS_DIR)[1]
    derived = parse_runbook(derive_runbook(migration), file="runbooks/0023_loud_shen.md")
    report = lint_runbook(derived, migration)
    assert report.clean
    assert len(derived.statements) == 4 + 6 + 9 + 34
    assert derived.statements[-1].sql == "DROP TYPE IF EXISTS public.error_category"


VIEWS_BEFORE = before_of(
    SchemaObject(
        kind="view",
        name="public.active_users",
        attributes=attributes(
            ("definition", " SELECT users.id\n   FROM public.users\n  WHERE users.active;"),
            ("options", "security_barrier=true, check_option=local"),
            ("comment", "who is in"),
        ),
    ),
    SchemaObject(
        kind="materialized view",
        name="public.user_counts",
        attributes=attributes(
            ("definition", " SELECT count(*) AS n\n   FROM public.users;"),
            ("populated", "true"),
        ),
    ),
    SchemaObject(
        kind="materialized view",
        name="public.empty_counts",
        attributes=attributes(("definition", " SELECT 1 AS n;"), ("populated", "false")),
    ),
    SchemaObject(
        kind="type",
        name="public.status",
        attributes=attributes(("kind", "enum"), ("labels", "'new', 'it''s done'")),
    ),
    SchemaObject(
        kind="type",
        name="public.point2",
        attributes=attributes(("kind", "composite"), ("attributes", "x integer, y integer")),
    ),
    SchemaObject(
        kind="type",
        name="public.positive",
        attributes=attributes(
            ("kind", "domain"),
            ("base type", "integer"),
            ("not null", "true"),
            ("default", "1"),
            ("checks", "CHECK ((VALUE > 0))"),
        ),
    ),
    SchemaObject(
        kind="type",
        name="public.span",
        attributes=attributes(("kind", "range"), ("subtype", "integer")),
    ),
)


def test_dropped_views_and_types_are_recreated_from_n_minus_1() -> None:
    """A view or type holds no rows: its N-1 definition, options and comment bring it back."""
    sql = """DROP VIEW "public"."active_users";--> statement-breakpoint
DROP MATERIALIZED VIEW "public"."user_counts";--> statement-breakpoint
DROP MATERIALIZED VIEW "empty_counts";--> statement-breakpoint
DROP TYPE "public"."status";--> statement-breakpoint
DROP TYPE "public"."point2";--> statement-breakpoint
DROP DOMAIN "public"."positive";"""
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    statements = [s for u in derive_rollback(migration, VIEWS_BEFORE) for s in u.statements]
    assert statements == [
        "CREATE DOMAIN public.positive AS integer DEFAULT 1 NOT NULL CHECK ((VALUE > 0))",
        "CREATE TYPE public.point2 AS (x integer, y integer)",
        "CREATE TYPE public.status AS ENUM ('new', 'it''s done')",
        "CREATE MATERIALIZED VIEW public.empty_counts AS SELECT 1 AS n WITH NO DATA",
        (
            "CREATE MATERIALIZED VIEW public.user_counts AS SELECT count(*) AS n\n"
            "   FROM public.users WITH DATA"
        ),
        (
            "CREATE VIEW public.active_users WITH (security_barrier=true, check_option=local) "
            "AS SELECT users.id\n   FROM public.users\n  WHERE users.active"
        ),
        "COMMENT ON VIEW public.active_users IS 'who is in'",
    ]
    text = derive_runbook(migration, before=VIEWS_BEFORE)
    book = parse_runbook(text, file="runbooks/0100_snippet.md")
    assert len(book.statements) == len(statements)
    # Filling the materialized view runs its query: the plan sees what it reads and calls.
    assert book.statements[4].relations == ("public.users",)
    assert book.statements[4].functions == ("count",)


def test_a_view_made_and_dropped_by_the_migration_needs_nothing_back() -> None:
    """Created, then dropped in the same migration: nothing of N-1 to restore."""
    sql = """CREATE VIEW "v" AS SELECT 1;--> statement-breakpoint
DROP VIEW "v";--> statement-breakpoint
CREATE TYPE "t" AS ENUM ('a');--> statement-breakpoint
DROP TYPE "t";"""
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    assert [s for u in derive_rollback(migration, VIEWS_BEFORE) for s in u.statements] == [
        "DROP TYPE IF EXISTS t",
        "DROP VIEW IF EXISTS v",
    ]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ('DROP TYPE "public"."span";', "a range type at N-1"),
        ('DROP VIEW "missing";', "which the schema before this migration does not have"),
    ],
)
def test_a_dropped_type_or_view_that_cannot_be_recreated_is_refused(sql: str, reason: str) -> None:
    """A range type, or a view N-1 lacks, is refused naming it."""
    assert reason in refusal(sql, VIEWS_BEFORE).reason


def test_a_dropped_view_missing_at_n_minus_1_with_if_exists_needs_nothing() -> None:
    """`DROP VIEW IF EXISTS` of a view N-1 lacked changed nothing."""
    sql = 'DROP VIEW IF EXISTS "missing";--> statement-breakpoint\nCREATE TABLE t (id int);'
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    assert [s for u in derive_rollback(migration, VIEWS_BEFORE) for s in u.statements] == [
        "DROP TABLE IF EXISTS t"
    ]


MOVED_BEFORE = before_of(
    SchemaObject(kind="table", name="public.audit_log"),
    SchemaObject(kind="type", name="public.status"),
    SchemaObject(kind="view", name="public.open_tasks"),
)


def test_renamed_enum_values_views_and_sequences_and_moves_are_undone() -> None:
    """Each is renamed or moved back, newest first; a move only to where N-1 had it."""
    sql = """ALTER TYPE "public"."status" RENAME VALUE 'held' TO 'on_hold';--> statement-breakpoint
ALTER VIEW "open_tasks" RENAME TO "unfinished_tasks";--> statement-breakpoint
ALTER MATERIALIZED VIEW "public"."counts" RENAME TO "task_counts";--> statement-breakpoint
ALTER SEQUENCE "public"."n" RENAME TO "numbers";--> statement-breakpoint
ALTER TABLE "audit_log" SET SCHEMA "archive";--> statement-breakpoint
ALTER TYPE "public"."status" SET SCHEMA "archive";"""
    assert rollback_sql(sql, MOVED_BEFORE) == [
        "ALTER TYPE archive.status SET SCHEMA public",
        "ALTER TABLE archive.audit_log SET SCHEMA public",
        "ALTER SEQUENCE public.numbers RENAME TO n",
        "ALTER MATERIALIZED VIEW public.task_counts RENAME TO counts",
        "ALTER VIEW unfinished_tasks RENAME TO open_tasks",
        "ALTER TYPE public.status RENAME VALUE 'on_hold' TO 'held'",
    ]
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    book = parse_runbook(derive_runbook(migration, before=MOVED_BEFORE), file="runbooks/x.md")
    assert all(statement.restores for statement in book.statements)


def test_what_this_migration_made_is_renamed_back_and_moved_back_before_its_drop() -> None:
    """A new enum's value rename needs nothing; a new table moved elsewhere comes back to go."""
    made = 'CREATE TYPE "public"."mood" AS ENUM (\'ok\');--> statement-breakpoint\n'
    assert rollback_sql(f"{made}ALTER TYPE \"public\".\"mood\" RENAME VALUE 'ok' TO 'fine';") == [
        "DROP TYPE IF EXISTS public.mood"
    ]
    assert rollback_sql(
        'CREATE TABLE "t" (id int);--> statement-breakpoint\nALTER TABLE "t" SET SCHEMA "s";'
        '--> statement-breakpoint\nINSERT INTO "s"."t" VALUES (1);'
    ) == ["ALTER TABLE s.t SET SCHEMA public", "DROP TABLE IF EXISTS t"]
    error = refusal('ALTER VIEW "gone" SET SCHEMA "s";', MOVED_BEFORE)
    assert "does not have there" in error.reason
    error = refusal('ALTER TABLE "audit_log" SET SCHEMA "archive";')
    assert "replaying ROLLBOT_MIGRATIONS_DIR" in error.reason


SEQUENCE_BEFORE = before_of(
    SchemaObject(
        kind="sequence",
        name="public.invoice_number_seq",
        attributes=attributes(
            ("type", "bigint"),
            ("start", "1000"),
            ("increment", "1"),
            ("min", "1000"),
            ("max", "9223372036854775807"),
            ("cache", "1"),
            ("cycle", "false"),
        ),
    ),
)


def test_sequence_options_go_back_to_n_minus_1_even_after_a_rename() -> None:
    """Every option is written from N-1, found by the name it had there; its value stays."""
    sql = (
        'ALTER SEQUENCE "public"."invoice_number_seq" RENAME TO "numbers";'
        "--> statement-breakpoint\n"
        'ALTER SEQUENCE "public"."numbers" INCREMENT BY 10 CACHE 20 CYCLE;'
    )
    assert rollback_sql(sql, SEQUENCE_BEFORE) == [
        (
            "ALTER SEQUENCE public.numbers AS bigint INCREMENT BY 1 MINVALUE 1000 "
            "MAXVALUE 9223372036854775807 START WITH 1000 CACHE 1 NO CYCLE"
        ),
        "ALTER SEQUENCE public.numbers RENAME TO invoice_number_seq",
    ]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ('ALTER SEQUENCE "invoice_number_seq" RESTART WITH 5;', "current value is gone"),
        ('ALTER SEQUENCE "invoice_number_seq" OWNED BY "t"."c";', "not its owner"),
        ('ALTER SEQUENCE "gone" INCREMENT BY 2;', "is not in the schema before"),
    ],
)
def test_a_sequence_change_that_cannot_be_put_back_is_refused(sql: str, reason: str) -> None:
    """RESTART loses the current value; OWNED BY and unknown sequences are not derived."""
    assert reason in refusal(sql, SEQUENCE_BEFORE).reason


SECURED_BEFORE = before_of(
    SchemaObject(
        kind="table",
        name="public.invoices",
        attributes=attributes(("row security", "false"), ("force row security", "true")),
    ),
)


def test_policies_are_dropped_and_row_security_goes_back_to_n_minus_1() -> None:
    """CREATE POLICY becomes DROP POLICY; ENABLE and NO FORCE go back to N-1's setting."""
    sql = """ALTER TABLE "invoices" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "invoices" NO FORCE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE POLICY "visible" ON "invoices" AS PERMISSIVE FOR SELECT TO public USING (true);"""
    assert rollback_sql(sql, SECURED_BEFORE) == [
        "DROP POLICY IF EXISTS visible ON invoices",
        "ALTER TABLE invoices FORCE ROW LEVEL SECURITY",
        "ALTER TABLE invoices DISABLE ROW LEVEL SECURITY",
    ]
    migration = Migration(tag="0100_snippet", when=1, text=sql)
    book = parse_runbook(derive_runbook(migration, before=SECURED_BEFORE), file="runbooks/x.md")
    assert all(statement.restores for statement in book.statements)
    new_table = 'CREATE TABLE "t" (id int);--> statement-breakpoint\n'
    assert rollback_sql(
        f'{new_table}ALTER TABLE "t" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint\n'
        'CREATE POLICY "p" ON "t" USING (true);'
    ) == ["DROP TABLE IF EXISTS t"]
    error = refusal('ALTER TABLE "invoices" ENABLE ROW LEVEL SECURITY;')
    assert "replaying ROLLBOT_MIGRATIONS_DIR" in error.reason


def test_a_column_of_a_table_renamed_first_is_found_by_its_n_minus_1_name() -> None:
    """NOT NULL and a widened type on a renamed table are read from the table N-1 had."""
    before = before_of(
        SchemaObject(
            kind="column",
            name="public.users.email",
            attributes=attributes(("not null", "true"), ("type", "character varying(50)")),
        ),
    )
    sql = """ALTER TABLE "users" RENAME TO "people";--> statement-breakpoint
ALTER TABLE "people" ALTER COLUMN "email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "people" ALTER COLUMN "email" SET DATA TYPE text;"""
    assert rollback_sql(sql, before) == [
        "ALTER TABLE people ALTER COLUMN email SET DATA TYPE character varying(50)",
        "ALTER TABLE people ALTER COLUMN email SET NOT NULL",
        "ALTER TABLE people RENAME TO users",
    ]


POLICY_BEFORE = before_of(
    SchemaObject(kind="table", name="public.projects", attributes=()),
    SchemaObject(
        kind="policy",
        name="public.projects.visible",
        parent="table public.projects",
        attributes=attributes(
            ("command", "r"),
            ("permissive", "true"),
            ("roles", "public"),
            ("using", "(archived = false)", "expression"),
        ),
    ),
    SchemaObject(
        kind="policy",
        name="public.projects.own_rows",
        parent="table public.projects",
        attributes=attributes(
            ("command", "w"),
            ("permissive", "false"),
            ("roles", 'app, "Ops"'),
            ("using", "(owner = CURRENT_USER)", "expression"),
            ("with check", "(owner = CURRENT_USER)", "expression"),
        ),
    ),
)


def test_a_changed_or_dropped_policy_goes_back_to_its_n_minus_1_definition() -> None:
    """drizzle-kit's ALTER POLICY and DROP POLICY … CASCADE (nothing can depend on a policy)."""
    sql = """ALTER POLICY "visible" ON "projects" TO app USING ("projects"."archived" = false
  and "projects"."name" is not null);--> statement-breakpoint
DROP POLICY "own_rows" ON "projects" CASCADE;"""
    own = "(owner = CURRENT_USER)"
    created = 'CREATE POLICY own_rows ON projects AS RESTRICTIVE FOR UPDATE TO app, "Ops"'
    assert rollback_sql(sql, POLICY_BEFORE) == [
        f"{created} USING ({own}) WITH CHECK ({own})",
        "ALTER POLICY visible ON projects TO public USING ((archived = false))",
    ]
    ghost = 'DROP POLICY IF EXISTS "ghost" ON "projects";CREATE TABLE t (id int);'
    assert rollback_sql(ghost, POLICY_BEFORE) == ["DROP TABLE IF EXISTS t"]


def test_a_policy_clause_n_minus_1_lacked_cannot_be_taken_away() -> None:
    """ALTER POLICY sets a clause but cannot remove one: refused, saying so."""
    error = refusal('ALTER POLICY "visible" ON "projects" WITH CHECK (true);', POLICY_BEFORE)
    assert "a WITH CHECK clause it did not have before" in error.reason
    error = refusal('ALTER POLICY "ghost" ON "projects" TO app;', POLICY_BEFORE)
    assert "which the schema before this migration does not have" in error.reason


TIER_BEFORE = before_of(
    SchemaObject(
        kind="type",
        name="public.tier",
        attributes=attributes(("kind", "enum"), ("labels", "'free', 'pro', 'team'")),
    ),
    SchemaObject(
        kind="column",
        name="public.accounts.tier",
        parent="table public.accounts",
        attributes=attributes(("type", "public.tier"), ("default", "'free'::public.tier")),
    ),
)
BREAK = "--> statement-breakpoint\n"
SWAP_LINES = (
    'ALTER TABLE "accounts" ALTER COLUMN "tier" SET DATA TYPE text;',
    """ALTER TABLE "accounts" ALTER COLUMN "tier" SET DEFAULT 'free'::text;""",
    'DROP TYPE "public"."tier";',
    """CREATE TYPE "public"."tier" AS ENUM('free', 'team');""",
    """ALTER TABLE "accounts" ALTER COLUMN "tier" SET DEFAULT 'free'::"public"."tier";""",
    (
        'ALTER TABLE "accounts" ALTER COLUMN "tier" SET DATA TYPE "public"."tier"'
        ' USING "tier"::"public"."tier";'
    ),
)
SWAP = BREAK.join(SWAP_LINES)


def test_drizzle_kits_removal_of_an_enum_value_is_undone_as_one() -> None:
    """Cast to text, drop, create, cast back: one undo, the enum made again from N-1."""
    migration = Migration(tag="0100_snippet", when=1, text=SWAP)
    (undo,) = derive_rollback(migration, TIER_BEFORE)
    assert undo.line == 6
    assert undo.statements == (
        "CREATE TYPE public.rollbot_n1_tier AS ENUM ('free', 'pro', 'team')",
        "ALTER TABLE public.accounts ALTER COLUMN tier DROP DEFAULT",
        (
            "ALTER TABLE public.accounts ALTER COLUMN tier SET DATA TYPE public.rollbot_n1_tier"
            " USING tier::text::public.rollbot_n1_tier"
        ),
        "DROP TYPE public.tier",
        "ALTER TYPE public.rollbot_n1_tier RENAME TO tier",
        "ALTER TABLE public.accounts ALTER COLUMN tier SET DEFAULT 'free'::public.tier",
    )


def test_an_enum_swap_that_also_rewrites_values_is_still_refused() -> None:
    """An UPDATE among the swap's statements loses values: not absorbed, refused by its line."""
    update = 'UPDATE "accounts" SET "tier" = \'free\' WHERE "tier" = \'pro\';'
    text = BREAK.join([*SWAP_LINES[:2], update, *SWAP_LINES[2:]])
    error = refusal(text, TIER_BEFORE)
    assert error.line == 3
    assert "overwrites values in accounts" in error.reason
