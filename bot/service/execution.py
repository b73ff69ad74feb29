"""Running an approved run: the outcome is stored before anyone is told.

The transaction id is recorded before COMMIT, so a crash between COMMIT and the outcome being
stored can be settled from PostgreSQL's own record instead of guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import ConflictError, RollbotError
from bot.core.run import RESTORE_KINDS, Run
from bot.core.states import RunEvent
from bot.target.execute import RetryPolicy, execute_plan
from bot.target.quarantine import quarantine_exists
from bot.target.snapshots import quarantine_backup

if TYPE_CHECKING:
    from bot.core.results import Outcome
    from bot.core.run import Run
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner
    from bot.service.restore import Restore

log = structlog.get_logger()


class Execution:
    """Approved runs, rollbacks and restores alike, executed once under the liveness lock."""

    def __init__(self, runs: Lifecycle, planner: Planner, restore: Restore) -> None:
        self._runs = runs
        self._planner = planner
        self._restore = restore
        self._settings = planner.settings

    def approve_and_execute(self, run: Run, approver: str) -> Run:
        """Move a fully approved run to approved and run it; the outcome is stored first.

        The liveness lock is taken before the move, so an approved run nobody holds is one
        whose process died: no moment exists in which a live run looks orphaned.
        """
        with (
            structlog.contextvars.bound_contextvars(run_id=run.id),
            self._runs.store.working_on(run.id),
        ):
            run = self._runs.move(run, RunEvent.APPROVED, actor=approver)
            return self._execute(run)

    def _execute(self, run: Run) -> Run:
        run = self._runs.move(run, RunEvent.EXECUTION_STARTED)
        if run.kind in RESTORE_KINDS:
            return self._restore.execute(run)
        plan = run.rollback_plan()
        try:
            runbook = self._planner.runbook(run.runbook_name, run.target_name)
            database = self._planner.database(run.target_name)
            tools = database.tools(plan.target.server_major)
        except RollbotError as exc:
            return self._runs.move(run, RunEvent.FAILED, reason=exc.render())
        latest = [run]  # what `remember` stored: the final move starts from it

        def remember(pending: Outcome) -> None:
            latest.append(self._runs.record(run, xid=pending.xid, outcome=pending))

        outcome = execute_plan(
            plan,
            runbook,
            target=database,
            tools=tools,
            backup_dir=self._settings.backup_dir,
            run_id=run.id,
            on_commit_pending=remember,
            retry=RetryPolicy(
                attempts=self._settings.lock_retries,
                base_delay_s=self._settings.lock_retry_delay.total_seconds(),
                max_delay_s=max(2.0, self._settings.lock_retry_delay.total_seconds()),
            ),
            exclude_schemas=self._planner.exclude(),
        )
        log.info("run.executed", succeeded=outcome.succeeded, duration_s=outcome.duration_s)
        if outcome.succeeded:
            outcome = outcome.model_copy(update={"notes": self._notes(run)})
        event = RunEvent.SUCCEEDED if outcome.succeeded else RunEvent.FAILED
        try:
            done = self._runs.move(latest[-1], event, outcome=outcome, reason=outcome.error)
        except ConflictError:
            # This process lost its liveness lock (its state connection dropped) and another
            # settled the run from PostgreSQL's own answer meanwhile: that record stands.
            log.warning("run.settled_elsewhere", succeeded=outcome.succeeded)
            return self._runs.get(run.id)
        return self.back_up_quarantine(done) if outcome.final_backup_pending() else done

    def back_up_quarantine(self, run: Run) -> Run:
        """The final backup of a quarantined rollback (see `back_up_quarantine`)."""
        return back_up_quarantine(self._runs, self._planner, run)

    def _notes(self, run: Run) -> tuple[str, ...]:
        """What to do next: a migration file left in the folder will be applied again."""
        folder = self._settings.migrations_dir
        if folder is None or not (folder / f"{run.runbook_name}.sql").is_file():
            return ()
        return (
            (
                f"{run.runbook_name}.sql is still in {folder}: the next `drizzle-kit migrate` will "
                "apply it again. Remove it and its meta/_journal.json entry if it should stay "
                "rolled back."
            ),
        )


def back_up_quarantine(runs: Lifecycle, planner: Planner, run: Run) -> Run:
    """The final backup of a quarantined rollback, dumped from its quarantine after COMMIT.

    The run already says it succeeded (stored, then announced) with its final backup
    pending; a crash before this stores the dump leaves it so, and the next sweep takes it.
    A failure is logged and left pending: the rows are still in the database meanwhile.
    """
    outcome = run.outcome
    if outcome is None or outcome.quarantine is None:
        return run
    database = planner.database(run.target_name)
    try:
        if not quarantine_exists(database, outcome.quarantine.schema_name):
            log.warning("run.quarantine_gone", schema=outcome.quarantine.schema_name)
            return run
        info, rows = quarantine_backup(
            outcome.quarantine,
            tools=database.tools(run.rollback_plan().target.server_major),
            target=database,
            backup_dir=planner.settings.backup_dir,
            run_id=run.id,
        )
    except RollbotError as exc:
        log.warning("run.final_backup_pending", error=exc.render())
        return run
    moved = {o.moved: o.name for o in outcome.quarantine.tables()}
    counted = {moved[table]: n for table, n in rows.items()}
    changed = [t for t in outcome.dropped if counted.get(t.table, t.rows) != t.rows]
    notes = outcome.notes + tuple(
        f"the quarantine's final backup holds {counted[t.table]:,} rows of {t.table}, "
        f"{t.rows:,} were moved: something wrote to the quarantine"
        for t in changed
    )
    log.info("run.final_backup_taken", path=str(info.path), size_bytes=info.size_bytes)
    return runs.record(
        run, outcome=outcome.model_copy(update={"quarantine_backup": info, "notes": notes})
    )
