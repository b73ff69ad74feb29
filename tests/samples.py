"""Small, valid values of what a run carries, for tests that need a run but not a database."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.facts import Target
from bot.core.plan import Plan, Script
from bot.core.restore import RestorePlan
from bot.core.results import Backup, BackupInfo, Outcome, Rehearsal, RowChange, TableCount
from bot.service.lifecycle import Lifecycle, SilentNotifier
from bot.state.store import RunStore

AT = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
TARGET = Target(host="db", port=5432, dbname="asset_forge", server_version="15.4", server_major=15)


def a_plan(sql: str = "DROP TABLE x;", plan_hash: str = "h1") -> Plan:
    return Plan(
        migration_id="0023",
        runbook_name="0023_x",
        runbook_file="0023_x.md",
        runbook_sha256="0" * 64,
        description=None,
        date=None,
        target=TARGET,
        steps=(),
        dropped=(),
        drop_tables=(),
        delete_tables=(),
        neighbours=(),
        write_locked=("public.x",),
        locked=("public.x",),
        blockers=(),
        lock_timeout=timedelta(seconds=5),
        statement_timeout=timedelta(minutes=1),
        script=Script(
            settings=(),
            advisory_lock="SELECT 1",
            write_lock=None,
            count_dropped=(),
            exclusive_lock=None,
            count_neighbours=(),
            statements=(sql,),
        ),
        sql=sql,
        hash=plan_hash,
    )


def a_restore_plan(source_run: int = 1) -> RestorePlan:
    return RestorePlan(
        source_run=source_run,
        runbook_name="0023_x",
        target=TARGET,
        backup_path="/backups/run-1.dump",
        backup_sha256="1" * 64,
        backup_kind="final",
        objects=("table public.x",),
        rows=(("public.x", 3),),
        journal_restored=True,
        blockers=(),
        sql="COPY public.x: 3 rows",
        hash="r1",
    )


def a_backup_info(kind: str = "full") -> BackupInfo:
    return BackupInfo.model_validate(
        {
            "kind": kind,
            "path": Path("/backups/run-1.dump"),
            "size_bytes": 2048,
            "sha256": "2" * 64,
            "duration_s": 0.5,
            "pg_dump_version": "15.4",
            "tables": ("public.x",),
            "verified": True,
            "created_at": AT,
        }
    )


def a_backup() -> Backup:
    return Backup(full=a_backup_info(), rows={"public.x": 3})


def a_rehearsal() -> Rehearsal:
    return Rehearsal(
        ok=True,
        duration_s=0.2,
        total_s=1.5,
        locks=("ACCESS EXCLUSIVE on public.x",),
        data="affected",
        rows=(RowChange(table="public.x", before=3, after=None),),
        scratch="rollbot_scratch_1",
    )


def an_outcome() -> Outcome:
    return Outcome(
        succeeded=True,
        changed=True,
        dropped=(TableCount(table="public.x", rows=3, backup_rows=3),),
        objects_expected=1,
        objects_gone=1,
        final_backup=a_backup_info("final"),
        duration_s=0.3,
        xid=4242,
        notes=("remove the migration file",),
    )


def quietly(store: RunStore) -> Lifecycle:
    """The service's way of creating and moving runs, announcing nothing: test set-up."""
    return Lifecycle(store, SilentNotifier(), lambda: datetime.now(UTC))
