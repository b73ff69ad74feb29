"""Widened columns cast back on a real server: unfit rows are counted exactly, fitting ones pass."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from bot.core.plan import build_plan
from bot.core.runbook import parse_runbook
from bot.drizzle.derive import Before, derive_runbook
from bot.drizzle.folder import Migration
from bot.target.catalog import describe_target, read_facts
from bot.target.schema import read_schema
from tests.derived import FILE, apply_migration, derived_plan
from tests.fix_drizzle import schema_dump

PREVIOUS = """
CREATE TABLE m (
    id int PRIMARY KEY, small smallint, whole integer DEFAULT 7, label varchar(5) COLLATE "C",
    ratio real, price numeric(5,2)
);
CREATE INDEX m_label_idx ON m (label);
ALTER TABLE m ADD CONSTRAINT m_whole_check CHECK (whole <> 13);
"""
FORWARD = """ALTER TABLE "m" ALTER COLUMN "small" SET DATA TYPE integer;--> statement-breakpoint
ALTER TABLE "m" ALTER COLUMN "whole" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "m" ALTER COLUMN "label" SET DATA TYPE text;--> statement-breakpoint
ALTER TABLE "m" ALTER COLUMN "ratio" SET DATA TYPE double precision;--> statement-breakpoint
ALTER TABLE "m" ALTER COLUMN "price" SET DATA TYPE numeric(7,2);
"""
# Each column has rows that fit (NULL among them) and rows that do not: small 2 (one each
# side of the range), whole 1, label 2 (one too long, one with trailing spaces the cast would
# cut), ratio 3 (not a real exactly, too large, too small to be one), price 1.
ROWS = """
INSERT INTO m VALUES
    (1, 32767, 2147483647, 'abcde', 0.5, 999.99),
    (2, -32768, NULL, NULL, 'NaN', -999.99),
    (3, NULL, -5, 'ab', '-Infinity', NULL),
    (4, 40000, 2147483648, 'abcdef', 0.1, 1000.00),
    (5, -40000, 1, 'abc   ', 1e300, 'NaN'),
    (6, 1, 1, 'a', 1e-300, 1);
"""


@pytest.fixture
def widened_db(scratch_db: str) -> tuple[str, Before]:
    """A database at 0042, which widened five columns; and its N-1."""
    return scratch_db, apply_migration(scratch_db, PREVIOUS, FORWARD)


def test_rows_the_old_types_do_not_hold_block_with_exact_counts(
    widened_db: tuple[str, Before],
) -> None:
    """Out of range, too long, cut spaces, inexact reals, too many digits: each counted."""
    conninfo, before = widened_db
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(ROWS)
    schema = schema_dump(conninfo)
    plan = derived_plan(conninfo, before, FORWARD)
    fits = sorted(b.split(": ", 1)[1].split(" (")[0] for b in plan.blockers if "fit" in b)
    assert fits == [
        "1 row of public.m.price does not fit numeric(5,2)",
        "1 row of public.m.whole does not fit integer",
        "2 rows of public.m.label do not fit character varying(5)",
        "2 rows of public.m.small do not fit smallint",
        "3 rows of public.m.ratio do not fit real",
    ]
    assert plan.uncounted == ()
    assert schema_dump(conninfo) == schema


def test_fitting_rows_let_the_cast_back_reach_n_minus_1(
    widened_db: tuple[str, Before],
) -> None:
    """With only rows that fit, the plan is clear and its SQL leaves exactly the N-1 schema."""
    conninfo, before = widened_db
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(ROWS)
        conn.execute("DELETE FROM m WHERE id >= 4")
    plan = derived_plan(conninfo, before, FORWARD)
    assert not plan.blocked, plan.blockers
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for step in plan.steps:
            conn.execute(step.statement.sql.encode())
    with psycopg.connect(conninfo) as conn:
        after = read_schema(conn, ())
        rows = conn.execute("SELECT * FROM m ORDER BY id").fetchall()
    assert before.schema is not None
    assert sorted(after.objects, key=lambda o: o.key) == sorted(
        before.schema.objects, key=lambda o: o.key
    )
    assert len(rows) == 3


def test_an_index_calling_user_code_blocks_the_cast_back_that_rebuilds_it(
    scratch_db: str,
) -> None:
    """The cast back rebuilds the column's indexes: one calling a user function blocks it."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION norm(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';"
            "CREATE TABLE n (id int PRIMARY KEY, label varchar(5));"
            "CREATE INDEX n_norm_idx ON n (norm(label));"
        )
        before = Before(schema=read_schema(conn, ()))
        conn.execute('ALTER TABLE "n" ALTER COLUMN "label" SET DATA TYPE text')
    migration = Migration(
        tag="0042_x", when=0, text='ALTER TABLE "n" ALTER COLUMN "label" SET DATA TYPE text;'
    )
    book = parse_runbook(derive_runbook(migration, before=before), file=FILE)
    with psycopg.connect(scratch_db) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    plan = build_plan(
        book, facts, lock_timeout=timedelta(seconds=3), statement_timeout=timedelta(minutes=1)
    )
    assert any(
        "index public.n_norm_idx on public.n runs on every row the rollback rewrites" in blocker
        for blocker in plan.blockers
    ), plan.blockers


