"""The terminal's rendering of a run: plain text laid out from its view.

Pure, so the command line, the demo transcript and the tests see the same words. The facts come
from `view_of` and the wording from `texts`; this module only decides the layout (a label
column, indented lists), the way Slack's `blocks` decides its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.core import texts
from bot.core.durations import format_duration
from bot.core.quarantine import format_bytes
from bot.core.views import PlanView, RestoreView, plan_view, view_of

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import timedelta

    from bot.core.doctor import Report
    from bot.core.library import RunbookLibrary
    from bot.core.outbox import Undelivered
    from bot.core.plan import Plan
    from bot.core.retention import Listed, Pruned
    from bot.core.run import AuditEvent, Run
    from bot.core.views import Failure, OutcomeView, RunView


def plan_text(run: Run, *, with_sql: bool = True) -> str:
    """The whole plan as a reviewer reads it before approving."""
    view = view_of(run)
    if isinstance(view.plan, RestoreView):
        return _restore_text(view, view.plan)
    plan = view.plan
    when = f" ({plan.date})" if plan.date else ""
    lines = [
        f"Run {view.id}: roll back {view.runbook_name} — {view.state_label}",
        _row(texts.MIGRATION, f"{view.runbook_name}.sql{when}: {plan.description}"),
        _row(texts.RUNBOOK, plan.runbook_file),
        _row(texts.TARGET, f"{plan.target} (PostgreSQL {plan.server_version})"),
        _row(texts.REQUESTED_BY, view.requested_by),
        *([plan.nothing_to_do] if plan.nothing_to_do else []),
        _row(texts.RUNS, plan.statements),
        *(f"  {sql}" for sql in plan.data_statements),
        *_block(texts.PREFLIGHT, plan.preflight),
        *_block(texts.DRIZZLE, plan.drizzle),
        _row(texts.DROP_MODE, plan.mode),
        _row(texts.LOCKS, plan.locks),
        *_tail(view, plan),
    ]
    if with_sql:
        lines += _sql(texts.SQL_EXACT, plan.sql)
    return "\n".join(lines)


def preview_text(plan: Plan) -> str:
    """`rollbot sql`: the exact SQL and its preflight, with nothing run, backed up or posted."""
    view = plan_view(plan)
    when = f" ({view.date})" if view.date else ""
    head = (
        "Blocked: this plan could not be approved as it stands"
        if plan.blocked
        else "Preview only: nothing was run, no backup was taken, no run was created"
    )
    lines = [
        f"Roll back {plan.runbook_name}: {head}",
        _row(texts.MIGRATION, f"{plan.runbook_name}.sql{when}: {view.description}"),
        _row(texts.RUNBOOK, view.runbook_file),
        _row(texts.TARGET, f"{view.target} (PostgreSQL {view.server_version})"),
        *([view.nothing_to_do] if view.nothing_to_do else []),
        _row(texts.RUNS, view.statements),
        *(f"  {sql}" for sql in view.data_statements),
        *_block(texts.PREFLIGHT, view.preflight),
        *_block(texts.DRIZZLE, view.drizzle),
        _row(texts.DROP_MODE, view.mode),
        _row(texts.LOCKS, view.locks),
        _row(texts.PLAN_HASH, f"{view.hash} (a plan made now with the same schema has it)"),
        texts.PREVIEW_PROOF,
    ]
    return "\n".join([*lines, *_sql(texts.SQL_EXACT, view.sql)])


def _tail(view: RunView, plan: PlanView) -> list[str]:
    lines = [_row(texts.BACKUP, view.backup), _row(texts.REHEARSAL, view.rehearsal)]
    if view.promoted_from is not None:
        lines.append(_row(texts.PROMOTED, view.promoted_from))
    lines.append(_row(texts.APPROVAL, approval_line(view)))
    if view.why is not None:
        lines.append(_row(texts.WHY, view.why))
    lines.append(_row(texts.PLAN_HASH, plan.hash))
    return lines


def _restore_text(view: RunView, plan: RestoreView) -> str:
    """A restore plan: what comes back, from which backup, and the SQL (rows summarised)."""
    headline = (
        f"Run {view.id}: purge the quarantine of run {plan.source_run} "
        f"({view.runbook_name}) — {view.state_label}"
        if plan.action == "purge"
        else f"Run {view.id}: restore what run {plan.source_run} rolled back "
        f"({view.runbook_name}) — {view.state_label}"
    )
    return "\n".join(
        [
            headline,
            _row(texts.TARGET, plan.target),
            _row(texts.REQUESTED_BY, view.requested_by),
            _row(
                texts.BACKUP,
                f"{plan.backup_kind} backup {plan.backup_path} (sha256 {plan.backup_sha256}…)",
            ),
            _row(texts.JOURNAL, texts.journal_line(restored=plan.journal_restored)),
            *_block(texts.RECREATES, plan.objects),
            *_block(texts.ROWS, [f"{table}: {rows:,}" for table, rows in plan.rows]),
            *_block(texts.BLOCKED, plan.blockers),
            _row(texts.APPROVAL, approval_line(view)),
            *_sql(texts.SQL_RESTORE, plan.sql),
        ]
    )


def approval_line(view: RunView) -> str:
    """Who may approve and until when, or why approval is closed."""
    approval = view.approval
    if approval.status == "open":
        expires = f"{approval.expires_at:%Y-%m-%d %H:%M} UTC" if approval.expires_at else "never"
        got = (
            f" ({texts.APPROVED_SO_FAR} {', '.join(approval.approvers)})"
            if approval.approvers
            else ""
        )
        return (
            f"waiting for {approval.needed} approval(s) from an approver other than "
            f"{view.requested_by}{got}; expires {expires}"
        )
    if approval.status == "pending":
        return texts.OPENS_AFTER_BACKUP
    if approval.status == "approved":
        return texts.approved_by(list(approval.approvers))
    return texts.closed(view.state)


def outcome_text(run: Run) -> str:
    """The verification counts, or the failing statement and "nothing was changed"."""
    view = view_of(run)
    outcome = view.outcome
    if outcome is None:
        return texts.is_state(view.id, view.state, view.reason)
    if outcome.failure is not None:
        return _failure_text(view, outcome.failure)
    if view.kind == "purge":
        return f"{texts.succeeded(view.id)} in {outcome.duration_s:.1f} s: {texts.PURGED}"
    if view.kind == "restore":
        restored = [f"  {table}: {texts.restored_rows(rows)}" for table, rows in outcome.restored]
        headline = f"{texts.succeeded(view.id)} in {outcome.duration_s:.1f} s: {texts.RESTORED}"
        return "\n".join([headline, *restored, *outcome.notes])
    lines = [
        (
            f"{texts.succeeded(view.id)} {texts.took(outcome.duration_s, outcome.attempts)}: "
            f"{view.runbook_name} rolled back on {view.target_label}"
        ),
        *_counts(outcome),
        f"{texts.objects_gone_label(outcome.quarantine_schema)}: {_objects(outcome)}",
    ]
    lines += [f"Unchanged: {n.table} {n.before:,} → {n.after:,} rows" for n in outcome.neighbours]
    lines += list(outcome.notes)
    return "\n".join(lines + _undo_lines(view.id, outcome))


def _undo_lines(run_id: int, outcome: OutcomeView) -> list[str]:
    """Where what went is, and how to undo the rollback: a restore, or the migration again."""
    lines = []
    undo = f"To undo this rollback: {texts.undo_cli(run_id)}"
    if outcome.forward_again:
        lines.append(f"To undo this rollback: {texts.forward_again(outcome.forward_again)}")
        undo = ""
    if outcome.quarantine is not None:
        lines.append(f"{texts.QUARANTINE}: {outcome.quarantine}")
        if outcome.final_backup_path is None and undo:
            lines.append(undo)
    if outcome.final_backup_path is not None:
        lines.append(
            f"{texts.FINAL_BACKUP}: {outcome.final_backup_path}, {outcome.final_backup_details}"
        )
        if undo:
            lines.append(undo)
        if outcome.restore_hint:
            lines.append(f"{texts.BY_HAND}: {outcome.restore_hint}")
    return lines


def _counts(outcome: OutcomeView) -> list[str]:
    lines = [
        (
            f"{texts.rows_per_table_label(outcome.quarantine_schema)} (counted in the rollback "
            "transaction / in the final "
            "backup / in the pre-approval backup):"
        )
        if outcome.dropped
        else texts.NO_TABLES_DROPPED
    ]
    lines += [
        f"  {t.table}: {t.rows:,} / "
        + ("pending" if outcome.final_backup_pending else f"{t.final_backup_rows:,}")
        + " / "
        + (f"{t.backup_rows:,}" if t.backup_rows is not None else "- (moved aside)")
        for t in outcome.dropped
    ]
    lines += [
        f"{texts.ROWS_DELETED} from {d.table}: {d.before - d.after:,} "
        + texts.change(d.before, d.after)
        for d in outcome.deleted
    ]
    if outcome.affected:
        lines.append(f"{texts.ALSO_CHANGED} (before → after, before is in the final backup):")
        lines += [
            f"  {a.table}: {a.before:,} → {a.after:,} rows ({a.why})" for a in outcome.affected
        ]
    return lines


def _objects(outcome: OutcomeView) -> str:
    return texts.objects_dropped(outcome.objects_gone, outcome.objects_expected)


def _failure_text(view: RunView, failure: Failure) -> str:
    lines = [f"{texts.failed(view.id)}: {failure.error}"]
    lines += [f"{label}: {value}" for label, value in failure.facts()]
    if failure.blockers:
        lines.append(f"{texts.BLOCKING_SESSIONS}:")
        lines += [f"  {label}" for label in failure.blockers]
    lines.append(f"{texts.NOTHING_CHANGED}: {texts.ROLLED_BACK}")
    return "\n".join(lines)


def runs_text(
    runs: list[Run],
    *,
    held: Mapping[str, int | None] | None = None,
    keep: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """One line per run, newest first; then the quarantines, their disk, and which to purge.

    `held` is the disk each quarantine holds now (None: restored or purged since); without
    it, the size measured when the plan was made is shown. Quarantines older than `keep` are
    proposed for purge: only proposed, a purge is approved like any run.
    """
    if not runs:
        return "No runs yet."
    return "\n".join([_runs_table(runs), *_quarantines(runs, held or {}, keep, now)])


def _quarantines(
    runs: list[Run],
    held: Mapping[str, int | None],
    keep: timedelta | None,
    now: datetime | None,
) -> list[str]:
    now = now or datetime.now(UTC)
    lines: list[str] = []
    total = 0
    for run in runs:
        outcome = run.outcome
        if outcome is None or outcome.quarantine is None or run.kind != "rollback":
            continue
        schema = outcome.quarantine.schema_name
        if schema in held and held[schema] is None:
            continue
        size = held.get(schema, outcome.quarantine.size_bytes)
        total += size or 0
        pending = ", final backup pending" if outcome.final_backup_pending() else ""
        due = ""
        if keep is not None and run.updated_at + keep <= now:
            due = f"; kept longer than {format_duration(keep)}: propose `rollbot purge {run.id}`"
        lines.append(f"  run {run.id}: {schema}, {format_bytes(size)}{pending}{due}")
    if not lines:
        return []
    return ["", f"Quarantines ({format_bytes(total)} held until purged):", *lines]


def _runs_table(runs: list[Run]) -> str:
    header = (
        f"{'RUN':>5}  {'KIND':<8} {'STATE':<18} {'MIGRATION':<28} {'TARGET':<12} "
        f"{'REQUESTED BY':<14} {'APPROVED BY':<20} CREATED (UTC)"
    )
    lines = [header]
    lines += [
        f"{r.id:>5}  {r.kind:<8} {r.state.value:<18} {r.runbook_name:<28} {r.target_name:<12} "
        f"{r.requested_by:<14} {', '.join(r.approvers) or '-':<20} "
        f"{r.created_at.astimezone(UTC):%Y-%m-%d %H:%M}"
        for r in runs
    ]
    return "\n".join(lines)


def log_text(run: Run, events: list[AuditEvent]) -> str:
    """`rollbot log RUN`: the run's audit trail as a timeline, one line per event.

    When, what, who (a person, or rollbot), from which process, and why where it was said;
    the plan hash the approvals were bound to heads it.
    """
    head = (
        f"Run {run.id}: {run.kind} of {run.runbook_name} on {run.target_label}, "
        f"now {texts.state_label(run.state)}; plan {run.plan_hash[:16]}"
    )
    lines = [head]
    for event in events:
        move = f"{event.from_state or '-'} → {event.to_state}" if event.to_state else ""
        process = event.data.get("process", "")
        if event.data.get("os_user"):  # who was logged in: identity flags are only recorded
            process = f"{event.data['os_user']}@{process}"
        why = event.data.get("why") or event.data.get("reason") or ""
        when = f"{event.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
        lines.append(
            f"{when}  {event.kind:<18} {event.actor or '-':<14} {move:<34} {process}"
            + (f"  ({why})" if why else "")
        )
    return "\n".join(line.rstrip() for line in lines)


def undelivered_text(undelivered: list[Undelivered]) -> str:
    """The run's Slack messages that did not arrive, and why (the thread may lack them)."""
    lines = [
        texts.undelivered_line(u.action, u.role, u.attempts, u.error, given_up=u.given_up)
        for u in undelivered
    ]
    return "\n".join(_block(texts.SLACK_UNDELIVERED, lines))


