"""Safety guarantees on a real PostgreSQL: each test provokes the fault and checks the outcome."""

import json
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import ConflictError, NotAllowedError
from bot.core.plan import Plan
from bot.core.results import Outcome
from bot.core.run import outcome_of
from bot.core.states import RunEvent, RunState
from bot.pgclient.tools import find_pg_tools
from bot.service.rollback import Rollbot, StalePlanError
from bot.target.database import TargetDatabase
from bot.target.execute import execute_plan
from tests.fix_db import SAMPLE_COUNTS, restored
from tests.fix_rollbot import (
    APPROVER,
    DROP_MODE,
    REQUESTER,
    counts_of,
    runbooks_with,
    schema_of,
)
from tests.samples import quietly

INSERT_ERROR = (
    "INSERT INTO api_errors (endpoint, method, status_code, message)"
    " SELECT '/late', 'POST', 500, 'written after the plan' FROM generate_series(1, %s)"
)


def restored_count(pg_server: str, dump: Path, table: str) -> int:
    """Restore a final backup's tables and rows (not the FKs to tables it has no rows of)."""
    with restored(pg_server, dump) as conninfo:
        return counts_of(conninfo, [table])[table]


def test_rows_written_after_the_plan_are_in_the_final_backup(
    db_0023: str, pg_server: str, make_service: Callable[..., Rollbot]
) -> None:
    """Zero loss: rows inserted after the pre-approval backup are in the final backup."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    with psycopg.connect(db_0023) as conn:
        conn.execute(INSERT_ERROR, (17,))
    run = service.final_backup(service.approve(run.id, APPROVER).id)
    outcome = outcome_of(run)
    assert outcome is not None
    assert outcome.succeeded
    late_total = SAMPLE_COUNTS["api_errors"] + 17
    assert {t.table: t.rows for t in outcome.dropped}["public.api_errors"] == late_total
    if DROP_MODE == "drop":
        assert outcome.final_backup is not None
        dump, table = outcome.final_backup.path, "api_errors"
    else:
        # The rows stay in the database, moved aside; the dump of the quarantine holds them.
        assert outcome.quarantine is not None
        assert outcome.quarantine_backup is not None
        table = f"{outcome.quarantine.schema_name}.api_errors"
        assert counts_of(db_0023, [table]) == {table: late_total}
        dump = outcome.quarantine_backup.path
    assert restored_count(pg_server, dump, table) == late_total


def test_failed_final_backup_rolls_back(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """An unwritable final backup: drop mode drops nothing, quarantine mode retakes it later."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    backups = service.settings.backup_dir
    backups.rename(tmp_path / "moved-away")
    backups.write_text("a file where the backup directory was")
    run = service.approve(run.id, APPROVER)
    if DROP_MODE == "drop":
        assert run.state is RunState.FAILED
        assert "the final backup failed, so nothing was dropped" in (run.reason or "")
        assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}
        return
    # Quarantine mode dumps after COMMIT: the run succeeded, the rows wait in the quarantine,
    # and the sweep takes the final backup once the directory is usable again.
    assert run.state is RunState.SUCCEEDED, run.reason
    outcome = outcome_of(service.final_backup(run.id))
    assert outcome is not None
    assert outcome.final_backup_pending()
    assert outcome.quarantine is not None
    moved = f"{outcome.quarantine.schema_name}.api_errors"
    assert counts_of(db_0023, [moved]) == {moved: SAMPLE_COUNTS["api_errors"]}
    backups.unlink()
    (tmp_path / "moved-away").rename(backups)
    service.settle()
    swept = outcome_of(service.run(run.id))
    assert swept is not None
    assert not swept.final_backup_pending()
    assert swept.quarantine_backup is not None
    assert swept.quarantine_backup.verified
    assert swept.quarantine_backup.path.is_file()


