"""Which backup files may go: ROLLBOT_BACKUP_KEEP, and the backups that are never pruned.

A backup is a run's only way back, so the decision is made here, purely, from the runs alone,
and every file gets a reason: `rollbot backups prune` prints what it deleted and what it kept
and why. The rules (README "Backups and their retention", SECURITY.md):

- Within retention: the files of each target's N newest rollbacks (`20`), or younger than an
  age (`14d`), are kept.
- Never pruned, whatever their age: the backups of a run still in progress; those of each
  target's newest succeeded rollback; and the backup a restore reads (the final one when the
  rollback took it, else the pre-approval one) of a succeeded rollback not restored yet that is
  within retention counted from the target's newest succeeded rollback instead of from now, so
  a target left quiet for months still keeps its last restorable rollbacks; and the backup an
  active restore reads.
- Everything else beyond retention is deleted.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bot.core.durations import parse_duration
from bot.core.states import ACTIVE, RunState

if TYPE_CHECKING:
    from bot.core.run import Run

Kind = Literal["pre-approval", "final"]
_COUNT = re.compile(r"^\s*(\d+)\s*$")


class Keep(BaseModel):
    """ROLLBOT_BACKUP_KEEP: a number of runs per target, or an age; never both."""

    model_config = ConfigDict(frozen=True)

    runs: int | None = None
    age: timedelta | None = None

    def label(self) -> str:
        """`the 20 newest runs per target`, `14 days`: as prune explains itself."""
        if self.runs is not None:
            return f"the {self.runs} newest rollbacks per target"
        assert self.age is not None  # noqa: S101 - one of the two, by construction
        days = self.age / timedelta(days=1)
        return f"{days:g} days" if days >= 1 else f"{self.age.total_seconds():g} s"


def parse_keep(value: str) -> Keep | None:
    """`all` (or empty): keep everything; `20`: runs per target; `14d`, `36h`: an age."""
    text = value.strip().lower()
    if text in {"", "all"}:
        return None
    if count := _COUNT.match(text):
        runs = int(count[1])
        if runs < 1:
            msg = f"{value!r} would keep no backup at all; keep at least 1, or write all"
            raise ValueError(msg)
        return Keep(runs=runs)
    try:
        age = parse_duration(text)
    except ValueError:
        msg = f"{value!r} is neither a number of runs (20) nor an age (14d, 36h); or write all"
        raise ValueError(msg) from None
    if age <= timedelta(0):
        msg = f"{value!r} would keep no backup at all; give a positive age such as 14d"
        raise ValueError(msg)
    return Keep(age=age)


class BackupFile(BaseModel):
    """One backup file as a run records it, and what the listing says of it."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    target: str
    kind: Kind
    path: Path
    size_bytes: int
    created_at: AwareDatetime
    run_state: RunState
    scope: str = "all"
    pruned_at: AwareDatetime | None = None
    restore_needs: bool = False  # a restore of its run would read this file


class Verdict(BaseModel):
    """What prune does with a file, and the one sentence saying why."""

    model_config = ConfigDict(frozen=True)

    file: BackupFile
    delete: bool
    reason: str


class Listed(BaseModel):
    """A backup file as `rollbot backups` lists it: its record, and whether it is on disk."""

    model_config = ConfigDict(frozen=True)

    file: BackupFile
    on_disk: bool


