"""Migration history, live: the runbook's "Migration History" table, from the real journal.

Drizzle's journal says what is applied; rollbot's runs say what was rolled back, by whom and
when; runbooks and the migrations folder supply dates and descriptions. Pure: the service
reads, this decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bot.core.states import RunState

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.library import RunbookLibrary
    from bot.core.run import Run
    from bot.drizzle.journal import MigrationStatus


class HistoryEntry(BaseModel):
    """One migration's line in the history."""

    model_config = ConfigDict(frozen=True)

    migration: str
    date: str
    description: str
    status: str
    problems: tuple[str, ...] = ()


def history(
    statuses: list[MigrationStatus],
    library: RunbookLibrary,
    runs: list[Run],
    target: str,
    person: Callable[[str], str] = str,
) -> list[HistoryEntry]:
    """Newest first: applied, current, rolled back by run N (who, when), or pending."""
    described = {r.name: r for r in library.runbooks}
    entries: list[HistoryEntry] = []
    for status in reversed(statuses):
        runbook = described.get(status.tag)
        rollback = _last_rollback(runs, status.tag, target)
        state = status.status
        label: str = state
        if state == "pending" and rollback is not None:
            approved = ", ".join(person(a) for a in rollback.approvers)
            label = (
                f"rolled back by run {rollback.id} (requested by {person(rollback.requested_by)}, "
                f"approved by {approved}, {rollback.updated_at:%Y-%m-%d %H:%M} UTC)"
            )
        entries.append(
            HistoryEntry(
                migration=f"{status.tag}.sql" if status.migration_id else status.tag,
                date=(runbook.date if runbook and runbook.date else status.date) or "-",
                description=(runbook.description if runbook else None) or "-",
                status=label,
                problems=tuple(status.problems),
            )
        )
    return entries


def _last_rollback(runs: list[Run], tag: str, target: str) -> Run | None:
    done = [
        r
        for r in runs
        if r.kind == "rollback"
        and r.runbook_name == tag
        and r.target_name == target
        and r.state is RunState.SUCCEEDED
    ]
    return max(done, key=lambda r: r.id) if done else None


def history_text(entries: list[HistoryEntry]) -> str:
    """A Markdown table, as the runbook's own "Migration History" is written."""
    if not entries:
        return "No Drizzle journal in this database, and no migrations folder configured."
    lines = [
        "| Migration | Date | Description | Status |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {e.migration} | {e.date} | {e.description} | {e.status} |" for e in entries]
    problems = [p for e in entries for p in e.problems]
    lines += [f"Warning: {p}" for p in problems]
    return "\n".join(lines)
