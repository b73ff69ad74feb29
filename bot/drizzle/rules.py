"""Drizzle's view of a rollback: which journal row goes, what may be rolled back, what is odd.

Drizzle's migrator trusts its journal table: a rollback that leaves the row makes it believe the
migration is still applied; deleting the row while the objects remain makes the next migrate
fail. So the row is deleted in the same transaction as the DDL, and only the newest applied
migration may be rolled back. All of it is decided here, purely, from the journal rows, the
migrations folder and the runbook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.journal import JournalPlan, JournalRow, LintReport
from bot.core.names import migration_id_of, migration_query
from bot.core.sql import ObjectKind
from bot.drizzle.forward import object_label
from bot.drizzle.journal import journal_row_for, latest_applied, match_journal
from bot.drizzle.lint import lint_runbook

if TYPE_CHECKING:
    from bot.core.facts import Facts
    from bot.core.runbook import Runbook
    from bot.drizzle.folder import Migration


def find_by_query(migrations: list[Migration] | None, query: str) -> Migration | None:
    """A migration by `0024`, `24` or `0024_brave_wolf`, like runbook lookup."""
    parsed = migration_query(query)
    if parsed is None:
        return None
    digits, rest = parsed
    for migration in migrations or ():
        head = migration_id_of(migration.tag)
        same_number = head is not None and int(head) == int(digits)
        if same_number and (rest is None or migration.tag == f"{digits}{rest}"):
            return migration
    return None


def find_migration(migrations: list[Migration] | None, name: str) -> Migration | None:
    """The migration file of a runbook (`0023_loud_shen`), if the folder has it."""
    return next((m for m in migrations or () if m.tag == name), None)


def journal_plan(
    runbook: Runbook,
    migrations: list[Migration] | None,
    rows: list[JournalRow] | None,
    *,
    schema: str,
    table: str,
) -> JournalPlan | None:
    """The journal row the rollback deletes; None when the database has no Drizzle journal."""
    if rows is None:
        return None
    base = JournalPlan(schema_name=schema, table=table)
    if not runbook.settings.journal:
        return base.model_copy(
            update={"note": "the runbook says `journal: false`: the Drizzle journal is left as is"}
        )
    migration = find_migration(migrations, runbook.name)
    if migration is not None:
        row = journal_row_for(migration, rows)
    else:
        row = next((r for r in rows if r.name == runbook.name), None)
    if row is not None:
        disagree = _disagreements(migrations, rows, migration)
        if disagree:
            return base.model_copy(update={"row": row, "blocker": disagree})
        return base.model_copy(update={"row": row})
    if migration is None and migrations is None and not any(r.name for r in rows):
        why = (
            f"the Drizzle journal ({schema}.{table}) cannot be matched to {runbook.name} "
            "without the migrations folder: set ROLLBOT_MIGRATIONS_DIR, or write "
            "`journal: false` in the runbook's front matter to leave the journal as is"
        )
    elif migration is None and migrations is not None:
        why = (
            f"{runbook.name} is not a migration in ROLLBOT_MIGRATIONS_DIR; if this runbook "
            "undoes something Drizzle did not apply, write `journal: false` in its front matter"
        )
    else:
        why = (
            f"the Drizzle journal ({schema}.{table}) has no row for {runbook.name}: "
            "it is not applied (or was already rolled back)"
        )
    return base.model_copy(update={"blocker": why})


def _disagreements(
    migrations: list[Migration] | None, rows: list[JournalRow], migration: Migration | None
) -> str | None:
    """Why the journal and the files up to `migration` cannot be trusted to agree, or None.

    The proof replays the files 0…N-1 to build the schema the rollback must leave, and the
    rollback deletes the one row recording N: a file edited after it was applied replays to
    a schema this database never had, and a second row recording N would still say N is
    applied afterwards, so Drizzle would never apply it again.
    """
    if migrations is None or migration is None:
        return None
    problems = [
        problem
        for status in match_journal(migrations, rows)
        if status.when is not None and status.when <= migration.when
        for problem in status.problems
    ]
    if not problems:
        return None
    return (
        f"the migrations folder and the Drizzle journal disagree up to {migration.tag}: "
        f"{'; '.join(problems)}; make the folder the one the database was migrated from "
        "(same files, unedited) and the journal hold one row per migration, then plan again"
    )


def newer_applied(
    name: str, migrations: list[Migration] | None, rows: list[JournalRow] | None
) -> str | None:
    """The newest applied migration when it is not `name` (only the newest may go)."""
    if not rows or migrations is None or find_migration(migrations, name) is None:
        return None
    latest = latest_applied(match_journal(migrations, rows))
    if latest is None or latest.tag == name:
        return None
    ours = find_migration(migrations, name)
    if ours is not None and latest.when is not None and latest.when < ours.when:
        return None  # ours is newer than the newest applied: it is simply not applied
    return latest.tag


def before(migrations: list[Migration] | None, name: str) -> list[Migration] | None:
    """The migrations applied before `name`, in journal order: what the schema is at N-1."""
    for position, migration in enumerate(migrations or ()):
        if migration.tag == name:
            return (migrations or [])[:position]
    return None


def lint(runbook: Runbook, migrations: list[Migration] | None) -> LintReport | None:
    """The runbook against its forward migration, when the folder has the file."""
    migration = find_migration(migrations, runbook.name)
    return lint_runbook(runbook, migration) if migration is not None else None


def unexpected_drops(
    runbook: Runbook, facts: Facts, migrations: list[Migration] | None
) -> list[str]:
    """Existing objects the runbook drops that its migration never created: a blocker each.

    An absent one (the seed's `error_aggregations_resolved_by_users_id_fk`) is a harmless
    no-op; an existing one belongs to someone else and must not go with this rollback.
    """
    report = lint(runbook, migrations)
    if report is None or not report.dropped_not_created:
        return []
    foreign = set(report.dropped_not_created)
    blockers: list[str] = []
    for statement in runbook.statements:
        for position, obj in enumerate(statement.objects):
            if obj.kind is ObjectKind.ROWS:
                continue
            found = facts.found(statement.number, position)
            label = object_label(obj.kind, obj.name, obj.table)
            if found.exists and label in foreign:
                blockers.append(
                    f"line {statement.line}: {label} exists but migration {runbook.name} never "
                    "created it; remove the statement, or fix the runbook if the migration did"
                )
    return blockers
