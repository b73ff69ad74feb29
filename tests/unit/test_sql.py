"""The rollback SQL is understood statement by statement, and refused where it must be."""

import pytest

from bot.core.errors import RunbookError
from bot.core.sql import ObjectKind, Statement, parse_queries, parse_statements


def parse(text: str, first_line: int = 10) -> tuple[Statement, ...]:
    return parse_statements(text, file="rb.md", first_line=first_line)


def test_begin_and_commit_are_dropped() -> None:
    """BEGIN/COMMIT around the block are removed: rollbot owns the transaction."""
    statements = parse("BEGIN;\nDROP TABLE IF EXISTS a;\nCOMMIT;\n")
    assert [s.sql for s in statements] == ["DROP TABLE IF EXISTS a"]


def test_statements_keep_their_runbook_line() -> None:
    """Each statement reports the line of the runbook file it starts on, comments skipped."""
    statements = parse("BEGIN;\n\n-- drop\nDROP INDEX x;\nALTER TABLE t\n  DROP COLUMN c;\n")
    assert [(s.line, s.kind) for s in statements] == [
        (13, "DROP INDEX"),
        (14, "ALTER TABLE … DROP COLUMN"),
    ]


def test_objects_are_classified_with_their_table() -> None:
    """A constraint drop names the constraint and the table it belongs to."""
    (statement,) = parse('ALTER TABLE "App".t DROP CONSTRAINT IF EXISTS fk_x;')
    (obj,) = statement.objects
    assert (obj.kind, obj.name, obj.table, obj.table_namespace, obj.missing_ok) == (
        ObjectKind.CONSTRAINT,
        "fk_x",
        "t",
        "App",
        True,
    )


def test_multi_object_drops_and_types() -> None:
    """DROP TYPE a, s.b yields both objects, schema-qualified where written."""
    (statement,) = parse("DROP TYPE a, s.b;")
    assert [(o.kind, o.namespace, o.name) for o in statement.objects] == [
        (ObjectKind.TYPE, None, "a"),
        (ObjectKind.TYPE, "s", "b"),
    ]


def test_delete_is_allowed() -> None:
    """DELETE is on the allow-list and touches the rows of its table."""
    (statement,) = parse("DELETE FROM public.settings WHERE key = 'x;y';")
    assert statement.objects[0].kind is ObjectKind.ROWS
    assert statement.sql == "DELETE FROM public.settings WHERE key = 'x;y'"


def test_cascade_is_noted() -> None:
    """CASCADE is recorded so the plan can refuse it."""
    (statement,) = parse("DROP TABLE t CASCADE;")
    assert statement.cascade


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("DROP INDEX CONCURRENTLY idx;", "CONCURRENTLY"),
        ("VACUUM assets;", "VACUUM"),
        ("CREATE INDEX CONCURRENTLY i ON t (a);", "CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i;", "REINDEX CONCURRENTLY"),
        ("DROP DATABASE prod;", "DROP DATABASE"),
    ],
)
def test_non_transactional_statements_are_refused(sql: str, words: str) -> None:
    """Statements PostgreSQL refuses inside BEGIN … COMMIT are refused with their line."""
    with pytest.raises(RunbookError) as caught:
        parse(f"DROP TABLE a;\n{sql}\n")
    assert caught.value.line == 11
    assert "cannot run inside a transaction block" in caught.value.render()
    assert words in caught.value.render()


@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE users;",
        "UPDATE users SET admin = true;",
        "CREATE TABLE x (a int);",
        "ALTER TABLE t ADD COLUMN c int;",
        "ALTER TABLE t DROP CONSTRAINT c, ADD COLUMN d int;",
        "GRANT ALL ON t TO public;",
        "DROP FUNCTION f();",
        "WITH x AS (DELETE FROM a RETURNING *) DELETE FROM b;",
        "SELECT pg_terminate_backend(1);",
    ],
)
def test_statements_outside_the_allow_list_are_refused(sql: str) -> None:
    """Anything but drops and deletes is refused, naming the statement and the allow-list."""
    with pytest.raises(RunbookError) as caught:
        parse(sql, first_line=3)
    message = caught.value.render()
    assert caught.value.line == 3
    assert "is not a statement a rollback runbook may run" in message
    assert "DROP INDEX" in message


