"""Backups taken from an exported snapshot, so their row counts are exact.

A count taken a moment before or after `pg_dump` can disagree with the dump on a busy database.
Exporting a snapshot, counting in it and handing it to `pg_dump --snapshot` makes "rows in the
backup" an exact number, which is what the approver and, later, a restore compare against. The
pre-approval backup exports its own; the final backup dumps the snapshot of the rollback's own
transaction, taken while writes to every table it changes wait.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import IsolationLevel, sql

from bot.core.compression import DEFAULT as COMPRESSION
from bot.core.durations import format_duration
from bot.core.errors import BackupError, DatabaseUnavailableError, LockWaitError
from bot.core.names import QualifiedName, qualified, split_qualified
from bot.target.backup import take_backup
from bot.target.locks import BlockerWatch

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta
    from pathlib import Path

    from bot.core.plan import Plan
    from bot.core.quarantine import Quarantine
    from bot.core.results import BackupInfo, Blocker
    from bot.pgclient.tools import PgTools
    from bot.target.database import TargetDatabase


def backup_with_counts(
    tools: PgTools,
    target: TargetDatabase,
    directory: Path,
    *,
    name: str,
    tables: Sequence[str],
    exclude_schemas: Sequence[str] = (),
    purpose: str = "backup",
    lock_wait: timedelta | None = None,
    data_of: Sequence[str] | None = None,
    compression: str = COMPRESSION,
    on_progress: Callable[[int, int], None] | None = None,
    schemas: Sequence[str] = (),
    kind: Literal["full", "final"] = "full",
) -> tuple[BackupInfo, dict[str, int]]:
    """Verified dump of the whole schema plus exact rows of `tables` at the dump's snapshot.

    With `data_of` None the dump holds every table's rows; else only the rows of `tables`,
    of `data_of` (the plan's other tables, Drizzle's journal) and of every table they
    reference through foreign keys, transitively, so that a copy restored from it keeps its
    foreign keys (the rehearsal's). `on_progress(written, expected)` hears the bytes written
    against the size the catalog gives the tables whose rows are dumped.

    `purpose` names both sessions, rollbot's and pg_dump's, as `rollbot <purpose>`. With
    `lock_wait`, each lock either session needs is waited for at most that long: a table held
    by another session's ACCESS EXCLUSIVE lock ends the backup with that session named,
    instead of parking the request (and whoever waits for its answer) behind it for good.
    """
    application = f"rollbot {purpose}"
    try:
        with (
            target.connect(purpose) as conn,
            BlockerWatch(target, application=application) as watch,
        ):
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            if lock_wait is not None:
                conn.execute(f"SET lock_timeout = '{format_duration(lock_wait)}'".encode())
            row = conn.execute(
                "SELECT pg_export_snapshot(), pg_current_snapshot()::text"
            ).fetchone()
            snapshot, seen = (str(row[0]), str(row[1])) if row else ("", "")
            rows: dict[str, int] = {}
            try:
                for table in tables:
                    counted = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))
                    ).fetchone()
                    rows[table] = int(counted[0]) if counted else 0
                left_out = (
                    _left_out(conn, [*tables, *data_of], exclude_schemas)
                    if data_of is not None
                    else []
                )
                expected = _expected_bytes(conn, left_out, exclude_schemas)
                info = take_backup(
                    tools,
                    target.conninfo,
                    directory,
                    name=name,
                    kind=kind,
                    required_tables=tables,
                    snapshot=snapshot,
                    exclude_table_data=left_out,
                    exclude_schemas=exclude_schemas,
                    schemas=schemas,
                    lock_wait_timeout_s=lock_wait.total_seconds() if lock_wait else None,
                    application_name=application,
                    compression=compression,
                    scope="all" if data_of is None else "affected",
                    on_bytes=(lambda n: on_progress(n, expected))
                    if on_progress
                    else lambda _: None,
                )
            except (psycopg.errors.LockNotAvailable, LockWaitError):
                raise _blocked(target, lock_wait, watch.blockers()) from None
            conn.rollback()
            info = info.model_copy(update={"snapshot": seen})
    except (psycopg.OperationalError, DatabaseUnavailableError) as exc:
        raise BackupError(
            "The backup could not start: the target database cannot be reached",
            # The adapter's error keeps the driver's class name as its reason.
            why=exc.why if isinstance(exc, DatabaseUnavailableError) else type(exc).__name__,
            todo="check DATABASE_URL and the server; approval stays blocked",
        ) from None
    return info, rows


_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND NOT n.nspname = ANY (%s)
AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'
"""
_PARENTS = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f'
"""
_SYSTEM = ("pg_catalog", "information_schema")


def _left_out(
    conn: psycopg.Connection[Any], wanted: Sequence[str], exclude_schemas: Sequence[str]
) -> list[str]:
    """The tables whose rows a proportional backup leaves out: all but `wanted` and parents."""
    parents: dict[QualifiedName, set[QualifiedName]] = {}
    for cs, ct, ps, pt in conn.execute(_PARENTS).fetchall():
        parents.setdefault((str(cs), str(ct)), set()).add((str(ps), str(pt)))
    keep: set[QualifiedName] = set()
    todo = [split_qualified(t) for t in wanted]
    while todo:
        table = todo.pop()
        if table not in keep:
            keep.add(table)
            todo.extend(parents.get(table, ()))
    rows = conn.execute(_TABLES, ([*_SYSTEM, *exclude_schemas],)).fetchall()
    return sorted(qualified((str(s), str(t))) for s, t in rows if (str(s), str(t)) not in keep)


def _expected_bytes(
    conn: psycopg.Connection[Any], left_out: Sequence[str], exclude_schemas: Sequence[str]
) -> int:
    """What the catalog says the dumped rows take on disk: the progress bar's far end."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND NOT n.nspname = ANY (%s)"
        " AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'"
        " AND NOT format('%%I.%%I', n.nspname, c.relname) = ANY (%s)",
        ([*_SYSTEM, *exclude_schemas], [qualified(split_qualified(t)) for t in left_out]),
    ).fetchone()
    return int(row[0]) if row else 0


