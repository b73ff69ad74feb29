"""One view of a run: what a person should read about it, whatever screen it lands on.

The terminal and Slack used to read stored runs each in their own way and drifted apart (one
showed the SQLSTATE and the lock holder, the other did not). Now `view_of` is the only place
that reads a run's stored plan, backup, rehearsal and outcome; the renderers only lay out the
values it returns, so they cannot disagree on facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot.core import texts
from bot.core.run import RESTORE_KINDS
from bot.core.states import RunState

if TYPE_CHECKING:
    from datetime import datetime

    from bot.core.plan import Plan
    from bot.core.results import Outcome
    from bot.core.run import Run

_ENDED_BADLY = {RunState.BLOCKED, RunState.CANCELLED, RunState.FAILED}


@dataclass(frozen=True)
class ApprovalView:
    """Where approval stands: open now, not yet open, given, or closed without it."""

    status: Literal["open", "pending", "approved", "closed"]
    approvers: tuple[str, ...]
    needed: int
    required: int
    expires_at: datetime | None


@dataclass(frozen=True)
class PlanView:
    """What a rollback will do, as a reviewer reads it before approving."""

    date: str | None
    description: str
    runbook_file: str
    target: str
    server_version: str
    preflight: tuple[str, ...]
    drizzle: tuple[str, ...]
    locks: str
    sql: str
    hash: str  # shortened: enough to tell two plans apart by eye
    statements: str = ""  # "24 statements run: 6 DROP TABLE, …"
    data_statements: tuple[str, ...] = ()  # those that remove rows or values, as written
    nothing_to_do: str | None = None  # the one line first when nothing would change
    mode: str = ""  # which drop mode runs, and the disk a quarantine holds


@dataclass(frozen=True)
class RestoreView:
    """What a restore brings back, and from which backup."""

    source_run: int
    target: str
    backup_kind: str
    backup_path: str
    backup_sha256: str  # shortened
    journal_restored: bool
    objects: tuple[str, ...]
    rows: tuple[tuple[str, int], ...]
    blockers: tuple[str, ...]
    sql: str
    action: str = "restore"  # or "purge": drop a quarantine for good


@dataclass(frozen=True)
class Dropped:
    """A dropped table's rows: in the transaction, in the final and in the first backup."""

    table: str
    rows: int
    final_backup_rows: int
    backup_rows: int | None  # None: only moved aside, its rows were never in that backup


@dataclass(frozen=True)
class Change:
    """A table's rows before and after the statements."""

    table: str
    before: int
    after: int


@dataclass(frozen=True)
class Affected:
    """A table changed through foreign-key actions or a dropped column: why, before, after."""

    table: str
    why: str
    before: int
    after: int


@dataclass(frozen=True)
class Failure:
    """Why a run changed nothing: the statement, PostgreSQL's code, and who was in the way."""

    error: str | None
    statement: str | None
    line: int | None
    sqlstate: str | None
    holder: str | None
    blockers: tuple[str, ...]  # one label per blocking session

    def facts(self) -> list[tuple[str, str]]:
        """The one-line facts this failure has, labelled, in the order people read them."""
        facts = [
            (f"{texts.STATEMENT}{texts.at_line(self.line)}", self.statement),
            (texts.SQLSTATE, self.sqlstate),
            (texts.HELD_BY, self.holder),
        ]
        return [(label, value) for label, value in facts if value]


@dataclass(frozen=True)
class OutcomeView:
    """What an execution did (counts, notes, how to undo it) or why it did nothing."""

    failure: Failure | None
    duration_s: float
    attempts: int
    dropped: tuple[Dropped, ...]
    deleted: tuple[Change, ...]
    neighbours: tuple[Change, ...]
    restored: tuple[tuple[str, int], ...]
    objects_gone: int
    objects_expected: int
    notes: tuple[str, ...]
    final_backup_path: str | None  # when a final backup was taken
    final_backup_details: str | None  # its size, checksum and duration
    restore_hint: str | None
    affected: tuple[Affected, ...] = ()
    quarantine: str | None = None  # where the tables were moved, its size, its final backup
    quarantine_schema: str | None = None  # quarantine mode: nothing was dropped, it is there
    # Quarantine mode, between COMMIT and the dump of the quarantine: its counts are not yet
    # in any file, so no renderer may say they are.
    final_backup_pending: bool = False
    # The migration to apply again to undo it: the rollback put definitions back (a rename,
    # an index, an enum made again), which a restore does not take back.
    forward_again: str | None = None


@dataclass(frozen=True)
class RunView:
    """Everything either renderer shows about one run."""

    id: int
    kind: str
    state: RunState
    runbook_name: str
    target_label: str
    requested_by: str
    reason: str | None
    why: str | None  # the reason, shown with the plan once the run has ended without success
    approval: ApprovalView
    plan: PlanView | RestoreView
    backup: str
    rehearsal: str
    promoted_from: str | None
    outcome: OutcomeView | None

    @property
    def state_label(self) -> str:
        """`awaiting approval`."""
        return texts.state_label(self.state)


