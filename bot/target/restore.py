"""Restore what a rollback dropped, from its backups, in one transaction.

This is the guide's "Data Recovery", made safe.
The restore script is cut out of the run's backup (the final one, taken in the rollback's own
snapshot, when there is one): the dropped types, tables, sequences, indexes and constraints,
their rows, the Drizzle journal row, and a verification that raises, and so rolls everything
back, unless every object is there again and every table holds exactly the backup's rows. It
runs through psql in one transaction, its id stored before the script is sent (see
`bot.pgclient.process.run_transaction`); psql streams the COPY data. A move back out of a
quarantine copies no data: it runs through the driver, and needs no client program at all.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import psycopg

from bot.core.durations import format_duration
from bot.core.errors import BackupError, RollbotError
from bot.core.names import always_quoted, quote_literal
from bot.core.quarantine import move_back_sql, purge_sql
from bot.core.restore import (
    RestorePlan,
    owned_sequences,
    select_data,
    select_statements,
    unquote,
)
from bot.core.run import backup_of, outcome_of
from bot.core.sql import ObjectKind
from bot.pgclient.conninfo import ChildConnection, run_client, run_client_transaction
from bot.target.backup import file_sha256, verify_backup
from bot.target.database import postgres_message
from bot.target.quarantine import occupied, quarantine_exists

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from bot.core.plan import Plan
    from bot.core.quarantine import Quarantine
    from bot.core.results import BackupInfo
    from bot.core.run import Run
    from bot.pgclient.tools import PgTools
    from bot.target.database import TargetDatabase

_HEADER = (
    "SET client_encoding = 'UTF8';\n"
    "SET standard_conforming_strings = on;\n"
    "SELECT pg_catalog.set_config('search_path', '', false);\n"
    "SET check_function_bodies = false;\n"
)


def build_restore(
    source: Run,
    *,
    tools: PgTools,
    target: TargetDatabase,
    lock_timeout_s: float,
    verify_queries: tuple[tuple[int, str], ...] = (),
) -> tuple[RestorePlan, str]:
    """The restore of a succeeded rollback: its plan and the full script."""
    plan = source.rollback_plan()
    backup = source_backup(source)
    _check_file(backup)
    tables = {unquote(t.table) for t in plan.drop_tables}
    dropped = list(plan.dropped)
    types = {unquote(f.name) for f in dropped if f.kind in {ObjectKind.TYPE, ObjectKind.DOMAIN}}
    views = {
        unquote(f.name)
        for f in dropped
        if f.kind in {ObjectKind.VIEW, ObjectKind.MATERIALIZED_VIEW}
    }
    indexes = {
        unquote(f.name)
        for f in dropped
        if f.kind is ObjectKind.INDEX and (f.table is None or unquote(f.table.name) not in tables)
    }
    constraints = {
        (unquote(f.table.name), f.name.split(" on ", 1)[0])
        for f in dropped
        if f.kind is ObjectKind.CONSTRAINT and f.table and unquote(f.table.name) not in tables
    }
    blockers = [
        f"line {f.statement}: restoring a dropped column ({f.name}) is not supported; "
        "its values are in the final backup: restore them by hand from it"
        for f in dropped
        if f.kind is ObjectKind.COLUMN
    ]
    child = target.child("restore")
    sections = {
        section: _pg_restore(tools, child, [f"--section={section}", str(backup.path)])
        for section in ("pre-data", "data", "post-data")
    }
    sequences = owned_sequences(sections["pre-data"], tables)
    relations = tables | views
    pre = [
        *_schemas_again(plan),
        *select_statements(sections["pre-data"], relations, types, sequences),
    ]
    post = select_statements(
        sections["post-data"],
        relations,
        types,
        sequences,
        indexes=indexes,
        constraints=constraints,
    )
    data = select_data(sections["data"], tables, sequences)
    journal = _journal_insert(plan)
    verify = _verification(tables, types, data, views | indexes)
    timeouts = f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms';\n"
    shown_data = [
        f"-- COPY {table}: {rows:,} rows from {backup.path.name}" if rows or "COPY" in sql else sql
        for table, sql, rows in data
    ]
    shown = "\n".join(
        [
            _HEADER + timeouts,
            *pre,
            *shown_data,
            *post,
            journal or "",
            verify,
            *_verify_shown(verify_queries),
        ]
    )
    full = "\n".join(
        [_HEADER + timeouts, *pre, *(sql for _, sql, _ in data), *post, journal or "", verify]
    )
    blockers += _existing(target, tables | views | indexes, types)
    restore = RestorePlan(
        source_run=source.id,
        runbook_name=source.runbook_name,
        target=plan.target,
        backup_path=str(backup.path),
        backup_sha256=backup.sha256,
        backup_kind=backup.kind,
        objects=tuple(sorted(f"{f.kind} {f.name}" for f in dropped)),
        rows=tuple((table, rows) for table, sql, rows in data if sql.startswith("COPY")),
        journal_restored=journal is not None,
        blockers=tuple(blockers),
        sql=shown,
        verify_queries=verify_queries,
        hash=hashlib.sha256(
            f"{shown}|{backup.sha256}|{plan.target.identity()}".encode()
        ).hexdigest(),
    )
    return restore, full


def build_move_back(
    source: Run,
    *,
    tools: Callable[[], PgTools],
    target: TargetDatabase,
    lock_timeout_s: float,
    verify_queries: tuple[tuple[int, str], ...] = (),
) -> tuple[RestorePlan, str, bool]:
    """The restore of a quarantined rollback: a move back, exact, in seconds whatever the rows.

    Its tables and types go back where they were, the foreign keys it dropped are added again
    from their stored definitions (checked against every row), the journal row comes back and
    the then-empty quarantine schema is dropped; a check raises unless each table holds the
    rows the rollback moved. A table of the same name in their old place (the migration was
    applied again) blocks it. Once purged, the quarantine is first reloaded from its verified
    final backup, then moved back the same way.

    The flag says whether the script needs psql: only a reload streams a backup's rows (and
    pg_restore's meta-commands); `tools` is called only then, so a plain move back probes no
    client tools.
    """
    plan = source.rollback_plan()
    outcome = outcome_of(source)
    quarantine = outcome.quarantine if outcome is not None else None
    if quarantine is None:
        msg = f"{source.label()} quarantined nothing"
        raise TypeError(msg)
    backup = outcome.quarantine_backup if outcome else None
    taken = [o.name for o in quarantine.objects if o.kind == "table"]
    views = [o.name for o in quarantine.objects if o.kind in {"view", "materialized view"}]
    types = [o.name for o in quarantine.objects if o.kind in {"type", "domain"}]
    now = occupied(target, quarantine.schema_name, [*taken, *views], types)
    reload, shown_reload, blockers = _reload(target, tools, quarantine, backup, now.quarantine)
    blockers += [
        f"{name} exists again (the migration was applied again?); moving the quarantined "
        "table back over it is refused: roll that migration back first"
        for name in taken
        if name in now.relations
    ]
    blockers += [
        f"{name} exists again; moving the quarantined view back over it is refused"
        for name in views
        if name in now.relations
    ]
    blockers += [
        f"type {name} exists again; moving the quarantined type back over it is refused"
        for name in types
        if name in now.types
    ]
    rows = {t.table: t.rows for t in outcome.dropped} if outcome else {}
    data = [(unquote(name), "COPY", rows.get(name, 0)) for name in taken]
    verify = _verification({unquote(n) for n in taken}, set(), data, set())
    journal = _journal_insert(plan)
    timeouts = f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms';\n"
    # pg_restore's own header resets lock_timeout to 0: ours is set again after it.
    back = [
        timeouts,
        *_schemas_again(plan),
        *(f"{sql};" for sql in move_back_sql(quarantine)),
        journal or "",
        verify,
    ]
    script = "\n".join([_HEADER + timeouts, *reload, *back])
    shown = "\n".join([_HEADER + timeouts, *shown_reload, *back, *_verify_shown(verify_queries)])
    restore = RestorePlan(
        source_run=source.id,
        runbook_name=source.runbook_name,
        target=plan.target,
        backup_path=str(backup.path) if backup else "",
        backup_sha256=backup.sha256 if backup else "",
        backup_kind="quarantine",
        objects=tuple(sorted(f"{o.kind} {o.name}" for o in quarantine.objects)),
        rows=tuple((name, rows.get(name, 0)) for name in taken),
        journal_restored=journal is not None,
        blockers=tuple(blockers),
        sql=shown,
        verify_queries=verify_queries,
        hash=hashlib.sha256(
            f"{shown}|{quarantine.schema_name}|{backup.sha256 if reload and backup else ''}|"
            f"{plan.target.identity()}".encode()
        ).hexdigest(),
        quarantine=quarantine.schema_name,
    )
    return restore, script, bool(reload)


def build_purge(
    source: Run, *, tools: PgTools, target: TargetDatabase, lock_timeout_s: float
) -> tuple[RestorePlan, str]:
    """Dropping a quarantine for good, once its final backup exists and reads back whole.

    The backup is the one copy of those rows left afterwards: it must be the very file that
    was verified (same sha256) and pg_restore must read every block of it again now.
    """
    plan = source.rollback_plan()
    outcome = outcome_of(source)
    quarantine = outcome.quarantine if outcome is not None else None
    if outcome is None or quarantine is None:
        msg = f"{source.label()} quarantined nothing"
        raise TypeError(msg)
    blockers = _quarantine_blockers(
        quarantine, exists=quarantine_exists(target, quarantine.schema_name)
    )
    backup = outcome.quarantine_backup
    if backup is None:
        blockers.append(
            "its final backup is still pending: rollbot takes it at the next sweep "
            "(any `rollbot` command, or `rollbot serve`, takes it); a quarantine is never purged "
            "without one"
        )
    else:
        try:
            _check_file(backup)
            verify_backup(tools, backup.path, [o.moved for o in quarantine.tables()])
        except BackupError as exc:
            blockers.append(f"its final backup cannot be trusted: {exc.render()}")
    timeouts = f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms';\n"
    rows = tuple((t.table, t.rows) for t in outcome.dropped)
    script = "\n".join(
        [
            _HEADER + timeouts,
            unchanged_since_backup(quarantine, dict(rows), backup.snapshot if backup else None),
            *(f"{sql};" for sql in purge_sql(quarantine)),
        ]
    )
    purge = RestorePlan(
        source_run=source.id,
        runbook_name=source.runbook_name,
        target=plan.target,
        backup_path=str(backup.path) if backup else "",
        backup_sha256=backup.sha256 if backup else "",
        backup_kind="final",
        objects=tuple(sorted(f"{o.kind} {o.moved}" for o in quarantine.objects)),
        rows=rows,
        journal_restored=False,
        blockers=tuple(blockers),
        sql=script,
        hash=hashlib.sha256(
            f"{script}|{backup.sha256 if backup else ''}|{plan.target.identity()}".encode()
        ).hexdigest(),
        quarantine=quarantine.schema_name,
        size_bytes=quarantine.size_bytes,
    )
    return purge, script


def unchanged_since_backup(
    quarantine: Quarantine, moved_rows: dict[str, int], snapshot: str | None
) -> str:
    """Writes into the quarantine stop, and the purge is undone if any row changed since.

    The final backup holds the rows the rollback moved, as its snapshot saw them. A row
    inserted or updated in the quarantine since carries the id of a transaction that
    snapshot does not see (PostgreSQL writes a new row version for every UPDATE, with its
    writer's id in `xmin`, and freezing keeps that id), so its value is in neither place
    after a purge: the purge refuses instead. A deletion shows in the count. The 32-bit
    `xmin` is placed in the current epoch (the newest full id with those low bits), which is
    exact for every row written since the backup; a row so old that it lands there by
    wraparound only makes the purge refuse, never pass. Backups stored before their snapshot
    was kept are checked by their counts alone.
    """
    tables = quarantine.tables()
    if not tables:
        return ""
    lock = "LOCK TABLE " + ", ".join(o.moved for o in tables) + " IN EXCLUSIVE MODE;"
    written_since = (
        "count(*) FILTER (WHERE xmin::text::bigint > 2 AND NOT pg_visible_in_snapshot(("
        "now8 - ((now8 % 4294967296) - xmin::text::bigint + 4294967296) % 4294967296)"
        f"::text::xid8, {quote_literal(snapshot)}::pg_snapshot))"
        if snapshot
        else "0"
    )
    checks = "\n".join(
        f"  SELECT count(*), {written_since} INTO n, changed FROM {o.moved};\n"
        f"  IF n <> {moved_rows.get(o.name, 0)} THEN RAISE EXCEPTION "
        f"'purge refused: % holds % rows, its final backup {moved_rows.get(o.name, 0)}: "
        f"something wrote into the quarantine since; nothing was dropped (a restore moves it "
        f"back whole)', "
        f"{quote_literal(o.moved)}, n; END IF;\n"
        f"  IF changed > 0 THEN RAISE EXCEPTION "
        f"'purge refused: % rows of % were written or changed after its final backup, "
        f"which holds the earlier values; nothing was dropped (a restore moves it back "
        f"whole)', "
        f"changed, {quote_literal(o.moved)}; END IF;"
        for o in tables
    )
    return (
        f"{lock}\nDO $unchanged$\nDECLARE n bigint; changed bigint;\n"
        f"now8 bigint := pg_current_xact_id()::text::bigint;\n"
        f"BEGIN\n{checks}\nEND\n$unchanged$;"
    )


def _reload(
    target: TargetDatabase,
    tools: Callable[[], PgTools],
    quarantine: Quarantine,
    backup: BackupInfo | None,
    exists: bool,
) -> tuple[list[str], list[str], list[str]]:
    """The SQL that brings a purged quarantine back from its final backup, shown, blockers.

    Nothing when the quarantine is still there (`exists`); blocked when it is gone and no
    final backup was taken (or it was pruned or changed since it was verified).
    """
    if exists or backup is None:
        return [], [], _quarantine_blockers(quarantine, exists=exists)
    try:
        _check_file(backup)
    except RollbotError as exc:
        return [], [], [f"the quarantine {quarantine.schema_name} was purged and {exc.render()}"]
    sql = _pg_restore(tools(), target.child("restore"), [str(backup.path)])
    shown = (
        f"-- the purged quarantine {quarantine.schema_name} reloaded whole from its final "
        f"backup {backup.path.name} (sha256 {backup.sha256[:12]}…)"
    )
    return [sql], [shown], []


def _quarantine_blockers(quarantine: Quarantine, *, exists: bool) -> list[str]:
    if exists:
        return []
    gone = (
        f"the quarantine {quarantine.schema_name} no longer exists (restored or purged "
        "already); its final backup, if taken, still holds the rows"
    )
    return [gone]


def run_restore(
    script: str,
    *,
    tools: PgTools,
    target: TargetDatabase,
    run_id: int,
    on_xid: Callable[[int], None],
) -> float:
    """Run the script in one transaction; returns its duration. Errors roll it all back.

    A restore from a backup, a purge and a move back that reloads a purged quarantine run
    this way; a plain move back runs through the driver (`run_move_back`). The transaction's
    id goes to `on_xid` before the script runs, so that a process killed around COMMIT is
    settled by what PostgreSQL says of that transaction, not by a guess.
    """
    psql = tools.pg_restore.with_name("psql")
    if not psql.exists():
        raise RollbotError(f"No psql next to {tools.pg_restore}", todo="install the client tools")
    child = target.child(f"run {run_id} restore")
    started = time.monotonic()
    result = run_client_transaction(
        psql, [f"--dbname={child.dbname_arg}"], child, script=script, on_xid=on_xid
    )
    if result.returncode != 0:
        raise RollbotError(
            "The restore failed and was rolled back; nothing was changed",
            why=f"psql said: {result.said}",
        )
    return time.monotonic() - started


def run_move_back(
    script: str, *, target: TargetDatabase, run_id: int, on_xid: Callable[[int], None]
) -> float:
    """Run a move back that reloads nothing in one transaction; returns its duration.

    Its statements are rollbot's own (schema moves, foreign keys, the journal row, the DO
    block that checks every count): no COPY data and no psql meta-command, so the driver
    runs them as one simple query, with no client program started and none probed. Any
    error, the count check's included, rolls all of it back. As with psql, the transaction's
    id goes to `on_xid` before the script is sent; COMMIT follows only once the script has
    returned, so a rollbot killed before leaves a transaction that can only be rolled back.
    """
    started = time.monotonic()
    try:
        with target.connect(f"run {run_id} restore") as conn:  # committed as the block ends
            row = conn.execute("SELECT pg_catalog.pg_current_xact_id()::text").fetchone()
            assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
            on_xid(int(row[0]))
            conn.execute(script.encode())
    except psycopg.Error as exc:
        raise RollbotError(
            "The restore failed and was rolled back; nothing was changed",
            why=f"PostgreSQL said: {postgres_message(exc, target.secrets)}",
        ) from None
    return time.monotonic() - started


def source_backup(source: Run) -> BackupInfo:
    """The backup a restore reads: the final one when the rollback took it."""
    outcome = outcome_of(source)
    if outcome is not None and outcome.final_backup is not None:
        return outcome.final_backup
    full, _ = backup_of(source)
    if full is None:
        raise BackupError(f"Run {source.id} has no backup to restore from")
    return full


def _check_file(backup: BackupInfo) -> None:
    """The file must be the one that was verified: same size, same sha256; and not pruned."""
    if backup.pruned_at is not None:
        raise BackupError(
            f"The backup {backup.path} was pruned on {backup.pruned_at:%Y-%m-%d %H:%M} UTC",
            why="`rollbot backups prune` deleted it under ROLLBOT_BACKUP_KEEP (see `rollbot log`)",
            todo="copy the file back to that path from wherever backups are archived (its "
            "sha256 is checked), or restore by hand from another backup",
        )
    try:
        digest = file_sha256(backup.path)
    except OSError as exc:
        raise BackupError(
            f"The backup {backup.path} cannot be read ({exc.strerror})",
            todo="restore it to that path from wherever backups are kept, then try again",
        ) from None
    if digest != backup.sha256:
        raise BackupError(
            f"The backup {backup.path} is not the file that was verified (its sha256 differs)",
            todo="find the original file; rollbot will not restore from an altered backup",
        )


def _pg_restore(tools: PgTools, child: ChildConnection, args: list[str]) -> str:
    result = run_client(
        tools.pg_restore, ["--no-owner", "--no-privileges", "-f", "-", *args], child
    )
    if result.returncode != 0:
        raise BackupError("The backup cannot be read back for the restore", why=result.said)
    return result.stdout


def _journal_insert(plan: Plan) -> str | None:
    journal = plan.journal
    if journal is None or journal.row is None or plan.script.journal_delete is None:
        return None
    row = journal.row
    columns = ["id", "hash", "created_at"]
    values = [
        str(int(row.id)),
        quote_literal(row.hash),
        "NULL" if row.created_at is None else str(int(row.created_at)),
    ]
    return (
        f'INSERT INTO "{journal.schema_name}"."{journal.table}" ({", ".join(columns)})'
        f" VALUES ({', '.join(values)});  -- Drizzle's journal lists the migration again"
    )


def _verification(
    tables: set[str], types: set[str], data: list[tuple[str, str, int]], relations: set[str]
) -> str:
    """A DO block that raises (and so undoes the restore) unless everything is back."""
    checks = [
        f"  IF to_regtype({quote_literal(_quoted(t))}) IS NULL THEN "
        f"RAISE EXCEPTION 'restore verification: type % is missing', {quote_literal(t)}; END IF;"
        for t in sorted(types)
    ]
    checks += [
        f"  IF to_regclass({quote_literal(_quoted(r))}) IS NULL THEN "
        f"RAISE EXCEPTION 'restore verification: % is missing', {quote_literal(r)}; END IF;"
        for r in sorted(relations)
    ]
    rows = {table: count for table, sql, count in data if sql.startswith("COPY")}
    for table in sorted(tables):
        expected = rows.get(table, 0)
        checks.append(
            f"  SELECT count(*) INTO n FROM {_quoted(table)};\n"
            f"  IF n <> {expected} THEN RAISE EXCEPTION "
            f"'restore verification: % has % rows, the backup has {expected}', "
            f"{quote_literal(table)}, n; END IF;"
        )
    body = "\n".join(checks)
    return f"DO $verify$\nDECLARE n bigint;\nBEGIN\n{body}\nEND\n$verify$;"


def _schemas_again(plan: Plan) -> list[str]:
    """The schemas the rollback dropped, made again before anything goes back into them.

    `IF NOT EXISTS`: one made again since (the migration applied again) is used as it is.
    """
    return [
        f"CREATE SCHEMA IF NOT EXISTS {f.name};"
        for f in plan.dropped
        if f.kind is ObjectKind.SCHEMA
    ]


def _quoted(name: str) -> str:
    return always_quoted(*name.split(".", 1))


def _existing(target: TargetDatabase, tables: set[str], types: set[str]) -> list[str]:
    """Objects that exist again: restoring over them is refused."""
    found: list[str] = []
    with target.connect("restore", autocommit=True) as conn:
        for table in sorted(tables):
            row = conn.execute("SELECT to_regclass(%s)", (_quoted(table),)).fetchone()
            if row and row[0] is not None:
                found.append(f"{table} exists again; restoring over it is refused")
        for type_name in sorted(types):
            row = conn.execute("SELECT to_regtype(%s)", (_quoted(type_name),)).fetchone()
            if row and row[0] is not None:
                found.append(f"type {type_name} exists again; restoring over it is refused")
    return found


def _verify_shown(queries: tuple[tuple[int, str], ...]) -> list[str]:
    """The "Verify data" queries as the approver reads them: after COMMIT, read only."""
    if not queries:
        return []
    return [
        "",
        "-- then, after COMMIT, in a READ ONLY session, each cut off at the statement timeout:",
        *(f'{query};  -- "Verify data", runbook line {line}' for line, query in queries),
    ]


def run_verify_queries(
    target: TargetDatabase, queries: tuple[tuple[int, str], ...], *, timeout: timedelta
) -> tuple[str, ...]:
    """The runbook's "Verify data" queries as `line: query → answer` notes.

    They run after the restore has committed, so they must not be able to change anything or
    hold anything up: a READ ONLY session, and each query cut off at `timeout`.
    """
    notes: list[str] = []
    with target.connect("verify", read_only=True) as conn:
        conn.execute(f"SET statement_timeout = '{format_duration(timeout)}'".encode())
        for line, query in queries:
            try:
                with conn.transaction():
                    row = conn.execute(query.encode()).fetchone()
                answer = ", ".join(str(v) for v in row) if row else "no rows"
            except psycopg.Error as exc:
                answer = f"failed: {exc.diag.message_primary or type(exc).__name__}"
            notes.append(f"verify data (runbook line {line}): {query} → {answer}")
    return tuple(notes)