def _blocked(
    target: TargetDatabase, lock_wait: timedelta | None, blockers: tuple[Blocker, ...]
) -> LockWaitError:
    """The backup's lock wait ran out: who held the lock, as execution reports it."""
    waited = format_duration(lock_wait) if lock_wait else "its lock timeout"
    held = "; ".join(b.label() for b in blockers) or "a session that has since finished"
    return LockWaitError(
        f"The backup of {target.name} waited {waited} for a table lock and gave up",
        why=f"held by {held}",
        todo="plan again once that session has finished (or end it); nothing was changed",
    )


def final_backup(
    plan: Plan,
    *,
    tools: PgTools,
    target: TargetDatabase,
    backup_dir: Path,
    run_id: int,
    snapshot: str,
    other_tables: list[str],
    exclude_schemas: tuple[str, ...],
) -> BackupInfo:
    """The rows of every table a rollback changes, dumped from its transaction's `snapshot`.

    That is the tables it drops, deletes from, reaches through foreign-key actions or drops a
    column of (`plan.write_locked`), as they are at the moment of the change. Only their data
    is kept (the rest of the schema comes along, for their types); lock waits are bounded by
    the plan's lock_timeout, since the rollback's writers are waiting meanwhile.
    """
    return take_backup(
        tools,
        target.conninfo,
        backup_dir,
        name=f"{_file_name(target)}-run-{run_id}-final-{time.strftime('%Y%m%d-%H%M%S')}",
        kind="final",
        required_tables=plan.final_tables(),
        snapshot=snapshot,
        exclude_table_data=other_tables,
        exclude_schemas=exclude_schemas,
        lock_wait_timeout_s=plan.lock_timeout.total_seconds(),
        application_name=f"rollbot run {run_id} final backup",
    )


def quarantine_backup(
    quarantine: Quarantine,
    *,
    tools: PgTools,
    target: TargetDatabase,
    backup_dir: Path,
    run_id: int,
) -> tuple[BackupInfo, dict[str, int]]:
    """The final backup of a quarantined rollback: its quarantine schema, after COMMIT.

    The application uses nothing in it, so the dump waits for no one and no one waits for
    it; its rows are counted in the dump's own snapshot, to compare with the rows moved.
    """
    return backup_with_counts(
        tools,
        target,
        backup_dir,
        name=f"{_file_name(target)}-run-{run_id}-final-{time.strftime('%Y%m%d-%H%M%S')}",
        tables=[o.moved for o in quarantine.tables()],
        purpose=f"run {run_id} final backup",
        schemas=[quarantine.schema_name],
        kind="final",
    )


def final_restore_hint(final: BackupInfo | None) -> str | None:
    """The final backup holds rows of the changed tables only: restore schema and data."""
    if final is None:
        return None
    command = shlex.join(
        [
            "pg_restore",
            "--dbname=EMPTY_DATABASE",
            "--section=pre-data",
            "--section=data",
            "--exit-on-error",
            str(final.path),
        ]
    )
    return f"{command}  # the changed tables' rows as they were, without FKs to other tables"


def backup_name(target: TargetDatabase, run_id: int, stamp: str) -> str:
    """`staging-run-12-20261202-030405`: two targets' backups side by side never collide."""
    return f"{_file_name(target)}-run-{run_id}-{stamp}"


def _file_name(target: TargetDatabase) -> str:
    """The target's name as a file name; target names are plain identifiers already."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in target.name)
