"""What people read: plans, backups and outcomes rendered as plain text from the models.

Pure functions of stored runs, so the terminal, the demo transcript and the tests all see the
same words. Slack's Block Kit rendering builds on the same helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.plan import Plan, StepStatus
from bot.core.restore import RestorePlan
from bot.core.results import Rehearsal, backup_of, outcome_of
from bot.core.run import Run, RunState

if TYPE_CHECKING:
    from bot.core.library import RunbookLibrary
    from bot.core.results import BackupInfo, Outcome


def size(num_bytes: int) -> str:
    """`1.2 MB`: enough precision to compare two backups at a glance."""
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":  # noqa: PLR2004
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def preflight_lines(plan: Plan) -> list[str]:
    """Objects present, no-ops, rows per dropped table, anything blocking."""
    runs = sum(1 for s in plan.steps if s.status is StepStatus.RUNS)
    lines = [
        (
            f"{len(plan.steps)} statements: {runs} will run, {len(plan.no_ops())} no-op, "
            f"{len(plan.blockers)} blocking; {len(plan.dropped)} objects will be dropped"
        )
    ]
    lines += [
        f"no-op (line {step.statement.line}): {note}"
        for step in plan.no_ops()
        for note in step.notes
    ]
    lines += [f"{count.table}: {count.label()}" for count in plan.drop_tables]
    lines += [f"deletes rows from {c.table} ({c.label()} now)" for c in plan.delete_tables]
    lines += [f"BLOCKED: {blocker}" for blocker in plan.blockers]
    return lines


def lock_line(plan: Plan) -> str:
    """Which tables are locked, how, and for how long at most per attempt."""
    timeout = f"{plan.lock_timeout.total_seconds():g} s"
    parts = []
    if plan.write_locked:
        parts.append(
            f"writes to {len(plan.write_locked)} tables wait while the final backup is taken"
        )
    if plan.locked:
        parents = [t for t in plan.locked if t not in plan.write_locked]
        extra = f" (including {', '.join(parents)})" if parents else ""
        parts.append(
            f"then ACCESS EXCLUSIVE on {len(plan.locked)} tables{extra}, "
            f"waiting at most {timeout} per attempt"
        )
    return "; ".join(parts) or "no table locks"


def backup_line(run: Run) -> str:
    """Backup status: running, verified with its facts, or why it failed."""
    backup, rows = backup_of(run)
    if backup is not None:
        held = sum(rows.values())
        return f"verified: {backup_facts(backup)}; holds {held:,} rows of the tables to drop"
    if run.state is RunState.BACKING_UP:
        return "running (pg_dump of the whole database, then read back whole)"
    if run.state is RunState.REQUESTED:
        return "not started"
    return f"none: {run.reason}" if run.reason else "none"


def rehearsal_line(run: Run) -> str:
    """`rehearsed: ok in 0.4 s (…)`, the failure, the skip, or why there is none yet."""
    if run.rehearsal:
        return str(Rehearsal.model_validate(run.rehearsal).summary())
    if run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
        return "after the backup, on a scratch copy"
    return "off for this target" if run.backup else "not run"


def backup_facts(backup: BackupInfo) -> str:
    """`backups/run-3.dump, 1.2 MB, sha256 ab12cd34…, 0.4 s`."""
    return (
        f"{backup.path}, {size(backup.size_bytes)}, sha256 {backup.sha256[:16]}…, "
        f"{backup.duration_s:.1f} s"
    )


def drizzle_lines(plan: Plan) -> list[str]:
    """What happens to Drizzle's journal, and what the forward migration says of the runbook."""
    lines = []
    if plan.derived:
        lines.append(
            "DERIVED: no runbook exists; this rollback was derived from the forward migration"
        )
    journal = plan.journal
    if journal is not None and journal.row is not None:
        lines.append(
            f"journal: row {journal.row.id} of {journal.schema_name}.{journal.table} is deleted "
            "in the same transaction"
        )
    elif journal is not None and journal.note:
        lines.append(f"journal: {journal.note}")
    if plan.lint is not None:
        lines += [f"lint: created but not dropped: {x}" for x in plan.lint.created_not_dropped]
        lines += [f"lint: dropped but never created: {x}" for x in plan.lint.dropped_not_created]
    return lines


def restore_text(run: Run) -> str:
    """A restore plan: what comes back, from which backup, and the SQL (rows summarised)."""
    plan = RestorePlan.model_validate(run.plan)
    lines = [
        (
            f"Run {run.id}: restore what run {plan.source_run} rolled back ({plan.runbook_name}) "
            f"— {run.state.replace('_', ' ')}"
        ),
        f"Target      {plan.target.label()}",
        f"Requested   by {run.requested_by}",
        (
            f"Backup      {plan.backup_kind} backup {plan.backup_path} "
            f"(sha256 {plan.backup_sha256[:16]}…)"
        ),
        f"Journal     {'listed again' if plan.journal_restored else 'unchanged'}",
    ]
    lines += _block("Recreates", list(plan.objects))
    lines += _block("Rows", [f"{table}: {rows:,}" for table, rows in plan.rows])
    lines += _block("BLOCKED", list(plan.blockers))
    lines.append(f"Approval    {approval_line(run)}")
    lines.append("SQL (runs in one transaction; each table's rows summarised):")
    lines += [f"  {line}" if line else "" for line in plan.sql.splitlines()]
    return "\n".join(lines)


