"""A sequence's options put back: a current value past the old bounds blocks before approval."""

from __future__ import annotations

import psycopg

from bot.target.schema import read_schema
from tests.derived import FILE, apply_migration, derived_plan

PREVIOUS = "CREATE SEQUENCE invoice_no AS integer MAXVALUE 1000;"
FORWARD = 'ALTER SEQUENCE "invoice_no" MAXVALUE 100000 INCREMENT BY 10;'


def test_a_sequence_past_its_old_bounds_blocks_and_one_within_them_goes_back(
    scratch_db: str,
) -> None:
    """Counted past N-1's MAXVALUE, the options cannot go back: said with the value, at the line.

    Back within it, the derived ALTER SEQUENCE gives the N-1 schema, its value kept.
    """
    before = apply_migration(scratch_db, PREVIOUS, FORWARD)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("SELECT setval('invoice_no', 1010)")
        blocked = derived_plan(scratch_db, before, FORWARD)
        conn.execute("SELECT setval('invoice_no', 990)")
        clear = derived_plan(scratch_db, before, FORWARD)
    (blocker,) = [b for b in blocked.blockers if "sequence" in b]
    assert blocker.startswith(f"{FILE}:")
    assert blocker.split(": ", 1)[1] == (
        "sequence public.invoice_no has reached 1,010, outside the bounds 1..1,000 this "
        "statement sets, so ALTER SEQUENCE would fail: the values it handed out since no "
        "longer fit them; leave the bounds out of the statement (write the runbook by hand) "
        "or keep the migration"
    )
    assert not clear.blocked, clear.blockers
    with psycopg.connect(scratch_db) as conn, conn.transaction():
        for step in clear.steps:
            conn.execute(step.statement.sql.encode())
    with psycopg.connect(scratch_db) as conn:
        after = read_schema(conn, ())
        value = conn.execute("SELECT last_value FROM invoice_no").fetchone()
    assert before.schema is not None
    assert sorted(after.objects, key=lambda o: o.key) == sorted(
        before.schema.objects, key=lambda o: o.key
    )
    assert value == (990,)
