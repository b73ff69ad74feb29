"""Slack's rendering of a run (Block Kit), laid out from the same view as the terminal's.

Pure, so tests read messages as data. The facts come from `view_of` and the wording from
`texts`; this module adds only Slack's markup, mentions and limits. Slack limits a section's
text to 3,000 characters: sections are cut to fit, and so are the database's own words (failed
statements, lock holders, blocking sessions) before they share a section. The plan's SQL is
never cut: when it does not fit it goes to the thread as a `.sql` snippet, and the message says
so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core import texts
from bot.core.commands import USAGE
from bot.core.results import FINAL_BACKUP_TAKEN
from bot.core.states import RunState, state_predicate
from bot.core.text import log_text, plan_text
from bot.core.views import RestoreView, plan_view, view_of
from bot.drizzle.history import history_text
from bot.slack.buttons import approval_sections, when
from bot.slack.mrkdwn import (
    SECTION_LIMIT,
    Block,
    context,
    escape,
    escaped,
    fits,
    inert,
    listed,
    people,
    section,
    user,
)

if TYPE_CHECKING:
    from bot.core.doctor import Report
    from bot.core.plan import Plan
    from bot.core.run import AuditEvent, Run
    from bot.core.views import Failure, OutcomeView, PlanView, RunView
    from bot.drizzle.history import HistoryEntry

FACT_LIMIT = 500  # a failed statement, SQLSTATE or lock holder, in a code span
SESSION_LIMIT = 300  # one blocking session
SESSIONS_SHOWN = 10
_STATE_ICON = {
    RunState.REQUESTED: ":hourglass_flowing_sand:",
    RunState.BACKING_UP: ":floppy_disk:",
    RunState.AWAITING_APPROVAL: ":eyes:",
    RunState.APPROVED: ":white_check_mark:",
    RunState.EXECUTING: ":gear:",
    RunState.SUCCEEDED: ":large_green_circle:",
    RunState.FAILED: ":red_circle:",
    RunState.BLOCKED: ":no_entry:",
    RunState.CANCELLED: ":heavy_minus_sign:",
    RunState.EXPIRED: ":alarm_clock:",
}


def sql_fits(sql: str) -> bool:
    """Whether the exact SQL fits in one code block of the plan message.

    SQL holding ``` would close the code block early, so it goes to the thread as a file too.
    """
    return len(_sql_section_text(escape(sql))) <= SECTION_LIMIT and "```" not in sql


def _sql_section_text(sql: str) -> str:
    """The SQL section as sent.

    Its heading counts against the limit too, or a cut would land inside the code block and
    leave it open.
    """
    return f"*{texts.SQL_EXACT}*\n```{sql}```"


def title(view: RunView) -> str:
    """`:eyes: Rollback run 12 · 0023_loud_shen · awaiting approval`."""
    kind = {"restore": "Restore run", "purge": "Purge run"}.get(view.kind, "Rollback run")
    return (
        f"{_STATE_ICON[view.state]} *{kind} {view.id}* · `{view.runbook_name}` · {view.state_label}"
    )


def plan_message(
    run: Run, *, reaction: str, approvers: tuple[str, ...], progress: str | None = None
) -> tuple[str, list[Block]]:
    """The request channel's message for a run, edited in place as the run moves."""
    raw = view_of(run, progress)
    view = escaped(raw)
    if isinstance(view.plan, RestoreView):
        return _restore_message(view, view.plan, reaction, approvers)
    plan = view.plan
    fits = not isinstance(raw.plan, RestoreView) and sql_fits(raw.plan.sql)
    when = f" ({plan.date})" if plan.date else ""
    facts = (
        f"*{texts.MIGRATION}* `{view.runbook_name}.sql`{when}: {plan.description}\n"
        f"*{texts.RUNBOOK}* `{plan.runbook_file}`\n"
        f"*{texts.TARGET}* {plan.target} (PostgreSQL {plan.server_version})\n"
        f"*{texts.REQUESTED_BY}* {user(view.requested_by)}"
    )
    blocks = [section(title(view))]
    if plan.nothing_to_do is not None:
        blocks.append(section(f":information_source: *{plan.nothing_to_do}*"))
    blocks += [section(facts), _runs(plan), _listed(texts.PREFLIGHT, plan.preflight)]
    if plan.drizzle:
        blocks.append(_listed(texts.DRIZZLE, plan.drizzle))
    blocks.append(section(f"*{texts.DROP_MODE}* {plan.mode}"))
    blocks.append(section(f"*{texts.LOCKS}* {plan.locks}"))
    blocks.append(_sql(view, plan, fits=fits))
    blocks.append(section(f"*{texts.BACKUP}* {view.backup}"))
    blocks.append(section(f"*{texts.REHEARSAL}* {view.rehearsal}"))
    if view.promoted_from is not None:
        blocks.append(section(f"*{texts.PROMOTED}* {view.promoted_from}"))
    blocks.append(section(f"*{texts.APPROVAL}* {_approval(view, reaction, approvers)}"))
    blocks += approval_sections(view)
    if view.why is not None:
        blocks.append(section(f"*{texts.WHY}* {view.why}"))
    blocks.append(context(f"run {view.id} · plan {plan.hash} · {view.target_label}"))
    return f"Rollback run {view.id}: {view.runbook_name} {state_predicate(view.state)}", blocks