def plan_text(run: Run, *, with_sql: bool = True) -> str:
    """The whole plan as a reviewer reads it before approving."""
    if run.kind == "restore":
        return restore_text(run)
    plan = Plan.model_validate(run.plan)
    when = f" ({plan.date})" if plan.date else ""
    lines = [
        f"Run {run.id}: roll back {plan.runbook_name} — {run.state.replace('_', ' ')}",
        f"Migration   {plan.runbook_name}.sql{when}: {plan.description or 'no description'}",
        f"Runbook     {plan.runbook_file}",
        f"Target      {plan.target.label()} (PostgreSQL {plan.target.server_version})",
        f"Requested   by {run.requested_by}",
    ]
    lines += _block("Preflight", preflight_lines(plan))
    lines += _block("Drizzle", drizzle_lines(plan))
    lines.append(f"Locks       {lock_line(plan)}")
    lines.append(f"Backup      {backup_line(run)}")
    lines.append(f"Rehearsal   {rehearsal_line(run)}")
    if run.promoted_from:
        lines.append(f"Promoted    from {run.promoted_from.summary}")
    lines.append(f"Approval    {approval_line(run)}")
    lines.append(f"Plan hash   {plan.hash[:16]}")
    if with_sql:
        lines.append("SQL (exactly what will run):")
        lines += [f"  {line}" if line else "" for line in plan.sql.splitlines()]
    return "\n".join(lines)


def approval_line(run: Run) -> str:
    """Who may approve and until when, or why approval is closed."""
    if run.state is RunState.AWAITING_APPROVAL:
        needed = run.required_approvals - len(run.approvers)
        expires = f"{run.expires_at:%Y-%m-%d %H:%M} UTC" if run.expires_at else "never"
        got = f" (approved so far by {', '.join(run.approvers)})" if run.approvers else ""
        return (
            f"waiting for {needed} approval(s) from an approver other than "
            f"{run.requested_by}{got}; expires {expires}"
        )
    if run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
        return "opens once the backup is verified"
    if run.approvers:
        return f"approved by {', '.join(run.approvers)}"
    return f"closed ({run.state.replace('_', ' ')})"


def outcome_text(run: Run) -> str:
    """The verification counts, or the failing statement and "nothing was changed"."""
    outcome = outcome_of(run)
    if outcome is None:
        reason = f": {run.reason}" if run.reason else ""
        return f"Run {run.id} is {run.state.replace('_', ' ')}{reason}"
    if not outcome.succeeded:
        return _failure_text(run, outcome)
    if run.kind == "restore":
        restored = [f"  {t.table}: {t.rows:,} rows, as in the backup" for t in outcome.restored]
        return "\n".join(
            [
                f"Run {run.id} succeeded in {outcome.duration_s:.1f} s: restored",
                *restored,
                *outcome.notes,
            ]
        )
    _, backup_rows = backup_of(run)
    lines = [
        (
            f"Run {run.id} succeeded in {outcome.duration_s:.1f} s "
            f"({outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}): "
            f"{run.runbook_name} rolled back on {run.target_label}"
        ),
        (
            "Rows per dropped table (counted in the rollback transaction / in the final backup / "
            "in the pre-approval backup):"
        ),
    ]
    lines += [
        f"  {t.table}: {t.rows:,} / {t.backup_rows:,} / {backup_rows.get(t.table, 0):,}"
        for t in outcome.dropped
    ]
    lines += [
        f"Rows deleted from {d.table}: {d.before - d.after:,} ({d.before:,} → {d.after:,})"
        for d in outcome.deleted
    ]
    lines.append(f"Objects dropped: {outcome.objects_gone} of {outcome.objects_expected} expected")
    lines += [f"Unchanged: {n.table} {n.before:,} → {n.after:,} rows" for n in outcome.neighbours]
    lines += list(outcome.notes)
    if outcome.final_backup is not None:
        lines.append(f"Final backup: {backup_facts(outcome.final_backup)}")
        lines.append(
            f"To undo this rollback: rollbot restore {run.id} --requested-by NAME "
            f"(or /rollback restore {run.id}), approved like a rollback"
        )
        if outcome.restore_hint:
            lines.append(f"By hand: {outcome.restore_hint}")
    return "\n".join(lines)


def _failure_text(run: Run, outcome: Outcome) -> str:
    lines = [f"Run {run.id} failed: {outcome.error}"]
    if outcome.failed_statement:
        where = f" (runbook line {outcome.failed_line})" if outcome.failed_line else ""
        lines.append(f"Statement{where}: {outcome.failed_statement}")
    if outcome.sqlstate:
        lines.append(f"SQLSTATE {outcome.sqlstate}")
    if outcome.holder:
        lines.append(f"Held by: {outcome.holder}")
    if outcome.blockers:
        lines.append("Blocking sessions:")
        lines += [f"  {b.label()}" for b in outcome.blockers]
    lines.append("Nothing was changed: the transaction was rolled back.")
    return "\n".join(lines)


def runs_text(runs: list[Run]) -> str:
    """One line per run, newest first."""
    if not runs:
        return "No runs yet."
    return "\n".join(
        f"{r.id:>5}  {r.state.value:<18} {r.runbook_name:<28} {r.target_label}  "
        f"by {r.requested_by}  {r.created_at:%Y-%m-%d %H:%M}"
        for r in runs
    )


def runbooks_text(library: RunbookLibrary) -> str:
    """Usable runbooks, then broken ones with their reason."""
    lines = [
        f"{r.migration_id}  {r.name:<32} {r.date or '-':<10}  {r.description or ''}"
        for r in library.runbooks
    ]
    lines += [f"BROKEN  {b.file}: {b.error}" for b in library.broken]
    return "\n".join(lines) or f"No runbooks in {library.directory}."


def _block(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    first, *rest = lines
    return [f"{title:<11} {first}", *(f"{'':<11} {line}" for line in rest)]
