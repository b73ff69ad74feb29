"""Quarantine mode on a real PostgreSQL: moved aside, backed up after COMMIT, moved back, purged."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import NotAllowedError
from bot.core.plan import build_plan
from bot.core.quarantine import MovedObject, Quarantine
from bot.core.run import outcome_of
from bot.core.runbook import parse_runbook
from bot.core.states import RunState
from bot.service.rollback import Rollbot
from bot.target.catalog import describe_target, read_facts
from bot.target.restore import unchanged_since_backup
from tests.db.test_restore import TABLES, content_checksums
from tests.db.test_rollback import journal_of
from tests.fix_db import SAMPLE_COUNTS, restored
from tests.fix_rollbot import APPROVER, REQUESTER, counts_of, schema_of

LOCK_TIMEOUT_S = 0.2
# A copy of an existing asset under a new id: a write the application makes to a table that
# stays, and one the rollback locks (the moved tables' foreign keys to it are dropped).
WRITE_ASSET = (
    "INSERT INTO assets SELECT (jsonb_populate_record(NULL::assets,"
    " to_jsonb(a) || jsonb_build_object('id', gen_random_uuid()))).* FROM assets a LIMIT 1"
)


def _waited_one_attempt_at_most(waits: list[float]) -> None:
    """The application's writes, one after another, during a quarantined rollback.

    Each lock attempt that times out lets the waiting write through; only the one that takes
    the lock keeps it behind the (short) transaction. Counted rather than timed to the
    millisecond: a busy machine stretches that transaction, not the number of writes held.
    """
    assert len(waits) > 10
    held = [w for w in waits if w > 2 * LOCK_TIMEOUT_S]
    assert len(held) <= 1, f"writes waited beyond one attempt: {held}"
    assert max(waits) < LOCK_TIMEOUT_S + 1.5, "the lock was held beyond the move itself"


def quarantined(service: Rollbot) -> tuple[int, Quarantine]:
    """Roll 0023 back in quarantine mode; the run's id and where its tables went."""
    rolled = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    assert rolled.state is RunState.SUCCEEDED, rolled.reason
    outcome = outcome_of(rolled)
    assert outcome is not None
    assert outcome.quarantine is not None
    # The approval returns at the stored outcome; the dump of the quarantine comes after.
    assert outcome.final_backup_pending()
    taken = outcome_of(service.final_backup(rolled.id))
    assert taken is not None
    assert taken.quarantine_backup is not None
    assert taken.quarantine_backup.snapshot  # what the purge's check compares writers with
    return rolled.id, outcome.quarantine


