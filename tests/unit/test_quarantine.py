"""The quarantine mode's SQL, decided from hand-written facts."""

from datetime import timedelta

import pglast
import pytest

from bot.core import texts
from bot.core.facts import Facts, Found, Table, Target
from bot.core.plan import Plan, build_plan
from bot.core.quarantine import KeptKey, MovedObject, Quarantine, _kept, move_back_sql, purge_sql
from bot.core.runbook import parse_runbook
from bot.core.sql import ObjectKind
from bot.service.planner import _rollbots_own

USERS = Table(oid=100, name="public.users")
ERRORS = Table(oid=200, name="public.api_errors")
RUNBOOK = """# Rollback

**Migration File**: `0023_loud_shen.sql`

## Quick Rollback

```sql
DROP INDEX IF EXISTS idx_errors_user;
ALTER TABLE api_errors DROP CONSTRAINT IF EXISTS api_errors_user_id_users_id_fk;
DROP TABLE IF EXISTS api_errors;
DROP TYPE IF EXISTS error_severity;
```
"""
KEY = KeptKey(
    oid=300,
    name="api_errors_user_id_users_id_fk",
    table="public.api_errors",
    parent="public.users",
    definition="FOREIGN KEY (user_id) REFERENCES users(id)",
)


def _facts() -> Facts:
    objects = (
        Found(statement=1, position=0, kind=ObjectKind.INDEX, name="public.idx_errors_user",
              exists=True, oid=201, table=ERRORS),
        Found(statement=2, position=0, kind=ObjectKind.CONSTRAINT,
              name="api_errors_user_id_users_id_fk on public.api_errors", exists=True, oid=300,
              table=ERRORS, fk_parents=(USERS,)),
        Found(statement=3, position=0, kind=ObjectKind.TABLE, name="public.api_errors",
              exists=True, oid=200, table=ERRORS),
        Found(statement=4, position=0, kind=ObjectKind.TYPE, name="public.error_severity",
              exists=True, oid=400),
    )  # fmt: skip
    return Facts(
        target=Target(host="db", dbname="asset_forge"),
        objects=objects,
        quarantine_keys=(KEY,),
        quarantine_bytes=8192,
    )


def _plan(mode: str) -> Plan:
    return build_plan(
        parse_runbook(RUNBOOK, file="runbooks/0023_loud_shen.md"),
        _facts(),
        lock_timeout=timedelta(milliseconds=200),
        statement_timeout=timedelta(seconds=30),
        drop_mode=mode,  # type: ignore[arg-type]
    )


def test_quarantine_mode_moves_tables_and_types_keeps_indexes_and_drops_only_crossing_keys() -> (
    None
):
    """A quarantined plan moves the table and type, keeps its index, drops the FK to users."""
    plan = _plan("quarantine")
    schema = "rollbot_quarantine_0023_200"
    assert plan.quarantine is not None
    assert plan.quarantine.schema_name == schema
    assert plan.quarantine.keys == (KEY,)
    assert plan.quarantine.size_bytes == 8192
    index, key, table, kind = plan.script.statements
    assert index.startswith("SELECT $kept$kept in quarantine: DROP INDEX")
    assert "SET LOCAL standard_conforming_strings = on;" in plan.sql
    assert key.endswith(
        "ALTER TABLE public.api_errors DROP CONSTRAINT api_errors_user_id_users_id_fk"
    )
    assert table == f"ALTER TABLE public.api_errors SET SCHEMA {schema}"
    assert kind == f"ALTER TYPE public.error_severity SET SCHEMA {schema}"
    assert f"CREATE SCHEMA {schema};" in plan.sql
    assert "REFERENCES users(id)" in plan.sql  # the kept definition is covered by the hash
    assert "SAVEPOINT rollbot_locks" in plan.sql
    assert "pg_export_snapshot" not in plan.sql  # nothing to dump inside the transaction
    assert plan.final_tables() == ()
    assert not plan.blocked


@pytest.mark.parametrize(
    "text",
    [
        """DROP INDEX "a\\'; DELETE FROM victim; --\"""",
        "DROP INDEX x -- $kept$; DELETE FROM victim; $kept_$",
    ],
)
def test_a_kept_statement_is_one_constant_whatever_its_quotes(text: str) -> None:
    """Backslashes and dollar tags in a runbook statement cannot end the kept text early."""
    parsed = pglast.parse_sql(_kept(text))
    assert len(parsed) == 1
    select = parsed[0].stmt
    assert isinstance(select, pglast.ast.SelectStmt)
    (target,) = select.targetList or ()
    assert target.val.val.sval == f"kept in quarantine: {text}"


def test_drop_mode_runs_the_runbook_as_written() -> None:
    """Drop mode keeps the runbook's statements and the final backup inside the transaction."""
    plan = _plan("drop")
    assert plan.quarantine is None
    assert "DROP TABLE IF EXISTS api_errors" in plan.script.statements
    assert plan.script.snapshot


