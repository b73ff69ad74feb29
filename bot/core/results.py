"""What a run produced: backups and execution outcomes, as plain stored values.

These models are written by the adapters (pg_dump, the executor) and read by everything that
reports on a run (terminal, Slack), so they live apart from the I/O that makes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bot.core.quarantine import Quarantine

if TYPE_CHECKING:
    from collections.abc import Iterable


class BackupInfo(BaseModel, frozen=True):
    """A verified backup: where it is, what it holds, and how to prove it was not altered."""

    kind: Literal["full", "final"]
    path: Path
    size_bytes: int
    sha256: str
    duration_s: float  # dump and verification together
    pg_dump_version: str
    tables: tuple[str, ...]  # tables whose rows the dump holds, as `schema.table`, sorted
    verified: bool
    created_at: AwareDatetime
    compression: str | None = None  # `gzip:1`; None in backups stored before it was kept
    # "affected": the whole schema, but rows only of the tables the plan needs (see README)
    scope: Literal["all", "affected"] = "all"
    pruned_at: AwareDatetime | None = None  # the file was deleted by `rollbot backups prune`
    # The snapshot the dump read (`xmin:xmax:xip,…`): a row whose writer it does not see was
    # written after the backup, so a purge can tell a changed row from one the file holds.
    snapshot: str | None = None


class Blocker(BaseModel):
    """A session that held a lock rollbot needed."""

    model_config = ConfigDict(frozen=True)

    pid: int
    application: str
    state: str
    age_s: float
    query: str

    def label(self) -> str:
        """`pid 4242 (psql, idle in transaction for 63 s): UPDATE assets …`."""
        app = self.application or "unknown application"
        return f"pid {self.pid} ({app}, {self.state} for {self.age_s:.0f} s): {self.query}"


class TableCount(BaseModel):
    """Rows a dropped table held, counted inside the rollback transaction."""

    model_config = ConfigDict(frozen=True)

    table: str
    rows: int
    backup_rows: int  # rows in the final backup: the same snapshot, so the same number


class NeighbourCount(BaseModel):
    """A table that stays: its rows before and after the statements, in the transaction."""

    model_config = ConfigDict(frozen=True)

    table: str
    before: int
    after: int


class AffectedCount(BaseModel):
    """A table changed through foreign-key actions or a dropped column: its rows, and why."""

    model_config = ConfigDict(frozen=True)

    table: str
    why: str
    before: int  # also the rows the final backup holds: the same snapshot
    after: int


class Outcome(BaseModel):
    """What an execution did, or why it changed nothing."""

    model_config = ConfigDict(frozen=True)

    succeeded: bool
    changed: bool = False
    dropped: tuple[TableCount, ...] = ()
    deleted: tuple[NeighbourCount, ...] = ()  # tables the runbook deleted rows from
    affected: tuple[AffectedCount, ...] = ()  # tables changed through cascades, dropped columns
    restored: tuple[TableCount, ...] = ()  # a restore: rows now in each table / in the backup
    neighbours: tuple[NeighbourCount, ...] = ()
    objects_expected: int = 0
    objects_gone: int = 0
    final_backup: BackupInfo | None = None
    duration_s: float = 0.0
    attempts: int = 1
    failed_statement: str | None = None
    failed_line: int | None = None
    error: str | None = None
    sqlstate: str | None = None
    blockers: tuple[Blocker, ...] = ()
    holder: str | None = None
    xid: int | None = None
    restore_hint: str | None = None  # the pg_restore command for the final backup
    notes: tuple[str, ...] = ()  # what the person should know next (e.g. the migration file)
    # Quarantine mode: where the dropped tables were moved, and its dump, taken after COMMIT
    # (None until then: "quarantined, final backup pending"). `final_backup` is then only
    # the dump, inside the transaction, of tables that stay but lose rows or a column.
    quarantine: Quarantine | None = None
    quarantine_backup: BackupInfo | None = None

    def final_backup_pending(self) -> bool:
        """A quarantined rollback whose dump of the quarantine has not been taken yet."""
        return self.succeeded and self.quarantine is not None and self.quarantine_backup is None


# The event that tells a quarantined run's thread its final backup is now taken.
FINAL_BACKUP_TAKEN = "final_backup_taken"


class Backup(BaseModel, frozen=True):
    """The verified pre-approval backup of a run, and the rows it holds per table.

    The row counts are what the execution and a later restore compare against.
    """

    full: BackupInfo
    rows: dict[str, int] = {}


SKIPPED = "; rehearsal skipped"


class RowChange(BaseModel, frozen=True):
    """Rows of a table the plan writes to, in the scratch copy, before and after the statements."""

    table: str
    before: int
    after: int | None  # None: the table was dropped


_SHOWN_DIFFERENCES = 8


class Proof(BaseModel, frozen=True):
    """Whether the schema a rollback leaves is the one the migrations before it build.

    Made on the rehearsal's copy after the plan's SQL committed there, against the schema
    Drizzle's migrator builds from the folder's migrations 0…N-1 (`bot.target.reference`).
    """

    reference: str  # "0022", the migration the schema must be at afterwards
    differences: tuple[str, ...] = ()  # "left behind: table variant_statistics", …
    skipped: str | None = None  # why it could not be made
    outside: tuple[str, ...] = ()  # objects no migration of the chain made: named, not compared

    @property
    def holds(self) -> bool:
        """Made, and nothing differs."""
        return self.skipped is None and not self.differences

    def summary(self) -> str:
        """`proved equal to 0022`, what differs, or (loudly) why it was not made."""
        if self.skipped is not None:
            return f"NOT proved equal to {self.reference}: {self.skipped}"
        if not self.differences:
            text = f"proved equal to {self.reference}"
            if self.outside:
                names = ", ".join(self.outside[:_SHOWN_DIFFERENCES])
                more = len(self.outside) - _SHOWN_DIFFERENCES
                names += f" and {more} more" if more > 0 else ""
                text += f" (not compared, no migration made them: {names})"
            return text
        shown = list(self.differences[:_SHOWN_DIFFERENCES])
        if len(self.differences) > _SHOWN_DIFFERENCES:
            shown.append(f"and {len(self.differences) - _SHOWN_DIFFERENCES} more")
        return (
            f"the schema left would not be {self.reference}'s, so the journal would lie: "
            + "; ".join(shown)
        )


class Rehearsal(BaseModel, frozen=True):
    """What running the plan on a scratch copy showed, or why it did not run."""

    ok: bool
    skipped: str | None = None  # why it did not run, ending in "; rehearsal skipped"
    duration_s: float = 0.0  # the rollback transaction, first statement to COMMIT, checks included
    total_s: float = 0.0  # create, restore, run, checks and drop
    locks: tuple[str, ...] = ()  # "ACCESS EXCLUSIVE on public.users", strongest first
    failed_statement: str | None = None
    failed_line: int | None = None
    error: str | None = None  # PostgreSQL's message, or what the checks found different
    data: Literal["none", "affected", "all"] = "none"
    rows: tuple[RowChange, ...] = ()  # the tables the plan writes to (empty ones with "none")
    cleanup_error: str | None = None  # the scratch database could not be dropped
    scratch: str | None = None  # the scratch database it used (and dropped), for the record
    ran_as: str | None = None  # the role the runbook ran as in the copy
    privilege_note: str | None = None  # why it ran as rollbot's own role, not a throwaway one
    proof: Proof | None = None  # for a rollback that changes the journal: is the schema N-1's?

    def summary(self) -> str:
        """One line for the approver: `rehearsed: ok in 0.4 s (ACCESS EXCLUSIVE on 8 tables)`."""
        if self.skipped is not None:
            text = f"rehearsal skipped: {self.skipped.removesuffix(SKIPPED)}"
        elif not self.ok:
            where = f" at line {self.failed_line}" if self.failed_line is not None else ""
            text = f"rehearsal failed{where}: {self.error}"
        else:
            text = f"rehearsed: ok in {_seconds(self.duration_s)}"
            if self.locks:
                text += f" ({lock_counts(self.locks)})"
        if self.skipped is None and self.ran_as:
            text += f"; {self.privileges()}"
        if self.proof is not None and (self.ok or self.skipped is not None):
            text += f"; {self.proof.summary()}"
        if self.cleanup_error is not None:
            text += f"; {self.cleanup_error}"
        return text

    def privileges(self) -> str:
        """What the runbook could reach in the copy: the approver's answer to "ran as whom?"."""
        if self.privilege_note is None:
            return "ran as a throwaway role owning only the copy"
        return f"ran as rollbot's own role {self.ran_as}: {self.privilege_note}"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value:.2f} s"  # noqa: PLR2004


def lock_counts(locks: Iterable[str]) -> str:
    """`ACCESS EXCLUSIVE on 8 tables, ROW EXCLUSIVE on 1 table`, modes in the order given."""
    counts: dict[str, int] = {}
    for lock in locks:
        mode = lock.split(" on ", 1)[0]
        counts[mode] = counts.get(mode, 0) + 1
    return ", ".join(f"{m} on {n} table{'s' if n != 1 else ''}" for m, n in counts.items())
