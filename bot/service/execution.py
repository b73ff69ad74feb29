"""Running an approved run: the outcome is stored before anyone is told.

The transaction id is recorded before COMMIT, so a crash between COMMIT and the outcome being
stored can be settled from PostgreSQL's own record instead of guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import ConflictError, RollbotError
from bot.core.results import FINAL_BACKUP_TAKEN
from bot.core.run import RESTORE_KINDS, Run
from bot.core.states import RunEvent
from bot.target.quarantine import quarantine_exists
from bot.target.snapshots import quarantine_backup

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.results import Outcome
    from bot.core.run import Run
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner
    from bot.service.restore import Restore

log = structlog.get_logger()


class Execution:
    """Approved runs, rollbacks and restores alike, executed once under the liveness lock."""

    def __init__(
        self,
        runs: Lifecycle,
        planner: Planner,
        restore: Restore,
        *,
        defer: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        self._runs = runs
        self._planner = planner
        self._restore = restore
        self._settings = planner.settings
        # Where a quarantined run's final backup is carried on after its outcome is stored
        # (`serve`: a worker thread); None: the caller takes it (`final_backup`). Either way a
        # backup nobody took is taken by the next sweep.
        self._defer = defer

    def approve_and_execute(self, run: Run, approver: str) -> Run:
        """Move a fully approved run to approved and run it; the outcome is stored first.

        The liveness lock is taken before the move, so an approved run nobody holds is one
        whose process died: no moment exists in which a live run looks orphaned. It returns
        at the stored outcome: a quarantined run's final backup (a dump of the quarantine,
        no lock on the application's tables) is carried on afterwards, see `final_backup`.
        """
        with (
            structlog.contextvars.bound_contextvars(run_id=run.id),
            self._runs.store.working_on(run.id),
        ):
            run = self._runs.move(run, RunEvent.APPROVED, actor=approver)
            done = self._execute(run)
        if self._defer is not None and done.outcome and done.outcome.final_backup_pending():
            run_id = done.id

            def carry_on() -> None:
                self.final_backup(run_id)

            self._defer(carry_on)
        return done

    def final_backup(self, run_id: int) -> Run:
        """Take a quarantined run's pending final backup, under its liveness lock.

        The run as it is when another process holds it (the sweep got there first), or when
        nothing is pending; a failed dump is left pending for the next sweep.
        """
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            try:
                with self._runs.store.working_on(run_id):
                    run = self._runs.get(run_id)
                    if run.outcome is None or not run.outcome.final_backup_pending():
                        return run
                    return back_up_quarantine(self._runs, self._planner, run)
            except ConflictError:
                log.info("run.final_backup_elsewhere")
                return self._runs.get(run_id)

    def _execute(self, run: Run) -> Run:
        run = self._runs.move(run, RunEvent.EXECUTION_STARTED)
        if run.kind in RESTORE_KINDS:
            return self._restore.execute(run)
        # A rollback's transaction, with its locks, final backup and check before COMMIT: a
        # restore (or any command that only settles) does not pay for importing it.
        from bot.target.execute import RetryPolicy, execute_plan  # noqa: PLC0415

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
        return done

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
    The backup is stored with the thread's update, then announced.
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
    return runs.record_and_announce(
        run,
        FINAL_BACKUP_TAKEN,
        outcome=outcome.model_copy(update={"quarantine_backup": info, "notes": notes}),
    )