def schema_exists(conninfo: str, name: str) -> bool:
    """Whether the database has a schema of that name."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (name,))
        return row.fetchone() == (1,)


def test_quarantined_rollback_keeps_every_row_and_the_restore_moves_it_back(
    db_0023: str,
    readonly_db_0022: str,
    readonly_db_0023: str,
    pg_server: str,
    make_service: Callable[..., Rollbot],
) -> None:
    """Public schema is 0022's, every row waits aside, dumped after COMMIT; a restore gives 0023."""
    before = content_checksums(db_0023)
    service = make_service(db_0023, drop_mode="quarantine", lock_timeout="200ms")
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(db_0023, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute(WRITE_ASSET)
                waits.append(time.monotonic() - started)
                time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        run_id, quarantine = quarantined(service)
    finally:
        stop.set()
        thread.join()
    outcome = outcome_of(service.run(run_id))
    assert outcome is not None

    assert schema_of(db_0023) == schema_of(readonly_db_0022)
    moved = {f"{quarantine.schema_name}.{t}": SAMPLE_COUNTS[t] for t in TABLES}
    assert counts_of(db_0023, list(moved)) == moved
    assert {t.table: t.rows for t in outcome.dropped} == {
        f"public.{t}": SAMPLE_COUNTS[t] for t in TABLES
    }
    # Only a session that sees the COMMIT sees the moved tables: a dump of them is after it.
    backup = outcome.quarantine_backup
    assert backup is not None
    assert backup.verified
    assert set(backup.tables) == set(moved)
    with restored(pg_server, backup.path) as copy:
        assert counts_of(copy, list(moved)) == moved
    _waited_one_attempt_at_most(waits)

    restore = service.request_restore(run_id, requested_by=REQUESTER)
    assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
    done = service.approve(restore.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    back = outcome_of(done)
    assert back is not None
    assert back.duration_s < 5
    assert schema_of(db_0023) == schema_of(readonly_db_0023)  # foreign keys and all
    with psycopg.connect(db_0023) as conn:
        keys = conn.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND convalidated"
            " AND conname = ANY (%s)",
            ([k.name for k in quarantine.keys],),
        ).fetchall()
    assert quarantine.keys
    assert sorted(n for (n,) in keys) == sorted(k.name for k in quarantine.keys)
    assert journal_of(db_0023) == journal_of(readonly_db_0023)
    assert counts_of(db_0023, TABLES) == {t: SAMPLE_COUNTS[t] for t in TABLES}
    assert content_checksums(db_0023) == before
    assert not schema_exists(db_0023, quarantine.schema_name)


def test_a_move_back_runs_without_client_tools_and_fails_whole_if_the_quarantine_changed(
    db_0023: str,
    readonly_db_0022: str,
    readonly_db_0023: str,
    make_service: Callable[..., Rollbot],
    tmp_path: Path,
) -> None:
    """A move back needs no pg_dump nor psql; a row added in the quarantine undoes all of it."""
    run_id, quarantine = quarantined(make_service(db_0023, drop_mode="quarantine"))
    no_tools = tmp_path / "no-client-tools"
    no_tools.mkdir()
    bare = make_service(db_0023, drop_mode="quarantine", pg_bin=no_tools)
    late = f"{quarantine.schema_name}.api_errors"
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE one AS SELECT * FROM {late} LIMIT 1")
        conn.execute("UPDATE one SET id = gen_random_uuid()")
        conn.execute(f"INSERT INTO {late} SELECT * FROM one")
        restore = bare.request_restore(run_id, requested_by=REQUESTER)
        assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
        failed = bare.approve(restore.id, APPROVER)
        assert failed.state is RunState.FAILED
        assert "restore verification: public.api_errors has" in (failed.reason or "")
        assert "nothing was changed" in (failed.reason or "")
        assert schema_exists(db_0023, quarantine.schema_name)
        assert schema_of(db_0023) == schema_of(readonly_db_0022)
        conn.execute(f"DELETE FROM {late} WHERE id = (SELECT id FROM one)")
    restore = bare.request_restore(run_id, requested_by=REQUESTER)
    done = bare.approve(restore.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    assert schema_of(db_0023) == schema_of(readonly_db_0023)
    assert journal_of(db_0023) == journal_of(readonly_db_0023)
    assert not schema_exists(db_0023, quarantine.schema_name)


def test_purge_waits_for_an_approver_then_drops_the_quarantine(
    db_0023: str,
    readonly_db_0022: str,
    readonly_db_0023: str,
    make_service: Callable[..., Rollbot],
) -> None:
    """A purge is approved, refused while the quarantine changed, and a restore reloads it.

    A row written into the quarantine after its final backup would be in neither place once
    purged; after the purge the restore comes from that final backup.
    """
    before = content_checksums(db_0023)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        # Default privileges must not hand the application a way into the quarantine.
        conn.execute("ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO PUBLIC")
    service = make_service(db_0023, drop_mode="quarantine")
    run_id, quarantine = quarantined(service)
    late = f"{quarantine.schema_name}.api_errors"
    with psycopg.connect(db_0023, autocommit=True) as conn:
        acl = conn.execute(
            "SELECT nspacl::text[] FROM pg_namespace WHERE nspname = %s",
            (quarantine.schema_name,),
        ).fetchone()
        assert acl is not None
        assert not [a for a in acl[0] or [] if a.startswith("=")], acl
        conn.execute("ALTER DEFAULT PRIVILEGES REVOKE USAGE ON SCHEMAS FROM PUBLIC")
        conn.execute(f"CREATE TEMP TABLE one AS SELECT * FROM {late} LIMIT 1")
        conn.execute("UPDATE one SET id = gen_random_uuid()")
        conn.execute(f"INSERT INTO {late} SELECT * FROM one")
        refused = service.request_purge(run_id, requested_by=REQUESTER)
        refused = service.approve(refused.id, APPROVER)
        assert refused.state is RunState.FAILED
        assert "something wrote into the quarantine since" in (refused.reason or "")
        assert schema_exists(db_0023, quarantine.schema_name)
        conn.execute(f"DELETE FROM {late} WHERE id = (SELECT id FROM one)")
    purge = service.request_purge(run_id, requested_by=REQUESTER)
    assert purge.kind == "purge"
    assert purge.state is RunState.AWAITING_APPROVAL, purge.reason
    assert f"DROP SCHEMA {quarantine.schema_name}" in purge.restore_plan().sql
    with pytest.raises(NotAllowedError, match="you cannot approve it"):
        service.approve(purge.id, REQUESTER)
    assert schema_exists(db_0023, quarantine.schema_name)
    done = service.approve(purge.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    assert not schema_exists(db_0023, quarantine.schema_name)
    assert schema_of(db_0023) == schema_of(readonly_db_0022)

    restore = service.request_restore(run_id, requested_by=REQUESTER)
    assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
    assert "reloaded whole from its final backup" in restore.restore_plan().sql
    done = service.approve(restore.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    assert schema_of(db_0023) == schema_of(readonly_db_0023)
    assert journal_of(db_0023) == journal_of(readonly_db_0023)
    assert content_checksums(db_0023) == before
    assert not schema_exists(db_0023, quarantine.schema_name)


def test_a_purge_refuses_a_row_changed_after_the_final_backup(scratch_db: str) -> None:
    """An UPDATE keeps the count but not the value: the purge's check sees it by its writer.

    The final backup stores the snapshot it read; a row whose writer that snapshot does not
    see (an UPDATE setting the same value, a writer still running when the dump started) is
    not in the file as it is now, so dropping it would lose it. Frozen old rows pass.
    """
    moved = MovedObject(kind="table", name="public.t", moved="q.t")
    quarantine = Quarantine(schema_name="q", objects=(moved,), keys=(), size_bytes=None)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA q; CREATE TABLE q.t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO q.t SELECT i, 'v' || i FROM generate_series(1, 4) i")
        conn.execute("VACUUM FREEZE q.t")
        with psycopg.connect(scratch_db) as running:
            running.execute("UPDATE q.t SET v = 'late' WHERE id = 4")  # open at the dump
            with psycopg.connect(scratch_db) as dump:
                dump.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                row = dump.execute("SELECT pg_current_snapshot()::text").fetchone()
            running.commit()
        assert row is not None
        snapshot = str(row[0])

        def purge_check(counted: int, seen: str | None) -> str | None:
            try:
                with conn.transaction(force_rollback=True):  # the check runs before a DROP
                    conn.execute(unchanged_since_backup(quarantine, {"public.t": counted}, seen))
            except psycopg.errors.RaiseException as exc:
                return exc.diag.message_primary
            return None

        assert purge_check(4, snapshot) == (
            "purge refused: 1 rows of q.t were written or changed after its final backup, "
            "which holds the earlier values; nothing was dropped (a restore moves it back whole)"
        )
        assert purge_check(4, None) is None  # a backup stored before snapshots: counts only
        assert "q.t holds 4 rows, its final backup 5" in (purge_check(5, snapshot) or "")
        after = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert after is not None
        assert purge_check(4, str(after[0])) is None  # nothing written since that snapshot
        conn.execute("UPDATE q.t SET v = v WHERE id = 1")  # the same value, a new row version
        assert "1 rows of q.t were written or changed" in (purge_check(4, str(after[0])) or "")


def test_a_partitioned_table_blocks_the_quarantined_plan(scratch_db: str) -> None:
    """SET SCHEMA would leave the partitions behind: the plan is blocked, pointing at drop mode."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);"
            " CREATE TABLE events_2025 PARTITION OF events"
            " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
        )
    text = "# R\n\n## Quick Rollback\n\n```sql\nDROP TABLE IF EXISTS events;\n```\n"
    book = parse_runbook(text, file="0005_events.md")
    with psycopg.connect(scratch_db) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    plan = build_plan(
        book,
        facts,
        lock_timeout=timedelta(seconds=1),
        statement_timeout=timedelta(minutes=1),
        drop_mode="quarantine",
    )
    assert plan.blocked
    (reason,) = [b for b in plan.blockers if "public.events " in b]
    assert "is partitioned, a partition or part of an inheritance tree" in reason
    assert "ROLLBOT_DROP_MODE=drop" in reason


def test_a_schema_taking_the_quarantines_name_blocks_the_plan(scratch_db: str) -> None:
    """A schema someone made under the quarantine's name stops the plan, not the run."""
    text = "# R\n\n## Quick Rollback\n\n```sql\nDROP TABLE IF EXISTS events;\n```\n"
    book = parse_runbook(text, file="0005_events.md")

    def quarantined_plan() -> list[str]:
        with psycopg.connect(scratch_db) as conn:
            facts = read_facts(conn, book, describe_target(conn))
        plan = build_plan(
            book,
            facts,
            lock_timeout=timedelta(seconds=1),
            statement_timeout=timedelta(minutes=1),
            drop_mode="quarantine",
        )
        return list(plan.blockers)

    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int)")
        assert quarantined_plan() == []
        oid = conn.execute("SELECT 'events'::regclass::oid::int").fetchone()
        assert oid is not None
        conn.execute(f"CREATE SCHEMA rollbot_quarantine_0005_{oid[0]}")
    (blocker,) = quarantined_plan()
    assert blocker == (
        f"a schema named rollbot_quarantine_0005_{oid[0]} already exists, and quarantine "
        "mode would create it for this rollback's tables; no quarantine of rollbot's has that "
        "name while these tables are outside it, so something else made it: rename or drop "
        "that schema, then plan again"
    )
