"""Slack messages (Block Kit) built from stored runs: pure, so tests read them as data.

Slack limits a section's text to 3,000 characters; the plan's SQL is never cut to fit. When it
does not fit it goes to the thread as a `.sql` snippet, and the message says so.
"""

from __future__ import annotations

from typing import Any

from bot.core.commands import USAGE
from bot.core.plan import Plan
from bot.core.restore import RestorePlan
from bot.core.results import backup_of, outcome_of
from bot.core.run import Run, RunState
from bot.core.text import (
    approval_line,
    backup_line,
    drizzle_lines,
    lock_line,
    preflight_lines,
    rehearsal_line,
)

Block = dict[str, Any]
SECTION_LIMIT = 3000
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


def section(text: str) -> Block:
    """A mrkdwn section; callers keep text under Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> Block:
    """Small grey text under a message."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def sql_fits(plan: Plan) -> bool:
    """Whether the exact SQL fits in one code block of the plan message."""
    return len(plan.sql) + 8 <= SECTION_LIMIT


def user(ident: str) -> str:
    """A Slack mention for user ids (U…/W…), a group mention for S…, else the name."""
    if ident[:1] in {"U", "W"} and ident.isalnum():
        return f"<@{ident}>"
    if ident[:1] == "S" and ident.isalnum():
        return f"<!subteam^{ident}>"
    return ident


def title(run: Run) -> str:
    """`:eyes: Rollback run 12 · 0023_loud_shen · awaiting approval`."""
    state = run.state.replace("_", " ")
    return f"{_STATE_ICON[run.state]} *Rollback run {run.id}* · `{run.runbook_name}` · {state}"


def restore_message(
    run: Run, *, reaction: str, approvers: tuple[str, ...]
) -> tuple[str, list[Block]]:
    """A restore's message: what comes back, from which backup, and the approval."""
    plan = RestorePlan.model_validate(run.plan)
    rows = "\n".join(f"• `{table}`: {count:,} rows" for table, count in plan.rows)
    blocks = [
        section(title(run).replace("Rollback run", "Restore run")),
        section(
            f"*Restores* what run {plan.source_run} rolled back on {plan.target.label()}, from "
            f"the {plan.backup_kind} backup `{plan.backup_path}` (sha256 "
            f"{plan.backup_sha256[:12]}…, checked)\n*Requested by* {user(run.requested_by)}"
        ),
        section(f"*Recreates* {len(plan.objects)} objects\n{rows}"),
    ]
    if plan.blockers:
        blocks.append(section("*Blocked*\n" + "\n".join(f"• {b}" for b in plan.blockers)))
    blocks.append(section(f"*Approval* {_approval(run, reaction, approvers)}"))
    blocks.append(context(f"run {run.id} · restore · {run.target_label}"))
    return f"Restore run {run.id} of {run.runbook_name} is {run.state.replace('_', ' ')}", blocks


def plan_message(run: Run, *, reaction: str, approvers: tuple[str, ...]) -> tuple[str, list[Block]]:
    """The message in the request channel, updated in place as the run moves."""
    if run.kind == "restore":
        return restore_message(run, reaction=reaction, approvers=approvers)
    plan = Plan.model_validate(run.plan)
    when = f" ({plan.date})" if plan.date else ""
    facts = (
        f"*Migration* `{plan.runbook_name}.sql`{when}: {plan.description or 'no description'}\n"
        f"*Target* {plan.target.label()} (PostgreSQL {plan.target.server_version})\n"
        f"*Requested by* {user(run.requested_by)}"
    )
    blocks = [section(title(run)), section(facts)]
    blocks.append(
        section("*Preflight*\n" + "\n".join(f"• {line}" for line in preflight_lines(plan)))
    )
    drizzle = drizzle_lines(plan)
    if drizzle:
        blocks.append(section("*Drizzle*\n" + "\n".join(f"• {line}" for line in drizzle)))
    blocks.append(section(f"*Locks* {lock_line(plan)}"))
    if sql_fits(plan):
        blocks.append(section(f"*SQL (exactly what will run)*\n```{plan.sql}```"))
    else:
        blocks.append(
            section(
                f"*SQL* {len(plan.sql):,} characters, too long for a message: the exact SQL "
                f"is attached in the thread as `{snippet_name(run)}`."
            )
        )
    blocks.append(section(f"*Backup* {backup_line(run)}"))
    blocks.append(section(f"*Rehearsal* {rehearsal_line(run)}"))
    if run.promoted_from:
        blocks.append(section(f"*Promoted from* {run.promoted_from.summary}"))
    blocks.append(section(f"*Approval* {_approval(run, reaction, approvers)}"))
    if run.reason and run.state in {RunState.BLOCKED, RunState.CANCELLED, RunState.FAILED}:
        blocks.append(section(f"*Why* {run.reason}"))
    blocks.append(context(f"run {run.id} · plan {plan.hash[:12]} · {run.target_label}"))
    return f"Rollback run {run.id}: {run.runbook_name} is {run.state.replace('_', ' ')}", blocks