def test_move_back_and_purge_reverse_the_move_without_cascade() -> None:
    """A restore moves type and table back and re-adds the key; a purge drops without CASCADE."""
    quarantine = _plan("quarantine").quarantine
    assert quarantine is not None
    schema = quarantine.schema_name
    assert move_back_sql(quarantine) == [
        f"ALTER TYPE {schema}.error_severity SET SCHEMA public",
        f"ALTER TABLE {schema}.api_errors SET SCHEMA public",
        f"ALTER TABLE public.api_errors ADD CONSTRAINT {KEY.name} {KEY.definition}",
        f"DROP SCHEMA {schema}",
    ]
    purge = purge_sql(quarantine)
    assert purge[-1] == f"DROP SCHEMA {schema}"
    assert not any("CASCADE" in s for s in purge)


def test_a_partitioned_table_blocks_quarantine_mode_and_names_drop_mode() -> None:
    """A dropped table a move cannot take whole blocks the quarantined plan, suggesting drop."""
    facts = _facts().model_copy(update={"quarantine_unmovable": ("public.api_errors",)})
    plan = build_plan(
        parse_runbook(RUNBOOK, file="runbooks/0023_loud_shen.md"),
        facts,
        lock_timeout=timedelta(milliseconds=200),
        statement_timeout=timedelta(seconds=30),
        drop_mode="quarantine",
    )
    assert plan.blocked
    (reason,) = [b for b in plan.blockers if "public.api_errors" in b]
    assert "is partitioned, a partition or part of an inheritance tree" in reason
    assert "ROLLBOT_DROP_MODE=drop" in reason


def test_a_dropped_view_is_moved_aside_back_and_purged_before_its_table() -> None:
    """A view moves like a table (so a restore gives it back) and a purge drops it first."""
    q = "rollbot_quarantine_0006_1"
    quarantine = Quarantine(
        schema_name=q,
        objects=(
            MovedObject(kind="view", name="public.open_tasks", moved=f"{q}.open_tasks"),
            MovedObject(kind="table", name="public.tasks", moved=f"{q}.tasks"),
        ),
        keys=(),
        size_bytes=None,
    )
    assert move_back_sql(quarantine)[:2] == [
        f"ALTER VIEW {q}.open_tasks SET SCHEMA public",
        f"ALTER TABLE {q}.tasks SET SCHEMA public",
    ]
    assert purge_sql(quarantine) == [
        f"DROP VIEW {q}.open_tasks",
        f"DROP TABLE {q}.tasks",
        f"DROP SCHEMA {q}",
    ]


def test_a_dropped_sequence_moves_after_its_tables_and_tolerates_having_moved_with_one() -> None:
    """A sequence moves back after the tables (an owned one already has) and IF EXISTS guards."""
    q = "rollbot_quarantine_0007_1"
    quarantine = Quarantine(
        schema_name=q,
        objects=(
            MovedObject(kind="table", name="public.invoices", moved=f"{q}.invoices"),
            MovedObject(kind="sequence", name="public.invoice_number_seq", moved=f"{q}.seq"),
        ),
        keys=(),
        size_bytes=None,
    )
    assert move_back_sql(quarantine)[:2] == [
        f"ALTER TABLE {q}.invoices SET SCHEMA public",
        f"ALTER SEQUENCE IF EXISTS {q}.seq SET SCHEMA public",
    ]
    assert purge_sql(quarantine)[:2] == [
        f"DROP TABLE {q}.invoices",
        f"DROP SEQUENCE IF EXISTS {q}.seq",
    ]


def test_the_summary_says_what_quarantine_mode_makes_of_each_statement() -> None:
    """A moved drop is no drop, nor a kept index: the counts say so; the drops stay listed."""
    quarantined, dropped = _plan("quarantine"), _plan("drop")
    assert texts.statement_summary(quarantined) == (
        "4 statements run: 1 DROP INDEX (kept on the moved table), "
        "1 ALTER TABLE … DROP CONSTRAINT, 1 DROP TABLE (moved aside), 1 DROP TYPE (moved aside)"
    )
    assert texts.data_statements(quarantined) == ["DROP TABLE IF EXISTS api_errors"]
    assert texts.statement_summary(dropped) == (
        "4 statements run: 1 DROP INDEX, 1 ALTER TABLE … DROP CONSTRAINT, 1 DROP TABLE, 1 DROP TYPE"
    )
    assert texts.data_statements(dropped) == ["DROP TABLE IF EXISTS api_errors"]


def test_a_runbook_reaching_rollbots_own_schemas_is_blocked() -> None:
    """Its state schema ("$user" for rollbot's role) and a quarantine are never a rollback's."""
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nDROP TABLE IF EXISTS runs;\n"
        "DROP TABLE IF EXISTS api_errors;\nDROP TABLE IF EXISTS users;\n```\n",
        file="runbooks/0009_x.md",
    )
    tables = ("rollbot.runs", "rollbot_quarantine_0023_200.api_errors", "public.users")
    facts = Facts(
        target=Target(host="db", dbname="asset_forge"),
        objects=tuple(
            Found(statement=n, position=0, kind=ObjectKind.TABLE, name=name, exists=True)
            for n, name in enumerate(tables, start=1)
        ),
    )
    blockers = _rollbots_own(book, facts)
    assert [b.split(": ", 1)[1].split(",")[0] for b in blockers] == [
        "rollbot.runs is in rollbot",
        "rollbot_quarantine_0023_200.api_errors is in rollbot_quarantine_0023_200",
    ]
    assert blockers[0].startswith("runbooks/0009_x.md:6: ")