def _runs(plan: PlanView) -> Block:
    """The runbook's own statements at a glance, before any of rollbot's wrapper.

    How many of each kind, and every one that removes rows or values, as written.
    """
    lines = tuple(f"`{inert(sql, FACT_LIMIT)}`" for sql in plan.data_statements)
    head = f"*{texts.RUNS}* {plan.statements}"
    where = "" if fits(head, lines) else f" in {texts.DETAILS_FILE}"
    return listed(head, lines, more=f"more that remove data{where}")


def _sql(view: RunView, plan: PlanView, *, fits: bool) -> Block:
    if fits:
        return section(_sql_section_text(plan.sql))
    return section(
        f"*SQL* {len(plan.sql):,} characters, too long for a message: the exact SQL "
        f"is attached in the thread as `{snippet_name(view)}`."
    )


def _restore_message(
    view: RunView, plan: RestoreView, reaction: str, approvers: tuple[str, ...]
) -> tuple[str, list[Block]]:
    """A restore's message: what comes back, from which backup, and the approval."""
    rows = "\n".join(f"• `{table}`: {count:,} rows" for table, count in plan.rows)
    blocks = [
        section(title(view)),
        section(
            f"*Restores* what run {plan.source_run} rolled back on {plan.target}, from "
            f"the {plan.backup_kind} backup `{plan.backup_path}` (sha256 "
            f"{plan.backup_sha256}…, checked)\n*{texts.REQUESTED_BY}* {user(view.requested_by)}"
            f"\n*{texts.JOURNAL}* {texts.journal_line(restored=plan.journal_restored)}"
        ),
        section(f"*{texts.RECREATES}* {len(plan.objects)} objects\n{rows}"),
    ]
    if plan.blockers:
        blocks.append(_listed("Blocked", plan.blockers))
    blocks.append(section(f"*{texts.APPROVAL}* {_approval(view, reaction, approvers)}"))
    blocks += approval_sections(view)
    blocks.append(context(f"run {view.id} · restore · {view.target_label}"))
    return f"Restore run {view.id} of {view.runbook_name} {state_predicate(view.state)}", blocks


def _listed(label: str, lines: tuple[str, ...]) -> Block:
    head = f"*{label}*"
    more = "more" if fits(head, lines) else f"more in {texts.DETAILS_FILE}"
    return listed(head, lines, more=more)


def details_snippet(run: Run) -> tuple[str, str] | None:
    """The whole plan as text, to attach when the message had to leave some of it out.

    Every list in the message ends with "… and N more in the attached plan"; this is that
    attachment, with every line the message could not hold.
    """
    view = escaped(view_of(run))
    if isinstance(view.plan, RestoreView):
        return None
    plan = view.plan
    lists = (
        (f"*{texts.PREFLIGHT}*", plan.preflight),
        (f"*{texts.DRIZZLE}*", plan.drizzle),
        (
            f"*{texts.RUNS}* {plan.statements}",
            tuple(f"`{inert(sql, FACT_LIMIT)}`" for sql in plan.data_statements),
        ),
    )
    if all(fits(head, lines) for head, lines in lists):
        return None
    return f"rollback-run-{view.id}-plan.txt", plan_text(run, with_sql=False)