def runbooks_text(library: RunbookLibrary) -> str:
    """Usable runbooks, then those no plan could approve and broken ones, with their reason."""
    from bot.core.plan import blocked_runbooks  # noqa: PLC0415 - the planner, only for lists

    blocked = blocked_runbooks(library)
    lines = [
        f"{r.migration_id}  {r.name:<32} {r.date or '-':<10}  {r.description or ''}"
        for r in library.runbooks
        if not blocked.get(r.file)
    ]
    lines += [
        f"BLOCKED {file}: {reason}" for file, reasons in blocked.items() for reason in reasons
    ]
    lines += [f"BROKEN  {b.file}: {b.error}" for b in library.broken]
    return "\n".join(lines) or f"No runbooks in {library.directory}."


def _row(title: str, value: str) -> str:
    return f"{title:<11} {value}"


def _block(title: str, lines: tuple[str, ...] | list[str]) -> list[str]:
    if not lines:
        return []
    first, *rest = lines
    return [_row(title, first), *(_row("", line) for line in rest)]


def _sql(title: str, sql: str) -> list[str]:
    return [f"{title}:", *(f"  {line}" if line else "" for line in sql.splitlines())]


def doctor_text(report: Report) -> str:
    """`rollbot doctor`: one line per check, its level first, the fix on the same line."""
    lines = [f"{texts.DOCTOR}: {report.summary()}"]
    for check in report.checks:
        line = f"{check.level:<7} {check.subject}: {check.name}: {check.message}"
        if check.todo:
            line += f"; {texts.DOCTOR_FIX} {check.todo}"
        lines.append(line)
    return "\n".join(lines)


