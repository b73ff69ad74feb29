"""Drizzle's journal table, read and matched against the migrations folder.

Drizzle records each migration it applies as a row of `drizzle.__drizzle_migrations`: the
sha256 of the file and, as `created_at`, the `when` of its journal entry (not the time it
ran). Its migrator looks only at the newest row and runs every migration whose `when` is
greater. So a row is matched to a file by `created_at == when`, the hash tells whether the
file changed since, and "current" is the migration the newest row names: the one a rollback
undoes. Reading the rows is `bot.target.journal`'s; here they are only matched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from bot.core.doctor import Check, error, ok, warning
from bot.core.names import migration_id_of

if TYPE_CHECKING:
    from bot.core.journal import JournalRow
    from bot.drizzle.folder import Migration


Status = Literal["applied", "current", "pending", "unknown"]


class MigrationStatus(BaseModel):
    """Where one migration (or one unmatched journal row) stands."""

    model_config = ConfigDict(frozen=True)

    tag: str  # "0023_loud_shen", or "unknown (created_at …)" for a row without a file
    migration_id: str | None  # "0023"; None when the tag is unknown
    when: int | None
    date: str | None  # ISO date (UTC) of `when`
    status: Status
    hash_matches: bool | None  # None when there is no row or no file to compare
    journal_id: int | None
    problems: list[str]


def iso_date(when: int) -> str:
    """The UTC calendar date of a journal timestamp in milliseconds."""
    return datetime.fromtimestamp(when / 1000, tz=UTC).date().isoformat()


def newest_row(rows: list[JournalRow]) -> JournalRow | None:
    """The row Drizzle's `ORDER BY created_at DESC LIMIT 1` returns (NULL first, as PostgreSQL)."""
    if not rows:
        return None
    nulls = [row for row in rows if row.created_at is None]
    if nulls:
        return nulls[0]
    return max(rows, key=lambda row: row.created_at or 0)


def journal_row_for(migration: Migration, rows: list[JournalRow]) -> JournalRow | None:
    """The row recording this migration: same `created_at`, a matching hash preferred."""
    matching = [row for row in rows if row.created_at == migration.when]
    matching.sort(key=lambda row: (row.hash != migration.hash, row.id))
    return matching[0] if matching else None


def match_journal(
    migrations: list[Migration] | None, rows: list[JournalRow]
) -> list[MigrationStatus]:
    """The status of every migration and every journal row, oldest first.

    Without a folder only the rows are known: they are listed as applied (the newest as
    current) under an "unknown" tag. With a folder, rows that match no migration are listed
    with status "unknown", and every inconsistency Drizzle would trip over is a problem.
    """
    newest = newest_row(rows)
    if migrations is None:
        return [_row_only(row, newest, "applied") for row in _chronological(rows)]
    whens = {migration.when for migration in migrations}
    statuses = [_migration_status(migration, rows, newest) for migration in migrations]
    statuses += [_row_only(row, newest, "unknown") for row in rows if row.created_at not in whens]
    return sorted(statuses, key=lambda s: (s.when is None, s.when or 0))


def latest_applied(statuses: list[MigrationStatus]) -> MigrationStatus | None:
    """The migration the newest journal row names (the one a rollback undoes), if any."""
    for status in statuses:
        if status.status == "current":
            return status
    return None


def _chronological(rows: list[JournalRow]) -> list[JournalRow]:
    return sorted(rows, key=lambda row: (row.created_at is None, row.created_at or 0, row.id))


def _unknown_tag(row: JournalRow) -> str:
    when = "null" if row.created_at is None else str(row.created_at)
    return f"unknown (created_at {when})"