def test_connection_killed_mid_transaction_changes_nothing(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """pg_terminate_backend on rollbot's session: a clean report, the database unchanged."""
    service = make_service(db_0023, lock_timeout="30s")
    run = service.request("0023", requested_by=REQUESTER)
    before = schema_of(db_0023)
    result: list[object] = []
    with psycopg.connect(db_0023) as blocker:
        blocker.execute("SELECT count(*) FROM assets")  # rollbot will wait on this
        thread = threading.Thread(target=lambda: result.append(service.approve(run.id, APPROVER)))
        thread.start()
        with psycopg.connect(db_0023, autocommit=True) as admin:
            deadline = time.monotonic() + 20
            while not admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event_type = 'Lock'"
                " AND datname = current_database()",  # run ids repeat across test databases
                (f"rollbot run {run.id}",),
            ).fetchall():
                assert time.monotonic() < deadline, "rollbot never waited on the lock"
                time.sleep(0.05)
        thread.join(timeout=30)
    (finished,) = result
    assert service.run(run.id).state is RunState.FAILED
    assert "nothing was changed" in (service.run(run.id).reason or "")
    assert finished is not None
    assert schema_of(db_0023) == before


def test_commit_then_crash_is_reconciled_as_succeeded(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """If rollbot dies after COMMIT but before recording it, start-up marks the run succeeded."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    store = service.store
    runs = quietly(store)
    run = runs.add_approval(run, APPROVER)
    run = runs.move(run, RunEvent.APPROVED, actor=APPROVER)
    run = runs.move(run, RunEvent.EXECUTION_STARTED, actor="rollbot")
    executing = run

    def remember(pending: Outcome) -> None:
        store.update(executing, xid=pending.xid, outcome=pending)

    plan = Plan.model_validate(run.plan)
    outcome = execute_plan(
        plan,
        service.library().find("0023"),
        target=TargetDatabase.at(db_0023),
        tools=find_pg_tools(plan.target.server_major),
        backup_dir=service.settings.backup_dir,
        run_id=run.id,
        on_commit_pending=remember,
    )
    assert outcome.succeeded  # committed, but the process "died" before moving the run
    assert store.get(run.id).state is RunState.EXECUTING
    (settled,) = service.reconcile()
    assert settled.state is RunState.SUCCEEDED
    stored = outcome_of(settled)
    assert stored is not None
    assert {t.table for t in stored.dropped} >= {"public.api_errors"}


def test_interrupted_execution_before_commit_is_failed_not_rerun(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A run left executing without a transaction id failed before COMMIT: marked, not re-run."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    runs = quietly(service.store)
    run = runs.add_approval(run, APPROVER)
    run = runs.move(run, RunEvent.APPROVED, actor=APPROVER)
    runs.move(run, RunEvent.EXECUTION_STARTED, actor="rollbot")
    (settled,) = service.reconcile()
    assert settled.state is RunState.FAILED
    assert "before COMMIT" in (settled.reason or "")
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_a_dead_runs_backend_is_ended_before_it_is_called_rolled_back(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """Kill -9 leaves the backend alive, queued on a lock the application waits behind.

    "Nothing changed" is true only once that session is gone: recovery ends the run's own
    sessions on the target first, and the application's reads go on.
    """
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    runs = quietly(service.store)
    run = runs.add_approval(run, APPROVER)
    run = runs.move(run, RunEvent.APPROVED, actor=APPROVER)
    run = runs.move(run, RunEvent.EXECUTION_STARTED, actor="rollbot")
    with (
        psycopg.connect(db_0023, application_name="report-job") as blocker,
        psycopg.connect(db_0023, application_name=f"rollbot run {run.id}") as orphan,
    ):
        blocker.execute("SELECT count(*) FROM assets")  # holds ACCESS SHARE
        waiting = threading.Thread(
            target=lambda: _swallow(
                lambda: orphan.execute("LOCK TABLE assets IN ACCESS EXCLUSIVE MODE")
            )
        )
        waiting.start()
        with psycopg.connect(db_0023, autocommit=True) as watch:
            deadline = time.monotonic() + 10
            while not watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event_type = 'Lock' AND datname = current_database()",
                (f"rollbot run {run.id}",),
            ).fetchall():
                assert time.monotonic() < deadline, "the orphan never queued"
                time.sleep(0.05)
            (settled,) = service.reconcile()
            waiting.join(timeout=10)
            assert not waiting.is_alive()  # its LOCK was cut short, not left queued
            deadline = time.monotonic() + 10  # a signalled backend takes a moment to exit
            while watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND datname = current_database()",
                (f"rollbot run {run.id}",),
            ).fetchall():
                assert time.monotonic() < deadline, "the orphan's session is still there"
                time.sleep(0.05)
    assert settled.state is RunState.FAILED
    assert "nothing changed" in (settled.reason or "")


def _swallow(action: Callable[[], object]) -> None:
    try:
        action()
    except psycopg.Error:
        return  # the session was ended: that is the point


def test_live_worker_is_not_reconciled(db_0023: str, make_service: Callable[..., Rollbot]) -> None:
    """A run whose worker still holds its liveness lock is left alone by another replica."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    runs = quietly(service.store)
    run = runs.add_approval(run, APPROVER)
    run = runs.move(run, RunEvent.APPROVED, actor=APPROVER)
    with service.store.working_on(run.id):
        other = make_service(db_0023)
        assert other.reconcile() == []
    assert service.run(run.id).state is RunState.APPROVED


def test_a_replica_sweeping_nonstop_never_settles_a_live_run(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """With no grace period, every in-flight moment of a live run must hold its lock.

    A second replica reconciles in a tight loop while the first plans and executes: had any
    step (the insert, the backup, the move to approved, execution) run unlocked, the sweeper
    would have settled the run under the worker's feet and the run would not succeed.
    """
    service = make_service(db_0023)
    replica = make_service(db_0023)
    stop = threading.Event()
    settled: list[object] = []

    def sweep() -> None:
        while not stop.is_set():
            settled.extend(replica.settle())

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        run = service.request("0023", requested_by=REQUESTER)
        assert run.state is RunState.AWAITING_APPROVAL
        run = service.approve(run.id, APPROVER)
    finally:
        stop.set()
        sweeper.join(timeout=30)
    assert run.state is RunState.SUCCEEDED, run.reason
    assert settled == []


def test_a_settlement_decided_on_a_stale_read_never_overwrites_a_stored_transaction_id(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A worker whose state connection dropped lost its liveness lock but may still commit.

    A sweeper that read the run before the worker stored its transaction id would call it
    "nothing changed". The settlement is a compare-and-set on the whole run as read, and the
    sweeper reads the run again under the lock, so it decides from the transaction id.
    """
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    runs = quietly(service.store)
    run = runs.add_approval(run, APPROVER)
    run = runs.move(run, RunEvent.APPROVED, actor=APPROVER)
    stale = runs.move(run, RunEvent.EXECUTION_STARTED, actor="rollbot")
    with psycopg.connect(db_0023, autocommit=True) as conn:  # a transaction that committed
        conn.execute("BEGIN")
        xid = int(conn.execute("SELECT txid_current()").fetchone()[0])  # type: ignore[index]
        conn.execute("COMMIT")
    service.store.update(stale, xid=xid)  # the worker, still alive, records it
    with pytest.raises(ConflictError):
        runs.move(stale, RunEvent.FAILED, reason="nothing changed", exact=True)
    (settled,) = service.reconcile()
    assert settled.state is RunState.SUCCEEDED  # from pg_xact_status, not from the stale read


def test_runbook_change_voids_the_approval_and_offers_a_new_plan(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """An edited runbook between plan and approval: refused, and a new plan is made."""
    runbooks = runbooks_with(tmp_path, "README.md", "# notes\n")
    service = make_service(db_0023, runbooks_dir=runbooks)
    run = service.request("0023", requested_by=REQUESTER)
    path = runbooks / "0023_loud_shen.md"
    path.write_text(path.read_text() + "\n<!-- reviewed again -->\n")
    with pytest.raises(StalePlanError, match="runbook file changed") as caught:
        service.approve(run.id, APPROVER)
    assert service.run(run.id).state is RunState.CANCELLED
    new = caught.value.new
    assert new is not None
    assert new.state is RunState.AWAITING_APPROVAL
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_a_runbook_edited_after_approval_fails_with_that_reason_and_runs_nothing(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """Edited between the approval's check and the execution: said as it is, never run.

    The re-check under the locks hashed the edited runbook with the schema and called any
    difference "the schema changed", which sends the on-call looking in the wrong place.
    """
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    plan = Plan.model_validate(run.plan)
    runbook = service.library().find("0023")
    edited = runbook.model_copy(update={"sha256": "0" * 64})  # what the file now holds
    outcome = execute_plan(
        plan,
        edited,
        target=TargetDatabase.at(db_0023),
        tools=find_pg_tools(plan.target.server_major),
        backup_dir=service.settings.backup_dir,
        run_id=run.id,
        on_commit_pending=lambda _pending: None,
    )
    assert not outcome.succeeded
    assert "0023_loud_shen.md changed after the plan was approved" in (outcome.error or "")
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_schema_change_voids_the_approval(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A new dependent object between plan and approval: refused, and the new plan blocks."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute("CREATE VIEW recent_errors AS SELECT * FROM api_errors")
    with pytest.raises(StalePlanError, match="live schema changed") as caught:
        service.approve(run.id, APPROVER)
    new = caught.value.new
    assert new is not None
    assert new.state is RunState.BLOCKED
    assert "view recent_errors" in (new.reason or "")
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_tables_released_in_turn_cannot_stretch_the_lock_wait(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """Six holders letting go one by one, each within lock_timeout: still one timeout in all."""
    service = make_service(db_0023, lock_timeout="1s", lock_retries=1)
    run = service.request("0023", requested_by=REQUESTER)
    plan = run.rollback_plan()
    lock = plan.script.write_lock
    assert lock is not None
    # The tables in the order the LOCK statement takes them, each held by its own session.
    tables = lock.removeprefix("LOCK TABLE ").split(" IN ")[0].split(", ")
    assert len(tables) == 6
    holders = [psycopg.connect(db_0023, application_name=f"writer {i}") for i in range(6)]
    for conn, table in zip(holders, tables, strict=True):
        conn.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
    released = threading.Event()

    def let_go_in_turn() -> None:
        for conn in holders:  # each wait alone is 0.6 s, under the 1 s lock_timeout
            time.sleep(0.6)
            conn.rollback()
        released.set()

    thread = threading.Thread(target=let_go_in_turn)
    thread.start()
    try:
        run = service.approve(run.id, APPROVER)
    finally:
        thread.join()
        for conn in holders:
            conn.close()
    outcome = outcome_of(run)
    assert outcome is not None
    assert run.state is RunState.FAILED, "the LOCK waited 3.6 s in all and went through"
    assert outcome.sqlstate == "55P03"
    assert outcome.duration_s < 2.0
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_reads_never_wait_longer_than_the_lock_timeout(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """While a blocker holds assets, rollbot's attempts stall readers at most ~lock_timeout."""
    timeout_s = 0.5
    service = make_service(
        db_0023, lock_timeout=f"{int(timeout_s * 1000)}ms", lock_retries=3, lock_retry_delay="200ms"
    )
    run = service.request("0023", requested_by=REQUESTER)
    latencies: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(db_0023, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("SELECT count(*) FROM assets WHERE status = 'ready'")
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    with psycopg.connect(db_0023, application_name="nightly-report") as blocker:
        blocker.execute("SELECT count(*) FROM assets")
        for thread in readers:
            thread.start()
        run = service.approve(run.id, APPROVER)
        stop.set()
        for thread in readers:
            thread.join()
    outcome = outcome_of(run)
    assert outcome is not None
    assert run.state is RunState.FAILED
    assert outcome.attempts == 3
    assert any(b.application == "nightly-report" for b in outcome.blockers)
    assert len(latencies) > 20
    assert max(latencies) < timeout_s + 0.4


@pytest.mark.parametrize("table", ["api_errors", "users"])
def test_a_table_held_exclusively_ends_the_backup_in_time_naming_the_holder(
    db_0023: str, make_service: Callable[..., Rollbot], table: str
) -> None:
    """pg_dump used to wait for good behind an ACCESS EXCLUSIVE lock, parking the request.

    Whether the table is one the rollback counts (the count waits) or any other (pg_dump's
    own lock waits), the plan ends blocked within the lock timeout, naming the session.
    """
    service = make_service(db_0023, lock_timeout="500ms")
    with psycopg.connect(db_0023, application_name="migration-in-progress") as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        run = service.request("0023", requested_by=REQUESTER)  # used to never return
    assert run.state is RunState.BLOCKED
    reason = run.reason or ""
    assert "waited 500ms for a table lock and gave up" in reason
    assert "migration-in-progress" in reason
    assert f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE" in reason
    assert run.backup is None


def test_wrong_pg_dump_binary_blocks_the_plan(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """A pg_dump that is not pg_dump blocks approval with the reason; nothing is run."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = fake / tool
        script.write_text("#!/bin/sh\necho 'definitely not postgres'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    service = make_service(db_0023, pg_bin=fake)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert "ROLLBOT_PG_BIN" in (run.reason or "")
    with pytest.raises(NotAllowedError):
        service.approve(run.id, APPROVER)


def test_unwritable_backup_directory_blocks_the_plan(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """A backup directory that cannot be created blocks approval, naming the directory."""
    blocker = tmp_path / "backups"
    blocker.write_text("a file where the backup directory should be")
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert "backup directory" in (run.reason or "")


def test_backups_are_private(db_0023: str, make_service: Callable[..., Rollbot]) -> None:
    """Backups are 0600 files in a 0700 directory."""
    service = make_service(db_0023)
    service.request("0023", requested_by=REQUESTER)
    directory = service.settings.backup_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    dumps = list(directory.glob("*.dump"))
    assert dumps
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o600 for d in dumps)


UNEXPECTED = """# Drops too much

**Migration File**: `0023_loud_shen.sql`

## Quick Rollback

```sql
DROP INDEX IF EXISTS idx_errors_user;
DROP INDEX IF EXISTS idx_assets_owner;
```
"""


def test_dropping_an_object_the_migration_never_created_blocks(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """An existing index 0023 did not create is not the rollback's to drop: the plan blocks."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "0023_loud_shen.md").write_text(UNEXPECTED)
    service = make_service(db_0023, runbooks_dir=runbooks)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert "index idx_assets_owner exists but migration 0023_loud_shen never created it" in (
        run.reason or ""
    )
    with psycopg.connect(db_0023) as conn:
        assert conn.execute("SELECT to_regclass('idx_assets_owner')").fetchone() != (None,)


def test_application_rows_an_error_quotes_never_reach_the_run(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """A constraint error quotes the failing row: another table's token must not be stored.

    Deleting a user sets an API key's NOT NULL user_id to NULL through ON DELETE SET NULL;
    PostgreSQL's DETAIL quotes the key's row, token and all. The run names the constraint and
    the columns, withholds the values, and changes nothing.
    """
    token = "sk_live_TOPSECRET_123"
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE api_keys (id int PRIMARY KEY, secret_token text NOT NULL,"
            " user_id uuid NOT NULL REFERENCES users ON DELETE SET NULL)"
        )
        conn.execute(
            "INSERT INTO api_keys SELECT 1, %s, id FROM users ORDER BY id LIMIT 1", (token,)
        )
    runbook = RUNBOOK_DELETING_USERS
    service = make_service(db_0023, runbooks_dir=runbooks_with(tmp_path, "0025_users.md", runbook))
    run = service.approve(service.request("25", requested_by=REQUESTER).id, APPROVER)
    assert run.state is RunState.FAILED
    assert "violates not-null constraint" in (run.reason or "")
    assert "Failing row contains (values withheld)" in (run.reason or "")
    stored = json.dumps([run.model_dump(mode="json"), service.store.events(run.id)], default=str)
    assert token not in stored
    assert counts_of(db_0023, ["api_keys"]) == {"api_keys": 1}


RUNBOOK_DELETING_USERS = """---
journal: false  # not a Drizzle migration of this project
---
# Remove the users of a bad import

**Migration File**: `0025_users.sql`

## Quick Rollback

```sql
DELETE FROM users WHERE id IN (SELECT user_id FROM api_keys);
```
"""
