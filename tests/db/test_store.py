"""Runs persist in PostgreSQL: versioned schema, compare-and-set moves, append-only audit."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

from bot.core.errors import ConflictError
from bot.core.outbox import Message
from bot.core.run import Promotion, Run, backup_of, outcome_of, transition
from bot.core.states import RunEvent, RunState
from bot.service.lifecycle import Lifecycle, SilentNotifier
from bot.state.schema import MIGRATIONS
from bot.state.store import RunStore
from tests.samples import (
    a_backup,
    a_backup_info,
    a_plan,
    a_rehearsal,
    a_restore_plan,
    an_outcome,
    quietly,
)


@pytest.fixture
def store(scratch_db: str) -> Iterator[RunStore]:
    runs = RunStore(scratch_db)
    runs.migrate()
    yield runs
    runs.close()


def new_run(store: RunStore, migration: str = "0023") -> Run:
    return quietly(store).create(
        store.reserve_id(),
        migration_id=migration,
        runbook_name=f"{migration}_x",
        target_name="default",
        target_label="db on host",
        target_identity="default|host|5432|db",
        requested_by="U0REQ",
        plan=a_plan(),
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
    run = quietly(store).move(new_run(store), RunEvent.BACKUP_STARTED, actor="bot")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def move() -> None:
        barrier.wait()
        try:
            quietly(store).move(run, RunEvent.BACKUP_VERIFIED, actor="bot")
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
        quietly(store).move(run, RunEvent.SUCCEEDED, actor="bot")
    assert store.get(run.id).state is RunState.REQUESTED


def test_approval_counts_once_per_person(store: RunStore) -> None:
    """The same approver twice is recorded once; the plan hash must still match."""
    run = quietly(store).move(new_run(store), RunEvent.BACKUP_STARTED, actor="bot")
    run = quietly(store).move(run, RunEvent.BACKUP_VERIFIED, actor="bot")
    approved = quietly(store).add_approval(run, "U0BOB")
    assert approved.approvers == ("U0BOB",)
    with pytest.raises(ConflictError):
        quietly(store).add_approval(run, "U0BOB")
    with pytest.raises(ConflictError):
        quietly(store).add_approval(run.model_copy(update={"plan_hash": "other"}), "U0CAROL")


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


def test_every_typed_field_round_trips(store: RunStore) -> None:
    """Plan, backup, rehearsal, promotion and outcome come back as the models written."""
    promotion = Promotion(run=3, target="staging: db on host", summary="run 3 succeeded")
    runs = quietly(store)
    run = runs.create(
        runs.reserve_id(),
        migration_id="0023",
        runbook_name="0023_x",
        target_name="default",
        target_label="db on host",
        target_identity="default|host|5432|db",
        requested_by="U0REQ",
        plan=a_plan(),
        plan_hash="h1",
        promoted_from=promotion,
    )
    run = runs.move(run, RunEvent.BACKUP_STARTED, actor="bot")
    run = runs.move(
        run,
        RunEvent.BACKUP_VERIFIED,
        actor="bot",
        backup=a_backup(),
        rehearsal=a_rehearsal(),
    )
    run = runs.move(runs.add_approval(run, "U0BOB"), RunEvent.APPROVED, actor="U0BOB")
    run = runs.move(run, RunEvent.EXECUTION_STARTED, actor="bot")
    run = store.update(run, xid=4242, outcome=an_outcome())
    stored = store.get(run.id)
    assert stored == run
    assert stored.plan == a_plan()
    assert stored.backup == a_backup()
    assert stored.rehearsal == a_rehearsal()
    assert stored.promoted_from == promotion
    assert stored.outcome == an_outcome()


def test_a_restore_run_reads_back_a_restore_plan(store: RunStore) -> None:
    """The kind decides which plan a row holds; the restore's promotion names no target."""
    run = quietly(store).create(
        store.reserve_id(),
        kind="restore",
        migration_id="0023",
        runbook_name="0023_x",
        target_name="default",
        target_label="db on host",
        target_identity="default|host|5432|db",
        requested_by="U0REQ",
        plan=a_restore_plan(),
        plan_hash="r1",
        promoted_from=Promotion(run=1, summary="restores run 1"),
    )
    stored = store.get(run.id)
    assert stored.restore_plan() == a_restore_plan()
    with pytest.raises(TypeError, match="no rollback plan"):
        stored.rollback_plan()
    assert stored.promoted_from is not None
    assert stored.promoted_from.model_dump(mode="json") == {"run": 1, "summary": "restores run 1"}


def test_a_run_stored_as_plain_dicts_still_loads(store: RunStore, scratch_db: str) -> None:
    """Rows written before the fields were typed (the same JSON, by hand) load as models."""
    promoted = {"run": 3, "target": "staging: db on host", "summary": "run 3 succeeded"}
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO rollbot.runs (migration_id, runbook_name, target_name, target_label,"
            " target_identity, state, requested_by, plan, plan_hash, backup, rehearsal,"
            " promoted_from, outcome) VALUES ('0023', '0023_x', 'default', 'db on host',"
            " 'default|host|5432|db', 'succeeded', 'U0REQ', %s, 'h1', %s, %s, %s, %s)"
            " RETURNING id",
            (
                Jsonb(a_plan().model_dump(mode="json")),
                Jsonb({"full": a_backup_info().model_dump(mode="json"), "rows": {"public.x": 3}}),
                Jsonb(a_rehearsal().model_dump(mode="json")),
                Jsonb(promoted),
                Jsonb(an_outcome().model_dump(mode="json")),
            ),
        ).fetchone()
    assert row is not None
    run = store.get(row[0])
    assert run.rollback_plan() == a_plan()
    assert run.backup == a_backup()
    assert backup_of(run) == (a_backup_info(), {"public.x": 3})
    assert run.rehearsal == a_rehearsal()
    assert run.promoted_from == Promotion.model_validate(promoted)
    assert run.outcome == outcome_of(run) == an_outcome()


