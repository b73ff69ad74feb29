"""rollbot's side of a scenario: the seed runbook, planned against a database as rollbot would.

Planning is not timed: in real use it happens before approval, minutes or hours before the
execution a scenario measures.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from bench.raw import SEED_RUNBOOK
from bot.core.plan import Plan, build_plan
from bot.core.runbook import Runbook, parse_runbook
from bot.target.catalog import describe_target, read_facts

STATEMENT_TIMEOUT = timedelta(seconds=60)


def seed_runbook() -> Runbook:
    """The seed guide, parsed the way rollbot parses every runbook."""
    return parse_runbook(SEED_RUNBOOK.read_text(encoding="utf-8"), file=SEED_RUNBOOK.name)


def plan_for(conninfo: str, runbook: Runbook, *, lock_timeout_s: float) -> Plan:
    """The plan rollbot would ask approval for; ValueError if it is blocked."""
    with psycopg.connect(conninfo, application_name="bench plan") as conn:
        conn.read_only = True
        target = describe_target(conn)
        facts = read_facts(conn, runbook, target)
    plan = build_plan(
        runbook,
        facts,
        lock_timeout=timedelta(seconds=lock_timeout_s),
        statement_timeout=STATEMENT_TIMEOUT,
    )
    if plan.blocked:
        msg = f"the seed plan is blocked: {'; '.join(plan.blockers)}"
        raise ValueError(msg)
    return plan


def tables_left(conninfo: str, tables: tuple[str, ...]) -> list[str]:
    """Which of `tables` still exist: empty after a complete rollback."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
            (list(tables),),
        ).fetchall()
    return [str(row[0]) for row in rows]
