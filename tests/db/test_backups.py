"""Backups in proportion to the rollback, and their retention: listed, pruned, reported."""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import BackupError
from bot.core.states import RunState
from bot.core.text import backups_text, outcome_text, plan_text
from bot.service.backups import Backups
from bot.service.rollback import Rollbot
from bot.target.restore import build_restore, run_restore
from tests.db.test_cli import env_for, rollbot
from tests.db.test_rollback import DELETES_ROWS
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, REQUESTER, runbooks_with

DROPS_TWO = """---
journal: false  # not a Drizzle migration of this project
---
# Drop two tables

**Migration File**: `0024_two_tables.sql`

## Quick Rollback

```sql
DROP TABLE IF EXISTS variant_statistics;
DROP TABLE IF EXISTS api_errors;
```
"""


def rows_of(conninfo: str, table: str) -> list[tuple[object, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def test_a_proportional_backup_holds_the_dropped_rows_and_restores_them_exactly(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """Drop mode: two dropped tables keep their rows (and FK parents'), the rest schema only."""
    before = {t: rows_of(db_0023, t) for t in ("variant_statistics", "api_errors")}
    runbooks = runbooks_with(tmp_path, "0024_two_tables.md", DROPS_TWO)
    # ROLLBOT_REHEARSAL=all restores what the backup holds: the whole schema, those rows.
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="all", drop_mode="drop")
    run = service.request("0024", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    assert run.rehearsal.ok, run.rehearsal.error
    assert run.backup is not None
    backup = run.backup.full
    assert backup.scope == "affected"
    assert backup.compression == "gzip:1"
    assert {"public.variant_statistics", "public.api_errors"} <= set(backup.tables)
    assert {"public.users", "public.assets"} <= set(backup.tables)  # their FK parents
    assert "public.sessions" not in backup.tables
    database = service.planner.database(run.target_name)
    tools = database.tools(run.rollback_plan().target.server_major)
    listing = subprocess.run(
        [str(tools.pg_restore), "--list", str(backup.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert " TABLE public sessions " in listing  # its definition, without its rows
    assert run.backup.rows == {
        "public.variant_statistics": SAMPLE_COUNTS["variant_statistics"],
        "public.api_errors": SAMPLE_COUNTS["api_errors"],
    }

    done = service.approve(run.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    # A restore from the pre-approval backup alone (as if no final backup had been taken).
    assert done.outcome is not None
    source = done.model_copy(
        update={"outcome": done.outcome.model_copy(update={"final_backup": None})}
    )
    plan, script = build_restore(source, tools=tools, target=database, lock_timeout_s=3)
    assert plan.backup_kind == "full"
    assert not plan.blockers
    xids: list[int] = []
    run_restore(script, tools=tools, target=database, run_id=done.id, on_xid=xids.append)
    assert {t: rows_of(db_0023, t) for t in before} == before
    assert [database.xact_status(xid) for xid in xids] == ["committed"]


def test_a_quarantined_rollback_backs_up_the_schema_of_tables_it_only_moves_aside(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """Their rows stay in the database until a purge: the backup holds their definitions only."""
    runbooks = runbooks_with(tmp_path, "0024_two_tables.md", DROPS_TWO)
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="all", drop_mode="quarantine")
    run = service.request("0024", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    assert run.rehearsal.ok, run.rehearsal.error  # moved aside empty on the scratch copy
    assert run.backup is not None
    moved = {"public.variant_statistics", "public.api_errors"}
    assert set(run.rollback_plan().moved_only()) == moved
    assert not moved & set(run.backup.full.tables)
    assert run.backup.rows == {}
    database = service.planner.database(run.target_name)
    tools = database.tools(run.rollback_plan().target.server_major)
    listing = subprocess.run(
        [str(tools.pg_restore), "--list", str(run.backup.full.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert " TABLE public api_errors " in listing  # its definition, without its rows
    assert " TABLE DATA public api_errors " not in listing
    assert "the rows of the 2 table(s) only moved aside stay in the database" in plan_text(run)

    done = service.final_backup(service.approve(run.id, APPROVER).id)
    assert done.outcome is not None
    assert done.outcome.quarantine_backup is not None  # the one dump of them, after COMMIT
    text = outcome_text(done)
    assert f"public.api_errors: {SAMPLE_COUNTS['api_errors']:,} / " in text
    assert "- (moved aside)" in text


def test_backups_lists_and_prune_keeps_the_protected_and_says_pruned(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """Prune --keep 1 deletes an old succeeded rollback's files; show and restore say so."""
    runbooks = runbooks_with(tmp_path, "0025_curl_sessions.md", DELETES_ROWS)
    service = make_service(db_0023, runbooks_dir=runbooks)
    old = service.approve(service.request("25", requested_by=REQUESTER).id, APPROVER)
    newest = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    cancelled = service.cancel(service.request("25", requested_by=REQUESTER).id, REQUESTER)
    assert [r.state for r in (old, newest, cancelled)] == [
        RunState.SUCCEEDED,
        RunState.SUCCEEDED,
        RunState.CANCELLED,
    ]
    assert old.backup is not None
    assert old.outcome is not None
    assert old.outcome.final_backup is not None
    old_files = [old.backup.full.path, old.outcome.final_backup.path]
    env = env_for(db_0023, tmp_path) | {"ROLLBOT_RUNBOOKS_DIR": str(runbooks)}

    listed = json.loads(rollbot("backups", "--json", env=env).stdout)
    assert [(b["file"]["run_id"], b["file"]["kind"]) for b in listed] == [
        (cancelled.id, "pre-approval"),
        (newest.id, "pre-approval"),
        (newest.id, "final"),
        (old.id, "pre-approval"),
        (old.id, "final"),
    ]
    needs = {(b["file"]["run_id"], b["file"]["kind"]): b["file"]["restore_needs"] for b in listed}
    assert needs[(old.id, "final")] is True
    assert needs[(old.id, "pre-approval")] is False  # a restore reads the final backup
    assert all(b["on_disk"] for b in listed)

    pruned = rollbot("backups", "prune", "--keep", "1", "--as", APPROVER, env=env)
    assert pruned.returncode == 0, pruned.stderr
    out = pruned.stdout
    assert f"deleted  run {old.id} pre-approval {old_files[0]}" in out
    assert f"deleted  run {old.id} final {old_files[1]}" in out
    assert f"kept     run {newest.id} final" in out
    assert "the newest succeeded rollback on default" in out
    assert f"kept     run {cancelled.id} pre-approval" in out
    assert "within retention (the 1 newest rollbacks per target)" in out
    assert "2 deleted" in out
    assert "3 kept." in out
    assert not any(path.exists() for path in old_files)

    gone = service.run(old.id)
    assert "backup pruned on " in plan_text(gone)
    assert "by rollbot backups prune" in outcome_text(gone)
    with pytest.raises(BackupError, match=f"The backup {old_files[1]} was pruned on "):
        service.request_restore(old.id, requested_by=REQUESTER)
    assert "backup_pruned" in [e.kind for e in service.store.audit(old.id)]
    assert "(pruned " in backups_text(Backups(service.store, service.runs.now).list())
