"""Rehearsal: the exact planned SQL, run first on a scratch copy restored from the backup.

"Test it on staging first", built in. Once the pre-approval backup is verified, rollbot restores
it into a scratch database (schema only, with the rows the plan touches, or everything) and runs
the plan's own SQL there in one transaction, with the checks the real execution makes before
COMMIT. The approver then sees that the statements run against the real schema, which locks
they take and for how long, before anything touches the target. The scratch database is dropped
afterwards, whatever happened.

A server that refuses CREATE DATABASE, or a backup that cannot be restored there, is a skip,
not a failure: it says nothing about the rollback itself.
"""

from __future__ import annotations

import re
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
import structlog

from bot.core.results import SKIPPED, Proof, Rehearsal, RowChange
from bot.core.schema import Schema, changed_outside, diff_schemas, outside_chain
from bot.target.catalog import read_facts
from bot.target.database import TargetUnreachableError, postgres_message
from bot.target.schema import read_schema
from bot.target.scratch import (
    DataMode,
    ScratchRefusedError,
    as_throwaway,
    create_role,
    create_scratch,
    drop_role,
    drop_scratch,
    restore_scratch,
    scratch_lease,
    throwaway_password,
)
from bot.target.transaction import PlanTransaction, StatementFailedError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.core.plan import Plan
    from bot.core.results import BackupInfo
    from bot.core.runbook import Runbook
    from bot.pgclient.tools import PgTools
    from bot.target.database import TargetDatabase
    from bot.target.reference import Reference

log = structlog.get_logger()
_NO_RETRY = (
    " (restoring as the copy's throwaway role; rollbot does not retry as its own role, which "
    "would run the copy's functions with rollbot's rights)"
)

# pg_locks modes, weakest first.
_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
_HELD_LOCKS = """
SELECT relation, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
"""


def lock_label(mode: str) -> str:
    """pg_locks' `AccessExclusiveLock` as LOCK TABLE spells it: `ACCESS EXCLUSIVE`."""
    return " ".join(re.findall(r"[A-Z][a-z]*", mode.removesuffix("Lock"))).upper() or mode