def test_transaction_control_in_the_middle_is_refused() -> None:
    """A COMMIT in the middle would split the rollback into two transactions."""
    with pytest.raises(RunbookError, match="transaction control"):
        parse("BEGIN;\nDROP TABLE a;\nCOMMIT;\nDROP TABLE b;\n")


def test_syntax_error_names_the_line() -> None:
    """A typo is reported at the line it is on, with PostgreSQL's own message."""
    with pytest.raises(RunbookError) as caught:
        parse("DROP TABLE a;\nDROP TABL b;\n")
    assert caught.value.line == 11
    assert 'syntax error at or near "TABL"' in caught.value.render()


def test_empty_block_is_refused() -> None:
    """A block with only BEGIN/COMMIT and comments has nothing to roll back."""
    with pytest.raises(RunbookError, match="holds no statement"):
        parse("-- nothing\nBEGIN;\nCOMMIT;\n")


def test_semicolons_inside_strings_do_not_split() -> None:
    """The parser, not a regular expression, decides where statements end."""
    statements = parse('DELETE FROM t WHERE a = $$;DROP TABLE users;$$;\nDROP TABLE "odd;name";')
    assert [s.kind for s in statements] == ["DELETE", "DROP TABLE"]
    assert statements[1].objects[0].name == "odd;name"


def test_verification_queries_must_read_only() -> None:
    """The verification block may hold only SELECT statements."""
    assert parse_queries("SELECT 1;\nSELECT COUNT(*) FROM t;", file="f", first_line=5) == (
        (5, "SELECT 1"),
        (6, "SELECT COUNT(*) FROM t"),
    )
    with pytest.raises(RunbookError, match="not a plain SELECT"):
        parse_queries("DELETE FROM t;", file="f", first_line=5)


def test_statements_that_put_a_definition_back_remove_nothing() -> None:
    """Putting definitions back is accepted, drops nothing, runs no stored default."""
    statements = parse(
        "CREATE INDEX i ON public.users USING btree (team_id);\n"
        "ALTER TABLE users ADD CONSTRAINT c CHECK ((n > 0)) NOT VALID;\n"
        "ALTER TABLE users VALIDATE CONSTRAINT c;\n"
        "ALTER TABLE users ALTER COLUMN n SET DEFAULT nextval('s'::regclass);\n"
        "ALTER TABLE billing.users ALTER COLUMN email SET NOT NULL;\n"
        "ALTER TABLE people RENAME TO users;\n"
        "ALTER INDEX j RENAME TO i;\n"
        "COMMENT ON COLUMN public.users.email IS NULL;\n"
        "ALTER VIEW v2 RENAME TO v;\n"
        "ALTER MATERIALIZED VIEW m2 RENAME TO m;\n"
        "ALTER SEQUENCE s2 RENAME TO s;\n"
        "ALTER TYPE status RENAME VALUE 'on_hold' TO 'held';\n"
        "ALTER TABLE archive.users SET SCHEMA public;\n"
        "ALTER TYPE archive.status SET SCHEMA public;\n"
        "ALTER SEQUENCE s AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9 START WITH 1 CACHE 1;\n"
        "DROP POLICY IF EXISTS visible ON invoices;\n"
        "ALTER TABLE invoices DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY;\n"
        "CREATE POLICY own ON invoices AS RESTRICTIVE FOR UPDATE TO app USING (true);\n"
        "ALTER POLICY visible ON invoices TO public USING ((archived = false));\n"
    )
    assert all(s.restores and not s.objects for s in statements)
    assert statements[12].relations == ()  # the moved table is not read
    assert statements[14].relations == ()  # nor the sequence altered
    assert [s.kind for s in statements][:3] == [
        "CREATE INDEX",
        "ALTER TABLE … ADD CONSTRAINT",
        "ALTER TABLE … VALIDATE CONSTRAINT",
    ]
    assert statements[3].functions == ()
    assert statements[4].set_not_null == (("billing", "users", "email"),)
    with pytest.raises(RunbookError, match="not a statement a rollback runbook may run"):
        parse("ALTER TABLE users ADD COLUMN age int;")
    with pytest.raises(RunbookError, match="not a statement a rollback runbook may run"):
        parse("ALTER TYPE status ADD VALUE 'x';")
    with pytest.raises(RunbookError, match="not a statement a rollback runbook may run"):
        parse("ALTER FUNCTION f() SET SCHEMA archive;")
    with pytest.raises(RunbookError, match="not a statement a rollback runbook may run"):
        parse("ALTER SEQUENCE s RESTART;")
    with pytest.raises(RunbookError, match="not a statement a rollback runbook may run"):
        parse("DROP POLICY visible ON invoices CASCADE;")


