"""Runs persist in PostgreSQL: versioned schema, compare-and-set moves, append-only audit."""

import threading
from collections.abc import Iterator

import psycopg
import pytest

from bot.core.errors import ConflictError
from bot.core.run import Run, RunEvent, RunState
from bot.state.schema import MIGRATIONS
from bot.state.store import RunStore


@pytest.fixture
def store(scratch_db: str) -> Iterator[RunStore]:
    runs = RunStore(scratch_db)
    runs.migrate()
    yield runs
    runs.close()


def new_run(store: RunStore, migration: str = "0023") -> Run:
    return store.create(
        migration_id=migration,
        runbook_name=f"{migration}_x",
        target_name="default",
        target_label="db on host",
        target_identity="default|host|5432|db",
        requested_by="U0REQ",
        plan={"sql": "DROP TABLE x;"},
        plan_hash="h1",
    )


def test_migrate_is_idempotent(store: RunStore) -> None:
    """Running the schema migration again changes nothing and reports the same version."""
    assert store.migrate() == store.migrate() == MIGRATIONS[-1][0]


def test_second_active_run_is_pointed_to_the_first(store: RunStore) -> None:
    """One active run per migration and target: the second request names the first."""
    first = new_run(store)
    with pytest.raises(ConflictError, match=f"run {first.id}"):
        new_run(store)
    assert new_run(store, "0024").id != first.id


def test_cas_transitions_race_from_two_connections(store: RunStore) -> None:
    """Two workers applying the same move at once: exactly one wins, one ConflictError."""
    run = store.apply(new_run(store), RunEvent.BACKUP_STARTED, actor="bot")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def move() -> None:
        barrier.wait()
        try:
            store.apply(run, RunEvent.BACKUP_VERIFIED, actor="bot")
            results.append("won")
        except ConflictError:
            results.append("lost")

    threads = [threading.Thread(target=move) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["lost", "won"]
    events = [e["kind"] for e in store.events(run.id)]
    assert events.count("backup_verified") == 1


def test_illegal_move_is_refused_before_the_database(store: RunStore) -> None:
    """A move not in the table raises and writes nothing."""
    run = new_run(store)
    with pytest.raises(ConflictError):
        store.apply(run, RunEvent.SUCCEEDED, actor="bot")
    assert store.get(run.id).state is RunState.REQUESTED


def test_approval_counts_once_per_person(store: RunStore) -> None:
    """The same approver twice is recorded once; the plan hash must still match."""
    run = store.apply(new_run(store), RunEvent.BACKUP_STARTED, actor="bot")
    run = store.apply(run, RunEvent.BACKUP_VERIFIED, actor="bot")
    approved = store.add_approval(run, "U0BOB")
    assert approved.approvers == ("U0BOB",)
    with pytest.raises(ConflictError):
        store.add_approval(run, "U0BOB")
    with pytest.raises(ConflictError):
        store.add_approval(run.model_copy(update={"plan_hash": "other"}), "U0CAROL")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE rollbot.run_events SET actor = 'x'",
        "DELETE FROM rollbot.run_events",
        "TRUNCATE rollbot.run_events",
    ],
)
def test_audit_trail_is_append_only(store: RunStore, scratch_db: str, statement: str) -> None:
    """UPDATE, DELETE and TRUNCATE on the audit table are rejected by the database."""
    new_run(store)
    with (
        psycopg.connect(scratch_db, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)
