"""Reading a forward migration: statements with their file lines, and the objects they create."""

from __future__ import annotations

import pytest

from bot.core.errors import MigrationFileError
from bot.core.sql import ObjectKind
from bot.drizzle.folder import Migration
from bot.drizzle.forward import CreatedObject, creates, make_object_name, parse_forward
from tests.fix_drizzle import chain_migration


def created(sql: str) -> list[str]:
    migration = Migration(tag="0100_test", when=1, text=sql)
    return [obj.label() for st in parse_forward(migration) for obj in creates(st)]


def test_lines_point_at_each_statement_not_at_the_comment_before_it() -> None:
    """A statement's line is where its first keyword is, past breakpoints and comments."""
    statements = parse_forward(chain_migration("0005"))
    assert [s.line for s in statements] == [2, 3]
    assert statements[0].sql.startswith('INSERT INTO "teams"')
    assert [s.line for s in parse_forward(chain_migration("0003"))] == [1, 8, 9, 10, 11]


def test_statement_text_has_no_breakpoint_or_semicolon() -> None:
    """The text kept for messages is the statement alone."""
    statements = parse_forward(chain_migration("0004"))
    assert statements[1].sql == 'ALTER TABLE "users" DROP COLUMN "name"'


def test_syntax_error_names_the_file_and_line() -> None:
    """A migration PostgreSQL would reject is refused with where the error is."""
    migration = Migration(tag="0100_bad", when=1, text="CREATE TABLE a (id int);\nCREATE TABL b;")
    with pytest.raises(MigrationFileError) as caught:
        parse_forward(migration)
    assert (caught.value.file, caught.value.line) == ("0100_bad.sql", 2)


def test_a_piece_without_its_semicolon_is_one_statement_as_drizzle_sends_it() -> None:
    """Drizzle's migrator sends each piece between breakpoints alone: no `;` is needed."""
    migration = Migration(
        tag="0100_bare",
        when=1,
        text='CREATE TABLE "a" ("id" int)\n--> statement-breakpoint\n'
        'CREATE INDEX "i" ON "a" ("id")',
    )
    statements = parse_forward(migration)
    assert [(s.line, s.sql) for s in statements] == [
        (1, 'CREATE TABLE "a" ("id" int)'),
        (3, 'CREATE INDEX "i" ON "a" ("id")'),
    ]
    broken = Migration(
        tag="0100_bad", when=1, text="SELECT 1;\n--> statement-breakpoint\n\nCREATE TABL b;"
    )
    with pytest.raises(MigrationFileError) as caught:
        parse_forward(broken)
    assert caught.value.line == 4


def test_inline_constraints_get_postgres_default_names() -> None:
    """Constraints the migration leaves unnamed are listed under the names PostgreSQL picks."""
    labels = created(
        "CREATE TABLE t (id serial PRIMARY KEY, email text UNIQUE, n int CHECK (n > 0),"
        " u uuid REFERENCES users(id), a int, b int, UNIQUE (a, b), CHECK (a < b));"
    )
    assert [label for label in labels if not label.startswith("column")] == [
        "table t",
        "constraint t_pkey on t",
        "sequence t_id_seq",
        "constraint t_email_key on t",
        "constraint t_n_check on t",
        "constraint t_u_fkey on t",
        "constraint t_a_b_key on t",
        "constraint t_check on t",
    ]


def test_added_columns_and_their_constraints_belong_to_the_table() -> None:
    """ADD COLUMN creates a column on the table, and its inline constraints go with it."""
    migration = Migration(
        tag="0100_t", when=1, text="ALTER TABLE users ADD COLUMN team_id int REFERENCES teams(id);"
    )
    (statement,) = parse_forward(migration)
    column, fkey = creates(statement)
    assert column == CreatedObject(
        kind=ObjectKind.COLUMN,
        name="team_id",
        table="users",
        line=1,
        within_table="users",
        within_columns=("team_id",),
    )
    assert (fkey.label(), fkey.within_columns) == (
        "constraint users_team_id_fkey on users",
        ("team_id",),
    )


def test_identity_sequences_use_the_name_drizzle_gives() -> None:
    """An identity column's sequence is named by its `sequence name` option when there is one."""
    assert "sequence invoices_id_seq" in created(chain_migration("0007").text)
    assert "sequence t_id_seq" in created("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY);")


def test_statements_that_create_nothing_list_nothing() -> None:
    """Data changes, drops and type changes create no object."""
    assert created(chain_migration("0005").text) == []
    assert created('ALTER TABLE "users" DROP COLUMN "name";') == []


def test_long_names_are_cut_like_postgres_does() -> None:
    """The longer part is shortened first so the whole name fits in 63 bytes."""
    name = make_object_name("a" * 40, "b" * 30, "fkey")
    assert name == "a" * 29 + "_" + "b" * 28 + "_fkey"
    assert len(name) == 63
    assert make_object_name("t", None, "pkey") == "t_pkey"