class Recorder(SilentNotifier):
    """A notifier whose messages say which run, state and approvers they were rendered from."""

    def messages(self, run: Run, event: str) -> list[Message]:
        """One reply naming what it was rendered from."""
        text = f"{run.id} {run.state} {event} {','.join(run.approvers)}"
        return [Message(action="reply", role="plan", text=text)]

    def notice(self, run: Run, user: str, reason: str) -> list[Message]:
        """One reply carrying the note."""
        return [Message(action="reply", role="plan", text=f"{run.id} {user}: {reason}.")]

    def run_changed(self, run: Run, event: str) -> None:
        """Nothing to deliver."""


def outbox(scratch_db: str) -> list[str]:
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        rows = conn.execute("SELECT message ->> 'text' FROM rollbot.outbox ORDER BY id")
        return [str(text) for (text,) in rows.fetchall()]


def recording(store: RunStore) -> Lifecycle:
    return Lifecycle(store, Recorder(), lambda: datetime.now(UTC))


def test_a_new_run_is_announced_under_the_id_it_is_stored_with(
    store: RunStore, scratch_db: str
) -> None:
    """The id is reserved before rendering; a duplicate request stores no announcement."""
    runs = recording(store)
    run = runs.create(
        runs.reserve_id(),
        migration_id="0023",
        runbook_name="0023_x",
        target_name="default",
        target_label="db on host",
        target_identity="default|host|5432|db",
        requested_by="U0REQ",
        plan=a_plan(),
        plan_hash="h1",
    )
    assert outbox(scratch_db) == [f"{run.id} requested requested "]
    assert [e["kind"] for e in store.events(run.id)] == ["requested"]
    with pytest.raises(ConflictError, match=f"run {run.id}"):
        new_run(store)
    assert outbox(scratch_db) == [f"{run.id} requested requested "]


def test_a_lost_compare_and_set_writes_neither_event_nor_messages(
    store: RunStore, scratch_db: str
) -> None:
    """The move is rendered before the write; losing the race leaves no trace of it."""
    run = new_run(store)
    runs = recording(store)
    runs.move(run, RunEvent.BACKUP_STARTED)
    with pytest.raises(ConflictError, match="already moved on: it is now backing up"):
        runs.move(run, RunEvent.CANCELLED)
    assert [e["kind"] for e in store.events(run.id)] == ["requested", "backup_started"]
    assert outbox(scratch_db) == [f"{run.id} backing_up backup_started "]
    assert store.get(run.id).state is RunState.BACKING_UP


def test_a_move_not_computed_from_the_run_is_refused(store: RunStore) -> None:
    """The store writes only what `transition` made from the run it compares against."""
    run = new_run(store)
    cancelled = transition(run, RunEvent.CANCELLED, datetime.now(UTC))
    with pytest.raises(ValueError, match="is not"):
        store.move(run, cancelled, RunEvent.BACKUP_STARTED, actor="bot")
    assert store.events(run.id)[-1]["kind"] == "requested"


def test_a_move_writes_only_what_it_changed(store: RunStore) -> None:
    """Facts stored since the caller read the run (its xid) survive a move from the older copy."""
    runs = quietly(store)
    run = runs.move(new_run(store), RunEvent.BACKUP_STARTED)
    run = runs.move(run, RunEvent.BACKUP_VERIFIED, backup=a_backup())
    run = runs.move(runs.add_approval(run, "U0BOB"), RunEvent.APPROVED, actor="U0BOB")
    executing = runs.move(run, RunEvent.EXECUTION_STARTED)
    runs.record(executing, xid=4242)
    done = runs.move(executing, RunEvent.SUCCEEDED, outcome=an_outcome())
    assert (done.xid, done.outcome, done.backup) == (4242, an_outcome(), a_backup())


def test_racing_approvers_are_both_counted_and_announced_as_stored(
    store: RunStore, scratch_db: str
) -> None:
    """A second approval read before the first landed still counts, rendered with both."""
    runs = quietly(store)
    run = runs.move(new_run(store), RunEvent.BACKUP_STARTED)
    run = runs.move(run, RunEvent.BACKUP_VERIFIED)
    runs.add_approval(run, "U0BOB")
    both = recording(store).add_approval(run, "U0CAROL")  # `run` still has no approvers
    assert both.approvers == ("U0BOB", "U0CAROL")
    assert outbox(scratch_db) == [f"{run.id} awaiting_approval approval_added U0BOB,U0CAROL"]
    kinds = [e["kind"] for e in store.events(run.id)]
    assert kinds.count("approval_added") == 2
