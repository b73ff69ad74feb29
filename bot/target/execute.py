"""Runs an approved plan in one transaction, and proves it did what the plan said.

Order matters, and is what makes the rollback safe on a live database:
1. advisory lock: one rollback per database at a time;
2. lock every table whose rows change against writes only (reads go on): those dropped,
   deleted from, reached by foreign-key actions, or losing a column; export the snapshot,
   count their rows and take the final backup from that same snapshot, so "rows before"
   equals "rows in the final backup" by construction;
3. only then take ACCESS EXCLUSIVE on everything the DDL touches, in one statement, under
   lock_timeout; re-check the inventory the plan was approved on;
4. run the statements; verify before COMMIT that every dropped object is gone, nothing else
   disappeared, the neighbouring tables' counts did not move and the tables the statements
   change (foreign-key actions included) only lost rows, or none where only values change.
Any error rolls back: the database is unchanged. Lock timeouts are retried with jittered
backoff; when rollbot gives up it names the sessions that blocked it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
from pydantic import BaseModel, ConfigDict

from bot.core.errors import BackupError
from bot.core.plan import plan_hash
from bot.core.results import AffectedCount, BackupInfo, NeighbourCount, Outcome, TableCount
from bot.core.texts import violated_constraint
from bot.core.verify import change_problems
from bot.target.catalog import read_facts
from bot.target.database import TargetUnreachableError, postgres_message
from bot.target.locks import LockTimeoutError, take_locks
from bot.target.snapshots import final_backup, final_restore_hint
from bot.target.transaction import PlanTransaction, StatementFailedError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta
    from pathlib import Path

    from bot.core.plan import Plan
    from bot.core.runbook import Runbook
    from bot.pgclient.tools import PgTools
    from bot.target.database import TargetDatabase


class RetryPolicy(BaseModel):
    """How hard to try for the locks before giving up (and leaving the app alone)."""

    model_config = ConfigDict(frozen=True)

    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 10.0


class ExecutionFailedError(Exception):
    """Internal: carries the Outcome of an attempt that rolled back."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def execute_plan(
    plan: Plan,
    runbook: Runbook,
    *,
    target: TargetDatabase,
    tools: PgTools,
    backup_dir: Path,
    run_id: int,
    on_commit_pending: Callable[[Outcome], None],
    retry: RetryPolicy | None = None,
    exclude_schemas: tuple[str, ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[float, float], float] = random.uniform,
) -> Outcome:
    """Execute with bounded lock retries.

    `on_commit_pending(outcome)` runs just before COMMIT with the outcome as it will be if the
    commit succeeds (transaction id included), so a crash at that moment can be reconciled.
    A lock attempt that times out rolls back to the plan's savepoint and tries again in the
    same transaction: nothing taken before it (the final backup above all) is taken again.
    """
    tries = _Tries(retry or RetryPolicy(), sleep, jitter)
    job = _Job(plan, runbook, target, tools, backup_dir, run_id, on_commit_pending, exclude_schemas)
    started = time.monotonic()
    while True:
        try:
            outcome = _attempt(job, tries)
            return outcome.model_copy(
                update={"attempts": tries.used + 1, "duration_s": time.monotonic() - started}
            )
        except LockTimeoutError as exc:  # a statement's own lock, or a plan without savepoint
            if not tries.failed(exc):
                break
        except _OutOfAttemptsError:
            break
        except ExecutionFailedError as exc:
            return exc.outcome.model_copy(
                update={"attempts": tries.used + 1, "duration_s": time.monotonic() - started}
            )
        except TargetUnreachableError as exc:
            return _connection_failed(exc.primary, exc.sqlstate, tries.used + 1, started)
        except StatementFailedError as exc:  # rollbot's own queries: the connection failed
            return _connection_failed(_pg_message(exc.error), exc.sqlstate, tries.used + 1, started)
        except psycopg.Error as exc:
            return _connection_failed(_pg_message(exc), exc.sqlstate, tries.used + 1, started)
    last = tries.last
    assert last is not None  # noqa: S101 - only a failed attempt ends the loop here
    return Outcome(
        succeeded=False,
        error=f"could not get the locks within {_seconds(plan.lock_timeout)} "
        f"after {tries.used} attempts; nothing was changed",
        failed_statement=last.statement,
        sqlstate="55P03",
        blockers=last.blockers,
        attempts=tries.used,
        duration_s=time.monotonic() - started,
    )