def strongest_locks(held: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """(relation, mode) pairs as one `MODE on relation` per relation, strongest mode first."""
    best: dict[str, str] = {}
    for relation, mode in held:
        if relation not in best or _rank(mode) > _rank(best[relation]):
            best[relation] = mode
    ordered = sorted(best.items(), key=lambda item: (-_rank(item[1]), item[0]))
    return tuple(f"{lock_label(mode)} on {relation}" for relation, mode in ordered)


def _rank(mode: str) -> int:
    return _MODES.index(mode) if mode in _MODES else -1


class _FailedError(Exception):
    """Internal: the rehearsal ran and something failed; carries the Rehearsal fields."""

    def __init__(self, **fields: Any) -> None:  # noqa: ANN401
        super().__init__(fields.get("error"))
        self.fields = fields


class _AsRoleRefusedError(Exception):
    """Internal: the copy could not be restored as the throwaway role; try as rollbot's own."""


def rehearse(
    plan: Plan,
    runbook: Runbook,
    *,
    backup: BackupInfo,
    tools: PgTools,
    server: TargetDatabase,
    data: DataMode = "none",
    name_prefix: str = "rollbot_rehearsal",
    reference: Reference | None = None,
) -> Rehearsal:
    """Run the plan's exact SQL on a scratch copy of `backup`, then drop the copy.

    The scratch database is created on the server of `server` (the target, or any database),
    whose role needs CREATEDB, else the rehearsal is skipped. `data` chooses the rows restored:
    none (schema only), those of the tables the plan writes to or locks and of every table they
    reference, or all. A refused CREATE DATABASE, a failed restore, a failing statement or
    check come back in the result; anything else is raised once the copy is dropped.

    With a `reference` (the schema at N-1, for a rollback that changes Drizzle's journal),
    the copy's schema after COMMIT is compared with it: any difference fails the rehearsal,
    and the result carries the proof, or why it could not be made.
    """
    started = time.monotonic()
    with scratch_lease(server, name_prefix) as name:
        password = throwaway_password()
        refused = create_role(server, name, password)
        role = None if refused else name
        attempt = partial(
            _in_scratch,
            plan,
            runbook,
            backup=backup,
            tools=tools,
            server=server,
            data=data,
            name=name,
            reference=reference,
        )
        try:
            try:
                result = attempt(login=password if role is not None else None)
            except _AsRoleRefusedError as exc:
                # the server does not let the role log in: rehearse as rollbot, and say so
                refused = f"rehearsing as a throwaway role failed ({exc})"
                result = attempt(login=None)
        finally:
            role_left = drop_role(server, name) if role is not None else None
    if role_left is not None:
        log.warning("rehearsal.role_left", role=name, problem=role_left)
    left = "; ".join(x for x in (result.cleanup_error, role_left) if x) or None
    proof = result.proof
    if reference is not None and proof is None and result.skipped is not None:
        proof = Proof(reference=reference.label, skipped=reference.skipped or "no rehearsal")
    return result.model_copy(
        update={
            "total_s": time.monotonic() - started,
            "cleanup_error": left,
            "privilege_note": refused if result.skipped is None else None,
            "proof": proof,
        }
    )


def _in_scratch(
    plan: Plan,
    runbook: Runbook,
    *,
    backup: BackupInfo,
    tools: PgTools,
    server: TargetDatabase,
    data: DataMode,
    name: str,
    login: str | None,
    reference: Reference | None,
) -> Rehearsal:
    """Create the copy, restore, run, and drop it; as its throwaway role given its `login`.

    The copy is owned by the role (named like the copy), and every session that runs its
    SQL logs in as it.
    """
    role = name if login is not None else None
    try:
        scratch = create_scratch(server, name, owner=role)
    except ScratchRefusedError as exc:
        return Rehearsal(ok=False, skipped=f"{exc.reason}{SKIPPED}", data=data)
    try:
        result = _restore_and_run(
            plan,
            runbook,
            backup=backup,
            tools=tools,
            scratch=as_throwaway(server, name, login) if login is not None else scratch,
            data=data,
            role=role,
            reference=reference,
        )
    except BaseException:
        left = drop_scratch(server, name)
        if left is not None:
            log.warning("rehearsal.scratch_left", database=name, problem=left)
        raise
    left = drop_scratch(server, name)
    return result.model_copy(update={"data": data, "cleanup_error": left, "scratch": name})


def _restore_and_run(
    plan: Plan,
    runbook: Runbook,
    *,
    backup: BackupInfo,
    tools: PgTools,
    scratch: TargetDatabase,
    data: DataMode,
    role: str | None,
    reference: Reference | None,
) -> Rehearsal:
    if role is not None:
        _can_log_in(scratch)
    try:
        restore_scratch(
            tools, backup, scratch, data=data, tables=(*plan.write_locked, *plan.locked)
        )
    except ScratchRefusedError as exc:
        # Not retried as rollbot's own role: what failed may be the copy's own code (a CHECK
        # or a trigger that runs as its rows arrive), and a retry would hand it more rights.
        kept = f"{_NO_RETRY}" if role is not None else ""
        return Rehearsal(ok=False, skipped=f"{exc.reason}{kept}{SKIPPED}")
    with scratch.connect("rehearsal") as conn:
        ran_as = _ran_as(conn)
        try:
            _check_restored(conn, plan, runbook)
            conn.commit()
        except _FailedError as exc:
            return Rehearsal(ok=False, ran_as=ran_as, **exc.fields)
        # What no migration made is not compared with N-1, but the rollback must leave it
        # as it found it: read before, compared after.
        before = read_schema(conn, reference.exclude) if reference is not None else None
        conn.commit()
        started = time.monotonic()
        try:
            locks, rows = _transaction(conn, plan, runbook)
        except _FailedError as exc:
            conn.rollback()
            duration = time.monotonic() - started
            return Rehearsal(ok=False, duration_s=duration, ran_as=ran_as, **exc.fields)
        duration = time.monotonic() - started
        proof = _prove(conn, reference, before) if reference is not None else None
    if proof is not None and proof.differences:
        return Rehearsal(
            ok=False,
            duration_s=duration,
            locks=locks,
            rows=rows,
            ran_as=ran_as,
            error=proof.summary(),
            proof=proof,
        )
    return Rehearsal(
        ok=True, duration_s=duration, locks=locks, rows=rows, ran_as=ran_as, proof=proof
    )


def _prove(conn: psycopg.Connection[Any], reference: Reference, before: Schema | None) -> Proof:
    """The copy, rolled back and committed, against the schema at N-1: one catalog read.

    Objects no migration made are named, not compared with N-1; one the rollback changed
    (a name that resolved to another schema's table, say) is a difference all the same.
    """
    if reference.schema is None:
        return Proof(reference=reference.label, skipped=reference.skipped or "no reference")
    left = read_schema(conn, reference.exclude)
    differences = diff_schemas(
        left, reference.schema, reference_label=reference.label, forward=reference.forward
    )
    outside: list[str] = []
    if reference.forward is not None:
        outside = outside_chain(left, reference.schema, reference.forward)
        if before is not None:
            differences += changed_outside(before, left, reference.schema, reference.forward)
    return Proof(reference=reference.label, differences=tuple(differences), outside=tuple(outside))


def _can_log_in(scratch: TargetDatabase) -> None:
    """Whether the server lets the throwaway role in: if not, rollbot's own role rehearses.

    Only this, which the server's configuration decides and no SQL of the copy can, sends
    the rehearsal back to rollbot's role.
    """
    try:
        with scratch.connect("rehearsal login"):
            pass
    except TargetUnreachableError as exc:
        raise _AsRoleRefusedError(f"logging in as it failed: {exc.message}") from None


def _ran_as(conn: psycopg.Connection[Any]) -> str:
    """The role the runbook runs as: the session's own, which no statement can leave."""
    row = conn.execute("SELECT session_user").fetchone()
    conn.commit()
    return str(row[0]) if row else ""


def _transaction(
    conn: psycopg.Connection[Any], plan: Plan, runbook: Runbook
) -> tuple[tuple[str, ...], tuple[RowChange, ...]]:
    """What execute_plan sends, minus the final backup, checked and committed."""
    tx = PlanTransaction(conn, plan, runbook)
    script = plan.script
    try:
        if not tx.begin():
            raise _FailedError(
                failed_statement=script.advisory_lock,
                error="the advisory lock was not granted in the scratch database",
            )
        rows_before: list[int] = []
        if script.write_lock:
            tx.send(script.write_lock)
            rows_before = tx.counts(script.count_dropped)
        if script.exclusive_lock:
            tx.send(script.exclusive_lock)
        before = tx.relations()
        neighbours_before = tx.counts(script.count_neighbours)
        tx.run_statements()
        after = tx.relations()
        neighbours = (neighbours_before, tx.neighbours_after(before, after))
        rows = tuple(
            RowChange(table=table, before=count, after=_rows_now(tx, table, query))
            for table, query, count in zip(
                plan.write_locked, script.count_dropped, rows_before, strict=True
            )
        )
    except StatementFailedError as exc:
        raise _FailedError(
            failed_statement=exc.text, failed_line=exc.line, error=postgres_message(exc.error)
        ) from None
    problems = tx.problems((before, after), neighbours)
    if problems:
        raise _FailedError(error=f"the check before COMMIT found: {'; '.join(problems)}", rows=rows)
    names = {**before, **after}
    held = conn.execute(_HELD_LOCKS).fetchall()
    locks = strongest_locks((names[oid], str(mode)) for oid, mode in held if oid in names)
    try:
        conn.commit()
    except psycopg.Error as exc:  # deferred constraints are checked here
        raise _FailedError(failed_statement="COMMIT", error=postgres_message(exc)) from None
    return locks, rows


def _check_restored(conn: psycopg.Connection[Any], plan: Plan, runbook: Runbook) -> None:
    """The copy must hold what the plan drops, or the rehearsal would prove nothing."""
    facts = read_facts(conn, runbook, plan.target)
    present = {(f.statement, f.position) for f in facts.objects if f.exists}
    missing = [f.name for f in plan.dropped if (f.statement, f.position) not in present]
    if missing:
        raise _FailedError(
            error=f"the restored copy lacks what the plan drops ({', '.join(missing)}): "
            "the backup and the plan describe different schemas; plan again"
        )


def _rows_now(tx: PlanTransaction, table: str, count: str) -> int | None:
    """The plan's own count query again, unless the table is gone."""
    exists = tx.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return int(tx.scalar(count)) if exists and exists[0] else None
