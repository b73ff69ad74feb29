"""A migration applied to a scratch database, and the plan rollbot derives to undo it.

Shared by the tests of what a derived plan counts before approval (rows that break a
re-added constraint, rows an old column type cannot hold): each builds N-1, applies one
forward migration on top, and plans its derived rollback as the planner would.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from bot.core.plan import Plan, build_plan
from bot.core.runbook import parse_runbook
from bot.drizzle.derive import Before, derive_runbook
from bot.drizzle.folder import Migration
from bot.target.catalog import describe_target, read_facts
from bot.target.schema import read_schema

FILE = "0042_x.sql"


def apply_migration(conninfo: str, previous: str, forward: str) -> Before:
    """Build N-1 from `previous`, read it, then apply `forward` as Drizzle would."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(previous)
        before = Before(schema=read_schema(conn, ()))
        for statement in forward.split("--> statement-breakpoint"):
            conn.execute(statement.encode())
    return before


def derived_plan(conninfo: str, before: Before, forward: str) -> Plan:
    """The plan of the rollback derived from `forward`, with a two-second count budget."""
    migration = Migration(tag="0042_x", when=0, text=forward)
    book = parse_runbook(derive_runbook(migration, before=before), file=FILE)
    with psycopg.connect(conninfo) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    return build_plan(
        book, facts, lock_timeout=timedelta(seconds=3), statement_timeout=timedelta(minutes=1)
    )