class _OutOfAttemptsError(Exception):
    """Internal: the lock attempts ran out inside the transaction; it rolls back."""


@dataclass
class _Tries:
    """The lock attempts of one execution, shared by every place that takes locks."""

    policy: RetryPolicy
    sleep: Callable[[float], None]
    jitter: Callable[[float, float], float]
    used: int = 0
    last: LockTimeoutError | None = None

    def failed(self, exc: LockTimeoutError) -> bool:
        """Count a failed attempt; True (after the jittered backoff) if another may follow."""
        self.used += 1
        self.last = exc
        if self.used >= self.policy.attempts:
            return False
        ceiling = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (self.used - 1))
        self.sleep(self.jitter(0.0, ceiling))
        return True


def _connection_failed(message: str, sqlstate: str | None, attempt: int, started: float) -> Outcome:
    return Outcome(
        succeeded=False,
        error=f"the database connection failed ({message}); the transaction "
        "did not commit, nothing was changed",
        sqlstate=sqlstate,
        attempts=attempt,
        duration_s=time.monotonic() - started,
    )


@dataclass(frozen=True)
class _Job:
    """What every lock attempt of one execution is given: the same each time."""

    plan: Plan
    runbook: Runbook
    target: TargetDatabase
    tools: PgTools
    backup_dir: Path
    run_id: int
    on_commit_pending: Callable[[Outcome], None]
    exclude_schemas: tuple[str, ...]


def _attempt(job: _Job, tries: _Tries) -> Outcome:
    plan, runbook, target, run_id = job.plan, job.runbook, job.target, job.run_id
    script = plan.script
    taken: list[BackupInfo] = []  # the final backup, once taken: discarded on rollback
    committing = False
    with target.connect(f"run {run_id}") as conn:
        tx = PlanTransaction(conn, plan, runbook, exclude_schemas=job.exclude_schemas)
        try:
            if not tx.begin():
                holder = target.advisory_holder()
                _fail(
                    f"another rollback is running on this database ({holder}); nothing was changed",
                    holder=holder,
                )
            other_tables = [n for n in tx.relations().values() if n not in plan.final_tables()]
            dropped_counts = _locks(job, tx, tries, other_tables, taken)
            final = taken[0] if taken else None
            before = tx.relations()
            _inventory_unchanged(conn, plan, runbook)
            neighbours_before = tx.counts(script.count_neighbours)
            _run_statements(tx)
            _forget_migration(tx, script.journal_delete)
            after = tx.relations()
            neighbours = (neighbours_before, tx.neighbours_after(before, after))
            deleted_after = tx.counts(script.count_deleted)
            counts = dict(zip(plan.write_locked, dropped_counts, strict=False))
            problems = tx.problems((before, after), neighbours)
            problems += change_problems(plan, counts, deleted_after)
            if problems:
                _fail(
                    f"verification failed ({'; '.join(problems)}); rolled back, nothing was changed"
                )
            outcome = _succeeded(
                plan,
                counts=counts,
                deleted_after=deleted_after,
                neighbours=neighbours,
                final=final,
                xid=int(tx.scalar("SELECT pg_current_xact_id()::text::bigint")),
            )
            job.on_commit_pending(outcome)
            committing = True
            _commit(conn, target, outcome)
        except BaseException:
            _quietly_rollback(conn)
            if not committing:
                _discard(taken[0] if taken else None)
            # else: a Ctrl-C during COMMIT (psycopg lets it finish, then raises) or a COMMIT
            # whose fate is unknown: the stored outcome names this file, and if the
            # transaction committed, recovery says so and the file is the only copy of the rows.
            raise
    return outcome