def _approval(view: RunView, reaction: str, approvers: tuple[str, ...]) -> str:
    approval = view.approval
    if approval.status == "pending":
        return texts.OPENS_AFTER_BACKUP
    if approval.status == "approved":
        return texts.approved_by([user(a) for a in approval.approvers])
    if approval.status == "closed":
        return texts.closed(view.state)
    who = people(approvers) or "nobody (set ROLLBOT_APPROVERS)"
    expires = f" before {when(approval.expires_at)}" if approval.expires_at else ""
    got = ""
    if approval.approvers:
        got = f" {texts.APPROVED_SO_FAR.capitalize()} {people(approval.approvers)}."
    return (
        f"React with :{reaction}: on this message or press *{texts.APPROVE}* to "
        f"approve{expires}. "
        f"{approval.needed} more approval(s) needed from {who}, "
        f"not {user(view.requested_by)}.{got}"
    )


def snippet_name(view: RunView) -> str:
    """The file name of the SQL snippet for a run."""
    return f"rollback-run-{view.id}-{view.runbook_name}.sql"


def sql_snippet(run: Run) -> tuple[str, str] | None:
    """The file name and exact SQL to attach when a rollback's SQL is too long for its message."""
    view = view_of(run)
    if isinstance(view.plan, RestoreView) or sql_fits(view.plan.sql):
        return None
    return snippet_name(view), view.plan.sql


def outcome_message(run: Run) -> tuple[str, list[Block]]:
    """The thread reply with the verification counts, or the failure and "nothing changed"."""
    return _outcome_message(escaped(view_of(run)))


def _outcome_message(view: RunView) -> tuple[str, list[Block]]:
    outcome = view.outcome
    if outcome is None:
        text = texts.is_state(view.id, view.state, view.reason)
        return text, [section(text)]
    if outcome.failure is not None:
        text = _failure(view, outcome.failure)
        return f"{texts.failed(view.id)}; nothing was changed", [section(text)]
    if view.kind == "purge":
        text = f":wastebasket: *{texts.succeeded(view.id)}*: {texts.PURGED}"
        return f"{texts.succeeded(view.id)}: {texts.PURGED}", [section(text)]
    if view.kind == "restore":
        restored = "\n".join(
            f"• `{table}`: {texts.restored_rows(rows)}" for table, rows in outcome.restored
        )
        notes = "".join(f"\n:information_source: {note}" for note in outcome.notes)
        text = (
            f":large_green_circle: *{texts.succeeded(view.id)}* in {outcome.duration_s:.1f} s: "
            f"{texts.RESTORED}\n{restored}{notes}"
        )
        return f"{texts.succeeded(view.id)}: {texts.RESTORED}", [section(text)]
    text = f"{texts.succeeded(view.id)}: {view.runbook_name} rolled back"
    return text, [section(line) for line in _success(view, outcome)]


def _failure(view: RunView, failure: Failure) -> str:
    lines = [f":red_circle: *{texts.failed(view.id)}.* {failure.error}"]
    lines += [f"*{label}*: `{inert(value, FACT_LIMIT)}`" for label, value in failure.facts()]
    if failure.blockers:
        lines.append(f"*{texts.BLOCKING_SESSIONS}*")
        lines += [f"• {inert(b, SESSION_LIMIT)}" for b in failure.blockers[:SESSIONS_SHOWN]]
    lines.append(f"*{texts.NOTHING_CHANGED}*: {texts.ROLLED_BACK}")
    return "\n".join(lines)


