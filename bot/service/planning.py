"""A rollback request: planned, backed up and rehearsed, then left awaiting approval.

Each step is stored before it is announced, so a crash or a lost Slack message never leaves
anyone believing a backup exists that does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import BackupError, ConflictError, NotAllowedError
from bot.core.names import qualified
from bot.core.progress import Progress
from bot.core.results import Backup
from bot.core.run import Promotion, Run
from bot.core.states import RunEvent, RunState, state_predicate
from bot.target.rehearsal import rehearse
from bot.target.snapshots import backup_name, backup_with_counts

if TYPE_CHECKING:
    from bot.core.plan import Plan
    from bot.core.results import BackupInfo, Rehearsal
    from bot.core.runbook import Runbook
    from bot.core.targets import TargetConfig
    from bot.pgclient.tools import PgTools
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner
    from bot.target.database import TargetDatabase

log = structlog.get_logger()


class Planning:
    """`rollbot plan` and `/rollback plan`: from a migration name to a run awaiting approval."""

    def __init__(self, runs: Lifecycle, planner: Planner) -> None:
        self._runs = runs
        self._planner = planner
        self._settings = planner.settings

    def request(
        self,
        query: str,
        *,
        requested_by: str,
        channel: str | None = None,
        target: str | None = None,
        after: int | None = None,
    ) -> Run:
        """Plan a rollback, take and verify the backup, and leave it awaiting approval."""
        config = self._settings.target(target)
        self._planner.latest_first(query, config)
        runbook = self._planner.runbook(query, config.name)
        promoted = self._promotion(after, runbook.name, config.name) if after else None
        plan = self._planner.plan(runbook, config, count=True, latest_only=True)
        run_id = self._runs.reserve_id()
        # Held from before the row exists until the run awaits approval (or has ended).
        with (
            self._runs.store.working_on(run_id),
            structlog.contextvars.bound_contextvars(run_id=run_id),
        ):
            run = self._runs.create(
                run_id,
                migration_id=runbook.migration_id,
                runbook_name=runbook.name,
                target_name=plan.target.name,
                target_label=plan.target.label(),
                target_identity=plan.target.identity(),
                requested_by=requested_by,
                channel=channel,
                required_approvals=self._settings.approvals_for(config),
                plan=plan,
                plan_hash=plan.hash,
                promoted_from=promoted,
            )
            log.info("run.requested", migration=runbook.name, requested_by=requested_by)
            self._runs.announce(run, "requested")
            try:
                return self._prepare(run, plan, runbook, config)
            except ConflictError:
                # Cancelled while it was being prepared (by a person, or by rollbot when Slack
                # refused its channel): that is the answer, not a conflict.
                current = self._runs.get(run.id)
                if current.state is RunState.CANCELLED:
                    return current
                raise

    def _promotion(self, after: int, runbook_name: str, target: str) -> Promotion:
        """What an earlier run proved: it must have rolled back the same migration elsewhere."""
        earlier = self._runs.get(after)
        problem = None
        if earlier.runbook_name != runbook_name:
            problem = f"it rolled back {earlier.runbook_name}, not {runbook_name}"
        elif earlier.target_name == target:
            problem = f"it ran on {target} itself"
        elif earlier.state is not RunState.SUCCEEDED:
            problem = f"it {state_predicate(earlier.state)}, it has not succeeded"
        if problem:
            raise NotAllowedError(
                f"Run {after} cannot be promoted to {target}",
                why=problem,
                todo="name a run that succeeded for this migration on another target",
            )
        outcome = earlier.outcome
        counts = ", ".join(f"{t.table} {t.rows:,}" for t in outcome.dropped) if outcome else ""
        return Promotion(
            run=earlier.id,
            target=earlier.target_label,
            summary=f"run {earlier.id} succeeded on {earlier.target_label}"
            + (f" ({counts})" if counts else ""),
        )

    def _prepare(self, run: Run, plan: Plan, runbook: Runbook, target: TargetConfig) -> Run:
        """Block, or back up (and rehearse) and open the approval window."""
        if plan.blocked:
            return self._runs.move(run, RunEvent.BLOCKED, reason="; ".join(plan.blockers))
        database = self._planner.database(target.name)
        try:
            tools = database.tools(plan.target.server_major)
        except BackupError as exc:
            return self._runs.move(run, RunEvent.BLOCKED, reason=exc.render())
        return self._back_up(run, plan, runbook, database, tools)

    def _back_up(
        self, run: Run, plan: Plan, runbook: Runbook, database: TargetDatabase, tools: PgTools
    ) -> Run:
        run = self._runs.move(run, RunEvent.BACKUP_STARTED)
        try:
            backup, rows = backup_with_counts(
                tools,
                database,
                self._settings.backup_dir,
                name=backup_name(database, run.id, f"{self._runs.now():%Y%m%d-%H%M%S}"),
                tables=plan.backed_up_tables(),
                exclude_schemas=self._planner.exclude(),
                purpose=f"run {run.id} backup",
                lock_wait=plan.lock_timeout,
                data_of=None if self._settings.backup_scope == "all" else backup_data_of(plan),
                compression=self._settings.backup_compression,
                on_progress=lambda written, expected: self._runs.progress(
                    run, Progress(written=written, expected=expected)
                ),
            )
        except BackupError as exc:
            return self._runs.move(run, RunEvent.BLOCKED, reason=exc.render())
        rehearsal = self._rehearse(plan, runbook, database, backup, tools)
        if rehearsal is not None and not rehearsal.ok and rehearsal.skipped is None:
            return self._runs.move(
                run,
                RunEvent.BLOCKED,
                backup=Backup(full=backup, rows=rows),
                rehearsal=rehearsal,
                reason=rehearsal.summary(),
            )
        return self._runs.move(
            run,
            RunEvent.BACKUP_VERIFIED,
            backup=Backup(full=backup, rows=rows),
            rehearsal=rehearsal,
            expires_at=self._runs.now() + self._settings.approval_ttl,
        )

    def _rehearse(
        self,
        plan: Plan,
        runbook: Runbook,
        database: TargetDatabase,
        backup: BackupInfo,
        tools: PgTools,
    ) -> Rehearsal | None:
        mode = self._settings.rehearsal_for(database.config)
        if mode == "off":
            return None
        server = self._planner.rehearsal_server(database)
        return rehearse(
            plan,
            runbook,
            backup=backup,
            tools=tools,
            server=server,
            data="none" if mode == "schema" else mode,
            reference=self._planner.reference(plan, runbook, server),
        )


def backup_data_of(plan: Plan) -> list[str]:
    """Besides the tables it changes, whose rows a proportional backup keeps, and why.

    The tables its statements lock (a rehearsal restores their rows too) and Drizzle's
    journal (a restore puts its row back); the backup adds what they reference. Tables a
    quarantined rollback only moves aside are left out: their rows stay in the database
    until a purge, which needs the quarantine's own dump (a rehearsal moves them empty).
    """
    aside = set(plan.moved_only())
    tables = [t for t in (*plan.write_locked, *plan.locked) if t not in aside]
    if plan.journal is not None:
        tables.append(qualified((plan.journal.schema_name, plan.journal.table)))
    return tables