def _locks(
    job: _Job, tx: PlanTransaction, tries: _Tries, other_tables: list[str], taken: list[BackupInfo]
) -> list[int]:
    """The write locks, the rows they hold still, the final backup if any, the exclusive locks.

    Returns the counts of the write-locked tables; the final backup goes into `taken`.
    """
    plan, script, conn, target = job.plan, job.plan.script, tx.conn, job.target
    counts: list[int] = []

    def write_locks() -> None:
        if script.write_lock:
            _take(conn, target, script.write_lock, plan)
            counts[:] = tx.counts(script.count_dropped)

    def exclusive_locks() -> None:
        if script.exclusive_lock:
            _take(conn, target, script.exclusive_lock, plan)

    def every_lock() -> None:
        write_locks()
        exclusive_locks()

    if not (script.write_lock and script.snapshot):
        # Nothing to dump inside the transaction: each attempt takes every lock anew, and
        # one that times out lets go of them all.
        _retrying(tx, tries, every_lock)
        return counts
    # The snapshot is exported once the write locks are held (no write slips in between) and
    # outside any savepoint (PostgreSQL exports none from one); the exclusive locks then retry
    # behind a savepoint of their own, and the backup is kept across their attempts.
    _retrying(tx, tries, write_locks)
    snapshot = tx.scalar(script.export_snapshot)
    try:
        taken.append(
            final_backup(
                plan,
                tools=job.tools,
                target=target,
                backup_dir=job.backup_dir,
                run_id=job.run_id,
                snapshot=str(snapshot),
                other_tables=other_tables,
                exclude_schemas=job.exclude_schemas,
            )
        )
    except BackupError as exc:
        _fail(f"the final backup failed, so nothing was dropped: {exc.render()}")
    _retrying(tx, tries, exclusive_locks)
    return counts


def _retrying(tx: PlanTransaction, tries: _Tries, take: Callable[[], object]) -> None:
    """Take locks behind the plan's savepoint; a timeout rolls back to it and tries again.

    Rolling back to the savepoint lets go of every lock taken since, so whoever queued
    behind rollbot waits at most one attempt. Plans stored without a savepoint retry the whole
    transaction instead, as they always did.
    """
    savepoint = tx.script.savepoint
    if savepoint is None:
        take()
        return
    while True:
        tx.send(savepoint)
        try:
            take()
        except LockTimeoutError as exc:
            tx.send(f"ROLLBACK TO {savepoint}")
            if not tries.failed(exc):
                raise _OutOfAttemptsError from None
            continue
        tx.send(f"RELEASE {savepoint}")
        return


def _succeeded(
    plan: Plan,
    *,
    counts: dict[str, int],
    deleted_after: list[int],
    neighbours: tuple[list[int], list[int]],
    final: BackupInfo | None,
    xid: int,
) -> Outcome:
    """The outcome as it will be once COMMIT returns: counted, checked, with its backup."""
    cut = len(plan.delete_tables)
    return Outcome(
        succeeded=True,
        changed=True,
        dropped=tuple(
            TableCount(
                table=t.table,
                rows=counts.get(t.table, 0),
                # Moved aside: the quarantine holds them, dumped from there after COMMIT.
                backup_rows=counts.get(t.table, 0),
            )
            for t in plan.drop_tables
        ),
        deleted=tuple(
            NeighbourCount(table=t.table, before=counts.get(t.table, 0), after=after)
            for t, after in zip(plan.delete_tables, deleted_after[:cut], strict=True)
        ),
        affected=tuple(
            AffectedCount(table=a.table, why=a.why, before=counts.get(a.table, 0), after=after)
            for a, after in zip(plan.affected, deleted_after[cut:], strict=True)
        ),
        neighbours=tuple(
            NeighbourCount(table=name, before=b, after=a)
            for name, b, a in zip(plan.neighbours, *neighbours, strict=True)
        ),
        objects_expected=len(plan.dropped),
        objects_gone=len(plan.dropped),
        final_backup=final,
        xid=xid,
        restore_hint=final_restore_hint(final),
        quarantine=plan.quarantine,
    )


