"""Constraints a rollback adds back are counted against the rows first: violations block."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.core.plan import build_plan
from bot.core.runbook import parse_runbook
from bot.target.catalog import describe_target, read_facts
from tests.derived import FILE, apply_migration, derived_plan
from tests.fix_drizzle import schema_dump

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.drizzle.derive import Before
    from tests.fix_db import Role

PREVIOUS = """
CREATE TABLE customers (id int PRIMARY KEY);
CREATE TABLE orders (
    id int PRIMARY KEY, customer_id int, code text, total int,
    CONSTRAINT orders_total_check CHECK (total >= 0),
    CONSTRAINT orders_customer_id_fk FOREIGN KEY (customer_id) REFERENCES customers (id),
    CONSTRAINT orders_code_unique UNIQUE (code)
);
"""
FORWARD = """ALTER TABLE "orders" DROP CONSTRAINT "orders_total_check";--> statement-breakpoint
ALTER TABLE "orders" DROP CONSTRAINT "orders_customer_id_fk";--> statement-breakpoint
ALTER TABLE "orders" DROP CONSTRAINT "orders_code_unique";
"""
# 3 negative totals (a NULL total passes), 1 order of no customer (a NULL one passes), 3 orders
# sharing code 'x' (NULL codes are distinct).
BAD_ROWS = """
INSERT INTO customers VALUES (1);
INSERT INTO orders VALUES
    (1, 1, 'x', -5), (2, 1, 'x', -1), (3, 1, 'x', -3), (4, 1, NULL, NULL),
    (5, 99, NULL, 1), (6, NULL, 'y', 1);
"""
GOOD_ROWS = """
INSERT INTO customers VALUES (1);
INSERT INTO orders VALUES (1, 1, 'x', 5), (2, NULL, NULL, NULL), (3, 1, NULL, 0);
"""


@pytest.fixture
def dropped_db(scratch_db: str) -> tuple[str, Before]:
    """A database at 0042, which dropped a CHECK, a FOREIGN KEY and a UNIQUE; and its N-1."""
    return scratch_db, apply_migration(scratch_db, PREVIOUS, FORWARD)


def test_violating_rows_block_the_derived_rollback_with_their_counts(
    dropped_db: tuple[str, Before],
) -> None:
    """Each constraint put back names its table, its violating rows' count and its line."""
    conninfo, before = dropped_db
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(BAD_ROWS)
    schema = schema_dump(conninfo)
    plan = derived_plan(conninfo, before, FORWARD)
    names = ("orders_total_check", "orders_customer_id_fk", "orders_code_unique")
    # The statement that checks the rows: the VALIDATE after a NOT VALID, else the ADD.
    lines = {
        name: s.statement.line
        for s in plan.steps
        for name in names
        if name in s.statement.sql and "NOT VALID" not in s.statement.sql
    }
    assert plan.blocked
    # Undone newest first: the UNIQUE the migration dropped last comes back first.
    fix = "first (or leave the constraint out)"
    unique = (
        f"{FILE}:{lines['orders_code_unique']}: 3 rows of public.orders violate orders_code_unique"
        f" (they share a key with another row), so ADD CONSTRAINT would fail; fix or delete them"
        f" {fix}"
    )
    foreign = (
        f"{FILE}:{lines['orders_customer_id_fk']}: 1 row of public.orders violates"
        " orders_customer_id_fk (their keys match no row of the referenced table), so VALIDATE"
        f" would fail; fix or delete it {fix}"
    )
    check = (
        f"{FILE}:{lines['orders_total_check']}: 3 rows of public.orders violate"
        f" orders_total_check, so VALIDATE would fail; fix or delete them {fix}"
    )
    # Undone newest first: the UNIQUE the migration dropped last comes back first.
    assert [b for b in plan.blockers if "violate" in b] == [unique, foreign, check]
    assert plan.uncounted == ()
    assert schema_dump(conninfo) == schema
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (6,)


def test_without_violating_rows_the_derived_rollback_is_approvable(
    dropped_db: tuple[str, Before],
) -> None:
    """NULLs pass all three constraints; valid rows leave nothing to block."""
    conninfo, before = dropped_db
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(GOOD_ROWS)
    plan = derived_plan(conninfo, before, FORWARD)
    assert not plan.blocked, plan.blockers
    assert plan.uncounted == ()