def backups_text(listed: list[Listed]) -> str:
    """`rollbot backups`: one line per file, newest run first, and the total on disk."""
    if not listed:
        return "No backups recorded yet."
    header = (
        f"{'RUN':>5}  {'TARGET':<12} {'KIND':<12} {'SCOPE':<8} {'SIZE':>9}  "
        f"{'CREATED (UTC)':<16}  {'RESTORE NEEDS IT':<16}  PATH"
    )
    lines = [header]
    for item in listed:
        f = item.file
        where = str(f.path)
        if f.pruned_at is not None:
            where = f"(pruned {f.pruned_at.astimezone(UTC):%Y-%m-%d %H:%M}) {where}"
        elif not item.on_disk:
            where = f"(missing) {where}"
        lines.append(
            f"{f.run_id:>5}  {f.target:<12} {f.kind:<12} {f.scope:<8} "
            f"{texts.size(f.size_bytes):>9}  {f.created_at.astimezone(UTC):%Y-%m-%d %H:%M}  "
            f"{'yes' if f.restore_needs else 'no':<16}  {where}"
        )
    present = [i.file.size_bytes for i in listed if i.on_disk]
    lines.append(f"{len(present)} files on disk, {texts.size(sum(present))}")
    return "\n".join(lines)


def prune_text(pruned: Pruned) -> str:
    """`rollbot backups prune`: what was deleted, what was kept, and why, file by file."""
    lines = [f"Retention: {pruned.keep}."]
    lines += [
        f"deleted  run {v.file.run_id} {v.file.kind} {v.file.path} "
        f"({texts.size(v.file.size_bytes)}): {v.reason}"
        for v in pruned.deleted
    ]
    lines += [
        f"kept     run {v.file.run_id} {v.file.kind} {v.file.path}: {v.reason}" for v in pruned.kept
    ]
    lines += [f"problem: {p}" for p in pruned.problems]
    freed = texts.size(pruned.freed_bytes)
    lines.append(f"{len(pruned.deleted)} deleted ({freed}), {len(pruned.kept)} kept.")
    return "\n".join(lines)