class Pruned(BaseModel):
    """What a prune did: files deleted, files kept (each with its reason), and failures."""

    model_config = ConfigDict(frozen=True)

    keep: str  # the retention applied, as a person reads it
    deleted: tuple[Verdict, ...] = ()
    kept: tuple[Verdict, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def freed_bytes(self) -> int:
        """The recorded size of the deleted files."""
        return sum(v.file.size_bytes for v in self.deleted)


def backup_files(runs: list[Run]) -> list[BackupFile]:
    """Every backup file the rollbacks among `runs` recorded, newest run first.

    A restore run shows its source's backup but writes none, so only rollbacks are counted.
    """
    restored = _restored(runs)
    files: list[BackupFile] = []
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        if run.kind != "rollback":
            continue
        final = run.outcome.final_backup if run.outcome else None
        # Quarantine mode: the dump of the quarantine, taken after COMMIT, is its final backup
        # (what a purge checks before dropping the rows for good).
        aside = run.outcome.quarantine_backup if run.outcome else None
        full = run.backup.full if run.backup else None
        reads = final or full  # what a restore of this run reads
        open_for_restore = run.state is RunState.SUCCEEDED and run.id not in restored
        for kind, info in (("pre-approval", full), ("final", final), ("final", aside)):
            if info is None:
                continue
            files.append(
                BackupFile(
                    run_id=run.id,
                    target=run.target_name,
                    kind=kind,
                    path=info.path,
                    size_bytes=info.size_bytes,
                    created_at=info.created_at,
                    run_state=run.state,
                    scope=info.scope,
                    pruned_at=info.pruned_at,
                    restore_needs=open_for_restore and (info is reads or info is aside),
                )
            )
    return files


def _restored(runs: list[Run]) -> set[int]:
    """Rollbacks a succeeded restore has put back: a restore will not read them again."""
    return {
        r.promoted_from.run
        for r in runs
        if r.kind == "restore" and r.state is RunState.SUCCEEDED and r.promoted_from
    }


def _restoring(runs: list[Run]) -> set[int]:
    """Rollbacks an active restore is about to read."""
    return {
        r.promoted_from.run
        for r in runs
        if r.kind == "restore" and r.state in ACTIVE and r.promoted_from
    }


def decide(runs: list[Run], keep: Keep, now: datetime) -> list[Verdict]:
    """For each backup file not pruned yet: delete or keep, and why (see the module's rules)."""
    files = [f for f in backup_files(runs) if f.pruned_at is None]
    restoring = _restoring(runs)
    by_target: dict[str, list[BackupFile]] = {}
    for file in files:
        by_target.setdefault(file.target, []).append(file)
    verdicts: list[Verdict] = []
    for target_files in by_target.values():
        runs_newest_first = _run_ids(target_files)
        succeeded = _run_ids([f for f in target_files if f.run_state is RunState.SUCCEEDED])
        newest_success = succeeded[0] if succeeded else None
        success_at = {f.run_id: f.created_at for f in target_files}
        for file in target_files:
            reason = _protected(file, newest_success, restoring)
            if reason is None and file.restore_needs:
                anchor = success_at[newest_success] if newest_success is not None else now
                if _within(keep, file, succeeded, anchor):
                    reason = (
                        "a restore may still need it: its rollback succeeded, is not restored, "
                        f"and is within {keep.label()} of the newest succeeded rollback"
                    )
            if reason is None and _within(keep, file, runs_newest_first, now):
                reason = f"within retention ({keep.label()})"
            verdicts.append(
                Verdict(
                    file=file,
                    delete=reason is None,
                    reason=reason or f"beyond retention ({keep.label()})",
                )
            )
    return sorted(verdicts, key=lambda v: (-v.file.run_id, v.file.kind))


def _run_ids(files: list[BackupFile]) -> list[int]:
    return sorted({f.run_id for f in files}, reverse=True)


def _protected(file: BackupFile, newest_success: int | None, restoring: set[int]) -> str | None:
    if file.run_state in ACTIVE:
        return f"run {file.run_id} is still {file.run_state.replace('_', ' ')}"
    if file.run_id == newest_success:
        return f"the newest succeeded rollback on {file.target}"
    if file.run_id in restoring:
        return f"a restore of run {file.run_id} is in progress"
    return None


def _within(keep: Keep, file: BackupFile, newest_first: list[int], anchor: datetime) -> bool:
    """Inside the window: among the N newest runs, or created within the age of `anchor`."""
    if keep.runs is not None:
        return file.run_id in newest_first[: keep.runs]
    assert keep.age is not None  # noqa: S101 - one of the two, by construction
    return anchor - file.created_at <= keep.age
