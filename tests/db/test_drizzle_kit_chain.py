"""A chain drizzle-kit itself generated: every migration is rolled back without a runbook.

`tests/fixtures/drizzle_kit_chain` was written by `drizzle-kit generate` (0.31) from fourteen
versions of a TypeScript schema, so its SQL is exactly what Drizzle users ship: the quoting,
the breakpoints, a foreign key changed by dropping and adding it under the same name, a
column made NOT NULL with a default, an enum value removed by recreating the type. Those
whose inverse loses nothing are derived, proved equal to N-1 and run; the others are refused
naming the statement that loses data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.core.errors import IrreversibleError
from bot.core.plan import Plan
from bot.core.states import RunState
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
    "0002": (1, "adds the value 'team' to enum public.plan_tier"),
    "0009": (1, "drops column accounts.display_name"),
    "0012": (1, "changes the type of accounts.tier"),
    "0013": (1, "drops table api_keys"),
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
def kit_service(make_service: Callable[..., Rollbot], tmp_path: Path) -> Callable[[str], Rollbot]:
    """A rollbot reading the generated folder, with no runbook at all."""
    empty = tmp_path / "no-runbooks"
    empty.mkdir()

    def make(conninfo: str) -> Rollbot:
        return make_service(conninfo, runbooks_dir=empty, migrations_dir=KIT, rehearsal="schema")

    return make


def test_the_folder_is_drizzle_kits_own() -> None:
    """Fourteen migrations, journal and snapshots as drizzle-kit writes them."""
    assert [f"{n:04d}" for n in range(14)] == IDS
    assert sorted(p.name for p in (KIT / "meta").glob("*_snapshot.json")) == [
        f"{n:04d}_snapshot.json" for n in range(14)
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
