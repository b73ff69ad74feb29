"""A chain drizzle-kit itself generated: every migration is rolled back without a runbook.

`tests/fixtures/drizzle_kit_chain` was written by `drizzle-kit generate` (0.31) from 35
versions of a TypeScript schema, so its SQL is exactly what Drizzle users ship: the quoting,
the breakpoints, a foreign key changed by dropping and adding it under the same name, a
column made NOT NULL with a default, an enum value removed by recreating the enum (undone as
one), an enum value added, a `pgSchema` with an identity column, a policy altered and dropped with
CASCADE, a view, a CHECK, an index and a primary key each changed by dropping and creating
it again, a column,
a table (its constraints dropped and added under the new name), an enum renamed and a
materialized view moved to another schema. Those
whose inverse loses nothing are derived, proved equal to N-1 and run; the others are refused
naming the statement that loses data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.core.errors import IrreversibleError, NotAllowedError
from bot.core.plan import Plan
from bot.core.states import RunState
from bot.core.text import outcome_text
from bot.drizzle.folder import read_migrations, select_upto
from bot.target.migrator import migrate
from tests.db.test_rollback import journal_of
from tests.fix_rollbot import APPROVER, REQUESTER, schema_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.service.rollback import Rollbot

KIT = Path(__file__).parent.parent / "fixtures" / "drizzle_kit_chain"
CHAIN = read_migrations(KIT)
IDS = [m.tag.split("_")[0] for m in CHAIN]
# What drops or rewrites data, by the file line of the statement that does.
IRREVERSIBLE = {
    "0009": (1, "drops column accounts.display_name"),
    "0013": (1, "drops table api_keys"),
    "0021": (1, "drops sequence invoice_numbers, and its current value is gone"),
}
REVERSIBLE = [i for i in IDS if i not in IRREVERSIBLE]


@pytest.fixture
def kit_db(make_database: Callable[..., str]) -> Callable[[str | None], str]:
    """Factory: a new database Drizzle's migrator took up to that migration (None: none)."""

    def make(upto: str | None) -> str:
        conninfo = make_database(prefix="rollbot_kit")
        with psycopg.connect(conninfo) as conn:
            migrate(conn, select_upto(CHAIN, upto) if upto is not None else [])
        return conninfo

    return make


@pytest.fixture
def kit_service(make_service: Callable[..., Rollbot], tmp_path: Path) -> Callable[..., Rollbot]:
    """A rollbot reading the generated folder, with no runbook at all."""
    empty = tmp_path / "no-runbooks"
    empty.mkdir()

    def make(conninfo: str, **settings: str) -> Rollbot:
        return make_service(
            conninfo, runbooks_dir=empty, migrations_dir=KIT, rehearsal="schema", **settings
        )

    return make


def test_the_folder_is_drizzle_kits_own() -> None:
    """35 migrations, journal and snapshots as drizzle-kit writes them."""
    assert [f"{n:04d}" for n in range(35)] == IDS
    assert sorted(p.name for p in (KIT / "meta").glob("*_snapshot.json")) == [
        f"{n:04d}_snapshot.json" for n in range(35)
    ]