def test_a_check_calling_user_code_is_not_evaluated(scratch_db: str) -> None:
    """A CHECK whose function writes a table is never run by the count: not counted, and why."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE side (at timestamptz);"
            "CREATE FUNCTION noisy(v int) RETURNS boolean LANGUAGE sql AS"
            " 'INSERT INTO side VALUES (now()) RETURNING v > 0';"
            "CREATE TABLE t (v int); INSERT INTO t VALUES (-1), (2);"
        )
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE t ADD CONSTRAINT t_v_check CHECK (noisy(v) AND v > random() - 2);\n"
        "COMMIT;\n```\n",
        file="0007_t.md",
    )
    with psycopg.connect(scratch_db) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    (count,) = facts.violations
    assert count.rows is None
    assert count.why is not None
    assert "public.noisy(v integer) is user-defined code" in count.why
    plan = build_plan(
        book, facts, lock_timeout=timedelta(seconds=3), statement_timeout=timedelta(minutes=1)
    )
    assert plan.uncounted == (
        f"0007_t.md:7: rows violating t_v_check on public.t were not counted: {count.why}",
    )
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT count(*) FROM side").fetchone() == (0,)


def test_a_check_added_not_valid_then_validated_is_not_evaluated_if_it_calls_user_code(
    scratch_db: str,
) -> None:
    """The VALIDATE evaluates what its ADD wrote: a user function there never runs at planning.

    The function claims to be IMMUTABLE and ends other sessions: had the count evaluated it,
    the session named `victim` would be gone. The derived rollback re-adds the CHECK NOT VALID
    and validates it in the next statement, the way every re-added CHECK is written.
    """
    previous = (
        "CREATE FUNCTION valid_email(e text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'victim'; RETURN e LIKE '%@%'; END $$;"
        "CREATE TABLE users (id int PRIMARY KEY, email text,"
        " CONSTRAINT users_email_check CHECK (valid_email(email)));"
    )
    forward = 'ALTER TABLE "users" DROP CONSTRAINT "users_email_check";'
    before = apply_migration(scratch_db, previous, forward)
    with (
        psycopg.connect(scratch_db, autocommit=True) as conn,
        psycopg.connect(scratch_db, application_name="victim", autocommit=True) as victim,
    ):
        conn.execute("INSERT INTO users VALUES (1, 'nobody')")
        plan = derived_plan(scratch_db, before, forward)
        assert victim.execute("SELECT 1").fetchone() == (1,)  # still connected
    (note,) = plan.uncounted
    assert "rows violating users_email_check on public.users were not counted" in note
    assert "public.valid_email(e text) is user-defined code" in note


def test_keys_are_counted_the_way_postgresql_checks_them(scratch_db: str) -> None:
    """MATCH FULL fails a partly NULL key; a PRIMARY KEY fails NULLs; NULLS NOT DISTINCT dups."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE p (a int, b int, UNIQUE (a, b)); INSERT INTO p VALUES (1, 1);"
            "CREATE TABLE c (id int, a int, b int);"
            "INSERT INTO c VALUES (1, 1, 1), (2, 1, NULL), (3, NULL, NULL), (4, 2, 2),"
            " (NULL, 5, NULL), (5, 5, NULL), (5, 6, NULL);"
        )
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE c ADD CONSTRAINT full_fk FOREIGN KEY (a, b) REFERENCES p (a, b) MATCH FULL;\n"
        "ALTER TABLE c ADD CONSTRAINT simple_fk FOREIGN KEY (a, b) REFERENCES p (a, b);\n"
        "ALTER TABLE c ADD CONSTRAINT c_pk PRIMARY KEY (id);\n"
        "ALTER TABLE c ADD CONSTRAINT c_a_b UNIQUE NULLS NOT DISTINCT (a, b);\n"
        "ALTER TABLE c ADD CONSTRAINT c_a_b_nulls UNIQUE (a, b);\n"
        "COMMIT;\n```\n",
        file="0008_c.md",
    )
    with psycopg.connect(scratch_db) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    assert {v.constraint: v.rows for v in facts.violations} == {
        "full_fk": 5,  # rows 2, 4 and the three (5|6, NULL): partly NULL or unmatched
        "simple_fk": 1,  # row 4 only: any NULL passes
        "c_pk": 3,  # the NULL id, and the two rows with id 5
        "c_a_b": 2,  # (NULL, NULL) is not repeated; (5, NULL) twice is
        "c_a_b_nulls": 0,
    }