def _approval(run: Run, reaction: str, approvers: tuple[str, ...]) -> str:
    if run.state is not RunState.AWAITING_APPROVAL and run.approvers:
        return f"approved by {', '.join(user(a) for a in run.approvers)}"
    if run.state is not RunState.AWAITING_APPROVAL:
        return approval_line(run)
    who = ", ".join(user(a) for a in approvers) or "nobody (set ROLLBOT_APPROVERS)"
    needed = run.required_approvals - len(run.approvers)
    expires = ""
    if run.expires_at is not None:
        stamp = int(run.expires_at.timestamp())
        fallback = f"{run.expires_at:%Y-%m-%d %H:%M} UTC"
        expires = f" before <!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"
    got = (
        f" Approved so far by {', '.join(user(a) for a in run.approvers)}." if run.approvers else ""
    )
    return (
        f"React with :{reaction}: on this message to approve{expires}. "
        f"{needed} more approval(s) needed from {who}, not {user(run.requested_by)}.{got}"
    )


def snippet_name(run: Run) -> str:
    """The file name of the SQL snippet for a run."""
    return f"rollback-run-{run.id}-{run.runbook_name}.sql"


def outcome_message(run: Run) -> tuple[str, list[Block]]:
    """The thread reply with the verification counts, or the failure and "nothing changed"."""
    outcome = outcome_of(run)
    if outcome is None:
        text = f"Run {run.id} is {run.state.replace('_', ' ')}: {run.reason or 'no reason given'}"
        return text, [section(text)]
    if outcome.succeeded and run.kind == "restore":
        restored = "\n".join(
            f"• `{t.table}`: {t.rows:,} rows, as in the backup" for t in outcome.restored
        )
        notes = "".join(f"\n:information_source: {note}" for note in outcome.notes)
        text = f":large_green_circle: *Run {run.id} succeeded*: restored\n{restored}{notes}"
        return f"Run {run.id} succeeded: restored", [section(text)]
    if not outcome.succeeded:
        lines = [f":red_circle: *Run {run.id} failed.* {outcome.error}"]
        if outcome.failed_statement:
            where = f" (runbook line {outcome.failed_line})" if outcome.failed_line else ""
            lines.append(f"*Statement*{where}: `{outcome.failed_statement[:500]}`")
        if outcome.blockers:
            lines.append("*Blocking sessions*")
            lines += [f"• {b.label()[:300]}" for b in outcome.blockers[:10]]
        lines.append("*Nothing was changed*: the transaction was rolled back.")
        return f"Run {run.id} failed; nothing was changed", [section("\n".join(lines))]
    _, backup_rows = backup_of(run)
    rows = "\n".join(
        f"• `{t.table}`: {t.rows:,} rows dropped · {t.backup_rows:,} in the final backup · "
        f"{backup_rows.get(t.table, 0):,} in the pre-approval backup"
        for t in outcome.dropped
    )
    deleted = "\n".join(
        f"• `{d.table}`: {d.before - d.after:,} rows deleted ({d.before:,} → {d.after:,})"
        for d in outcome.deleted
    )
    neighbours = "\n".join(
        f"• `{n.table}`: {n.before:,} → {n.after:,} rows (unchanged)" for n in outcome.neighbours
    )
    headline = (
        f":large_green_circle: *Run {run.id} succeeded* in {outcome.duration_s:.1f} s: "
        f"`{run.runbook_name}` rolled back on {run.target_label}."
    )
    lines = [
        headline,
        f"*Rows per dropped table*\n{rows}" if rows else "*No tables dropped*",
        f"*Objects dropped* {outcome.objects_gone} of {outcome.objects_expected} expected",
    ]
    if deleted:
        lines.append(f"*Rows deleted*\n{deleted}")
    if neighbours:
        lines.append(f"*Neighbouring tables*\n{neighbours}")
    lines += [f":information_source: {note}" for note in outcome.notes]
    if outcome.final_backup is not None:
        lines.append(
            f"*To undo it* `/rollback restore {run.id}` (needs approval too); the final "
            f"backup is `{outcome.final_backup.path}`"
        )
    text = f"Run {run.id} succeeded: {run.runbook_name} rolled back"
    return text, [section(line) for line in lines]


def incident_text(run: Run, event: str) -> str:
    """One line per transition for the incident channel's thread."""
    who = user(run.requested_by)
    lines = {
        "requested": f"{run.kind.capitalize()} run {run.id} of `{run.runbook_name}` on "
        f"{run.target_label} requested by {who}",
        "backup_started": "Backup started",
        "backup_verified": f"Backup {backup_line(run)}",
        "blocked": f"Blocked: {run.reason}",
        "approval_added": f"Approval recorded ({len(run.approvers)} of {run.required_approvals})",
        "approved": f"Approved by {', '.join(user(a) for a in run.approvers)}",
        "execution_started": "Executing",
        "cancelled": f"Cancelled: {run.reason}",
        "expired": "Expired: the approval window closed",
    }
    if event in {"succeeded", "failed"}:
        return outcome_message(run)[0] + _counts(run)
    return f"{_STATE_ICON[run.state]} {lines.get(event, event.replace('_', ' '))}"


def _counts(run: Run) -> str:
    outcome = outcome_of(run)
    if outcome is None or not outcome.succeeded:
        return f": {run.reason}" if run.reason else ""
    return " (" + ", ".join(f"{t.table} {t.rows:,}" for t in outcome.dropped) + ")"


def help_message() -> list[Block]:
    """`/rollback help`."""
    return [
        section(
            "*rollbot* rolls back a migration safely: plan, backup, approval, one "
            f"transaction, verification.\n{USAGE}"
        )
    ]


def refusal(what: str, usage: str | None = None) -> list[Block]:
    """An ephemeral reply to a bad command: what is wrong, then the usage."""
    blocks = [section(f":warning: {what}")]
    if usage:
        blocks.append(context(usage.replace("\n", " · ")))
    return blocks
