"""Widened columns cast back: which type changes qualify, how they are undone, what blocks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.errors import IrreversibleError, RunbookError
from bot.core.facts import Facts, Target, UnfitCount
from bot.core.plan import build_plan
from bot.core.runbook import parse_runbook
from bot.core.schema import Schema, SchemaObject, attributes
from bot.core.sql import CastBack, parse_statements
from bot.core.widening import SqlType, Unfit, read_type, unfit_rule, widens
from bot.drizzle.derive import Before, derive_rollback, derive_runbook
from bot.drizzle.folder import Migration

TARGET = Target(host="localhost", dbname="app")
TIMEOUT = timedelta(seconds=5)


def sql_type(text: str) -> SqlType:
    found = read_type(text)
    assert found is not None, text
    return found


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("smallint", "integer"),
        ("smallint", "bigint"),
        ("integer", "bigint"),
        ("character varying(50)", "character varying(100)"),
        ("character varying(50)", "character varying"),
        ("character varying(50)", "text"),
        ("character varying", "text"),
        ("text", "character varying"),
        ("real", "double precision"),
        ("numeric(10,2)", "numeric(12,2)"),
        ("numeric(10,2)", "numeric(12,3)"),
        ("numeric(10,2)", "numeric(11,3)"),
        ("numeric(10,2)", "numeric"),
        ("numeric", "numeric"),
        ("integer", "numeric(20,0)"),
        ("integer", "numeric(12,2)"),
        ("bigint", "numeric"),
        ("character(5)", "character(8)"),
        ("character(5)", "character varying(5)"),
        ("character(5)", "text"),
    ],
)
def test_widenings_cast_back_exactly(old: str, new: str) -> None:
    """Every value of the old type is one of the new, and comes back unchanged."""
    assert widens(sql_type(old), sql_type(new))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("bigint", "integer"),
        ("character varying(100)", "character varying(50)"),
        ("text", "character varying(200)"),
        ("double precision", "real"),
        ("numeric(10,2)", "numeric(10,3)"),
        ("numeric(10,2)", "numeric(12,1)"),
        ("numeric", "numeric(30,10)"),
        ("integer", "numeric(9,0)"),
        ("integer", "numeric(12,3)"),
        ("integer", "text"),
        ("character(5)", "character(4)"),
        ("character(5)", "character varying(4)"),
        ("character varying(5)", "character(5)"),
        ("text", "character(5)"),
    ],
)
def test_other_type_changes_are_not_widenings(old: str, new: str) -> None:
    """Narrowing, fewer digits on a side of the point, a string padded: never derived."""
    assert not widens(sql_type(old), sql_type(new))


def test_the_rows_counted_are_those_the_old_type_does_not_hold() -> None:
    """Integers out of range, strings too long, reals not exact, numbers with more digits."""

    def of(current: str, old: str) -> Unfit | None:
        return unfit_rule(sql_type(current), sql_type(old))

    assert of("bigint", "integer") == Unfit("range", low=-2147483648, high=2147483647)
    assert of("text", "character varying(50)") == Unfit("length", limit=50)
    assert of("double precision", "real") == Unfit("real")
    assert of("numeric(12,2)", "numeric(10,2)") == Unfit("numeric", limit=8, scale=2)
    assert of("numeric", "numeric(10,2)") == Unfit("numeric", limit=8, scale=2)
    assert of("numeric(12,0)", "integer") == Unfit("integral", low=-2147483648, high=2147483647)
    assert of("text", "character(3)") == Unfit("padded", limit=3)
    assert of("character(5)", "character(3)") == Unfit("length", limit=3)
    assert of("numeric", "numeric") == Unfit("none")
    assert of("integer", "integer") == Unfit("none")
    assert of("text", "character varying") == Unfit("none")
    assert of("integer", "bigint") is None  # not a widening of bigint: not counted
    assert read_type("public.money_amount") is None


def test_the_checker_accepts_a_cast_to_a_built_in_type_and_marks_it() -> None:
    """SET DATA TYPE to a number or string type, without USING, restores and is counted."""
    (statement,) = parse_statements(
        "ALTER TABLE billing.tags ALTER COLUMN name SET DATA TYPE character varying(50);",
        file="rb.md",
        first_line=1,
    )
    assert statement.restores
    assert not statement.objects
    assert statement.kind == "ALTER TABLE … SET DATA TYPE"
    assert statement.casts_back == (
        CastBack(namespace="billing", table="tags", column="name", type="character varying(50)"),
    )


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("ALTER TABLE t ALTER COLUMN c TYPE integer USING c::integer;", "USING"),
        ("ALTER TABLE t ALTER COLUMN c TYPE public.money_amount;", "PostgreSQL's own"),
        ("ALTER TABLE t ALTER COLUMN c TYPE integer[];", "PostgreSQL's own"),
        ("ALTER TABLE t ALTER COLUMN c TYPE date;", "PostgreSQL's own"),
    ],
)
def test_the_checker_refuses_a_cast_that_could_run_code(sql: str, problem: str) -> None:
    """USING is an expression of its own; a user's type has casts of its own."""
    with pytest.raises(RunbookError, match=problem):
        parse_statements(sql, file="rb.md", first_line=1)