def test_what_a_statement_creates_is_named_as_written() -> None:
    """Indexes, views, types, domains and named constraints; an unnamed CHECK names nothing."""
    statements = parse(
        "CREATE INDEX i ON app.users (team_id);\n"
        "CREATE VIEW v AS SELECT 1;\n"
        "CREATE MATERIALIZED VIEW app.m AS SELECT 1;\n"
        "CREATE TYPE app.status AS ENUM ('a');\n"
        "CREATE TYPE pair AS (a int, b int);\n"
        "CREATE DOMAIN email AS text;\n"
        "ALTER TABLE app.users ADD CONSTRAINT fk FOREIGN KEY (team_id) REFERENCES teams (id)"
        " NOT VALID, ADD CHECK (team_id > 0);\n"
        "ALTER TABLE users DROP CONSTRAINT fk;\n"
    )
    made = [
        [(o.kind, o.namespace or o.table_namespace, o.name) for o in s.creates] for s in statements
    ]
    assert made == [
        [(ObjectKind.INDEX, "app", "i")],
        [(ObjectKind.VIEW, None, "v")],
        [(ObjectKind.MATERIALIZED_VIEW, "app", "m")],
        [(ObjectKind.TYPE, "app", "status")],
        [(ObjectKind.TYPE, None, "pair")],
        [(ObjectKind.DOMAIN, None, "email")],
        [(ObjectKind.CONSTRAINT, "app", "fk")],
        [],
    ]
    assert statements[6].creates[0].table == "users"


def test_a_schema_is_dropped_by_name_and_never_with_cascade() -> None:
    """Without CASCADE PostgreSQL refuses while the schema holds anything; with it, refused."""
    (statement,) = parse('DROP SCHEMA IF EXISTS "Billing";')
    (obj,) = statement.objects
    assert (statement.kind, obj.kind, obj.name, obj.missing_ok) == (
        "DROP SCHEMA",
        ObjectKind.SCHEMA,
        "Billing",
        True,
    )
    with pytest.raises(RunbookError, match="drops whatever the schema holds") as caught:
        parse("BEGIN;\nDROP SCHEMA billing CASCADE;\n")
    assert "rb.md:11:" in caught.value.render()
    assert "Drop each object of the schema by name first" in caught.value.render()


def test_a_cast_to_an_enum_the_runbook_made_is_allowed_through_text_only() -> None:
    """`USING col::text::e` to an enum made above: its labels are kept for the count."""
    made = "CREATE TYPE app.tier_n1 AS ENUM ('free', 'pro');\n"
    (_, statement) = parse(
        made + "ALTER TABLE app.accounts ALTER COLUMN tier SET DATA TYPE app.tier_n1"
        " USING tier::text::app.tier_n1;\n"
    )
    (cast,) = statement.casts_back
    assert (cast.label(), cast.type, cast.labels) == (
        "app.accounts.tier",
        "app.tier_n1",
        ("free", "pro"),
    )
    for using in (
        "USING tier::app.tier_n1",  # enum to enum: no such cast
        "USING lower(tier::text)::app.tier_n1",  # an expression of its own
        "USING other::text::app.tier_n1",  # another column
        "USING tier::text::app.other",  # another type than the one set
    ):
        with pytest.raises(RunbookError, match="converts values with USING"):
            parse(
                made
                + f"ALTER TABLE app.accounts ALTER COLUMN tier SET DATA TYPE app.tier_n1 {using};"
            )
    unmade = "ALTER TABLE app.accounts ALTER COLUMN tier SET DATA TYPE app.tier_n1"
    with pytest.raises(RunbookError, match="converts values with USING"):
        parse(f"{unmade} USING tier::text::app.tier_n1;")  # no CREATE TYPE above