def _forget_migration(tx: PlanTransaction, delete: str | None) -> None:
    """Delete the migration's journal row; exactly one row, or the journal moved under us."""
    if delete and tx.send(delete).rowcount != 1:
        _fail("the Drizzle journal row changed after the plan was made; nothing was changed")


def _commit(conn: psycopg.Connection[Any], target: TargetDatabase, outcome: Outcome) -> None:
    """COMMIT; if the connection drops during it, ask the server whether it happened."""
    try:
        conn.commit()
    except psycopg.OperationalError:
        status = target.xact_status(outcome.xid or 0)
        if status != "committed":
            _fail(
                f"the connection was lost during COMMIT and the server reports the "
                f"transaction {status or 'unknown'}; nothing was changed"
                if status == "aborted"
                else "the connection was lost during COMMIT; whether it committed is unknown "
                "(rollbot will check again on restart)",
                xid=outcome.xid,
            )


def _quietly_rollback(conn: psycopg.Connection[Any]) -> None:
    """Roll back; a connection that is already gone has rolled back by itself."""
    try:
        conn.rollback()
    except psycopg.Error:
        return


def _pg_message(exc: psycopg.Error) -> str:
    message = exc.diag.message_primary if exc.diag else None
    return message or type(exc).__name__


def _take(conn: psycopg.Connection[Any], target: TargetDatabase, lock: str, plan: Plan) -> None:
    """Take a plan's locks within its lock_timeout as a whole, whatever the number of tables."""
    take_locks(
        conn, target, lock, bound=plan.lock_timeout, statement_timeout=plan.statement_timeout
    )


def _inventory_unchanged(conn: psycopg.Connection[Any], plan: Plan, runbook: Runbook) -> None:
    """Under the exclusive locks, the inventory must still be the approved one.

    The runbook is compared first: if its file changed since approval, that is the reason,
    not "the schema"; either way only the approved SQL could ever run, and nothing does.
    """
    if runbook.sha256 != plan.runbook_sha256:
        _fail(
            f"the runbook file {plan.runbook_file} changed after the plan was approved; "
            "nothing was changed: plan again and have the new plan approved"
        )
    facts = read_facts(conn, runbook, plan.target)
    if plan_hash(plan.sql, facts, runbook.sha256) != plan.hash:
        _fail("the schema changed after the plan was approved; nothing was changed")


def _run_statements(tx: PlanTransaction) -> None:
    """A lock timeout is retried like the others; any other failure names its statement."""
    try:
        tx.run_statements()
    except StatementFailedError as exc:
        if isinstance(exc.error, psycopg.errors.LockNotAvailable):
            raise LockTimeoutError((), exc.text) from None
        violated = (
            violated_constraint(exc.statement, exc.sqlstate) if exc.statement is not None else None
        )
        _fail(
            f"statement {exc.number} failed: {postgres_message(exc.error)}; nothing was changed"
            + (f"; {violated}" if violated else ""),
            failed_statement=exc.text,
            failed_line=exc.line,
            sqlstate=exc.sqlstate,
        )


def _fail(error: str, **fields: Any) -> NoReturn:  # noqa: ANN401
    raise ExecutionFailedError(Outcome(succeeded=False, error=error, **fields))


def _discard(backup: BackupInfo | None) -> None:
    """A final backup of an attempt that rolled back describes nothing that happened."""
    if backup is not None:
        backup.path.unlink(missing_ok=True)


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g} s"
