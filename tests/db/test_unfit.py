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