MORE_PREVIOUS = """
CREATE TABLE p (
    id int PRIMARY KEY, amount numeric(10,2) DEFAULT 0, code character(3), qty integer,
    total numeric(8,3)
);
"""
BREAK = "--> statement-breakpoint\n"
MORE_FORWARD = (
    f'ALTER TABLE "p" ALTER COLUMN "amount" SET DATA TYPE numeric(12,4);{BREAK}'
    f'ALTER TABLE "p" ALTER COLUMN "code" SET DATA TYPE text;{BREAK}'
    f'ALTER TABLE "p" ALTER COLUMN "qty" SET DATA TYPE numeric;{BREAK}'
    'ALTER TABLE "p" ALTER COLUMN "total" SET DATA TYPE numeric;\n'
)
# Rows 1-3 fit the N-1 types (a character read back without its padding); from row 4 each
# column has rows that do not: amount 2 (a digit too fine, one that rounds into overflow),
# code 3 (too long, trailing spaces past its length, a trailing space that a character would
# hold as padding and give back without), qty 4 (a fraction, NaN, out of range, an
# infinity), total 2 (too many digits before the point, an infinity).
MORE_ROWS = """
INSERT INTO p VALUES
    (1, 12345678.99, 'ab', 5, 99999.999),
    (2, -0.01, 'abc', -2147483648, 'NaN'),
    (3, NULL, NULL, NULL, NULL),
    (4, 1.2345, 'abcd', 2.5, 100000),
    (5, 99999999.995, 'ab  ', 'NaN', 'Infinity'),
    (6, 1, 'a', 3000000000, 1),
    (7, 1, 'a ', '-Infinity', 1);
"""


def test_numbers_with_more_digits_and_padded_strings_are_counted_and_cast_back(
    scratch_db: str,
) -> None:
    """A numeric with more digits or none, an integer as numeric, a character as text: undone.

    Rows written since that the N-1 type would round, refuse or cut are counted one by one;
    once they are gone, the cast back gives the N-1 schema and every value that was there.
    """
    before = apply_migration(scratch_db, MORE_PREVIOUS, MORE_FORWARD)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(MORE_ROWS)
    plan = derived_plan(scratch_db, before, MORE_FORWARD)
    fits = sorted(b.split(": ", 1)[1].split(" (")[0] for b in plan.blockers if "fit" in b)
    assert fits == [
        "2 rows of public.p.amount do not fit numeric(10,2)",
        "2 rows of public.p.total do not fit numeric(8,3)",
        "3 rows of public.p.code do not fit character(3)",
        "4 rows of public.p.qty do not fit integer",
    ]
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("DELETE FROM p WHERE id >= 4")
    plan = derived_plan(scratch_db, before, MORE_FORWARD)
    assert not plan.blocked, plan.blockers
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for step in plan.steps:
            conn.execute(step.statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
        rows = conn.execute("SELECT amount::text, code, qty, total::text FROM p ORDER BY id")
        values = rows.fetchall()
    assert before.schema is not None
    assert sorted(after.objects, key=lambda o: o.key) == sorted(
        before.schema.objects, key=lambda o: o.key
    )
    assert values == [
        ("12345678.99", "ab ", 5, "99999.999"),
        ("-0.01", "abc", -2147483648, "NaN"),
        (None, None, None, None),
    ]
