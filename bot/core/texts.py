"""The words people read about a run, written once for the terminal and for Slack.

Both renderers show the same view of a run; when they say the same thing, the sentence or the
label comes from here, so a wording change is one edit and the two cannot drift apart. Markup
(bold, code spans, bullets, mentions) is each renderer's business, never this module's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.plan import Plan, StepStatus
from bot.core.quarantine import format_bytes
from bot.core.states import RunState, state_predicate

if TYPE_CHECKING:
    from bot.core.results import BackupInfo, Outcome
    from bot.core.run import Run
    from bot.core.sql import Statement

# Labels: the name of a part of a message, as both renderers title it.
HISTORY = "Migration history"
DOCTOR = "rollbot doctor"
DOCTOR_FIX = "to fix:"
AUDIT = "Audit trail, oldest first"
WARNINGS = "Warnings"
MIGRATION = "Migration"
RUNBOOK = "Runbook"
TARGET = "Target"
REQUESTED_BY = "Requested by"
PLAN_HASH = "Plan hash"
ROWS = "Rows"
PREFLIGHT = "Preflight"
RUNS = "Runs"
PREVIEW_TOO_LONG = "too long for a message; a real plan attaches it in its thread"
PREVIEW_NOTHING_DONE = "nothing was run, backed up or posted"
PREVIEW_PROOF = (
    "The backup, the rehearsal and the proof against the previous migration come with a "
    "real plan (`rollbot plan`), not with a preview."
)
DETAILS_FILE = "the plan attached in the thread"
DRIZZLE = "Drizzle"
LOCKS = "Locks"
BACKUP = "Backup"
REHEARSAL = "Rehearsal"
PROMOTED = "Promoted from"
APPROVAL = "Approval"
WHY = "Why"
RECREATES = "Recreates"
JOURNAL = "Journal"
BLOCKED = "BLOCKED"
NOT_COUNTED = "not counted"
SQL_EXACT = "SQL (exactly what will run)"
SQL_RESTORE = "SQL (runs in one transaction; each table's rows summarised)"
STATEMENT = "Statement"
SQLSTATE = "SQLSTATE"
HELD_BY = "Held by"
BLOCKING_SESSIONS = "Blocking sessions"
NOTHING_CHANGED = "Nothing was changed"
ROLLED_BACK = "the transaction was rolled back."
OBJECTS_DROPPED = "Objects dropped"
ROWS_PER_DROPPED_TABLE = "Rows per dropped table"
ROWS_DELETED = "Rows deleted"
ALSO_CHANGED = "Also changed (foreign-key actions, dropped columns)"
RESTORED = "restored"
APPROVED_SO_FAR = "approved so far by"
NO_TABLES_DROPPED = "No tables dropped"
FINAL_BACKUP = "Final backup"
BY_HAND = "By hand"
NO_DESCRIPTION = "no description"
NO_REASON = "no reason given"
OPENS_AFTER_BACKUP = "opens once the backup is verified"
HOW_TO_APPROVE = (
    "To approve a plan, an approver other than the requester adds the approval reaction "
    "(✅ unless configured otherwise) to its message, or presses its Approve button. Reject… "
    "cancels the plan with a reason, which is kept with the run (an approver or the requester)."
)
APPROVE = "Approve"
REJECT = "Reject…"
NOT_YET = "Not yet"
REASON = "Reason"
KEEP_IT = "Keep it"


def not_an_approver(name: str, unexpanded: tuple[str, ...] = ()) -> str:
    """Why an approval does not count; with user groups nobody could expand, how to fix that."""
    if unexpanded:
        groups = ", ".join(unexpanded)
        return (
            f"you are not among the approvers for {name} rollbot could look up: the user "
            f"group{'s' if len(unexpanded) > 1 else ''} {groups} can only be expanded by asking "
            "Slack; set SLACK_BOT_TOKEN (the bot token, with usergroups:read) where this "
            "command runs"
        )
    return f"you are not an approver for {name} (ROLLBOT_APPROVERS lists who may approve)"


def not_a_user_id(text: str) -> str:
    """Why a command-line identity was refused, and the shape that is wanted."""
    shown = repr(text) if text.strip() else "an empty value"
    return (
        f"{shown} is not a Slack user ID: give the person's member ID, U… or W… followed by "
        "capital letters and digits (e.g. U02BOB; in Slack: profile ⋮ menu, Copy member ID)"
    )


def state_label(state: str) -> str:
    """`awaiting approval`: a state as a person says it."""
    return state.replace("_", " ")


def size(num_bytes: int) -> str:
    """`1.2 MB`: enough precision to compare two backups at a glance."""
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":  # noqa: PLR2004
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def backup_facts(backup: BackupInfo) -> str:
    """`backups/run-3.dump, 1.2 MB, sha256 ab12cd34…, 0.4 s`."""
    return f"{backup.path}, {backup_details(backup)}"


def pruned(backup: BackupInfo) -> str:
    """`pruned on 2026-12-02 08:40 UTC (/backups/…dump)`: gone on purpose, not lost."""
    at = f"{backup.pruned_at:%Y-%m-%d %H:%M} UTC" if backup.pruned_at else "?"
    return f"backup pruned on {at} by rollbot backups prune ({backup.path})"


def backup_details(backup: BackupInfo) -> str:
    """`1.2 MB, sha256 ab12cd34…, 0.4 s`: enough to tell a backup from another, and to trust it."""
    details = f"{size(backup.size_bytes)}, sha256 {backup.sha256[:16]}…, {backup.duration_s:.1f} s"
    return f"{details}; {pruned(backup)}" if backup.pruned_at is not None else details


def preflight_lines(plan: Plan) -> list[str]:
    """What blocks first, then the rows at stake, then the no-ops, which can be many.

    A rollback of a migration already rolled back is fifty no-ops; the one line that says
    why it cannot run must not come after them.
    """
    runs = sum(1 for s in plan.steps if s.status is StepStatus.RUNS)
    lines = [
        (
            f"{len(plan.steps)} statements: {runs} will run, {len(plan.no_ops())} no-op, "
            f"{len(plan.blockers)} blocking; {len(plan.dropped)} objects will be dropped"
        )
    ]
    lines += [f"{BLOCKED}: {blocker}" for blocker in plan.blockers]
    lines += [f"{count.table}: {count.label()}" for count in plan.drop_tables]
    lines += [f"deletes rows from {c.table} ({c.label()} now)" for c in plan.delete_tables]
    lines += [f"also changes {a.table} ({a.rows.label()} now): {a.why}" for a in plan.affected]
    lines += [
        f"no-op (line {step.statement.line}): {note}"
        for step in plan.no_ops()
        for note in step.notes
    ]
    lines += [f"{NOT_COUNTED}: {note}" for note in plan.uncounted]
    return lines


# The SQLSTATEs a constraint check fails with, and the kinds of constraint that raise each:
# check_violation, foreign_key_violation, unique_violation (a UNIQUE or PRIMARY KEY's index
# cannot be built) and not_null_violation (a PRIMARY KEY over a column holding NULL).
_VIOLATED_BY = {
    "23514": ("check",),
    "23503": ("foreign key",),
    "23505": ("unique", "primary key"),
    "23502": ("primary key",),
}


def violated_constraint(statement: Statement, sqlstate: str | None) -> str | None:
    """What to say when a statement that adds or validates a constraint found rows violating it.

    The plan counts violating rows before approval, so these were written since (or could
    not be counted): the sentence names the constraint, which PostgreSQL's message names only
    as an index or a column for some kinds, and says that a new plan counts them.
    """
    kinds = _VIOLATED_BY.get(sqlstate or "", ())
    found = [v for v in statement.validates if v.kind in kinds]
    if not found:
        return None
    names = " or ".join(f"{v.kind.upper()} {v.label()}" for v in found)
    first = found[0]
    table = f"{first.namespace}.{first.table}" if first.namespace else first.table
    return (
        f"rows of {table} violate {names} (written since the plan, or not counted by it): fix "
        "or delete them, then ask for a new plan, which counts them"
    )


_LOSES_DATA = ("DROP TABLE", "DELETE", "ALTER TABLE … DROP COLUMN")


def statement_summary(plan: Plan) -> str:
    """`24 statements run: 6 DROP TABLE, 12 DROP INDEX, …`, the kinds in runbook order."""
    kinds: dict[str, int] = {}
    sent = plan.script.statements if len(plan.script.statements) == len(plan.steps) else ()
    for i, step in enumerate(plan.steps):
        if step.status is StepStatus.RUNS:
            kind = step.statement.kind + _aside(step.statement.sql, sent[i] if sent else None)
            kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds:
        return "no statement will run"
    total = sum(kinds.values())
    counted = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    return f"{total} statement{'s' if total != 1 else ''} run: {counted}"


def _aside(written: str, sent: str | None) -> str:
    """What quarantine mode made of a statement, when it is not what the runbook wrote.

    A drop becomes a move into the quarantine, and an index or constraint of a moved table
    stays on it: counted as written, the summary would claim drops that never happen.
    """
    if sent is None or sent == written:
        return ""
    if sent.startswith("SELECT $") and "kept in quarantine: " in sent:
        return " (kept on the moved table)"
    return " (moved aside)" if "SET SCHEMA" in sent else ""


def data_statements(plan: Plan) -> list[str]:
    """The statements that remove rows or values, as written: what an approver must see.

    In quarantine mode a DROP TABLE among them moves the table aside instead; the summary
    above them says so (`statement_summary`), and they stay listed, as the tables to look at.
    """
    return [
        step.statement.sql
        for step in plan.steps
        if step.status is StepStatus.RUNS and step.statement.kind.startswith(_LOSES_DATA)
    ]


def nothing_to_do(plan: Plan) -> str | None:
    """The one line first when the plan changes nothing at all, else None."""
    if plan.blockers or any(s.status is not StepStatus.NO_OP for s in plan.steps):
        return None
    return (
        f"Nothing to do: all {len(plan.steps)} statements are no-ops, as nothing they drop "
        "exists. The migration looks rolled back already."
    )


def lock_line(plan: Plan) -> str:
    """Which tables are locked, how, and for how long at most per attempt."""
    timeout = f"{plan.lock_timeout.total_seconds():g} s"
    parts = []
    if plan.write_locked:
        parts.append(
            f"writes to {len(plan.write_locked)} tables wait while the final backup is taken"
            if plan.script.snapshot
            else f"writes to {len(plan.write_locked)} tables wait while their rows are counted"
        )
    if plan.locked:
        parents = [t for t in plan.locked if t not in plan.write_locked]
        extra = f" (including {', '.join(parents)})" if parents else ""
        parts.append(
            f"then ACCESS EXCLUSIVE on {len(plan.locked)} tables{extra}, "
            f"waiting at most {timeout} per attempt"
        )
    return "; ".join(parts) or "no table locks"


DROP_MODE = "Drop mode"
QUARANTINE = "Quarantine"
PURGED = "the quarantine was dropped for good; its final backup still holds the rows"


def drop_mode_line(plan: Plan) -> str:
    """Which mode will run, and (quarantine) where the tables go and the disk they keep."""
    quarantine = plan.quarantine
    if quarantine is None:
        if plan.drop_mode == "quarantine":
            return "quarantine (this rollback drops no table: nothing is moved aside)"
        return (
            "drop: dropped tables are gone at COMMIT; their rows survive only in the final "
            "backup, taken inside the transaction"
        )
    tables = len(quarantine.tables())
    return (
        f"quarantine: {tables} table(s) moved into {quarantine.schema_name} instead of dropped, "
        f"holding {format_bytes(quarantine.size_bytes)} of disk until a purge is approved "
        f"(`rollbot purge RUN`); the final backup is dumped from there after COMMIT, "
        "and a restore moves them back"
    )


def final_backup_taken(run: Run) -> str:
    """The thread's update once a quarantined run's final backup, taken after COMMIT, exists."""
    outcome = run.outcome
    backup = outcome.quarantine_backup if outcome else None
    if outcome is None or outcome.quarantine is None or backup is None:
        return f"Run {run.id}: no final backup of a quarantine was taken"
    return (
        f"Run {run.id}: the final backup of {outcome.quarantine.schema_name} is taken, "
        f"{backup.path} ({backup_details(backup)}); the tables stay in the quarantine until "
        f"`rollbot purge {run.id}`"
    )


def pre_approval_rows(rows: int | None) -> str:
    """A dropped table's rows in the pre-approval backup, or why it holds none of them."""
    if rows is None:
        return "not in the pre-approval backup (moved aside: its rows stayed in the database)"
    return f"{rows:,} in the pre-approval backup"