def view_of(run: Run, progress: str | None = None) -> RunView:
    """The one reading of a run that every report is rendered from.

    `progress` is the running backup's figure (`bot.core.progress`), shown while backing up.
    """
    backup, rows = (run.backup.full, dict(run.backup.rows)) if run.backup else (None, {})
    rehearsal = run.rehearsal.summary() if run.rehearsal else None
    outcome = run.outcome
    return RunView(
        id=run.id,
        kind=run.kind,
        state=run.state,
        runbook_name=run.runbook_name,
        target_label=run.target_label,
        requested_by=run.requested_by,
        reason=run.reason,
        why=run.reason if run.reason and run.state in _ENDED_BADLY else None,
        approval=_approval(run),
        plan=_restore(run) if run.kind in RESTORE_KINDS else _plan(run),
        backup=texts.backup_line(
            backup,
            sum(rows.values()),
            run.state,
            run.reason,
            progress,
            aside=0 if run.kind in RESTORE_KINDS else len(run.rollback_plan().moved_only()),
        ),
        rehearsal=texts.rehearsal_line(
            rehearsal, run.state, backed_up=bool(run.backup), journal=_deletes_a_journal_row(run)
        ),
        promoted_from=run.promoted_from.summary if run.promoted_from else None,
        outcome=_outcome(outcome, rows, _put_back(run)) if outcome is not None else None,
    )


def _put_back(run: Run) -> str | None:
    """The migration to apply again when its rollback put definitions back (no restore)."""
    if run.kind in RESTORE_KINDS:
        return None
    return run.migration_id if run.rollback_plan().puts_back() else None


def _deletes_a_journal_row(run: Run) -> bool:
    if run.kind in RESTORE_KINDS:
        return False
    journal = run.rollback_plan().journal
    return journal is not None and journal.row is not None


def _approval(run: Run) -> ApprovalView:
    status: Literal["open", "pending", "approved", "closed"] = "closed"
    if run.state is RunState.AWAITING_APPROVAL:
        status = "open"
    elif run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
        status = "pending"
    elif run.approvers:
        status = "approved"
    return ApprovalView(
        status=status,
        approvers=run.approvers,
        needed=run.required_approvals - len(run.approvers),
        required=run.required_approvals,
        expires_at=run.expires_at,
    )


def _plan(run: Run) -> PlanView:
    return plan_view(run.rollback_plan())


def plan_view(plan: Plan) -> PlanView:
    """A plan as a reviewer reads it, whether a run holds it or it is only a preview."""
    return PlanView(
        date=plan.date,
        description=plan.description or texts.NO_DESCRIPTION,
        runbook_file=plan.runbook_file,
        target=plan.target.label(),
        server_version=plan.target.server_version,
        preflight=tuple(texts.preflight_lines(plan)),
        drizzle=tuple(texts.drizzle_lines(plan)),
        locks=texts.lock_line(plan),
        sql=plan.sql,
        hash=plan.hash[:16],
        statements=texts.statement_summary(plan),
        data_statements=tuple(texts.data_statements(plan)),
        nothing_to_do=texts.nothing_to_do(plan),
        mode=texts.drop_mode_line(plan),
    )


def _restore(run: Run) -> RestoreView:
    plan = run.restore_plan()
    return RestoreView(
        source_run=plan.source_run,
        target=plan.target.label(),
        backup_kind=plan.backup_kind,
        backup_path=plan.backup_path,
        backup_sha256=plan.backup_sha256[:16],
        journal_restored=plan.journal_restored,
        objects=plan.objects,
        rows=plan.rows,
        blockers=plan.blockers,
        sql=plan.sql,
        action=run.kind,
    )


def _outcome(
    outcome: Outcome, backup_rows: dict[str, int], forward_again: str | None = None
) -> OutcomeView:
    failure = None
    if not outcome.succeeded:
        failure = Failure(
            error=outcome.error,
            statement=outcome.failed_statement,
            line=outcome.failed_line,
            sqlstate=outcome.sqlstate,
            holder=outcome.holder,
            blockers=tuple(b.label() for b in outcome.blockers),
        )
    final = outcome.final_backup
    return OutcomeView(
        failure=failure,
        duration_s=outcome.duration_s,
        attempts=outcome.attempts,
        dropped=tuple(
            Dropped(t.table, t.rows, t.backup_rows, backup_rows.get(t.table))
            for t in outcome.dropped
        ),
        deleted=tuple(Change(d.table, d.before, d.after) for d in outcome.deleted),
        neighbours=tuple(Change(n.table, n.before, n.after) for n in outcome.neighbours),
        restored=tuple((t.table, t.rows) for t in outcome.restored),
        objects_gone=outcome.objects_gone,
        objects_expected=outcome.objects_expected,
        notes=outcome.notes,
        final_backup_path=str(final.path) if final is not None else None,
        final_backup_details=texts.backup_details(final) if final is not None else None,
        restore_hint=outcome.restore_hint,
        affected=tuple(Affected(a.table, a.why, a.before, a.after) for a in outcome.affected),
        quarantine=texts.quarantine_line(outcome),
        quarantine_schema=outcome.quarantine.schema_name if outcome.quarantine else None,
        final_backup_pending=outcome.final_backup_pending(),
        forward_again=forward_again,
    )