BEFORE = Before(
    schema=Schema(
        objects=(
            SchemaObject(
                kind="column",
                name="public.tags.name",
                attributes=attributes(
                    ("type", "character varying(50)"), ("collation", 'pg_catalog."C"')
                ),
            ),
            SchemaObject(
                kind="column",
                name="public.invoices.amount_cents",
                attributes=attributes(("type", "integer"), ("default", "0")),
            ),
            SchemaObject(
                kind="column",
                name="public.invoices.id",
                attributes=attributes(("type", "integer"), ("identity", "a")),
            ),
            SchemaObject(
                kind="column",
                name="public.invoices.rate",
                attributes=attributes(("type", "double precision")),
            ),
        )
    )
)


def test_a_widened_column_is_cast_back_with_its_collation_and_default() -> None:
    """The N-1 type, collation and default come back; the runbook counts the unfit rows."""
    migration = Migration(
        tag="0100_snippet",
        when=1,
        text='ALTER TABLE "tags" ALTER COLUMN "name" SET DATA TYPE text;--> statement-breakpoint\n'
        'ALTER TABLE "invoices" ALTER COLUMN "amount_cents" SET DATA TYPE bigint;',
    )
    assert [s for u in derive_rollback(migration, BEFORE) for s in u.statements] == [
        "ALTER TABLE invoices ALTER COLUMN amount_cents SET DATA TYPE integer",
        "ALTER TABLE invoices ALTER COLUMN amount_cents SET DEFAULT 0",
        (
            "ALTER TABLE tags ALTER COLUMN name SET DATA TYPE character varying(50)"
            ' COLLATE pg_catalog."C"'
        ),
    ]
    book = parse_runbook(derive_runbook(migration, before=BEFORE), file="runbooks/0100.md")
    assert [c.type for s in book.statements for c in s.casts_back] == [
        "integer",
        "character varying(50)",
    ]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ('ALTER TABLE "invoices" ALTER COLUMN "amount_cents" SET DATA TYPE smallint;', "converted"),
        ('ALTER TABLE "invoices" ALTER COLUMN "rate" SET DATA TYPE real;', "converted"),
        (
            (
                'ALTER TABLE "invoices" ALTER COLUMN "amount_cents" SET DATA TYPE bigint '
                'USING "amount_cents" * 100;'
            ),
            "(USING)",
        ),
        ('ALTER TABLE "invoices" ALTER COLUMN "id" SET DATA TYPE bigint;', "identity"),
        ('ALTER TABLE "invoices" ALTER COLUMN "gone" SET DATA TYPE bigint;', "is not in"),
    ],
)
def test_a_type_change_that_is_no_widening_stays_refused(sql: str, reason: str) -> None:
    """A narrowing, another family, USING, an identity column: refused, saying why."""
    with pytest.raises(IrreversibleError) as caught:
        derive_rollback(Migration(tag="0100_snippet", when=1, text=sql), BEFORE)
    assert reason in caught.value.reason


def test_unfit_rows_block_and_uncounted_ones_are_said() -> None:
    """A count blocks naming file:line, column, type and rows; no count is a note, with why."""
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE tags ALTER COLUMN name SET DATA TYPE character varying(50);\n"
        "ALTER TABLE invoices ALTER COLUMN amount_cents SET DATA TYPE integer;\n"
        "COMMIT;\n```\n",
        file="0042_x.md",
    )
    facts = Facts(
        target=TARGET,
        objects=(),
        unfit=(
            UnfitCount(
                statement=1, column="public.tags.name", type="character varying(50)", rows=2
            ),
            UnfitCount(
                statement=2,
                column="public.invoices.amount_cents",
                type="integer",
                rows=None,
                why="counting took longer than the count budget",
            ),
        ),
    )
    plan = build_plan(book, facts, lock_timeout=TIMEOUT, statement_timeout=TIMEOUT)
    blocker = (
        "0042_x.md:7: 2 rows of public.tags.name do not fit character varying(50) (out of "
        "range, too long or not held exactly), so SET DATA TYPE would fail or change them; "
        "change or delete them first"
    )
    note = (
        "0042_x.md:8: rows of public.invoices.amount_cents that integer would not hold were "
        "not counted: counting took longer than the count budget"
    )
    assert plan.blockers == (blocker,)
    assert plan.uncounted == (note,)