def quarantine_line(outcome: Outcome) -> str | None:
    """Where a quarantined rollback's tables are, and whether its final backup is taken."""
    quarantine = outcome.quarantine
    if quarantine is None:
        return None
    backup = outcome.quarantine_backup
    taken = (
        f"final backup {backup.path}" if backup is not None else "quarantined, final backup pending"
    )
    return (
        f"{quarantine.schema_name} holds {len(quarantine.tables())} table(s), "
        f"{format_bytes(quarantine.size_bytes)}; {taken}"
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


FINAL_BACKUP_PENDING = "final backup pending"


def backup_line(
    backup: BackupInfo | None,
    held: int,
    state: RunState,
    reason: str | None,
    progress: str | None = None,
    *,
    aside: int = 0,
) -> str:
    """Backup status: running (how far, when known), verified with its facts, or why not.

    `aside`: how many tables a quarantined rollback only moves aside, whose rows it leaves out.
    """
    if backup is not None and backup.pruned_at is not None:
        return f"{pruned(backup)}; it held {held:,} rows of the tables it changes"
    if backup is not None:
        scope = (
            f"; the whole schema, and the rows of only the {len(backup.tables)} tables the "
            "rollback needs"
            if backup.scope == "affected"
            else ""
        )
        kept = (
            f"; the rows of the {aside} table(s) only moved aside stay in the database, "
            "dumped from the quarantine after COMMIT"
            if aside and backup.scope == "affected"
            else ""
        )
        # Every table it changes only moved aside: the backup holds none of their rows by
        # design, which "holds 0 rows of the tables it changes" would make sound like a loss.
        held_text = "" if aside and not held else f"; holds {held:,} rows of the tables it changes"
        return f"verified: {backup_facts(backup)}" + held_text + scope + kept
    if state is RunState.BACKING_UP and progress is not None:
        return f"running: {progress} (read back by pg_restore as it is written)"
    if state is RunState.BACKING_UP:
        return "running (pg_dump, read back by pg_restore as it is written)"
    if state is RunState.REQUESTED:
        return "not started"
    return f"none: {reason}" if reason else "none"


def rehearsal_line(
    summary: str | None, state: RunState, *, backed_up: bool, journal: bool = False
) -> str:
    """`rehearsed: ok in 0.4 s (…)`, the failure, the skip, or why there is none yet.

    With `journal` (the rollback deletes a Drizzle journal row), a rehearsal that is off
    says loudly that the schema it leaves was not proved to be the previous migration's.
    """
    if summary is not None:
        return summary
    if state in {RunState.REQUESTED, RunState.BACKING_UP}:
        return "after the backup, on a scratch copy"
    if not backed_up:
        return "not run"
    if journal:
        return "off for this target; NOT proved equal to the previous migration (no rehearsal)"
    return "off for this target"


def approved_by(names: list[str]) -> str:
    """`approved by alice, bob`: who approved a run that is past approval."""
    return f"approved by {', '.join(names)}"


def closed(state: str) -> str:
    """Why nobody can approve any more: `closed (cancelled)`."""
    return f"closed ({state_label(state)})"


def succeeded(run_id: int) -> str:
    """`Run 3 succeeded`: the headline of every success, before its details."""
    return f"Run {run_id} succeeded"


def failed(run_id: int) -> str:
    """`Run 3 failed`: the headline of every failure, before PostgreSQL's message."""
    return f"Run {run_id} failed"


def at_line(line: int | None) -> str:
    """` (runbook line 16)`, or nothing when the failure has no line."""
    return f" (runbook line {line})" if line else ""


def took(duration_s: float, attempts: int) -> str:
    """`in 1.2 s (2 attempts)`: how long a successful run took, and how many lock attempts."""
    return f"in {duration_s:.1f} s ({attempts} attempt{'s' if attempts != 1 else ''})"


def change(before: int, after: int) -> str:
    """`(1,200 → 0)`: a count before and after the statements."""
    return f"({before:,} → {after:,})"


def objects_gone_label(quarantine: str | None) -> str:
    """What happened to the objects the rollback removes: dropped, or moved aside (kept)."""
    if quarantine is None:
        return OBJECTS_DROPPED
    return f"Objects moved aside to the quarantine schema {quarantine}, kept until purge"


def rows_per_table_label(quarantine: str | None) -> str:
    """The heading of the per-table counts: dropped, or moved aside to the quarantine."""
    return ROWS_PER_DROPPED_TABLE if quarantine is None else "Rows per table moved aside"


def objects_dropped(gone: int, expected: int) -> str:
    """`53 of 53 expected`: the objects the check before COMMIT found gone."""
    return f"{gone} of {expected} expected"


def restored_rows(rows: int) -> str:
    """`1,200 rows, as in the backup`: what a restore put back into a table."""
    return f"{rows:,} rows, as in the backup"


_ENDED = {"succeeded": "has succeeded", "failed": "has failed"}


def is_state(run_id: int, state: str, reason: str | None) -> str:
    """`Run 3 is cancelled: …`, `Run 4 has succeeded`: a run with no outcome to report."""
    if state in _ENDED:
        return f"Run {run_id} {_ENDED[state]}" + (f": {reason}" if reason else "")
    return f"Run {run_id} {state_predicate(state)}: {reason or NO_REASON}"


def journal_line(*, restored: bool) -> str:
    """What a restore does to Drizzle's journal."""
    return "listed again" if restored else "unchanged"


def slash_restore(run_id: int) -> str:
    """The Slack command that restores what a rollback dropped."""
    return f"/rollback restore {run_id}"


def forward_again(migration_id: str) -> str:
    """How to undo a rollback that put definitions back: a restore would not."""
    return (
        f"apply {migration_id} again as it was applied (drizzle-kit migrate); this rollback "
        "also put definitions back, which a restore does not take back"
    )


def undo_cli(run_id: int) -> str:
    """How to undo a rollback from the terminal, with the Slack command beside it."""
    return (
        f"rollbot restore {run_id} --requested-by NAME (or {slash_restore(run_id)}), "
        "approved like a rollback"
    )


def queued(what: str, ahead: int, *, first: str = "backing up first") -> str:
    """The immediate answer to a slow command: it is taken, and when to expect more."""
    wait = f" ({ahead} ahead of it)" if ahead else ""
    return f"{what}{wait}: {first}. The answer comes here when it is ready."


def busy(ahead: int, consequence: str) -> str:
    """A full queue, said plainly: how much is ahead and that nothing happened."""
    plural = "s" if ahead != 1 else ""
    return (
        f"rollbot is busy: {ahead} request{plural} running or waiting; {consequence}. "
        "Try again in a few minutes"
    )


def unhandled_request(reference: str) -> str:
    """A signed request rollbot could not make sense of: the HTTP answer, a log reference."""
    return f"rollbot could not handle this request (reference {reference})"


def unexpected(reference: str) -> str:
    """An error nobody expected: a reference into the logs, and what to check first."""
    return (
        f"rollbot hit an unexpected error (reference {reference}). "
        "Check `/rollback status` before retrying."
    )


# -- Slack deliveries ------------------------------------------------------------------------

SLACK_UNDELIVERED = "Slack messages not delivered"
DELIVERY_UNCERTAIN = (
    "an earlier attempt may have reached Slack and its answer was lost; "
    "not posted again, to avoid a duplicate"
)
DELIVERY_NOT_REPEATED = "Slack may have posted it: not posted again, to avoid a duplicate"


def answer_without(method: str, fields: list[str]) -> str:
    """Slack said `ok` but not where the message went."""
    return f"Slack accepted {method} but its answer had no {' or '.join(fields)}"


def delivery_given_up(run_id: int, what: str, error: str) -> str:
    """The thread's note that one of the run's messages will not arrive."""
    return f"Run {run_id}: rollbot gave up delivering the {what} to Slack ({error})."


def channel_refused(channel: str, error: str) -> str:
    """Why a run was cancelled: Slack would not let rollbot post where the run is announced."""
    return (
        f"Slack refused rollbot's messages in channel {channel} ({error}), so the run cannot be "
        "announced and approved there: invite rollbot with `/invite @rollbot` in that channel, "
        "then request again"
    )


def announcement_lost(role: str, error: str) -> str:
    """Why a run was cancelled: its plan or incident message could not be delivered."""
    where = "plan message" if role == "plan" else "incident channel message"
    return (
        f"its {where} could not be delivered to Slack ({error}); "
        "it cannot be approved without it: request again"
    )


def undelivered_line(action: str, role: str, attempts: int, error: str, *, given_up: bool) -> str:
    """One message Slack has not accepted, for `rollbot show`."""
    state = "given up" if given_up else "not delivered yet"
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return f"{action} ({role}): {state} after {tries}: {error}"


def confirm_title(run_id: int) -> str:
    """The title of the dialog Slack shows before an approval by button counts."""
    return f"Approve run {run_id}?"


def confirm_approval(name: str, target: str) -> str:
    """What the approver confirms: the rollback runs at once when this approval completes it."""
    return (
        f"Your approval of {name} on {target} is recorded; once enough have come, the "
        "rollback runs at once in one transaction."
    )


def reject_title(run_id: int) -> str:
    """The title of the form that rejects a run (Slack allows 24 characters)."""
    return f"Reject run {run_id}"[:24]


def reject_intro(run_id: int, name: str, target: str) -> str:
    """What rejecting does, said before the reason is asked."""
    return (
        f"Rejecting cancels run {run_id} ({name} on {target}); nothing is run. The reason is "
        "kept with the run and posted in its thread."
    )


def rejected(user: str, reason: str) -> str:
    """The stored reason of a rejected run: who, and why in their words."""
    return f"rejected by {user}: {reason}"


def awaits_approval(kind: str, run_id: int, name: str, target: str) -> str:
    """The call to the approvers once a plan can be approved."""
    return f"{kind.capitalize()} run {run_id} of {name} on {target} awaits your approval"


def reminder(run_id: int) -> str:
    """The reminder before the approval window closes; expiry runs nothing."""
    return (
        f"Reminder: run {run_id} still awaits approval; without it, it expires and nothing is run"
    )


def expired_unapproved(run_id: int) -> str:
    """The incident channel's note that a plan nobody approved in time has expired."""
    return f"Run {run_id} expired unapproved: nobody approved it in time; nothing was run"


def lost_race(state: str) -> str:
    """Someone else's approval moved the run first: this one was not needed, and why."""
    return (
        f"your approval came a moment after another that moved the run on (it "
        f"{state_predicate(state)}); nothing was done twice"
    )