@pytest.mark.parametrize("migration", REVERSIBLE)
def test_each_lossless_migration_is_derived_proved_and_lands_on_n_minus_1(
    migration: str,
    kit_db: Callable[[str | None], str],
    kit_service: Callable[[str], Rollbot],
) -> None:
    """Derived, proved equal to N-1 on a rehearsal, run: schema and journal are N-1's."""
    position = IDS.index(migration)
    previous = IDS[position - 1] if position else None
    database, expected = kit_db(migration), kit_db(previous)
    service = kit_service(database)
    run = service.request(migration, requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert Plan.model_validate(run.plan).derived
    assert run.rehearsal is not None
    assert run.rehearsal.proof is not None
    assert run.rehearsal.proof.summary() == f"proved equal to {previous or 'an empty database'}"
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    assert schema_of(database) == schema_of(expected)
    assert journal_of(database) == journal_of(expected)


@pytest.mark.parametrize("migration", sorted(IRREVERSIBLE))
def test_each_lossy_migration_is_refused_naming_what_it_loses(
    migration: str,
    kit_db: Callable[[str | None], str],
    kit_service: Callable[[str], Rollbot],
) -> None:
    """Refused before anything is planned, naming the file line and what would be lost."""
    database = kit_db(migration)
    schema, journal = schema_of(database), journal_of(database)
    service = kit_service(database)
    with pytest.raises(IrreversibleError) as caught:
        service.request(migration, requested_by=REQUESTER)
    line, loses = IRREVERSIBLE[migration]
    tag = CHAIN[IDS.index(migration)].tag
    assert f"{tag}.sql:{line}:" in caught.value.render()
    assert loses in caught.value.render()
    assert service.store.recent() == []
    assert (schema_of(database), journal_of(database)) == (schema, journal)


@pytest.mark.parametrize("mode", ["quarantine", "drop"])
def test_a_dropped_schema_is_made_again_by_the_restore(
    mode: str,
    kit_db: Callable[[str | None], str],
    kit_service: Callable[..., Rollbot],
) -> None:
    """0014's rollback drops schema billing last; its restore makes it first, rows and all.

    Moved back from the quarantine, or restored from the backup: the schema, the enum, the
    table with its identity column and rows are those of 0014 again.
    """
    database = kit_db("0014")
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('ada@example.com')")
        conn.execute(
            "INSERT INTO billing.invoices (account_id, amount) SELECT id, 12.5 FROM accounts"
        )
    schema, journal = schema_of(database), journal_of(database)
    service = kit_service(database, drop_mode=mode)
    rolled = service.request("0014", requested_by=REQUESTER)
    assert "DROP SCHEMA IF EXISTS billing;" in Plan.model_validate(rolled.plan).sql
    rolled = service.approve(rolled.id, APPROVER)
    assert rolled.state is RunState.SUCCEEDED, rolled.reason
    with psycopg.connect(database) as conn:
        gone = conn.execute("SELECT to_regnamespace('billing') IS NULL").fetchone()
    assert gone == (True,)
    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
    restore = service.approve(restore.id, APPROVER)
    assert restore.state is RunState.SUCCEEDED, restore.reason
    assert (schema_of(database), journal_of(database)) == (schema, journal)
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT amount::text FROM billing.invoices").fetchall()
    assert rows == [("12.50",)]


def test_an_added_enum_value_comes_out_unless_a_row_holds_it(
    kit_db: Callable[[str | None], str],
    kit_service: Callable[..., Rollbot],
) -> None:
    """0002 added 'team' to plan_tier: the enum is made again with N-1's labels.

    An account on the 'team' tier blocks the plan with its count, nothing changed; moved to
    another tier, the rollback is proved and run. One written with 'team' after the plan
    fails the run before the cast, nothing changed.
    """
    database = kit_db("0002")
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO accounts (email, tier) VALUES ('ada@example.com', 'team'),"
            " ('bob@example.com', 'pro')"
        )
    schema, journal = schema_of(database), journal_of(database)
    service = kit_service(database)
    blocked = service.request("0002", requested_by=REQUESTER)
    assert blocked.state is RunState.BLOCKED
    assert (
        "1 row of public.accounts.tier holds a value the enum does not have (it has 'free', "
        "'pro'), so the cast to it would fail" in str(blocked.reason)
    )
    assert (schema_of(database), journal_of(database)) == (schema, journal)
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE accounts SET tier = 'pro' WHERE tier = 'team'")
    run = service.request("0002", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO accounts (email, tier) VALUES ('cy@example.com', 'team')")
    failed = service.approve(run.id, APPROVER)
    assert failed.state is RunState.FAILED
    assert "1 row of public.accounts.tier written since the plan holds a value the enum" in str(
        failed.reason
    )
    assert journal_of(database) == journal
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM accounts WHERE tier = 'team'")
    run = service.request("0002", requested_by=REQUESTER)
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    assert schema_of(database) == schema_of(kit_db("0001"))
    with psycopg.connect(database) as conn:
        tiers = conn.execute("SELECT email, tier::text FROM accounts ORDER BY email").fetchall()
    assert tiers == [("ada@example.com", "pro"), ("bob@example.com", "pro")]


def test_a_null_written_after_the_plan_stops_set_not_null_with_its_count(
    kit_db: Callable[[str | None], str],
    kit_service: Callable[..., Rollbot],
) -> None:
    """0004 let projects.name hold NULL; its undo makes it NOT NULL again.

    No NULL at planning: approvable. Two written before approval are counted under the
    lock, just before the statement, and stop the run: nothing changed.
    """
    database = kit_db("0004")
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('ada@example.com')")
    service = kit_service(database)
    run = service.request("0004", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    schema, journal = schema_of(database), journal_of(database)
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO projects (account_id, name) SELECT id, NULL FROM accounts"
            " CROSS JOIN generate_series(1, 2)"
        )
    failed = service.approve(run.id, APPROVER)
    assert failed.state is RunState.FAILED
    assert "2 rows of projects.name written since the plan are NULL" in str(failed.reason)
    assert (schema_of(database), journal_of(database)) == (schema, journal)


@pytest.mark.parametrize("migration", ["0031", "0002"])
def test_a_rollback_that_put_definitions_back_is_not_restored(
    migration: str,
    kit_db: Callable[[str | None], str],
    kit_service: Callable[..., Rollbot],
) -> None:
    """0031 renamed a column, 0002 added an enum value: their rollbacks put definitions back.

    A restore moves back only what a rollback dropped and the journal row, which would say
    N over a schema still at N-1 in those places: refused, saying to apply the migration
    again, nothing planned or changed.
    """
    database = kit_db(migration)
    service = kit_service(database)
    rolled = service.approve(service.request(migration, requested_by=REQUESTER).id, APPROVER)
    assert rolled.state is RunState.SUCCEEDED, rolled.reason
    told = outcome_text(rolled)
    assert f"To undo this rollback: apply {migration} again as it was applied" in told
    assert "rollbot restore" not in told
    schema, journal = schema_of(database), journal_of(database)
    with pytest.raises(NotAllowedError) as caught:
        service.request_restore(rolled.id, requested_by=REQUESTER)
    said = caught.value.render()
    assert f"Run {rolled.id} cannot be restored" in said
    assert "Besides dropping, it put definitions back" in said
    assert f"Apply {migration} again the way it was applied (drizzle-kit migrate)" in said
    assert [r.id for r in service.store.recent()] == [rolled.id]
    assert (schema_of(database), journal_of(database)) == (schema, journal)