def test_what_cannot_be_counted_safely_is_not_counted(
    scratch_db: str, make_role: Callable[[], Role]
) -> None:
    """Row security, a missing table, an earlier DELETE or a failing expression: not counted."""
    role = make_role()
    role.run(
        scratch_db,
        "CREATE TABLE guarded (v int); ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;"
        " CREATE POLICY everyone ON guarded USING (true);"
        " CREATE TABLE t (v int); INSERT INTO t VALUES (0), (-1);"
        " GRANT SELECT ON guarded, t TO {role}",
    )
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE guarded ADD CONSTRAINT g CHECK (v > 0);\n"
        "ALTER TABLE nowhere ADD CONSTRAINT n CHECK (v > 0);\n"
        "ALTER TABLE t ADD CONSTRAINT z CHECK (1 / v > 0);\n"
        "DELETE FROM t WHERE v < 0;\n"
        "ALTER TABLE t ADD CONSTRAINT d CHECK (v >= 0);\n"
        "COMMIT;\n```\n",
        file="0009_t.md",
    )
    with psycopg.connect(role.conninfo(scratch_db)) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    why = {v.constraint: (v.rows, v.why) for v in facts.violations}
    assert why["g"][0] is None
    assert "reading public.guarded would run code (a row-level security policy" in str(why["g"][1])
    assert why["n"] == (None, "the table does not exist before the rollback")
    assert why["z"] == (None, "PostgreSQL could not count them: division by zero")
    assert why["d"][0] is None
    assert "an earlier statement deletes rows" in str(why["d"][1])


def test_duplicates_block_the_unique_index_a_rollback_recreates(scratch_db: str) -> None:
    """A dropped unique index comes back from N-1; rows sharing its key since are counted."""
    previous = (
        "CREATE TABLE members (id int PRIMARY KEY, email text, team int);"
        "CREATE UNIQUE INDEX members_email_idx ON members (email);"
        "CREATE UNIQUE INDEX members_lower_idx ON members (lower(email));"
    )
    forward = (
        'DROP INDEX "members_email_idx";--> statement-breakpoint\nDROP INDEX "members_lower_idx";'
    )
    before = apply_migration(scratch_db, previous, forward)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO members VALUES (1, 'a@x', 1), (2, 'a@x', 1), (3, 'a@x', 2),"
            " (4, NULL, 1), (5, NULL, 1), (6, 'b@x', 1)"
        )
    plan = derived_plan(scratch_db, before, forward)
    (blocker,) = [b for b in plan.blockers if "members_email_idx" in b]
    assert blocker.split(": ", 1)[1] == (
        "3 rows of public.members violate members_email_idx (they share a key with another "
        "row), so CREATE UNIQUE INDEX would fail; fix or delete them first (or leave the "
        "constraint out)"
    )
    assert not [b for b in plan.blockers if "members_lower_idx" in b]  # an expression: not counted


def test_a_constraint_not_valid_before_the_runbook_is_counted_from_the_catalog(
    scratch_db: str,
) -> None:
    """VALIDATE of a NOT VALID key or CHECK it did not add: their rows counted as defined there.

    A CHECK whose stored expression calls a user function is not evaluated (and says so).
    """
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION positive(v int) RETURNS boolean IMMUTABLE LANGUAGE sql"
            " AS 'SELECT v > 0';"
            "CREATE TABLE teams (id int PRIMARY KEY); INSERT INTO teams VALUES (1);"
            "CREATE TABLE people (id int PRIMARY KEY, team_id int, age int, score int);"
            "INSERT INTO people VALUES (1, 1, 30, 1), (2, 7, -1, 0), (3, 8, -2, 5);"
            "ALTER TABLE people ADD CONSTRAINT people_team_fk FOREIGN KEY (team_id)"
            " REFERENCES teams (id) NOT VALID;"
            "ALTER TABLE people ADD CONSTRAINT people_age_check CHECK (age >= 0) NOT VALID;"
            "ALTER TABLE people ADD CONSTRAINT people_score_check CHECK (positive(score))"
            " NOT VALID;"
        )
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE people VALIDATE CONSTRAINT people_team_fk;\n"
        "ALTER TABLE people VALIDATE CONSTRAINT people_age_check;\n"
        "ALTER TABLE people VALIDATE CONSTRAINT people_score_check;\n"
        "COMMIT;\n```\n",
        file="0009_p.md",
    )
    with psycopg.connect(scratch_db) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    counts = {v.constraint: v.rows for v in facts.violations}
    assert counts == {"people_team_fk": 2, "people_age_check": 2, "people_score_check": None}
    (why,) = [v.why for v in facts.violations if v.rows is None]
    assert "positive is user-defined code" in (why or "")