def _success(view: RunView, outcome: OutcomeView) -> list[str]:
    gone = "dropped" if outcome.quarantine_schema is None else "moved aside"
    rows = "\n".join(
        f"• `{t.table}`: {t.rows:,} rows {gone} · "
        + (
            texts.FINAL_BACKUP_PENDING
            if outcome.final_backup_pending
            else f"{t.final_backup_rows:,} in the final backup"
        )
        + f" · {texts.pre_approval_rows(t.backup_rows)}"
        for t in outcome.dropped
    )
    deleted = "\n".join(
        f"• `{d.table}`: {d.before - d.after:,} rows deleted {texts.change(d.before, d.after)}"
        for d in outcome.deleted
    )
    affected = "\n".join(
        f"• `{a.table}`: {a.before:,} → {a.after:,} rows ({a.why})" for a in outcome.affected
    )
    neighbours = "\n".join(
        f"• `{n.table}`: {n.before:,} → {n.after:,} rows (unchanged)" for n in outcome.neighbours
    )
    lines = [
        (
            f":large_green_circle: *{texts.succeeded(view.id)}* "
            f"{texts.took(outcome.duration_s, outcome.attempts)}: "
            f"`{view.runbook_name}` rolled back on {view.target_label}."
        ),
        f"*{texts.rows_per_table_label(outcome.quarantine_schema)}*\n{rows}"
        if rows
        else f"*{texts.NO_TABLES_DROPPED}*",
        f"*{texts.objects_gone_label(outcome.quarantine_schema)}* "
        + texts.objects_dropped(outcome.objects_gone, outcome.objects_expected),
    ]
    if deleted:
        lines.append(f"*{texts.ROWS_DELETED}*\n{deleted}")
    if affected:
        lines.append(f"*{texts.ALSO_CHANGED}*\n{affected}")
    if neighbours:
        lines.append(f"*Neighbouring tables*\n{neighbours}")
    lines += [f":information_source: {note}" for note in outcome.notes]
    if outcome.forward_again:
        undo = texts.forward_again(outcome.forward_again)
        if outcome.quarantine is not None:
            lines.append(f"*{texts.QUARANTINE}* {outcome.quarantine}")
        lines.append(f"*To undo it* {undo}")
        if outcome.final_backup_path is not None:
            lines.append(
                f"*{texts.FINAL_BACKUP}* `{outcome.final_backup_path}` "
                f"({outcome.final_backup_details})"
            )
    elif outcome.quarantine is not None:
        lines.append(
            f"*{texts.QUARANTINE}* {outcome.quarantine}; *to undo it* "
            f"`{texts.slash_restore(view.id)}` (needs approval too): a move back"
        )
    if outcome.final_backup_path is not None and not outcome.forward_again:
        lines.append(
            f"*To undo it* `{texts.slash_restore(view.id)}` (needs approval too); the final "
            f"backup is `{outcome.final_backup_path}` ({outcome.final_backup_details})"
        )
        if outcome.restore_hint:
            lines.append(f"*{texts.BY_HAND}* `{outcome.restore_hint}`")
    return lines


def incident_text(run: Run, event: str) -> str:
    """One line per transition for the incident channel's thread."""
    view = escaped(view_of(run))
    lines = {
        "requested": f"{view.kind.capitalize()} run {view.id} of `{view.runbook_name}` on "
        f"{view.target_label} requested by {user(view.requested_by)}",
        "backup_started": "Backup started",
        "backup_verified": f"Backup {view.backup}",
        "blocked": f"Blocked: {view.reason}",
        "approval_added": (
            f"Approval recorded ({len(view.approval.approvers)} of {view.approval.required})"
        ),
        "approved": f"Approved by {people(view.approval.approvers)}",
        "execution_started": "Executing",
        "cancelled": f"Cancelled: {view.reason}",
        "expired": texts.expired_unapproved(view.id),
        FINAL_BACKUP_TAKEN: escape(texts.final_backup_taken(run)),
    }
    if event in {"succeeded", "failed"}:
        return _outcome_message(view)[0] + _counts(view)
    return f"{_STATE_ICON[view.state]} {lines.get(event, event.replace('_', ' '))}"


def _counts(view: RunView) -> str:
    outcome = view.outcome
    if outcome is None or outcome.failure is not None:
        return f": {view.reason}" if view.reason else ""
    return " (" + ", ".join(f"{t.table} {t.rows:,}" for t in outcome.dropped) + ")"


def history_message(entries: list[HistoryEntry]) -> tuple[str, list[Block]]:
    """`/rollback history` as Slack can show it: one line per migration, newest first.

    Slack renders no Markdown tables. Names, dates and descriptions come from the migrations
    folder and the runbooks, so they are escaped; the status is rollbot's own words, with
    people already rendered (and escaped) by the caller.
    """
    if not entries:
        text = escape(history_text(entries))
        return text, [section(text)]
    lines = [
        f"`{inert(escape(e.migration), FACT_LIMIT)}` · {escape(e.date)} · *{e.status}*"
        + (f" — {escape(e.description)}" if e.description != "-" else "")
        for e in entries
    ]
    blocks = [listed(f"*{texts.HISTORY}* (newest first)", lines, more="older migrations")]
    problems = [escape(p) for e in entries for p in e.problems]
    if problems:
        blocks.append(listed(f"*{texts.WARNINGS}*", problems))
    newest = entries[0]
    text = f"{texts.HISTORY}: {escape(newest.migration)} is {newest.status}"
    return text, blocks


