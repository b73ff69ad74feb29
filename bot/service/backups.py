"""`rollbot backups` and `rollbot backups prune`: the backup files, and retention applied.

The decision is the core's (`bot.core.retention`); this use case reads every run that
recorded a backup, records each pruned file on its run (an audit event and `pruned_at`,
stored before the file is deleted) and deletes it, so `rollbot show` and a restore say
"pruned" instead of failing on a missing file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import ConflictError
from bot.core.retention import Keep, Listed, Pruned, Verdict, backup_files, decide
from bot.target.backup import backup_on_disk, remove_backup

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from bot.state.store import RunStore

log = structlog.get_logger()


class Backups:
    """Listing and pruning the backup files of every target's runs."""

    def __init__(self, store: RunStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def list(self) -> list[Listed]:
        """Every backup file runs recorded, newest run first, with whether it is still there."""
        files = backup_files(self._store.with_backups())
        return [
            Listed(file=f, on_disk=f.pruned_at is None and backup_on_disk(f.path)) for f in files
        ]

    def prune(self, keep: Keep, *, actor: str) -> Pruned:
        """Delete the files beyond `keep` that nothing protects; record each on its run first."""
        now = self._clock()
        verdicts = decide(self._store.with_backups(), keep, now)
        deleted: list[Verdict] = []
        problems: list[str] = []
        for verdict in verdicts:
            if not verdict.delete:
                continue
            file = verdict.file
            try:
                self._store.record_pruned(
                    self._store.get(file.run_id),
                    kind=file.kind,
                    path=str(file.path),
                    reason=verdict.reason,
                    actor=actor,
                    at=now,
                )
            except ConflictError as exc:
                problems.append(f"run {file.run_id}: {exc.what}; its backup was left alone")
                continue
            if problem := remove_backup(file.path):
                problems.append(problem)
            log.info("backup.pruned", run_id=file.run_id, kind=file.kind, reason=verdict.reason)
            deleted.append(verdict)
        return Pruned(
            keep=keep.label(),
            deleted=tuple(deleted),
            kept=tuple(v for v in verdicts if not v.delete),
            problems=tuple(problems),
        )
