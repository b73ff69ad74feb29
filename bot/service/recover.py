"""After a crash: settle what a dead process left mid-way, and close expired windows.

Nothing is ever re-run on its own. A run is only touched when no live process holds its
liveness lock, so a second replica starting up leaves the first one's work alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import (
    ConflictError,
)
from bot.core.run import Run
from bot.core.states import RunEvent, RunState
from bot.service.execution import back_up_quarantine

if TYPE_CHECKING:
    from bot.core.run import Run
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner

log = structlog.get_logger()


class Recovery:
    """Start-up and periodic reconciliation of runs."""

    def __init__(self, runs: Lifecycle, planner: Planner) -> None:
        self._runs = runs
        self._settings = planner.settings
        self._planner = planner

    def reconcile(self, *, final_backups: bool = True) -> list[Run]:
        """Settle runs whose process died mid-way (kill -9, OOM); never re-run anything.

        A run is only touched when no live process holds its liveness lock, so a second
        replica starting up leaves the first one's work alone. `final_backups=False` leaves
        the pending final backups alone: a person who just pressed Ctrl-C during one is
        waiting for the command to end, not for the dump to start over.
        """
        settled: list[Run] = []
        in_flight = [RunState.REQUESTED, RunState.BACKING_UP, RunState.APPROVED, RunState.EXECUTING]
        for run in self._runs.store.recent(limit=500, states=in_flight):
            # Every live worker holds its run's liveness lock from before the run enters an
            # in-flight state until after it leaves it: a lock we can take is an orphan's.
            # Holding it while settling keeps a second sweeper (another replica) off it.
            with structlog.contextvars.bound_contextvars(run_id=run.id):
                try:
                    with self._runs.store.working_on(run.id):
                        # Read again under the lock: a process that lost its lock (its state
                        # connection dropped) may still have stored its transaction id.
                        fresh = self._runs.get(run.id)
                        moved = self._settle(fresh) if fresh.state in in_flight else None
                except ConflictError:
                    continue  # alive elsewhere, or moved on since it was read
            if moved is not None:
                settled.append(moved)
        if final_backups:
            self._final_backups_pending()
        return settled

    def _final_backups_pending(self) -> None:
        """Take the final backup of quarantined rollbacks that committed without one.

        A crash (or a failed dump) between COMMIT and the dump of the quarantine leaves a run
        that succeeded, its tables intact in the quarantine, its final backup pending; the
        dump reads only the quarantine, so taking it now costs the application nothing.
        """
        for run in self._runs.store.recent(limit=200, states=[RunState.SUCCEEDED]):
            if run.outcome is None or not run.outcome.final_backup_pending():
                continue
            with structlog.contextvars.bound_contextvars(run_id=run.id):
                try:
                    with self._runs.store.working_on(run.id):
                        fresh = self._runs.get(run.id)
                        if fresh.outcome is not None and fresh.outcome.final_backup_pending():
                            back_up_quarantine(self._runs, self._planner, fresh)
                except ConflictError:
                    continue  # its own process is still at it

    def _settle(self, run: Run) -> Run | None:
        restarted = "rollbot stopped while this run was"
        if run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
            why = f"{restarted} backing up; nothing was run. Request a new plan"
            return self._runs.move(run, RunEvent.BLOCKED, reason=why, exact=True)
        if run.state is RunState.APPROVED:
            why = f"{restarted} about to execute; nothing was run. Request a new plan"
            return self._runs.move(run, RunEvent.CANCELLED, reason=why, exact=True)
        database = self._planner.database(run.target_name)
        # Its backend may outlive it, queued on a lock the application then waits behind.
        ended = database.end_run_sessions(run.id)
        if ended:
            log.info("run.orphan_sessions_ended", sessions=ended)
        if run.xid is None:
            why = (
                f"{restarted} executing, before COMMIT: the transaction rolled back, "
                "nothing changed"
            )
            return self._runs.move(run, RunEvent.FAILED, reason=why, exact=True)
        status = database.xact_status(run.xid)
        if status == "in progress":
            return None  # its COMMIT is still being decided; look again at the next sweep
        if status == "committed":
            log.info("run.reconciled", xid=run.xid, status=status)
            return self._runs.move(run, RunEvent.SUCCEEDED, reason=None, exact=True)
        why = (
            f"{restarted} executing; PostgreSQL reports its transaction {status}: nothing changed"
            if status == "aborted"
            else f"{restarted} executing and PostgreSQL no longer knows transaction {run.xid}: "
            "check the schema by hand"
        )
        return self._runs.move(run, RunEvent.FAILED, reason=why, exact=True)

    def expire_due(self) -> list[Run]:
        """Close the approval window of runs whose time is up (also after a restart)."""
        now = self._runs.now()
        expired: list[Run] = []
        for run in self._runs.store.recent(limit=200, states=[RunState.AWAITING_APPROVAL]):
            if run.expires_at is not None and run.expires_at <= now:
                with structlog.contextvars.bound_contextvars(run_id=run.id):
                    try:
                        expired.append(
                            self._runs.move(
                                run, RunEvent.EXPIRED, reason="the approval window closed"
                            )
                        )
                    except ConflictError:
                        continue  # approved or cancelled in the meantime
        return expired