def preview_message(plan: Plan) -> tuple[str, list[Block]]:
    """`/rollback 0023 --dry-run`, to the requester alone: what a plan would say, run nothing.

    An ephemeral reply cannot carry a file, so SQL too long for a message is said to be, and
    shown when a real plan attaches it.
    """
    view = escaped(plan_view(plan))
    verdict = "would be blocked" if plan.blocked else "preview only"
    title = f":mag: *Rollback of* `{escape(plan.runbook_name)}` · {verdict}"
    blocks = [section(title)]
    if view.nothing_to_do is not None:
        blocks.append(section(f":information_source: *{view.nothing_to_do}*"))
    blocks += [
        section(f"*{texts.TARGET}* {view.target} (PostgreSQL {view.server_version})"),
        _runs(view),
        _listed(texts.PREFLIGHT, view.preflight),
    ]
    if view.drizzle:
        blocks.append(_listed(texts.DRIZZLE, view.drizzle))
    blocks.append(section(f"*{texts.DROP_MODE}* {view.mode}"))
    blocks.append(section(f"*{texts.LOCKS}* {view.locks}"))
    if sql_fits(plan.sql):
        blocks.append(section(_sql_section_text(view.sql)))
    else:
        blocks.append(section(f"*SQL* {len(plan.sql):,} characters: {texts.PREVIEW_TOO_LONG}"))
    blocks.append(context(f"{texts.PREVIEW_NOTHING_DONE} · plan {view.hash}"))
    return f"Preview of the rollback of {escape(plan.runbook_name)}: {verdict}", blocks


def log_message(run: Run, events: list[AuditEvent]) -> tuple[str, list[Block]]:
    """`/rollback log RUN`: the audit timeline, one escaped line per event.

    None is left out silently: a long trail ends with how many more, as every list does.
    """
    head, *lines = log_text(run, events).splitlines()
    rows = [f"`{inert(escape(line), FACT_LIMIT)}`" for line in lines]
    return escape(head), [section(escape(head)), listed(f"*{texts.AUDIT}*", rows)]


def help_message() -> list[Block]:
    """`/rollback help`."""
    return [
        section(
            "*rollbot* rolls back a migration safely: plan, backup, approval, one "
            f"transaction, verification.\n{USAGE}"
        ),
        section(texts.HOW_TO_APPROVE),
    ]


_LEVEL_ICON = {"ok": ":white_check_mark:", "warning": ":warning:", "error": ":x:"}
_LEVEL_HEAD = {"error": "Errors", "warning": "Warnings", "ok": "OK"}


def doctor_message(report: Report) -> tuple[str, list[Block]]:
    """`/rollback doctor`: errors first, then warnings, then what is fine, each with its fix.

    Every word may quote a database, a folder or Slack, so all of it is escaped; the fixes
    keep their code spans (a GRANT to copy).
    """
    text = f"{texts.DOCTOR}: {report.summary()}"
    blocks = [section(f"*{texts.DOCTOR}*: {report.summary()}")]
    for level in ("error", "warning", "ok"):
        lines = [
            f"{_LEVEL_ICON[level]} {escape(c.subject)}: {escape(c.name)}: {escape(c.message)}"
            + (f" — {texts.DOCTOR_FIX} {escape(c.todo)}" if c.todo else "")
            for c in report.checks
            if c.level == level
        ]
        if lines:
            blocks.append(listed(f"*{_LEVEL_HEAD[level]}*", lines))
    return text, blocks


def refusal(what: str, usage: str | None = None) -> list[Block]:
    """An ephemeral reply to a bad command: what is wrong, then the usage."""
    blocks = [section(f":warning: {escape(what)}")]
    if usage:
        blocks.append(context(usage.replace("\n", " · ")))
    return blocks
