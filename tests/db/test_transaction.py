"""The plan's transaction as execution and rehearsal both send it, on a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.core.library import load_library
from bot.core.plan import Plan, build_plan
from bot.core.runbook import Runbook, parse_runbook
from bot.target.catalog import describe_target, read_facts
from bot.target.transaction import PlanTransaction, StatementFailedError
from tests.fix_rollbot import RUNBOOKS

if TYPE_CHECKING:
    from collections.abc import Iterator

FAILS_AT_LINE_10 = """# Fails only against the real schema

**Migration File**: `0024_fails_at_run_time.sql`

## Quick Rollback

```sql
BEGIN;
DROP INDEX IF EXISTS idx_errors_user;
DELETE FROM sessions WHERE user_id = 'not-a-uuid';
DROP TABLE IF EXISTS api_errors;
COMMIT;
```
"""


def plan_for(conninfo: str, runbook: Runbook) -> Plan:
    with psycopg.connect(conninfo) as conn:
        facts = read_facts(conn, runbook, describe_target(conn), count_budget=None)
    plan = build_plan(
        runbook, facts, lock_timeout=timedelta(seconds=3), statement_timeout=timedelta(seconds=60)
    )
    assert not plan.blocked, plan.blockers
    return plan


@pytest.fixture
def conn(db_0023: str) -> Iterator[psycopg.Connection[object]]:
    """A connection whose transaction is always rolled back: the clone stays as it was."""
    with psycopg.connect(db_0023) as connection:
        yield connection
        connection.rollback()


def test_a_failing_statement_carries_its_number_line_and_sqlstate(
    db_0023: str, conn: psycopg.Connection[object]
) -> None:
    """What both callers report: the statement as sent, its runbook line, PostgreSQL's code."""
    runbook = parse_runbook(FAILS_AT_LINE_10, file="0024_fails_at_run_time.md")
    tx = PlanTransaction(conn, plan_for(db_0023, runbook), runbook)
    assert tx.begin()
    with pytest.raises(StatementFailedError) as caught:
        tx.run_statements()
    failed = caught.value
    assert failed.text == "DELETE FROM sessions WHERE user_id = 'not-a-uuid'"
    assert (failed.number, failed.line, failed.sqlstate) == (2, 10, "22P02")
    assert isinstance(failed.error, psycopg.errors.InvalidTextRepresentation)


def test_rollbots_own_queries_fail_without_a_statement(
    db_0023: str, conn: psycopg.Connection[object]
) -> None:
    """A failing count or setting is no runbook statement: the execution blames the connection."""
    runbook = load_library(RUNBOOKS).find("0023")
    tx = PlanTransaction(conn, plan_for(db_0023, runbook), runbook)
    with pytest.raises(StatementFailedError) as caught:
        tx.scalar("SELECT 1 / 0")
    assert (caught.value.number, caught.value.line, caught.value.sqlstate) == (None, None, "22012")


def test_the_check_before_commit_passes_the_plan_and_names_what_else_vanished(
    db_0023: str, conn: psycopg.Connection[object]
) -> None:
    """The seed leaves nothing to report; a table gone that the runbook never named is caught."""
    runbook = load_library(RUNBOOKS).find("0023")
    plan = plan_for(db_0023, runbook)
    tx = PlanTransaction(conn, plan, runbook, exclude_schemas=("rollbot",))
    assert tx.begin()
    for lock in (plan.script.write_lock, plan.script.exclusive_lock):
        if lock:
            tx.send(lock)
    before = tx.relations()
    neighbours_before = tx.counts(plan.script.count_neighbours)
    tx.run_statements()
    neighbours = (neighbours_before, tx.counts(plan.script.count_neighbours))
    after = tx.relations()
    assert tx.problems((before, after), neighbours) == []
    ghost = {**before, 0: "public.ghost"}
    assert tx.problems((ghost, after), neighbours) == [
        "dropped although the runbook does not name them: public.ghost"
    ]