def _row_only(row: JournalRow, newest: JournalRow | None, status: Status) -> MigrationStatus:
    """A journal row with no file to match: applied, or "unknown" when a folder was given."""
    problems = []
    if row.created_at is None:
        problems.append(
            f"journal row {row.id} has no created_at: Drizzle reads it as the newest row "
            "and would run every migration again"
        )
    elif status == "unknown":
        problem = (
            f"journal row {row.id} (created_at {row.created_at}) matches no migration in the folder"
        )
        if row is newest:
            problem += (
                ", and it is the newest row: Drizzle's current migration is not in the folder"
            )
        problems.append(problem)
    if status == "applied" and row is newest:
        status = "current"
    return MigrationStatus(
        tag=row.name or _unknown_tag(row),
        migration_id=migration_id_of(row.name) if row.name else None,
        when=row.created_at,
        date=None if row.created_at is None else iso_date(row.created_at),
        status=status,
        hash_matches=None,
        journal_id=row.id,
        problems=problems,
    )


def _migration_status(
    migration: Migration,
    rows: list[JournalRow],
    newest: JournalRow | None,
) -> MigrationStatus:
    file = f"{migration.tag}.sql"
    matching = [row for row in rows if row.created_at == migration.when]
    row = journal_row_for(migration, rows)
    problems: list[str] = []
    status: Status
    hash_matches: bool | None = None
    if row is None:
        status = "pending"
        last = newest.created_at if newest is not None else None
        if newest is not None and (last is None or last >= migration.when):
            problems.append(
                f"{file} has no journal row but is not newer than the newest one "
                f"(row {newest.id}): Drizzle will never apply it"
            )
    else:
        is_newest = newest is not None and any(r.id == newest.id for r in matching)
        status = "current" if is_newest else "applied"
        hash_matches = row.hash == migration.hash
        if not hash_matches:
            problems.append(f"the file {file} was edited after it was applied (hash differs)")
        if len(matching) > 1:
            ids = ", ".join(str(r.id) for r in matching)
            problems.append(f"journal rows {ids} all record {file} (created_at {migration.when})")
    return MigrationStatus(
        tag=migration.tag,
        migration_id=migration_id_of(migration.tag) or migration.tag,
        when=migration.when,
        date=iso_date(migration.when),
        status=status,
        hash_matches=hash_matches,
        journal_id=row.id if row is not None else None,
        problems=problems,
    )


def journal_checks(
    subject: str,
    migrations: list[Migration] | None,
    rows: list[JournalRow] | None,
    *,
    journal: str,
) -> list[Check]:
    """The migrations folder against the target's journal, for `rollbot doctor`.

    Every applied row must have its file, unchanged: a plan matches the newest row to a file
    to know what a rollback undoes, and the proof replays the files to build N-1.
    """
    if migrations is None:
        if rows is None:
            return [
                ok(subject, "migrations folder", f"no Drizzle journal ({journal}); none needed")
            ]
        return [
            warning(
                subject,
                "migrations folder",
                f"the target has a Drizzle journal ({journal}, {len(rows)} rows) but "
                "ROLLBOT_MIGRATIONS_DIR is not set: journal rows are not matched to files, no "
                "runbook can be derived and no plan is proved against N-1",
                "set ROLLBOT_MIGRATIONS_DIR to the drizzle-kit output folder (with "
                "meta/_journal.json)",
            )
        ]
    if rows is None:
        return [
            warning(
                subject,
                "migrations folder",
                f"ROLLBOT_MIGRATIONS_DIR is set but the target has no journal table {journal}",
                "check ROLLBOT_DRIZZLE_SCHEMA and ROLLBOT_DRIZZLE_TABLE, and that this is the "
                "application's database",
            )
        ]
    statuses = match_journal(migrations, rows)
    problems = [(s, p) for s in statuses for p in s.problems]
    if problems:
        return [
            error(
                subject,
                f"migration {status.tag}",
                problem,
                "make the folder the one the application was migrated from (same files, "
                "unedited), or correct the journal",
            )
            for status, problem in problems
        ]
    current = latest_applied(statuses)
    applied = sum(1 for s in statuses if s.status in {"applied", "current"})
    where = f"; current {current.tag}" if current else ""
    return [
        ok(
            subject,
            "migrations folder",
            f"{applied} journal rows match their files, hashes equal{where}",
        )
    ]
