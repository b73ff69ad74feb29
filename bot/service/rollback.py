"""The rollback service: where a request becomes a plan, a backup, an approval, an execution.

The CLI and the Slack handlers both call this and nothing else.

Every step is persisted (compare-and-set, with its audit event) before it is announced, so a
crash or a lost Slack message never leaves anyone believing something that did not happen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import (
    BackupError,
    ConflictError,
    NotAllowedError,
    RollbotError,
)
from bot.core.policy import decide_approval
from bot.core.results import Backup, BackupInfo, Outcome, Rehearsal
from bot.core.run import Promotion, Run, RunEvent, RunState
from bot.pgclient.tools import PgTools, find_pg_tools
from bot.service.lifecycle import Flow
from bot.service.recover import Recovery
from bot.service.restore import Restores
from bot.target.execute import RetryPolicy, execute_plan
from bot.target.rehearsal import rehearse
from bot.target.snapshots import backup_with_counts

if TYPE_CHECKING:
    from bot.core.plan import Plan
    from bot.core.runbook import Runbook
    from bot.core.targets import TargetConfig


log = structlog.get_logger()


class StalePlanError(RollbotError):
    """An approval arrived for a plan that no longer matches the runbook or the schema."""

    def __init__(self, old: Run, new: Run | None, why: str) -> None:
        todo = (
            f"a new plan was made: approve {new.label()} instead"
            if new is not None
            else "request a new plan"
        )
        super().__init__(f"The approval of {old.label()} was refused", why=why, todo=todo)
        self.old = old
        self.new = new


class Rollbot(Restores, Recovery, Flow):
    """Requests, approvals and executions of rollbacks (and restores), on named targets."""

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
        config = self.settings.target(target)
        runbook = self.runbook(query)
        promoted = self._promotion(after, runbook.name, config.name) if after else None
        plan = self._plan(runbook, config, count=True, latest_only=True)
        run = self.store.create(
            render=lambda created: self.notifier.messages(created, "requested"),
            migration_id=runbook.migration_id,
            runbook_name=runbook.name,
            target_name=plan.target.name,
            target_label=plan.target.label(),
            target_identity=plan.target.identity(),
            requested_by=requested_by,
            channel=channel,
            required_approvals=self.settings.approvals_for(config),
            plan=plan,
            plan_hash=plan.hash,
            promoted_from=promoted,
        )
        with structlog.contextvars.bound_contextvars(run_id=run.id):
            log.info("run.requested", migration=runbook.name, requested_by=requested_by)
            self._announce(run, "requested")
            return self._prepare(run, plan, runbook, config)

    def _promotion(self, after: int, runbook_name: str, target: str) -> Promotion:
        """What an earlier run proved: it must have rolled back the same migration elsewhere."""
        earlier = self.store.get(after)
        problem = None
        if earlier.runbook_name != runbook_name:
            problem = f"it rolled back {earlier.runbook_name}, not {runbook_name}"
        elif earlier.target_name == target:
            problem = f"it ran on {target} itself"
        elif earlier.state is not RunState.SUCCEEDED:
            problem = f"it is {earlier.state.replace('_', ' ')}, not succeeded"
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
            return self._move(run, RunEvent.BLOCKED, reason="; ".join(plan.blockers))
        try:
            tools = find_pg_tools(plan.target.server_major, pg_bin=self.settings.pg_bin)
        except BackupError as exc:
            return self._move(run, RunEvent.BLOCKED, reason=exc.render())
        with self.store.working_on(run.id):
            return self._back_up(run, plan, runbook, target, tools)

    def _back_up(
        self, run: Run, plan: Plan, runbook: Runbook, target: TargetConfig, tools: PgTools
    ) -> Run:
        run = self._move(run, RunEvent.BACKUP_STARTED)
        conninfo = target.url.get_secret_value()
        try:
            backup, rows = backup_with_counts(
                tools,
                conninfo,
                self.settings.backup_dir,
                name=f"run-{run.id}-{self._now():%Y%m%d-%H%M%S}",
                tables=plan.write_locked,
                exclude_schemas=self._exclude(),
                application_name=f"rollbot run {run.id} backup",
            )
        except BackupError as exc:
            return self._move(run, RunEvent.BLOCKED, reason=exc.render())
        rehearsal = self._rehearse(plan, runbook, target, backup, tools)
        if rehearsal is not None and not rehearsal.ok and rehearsal.skipped is None:
            return self._move(
                run,
                RunEvent.BLOCKED,
                backup=Backup(full=backup, rows=rows),
                rehearsal=rehearsal,
                reason=rehearsal.summary(),
            )
        return self._move(
            run,
            RunEvent.BACKUP_VERIFIED,
            backup=Backup(full=backup, rows=rows),
            rehearsal=rehearsal,
            expires_at=self._now() + self.settings.approval_ttl,
        )

    def _rehearse(
        self,
        plan: Plan,
        runbook: Runbook,
        target: TargetConfig,
        backup: BackupInfo,
        tools: PgTools,
    ) -> Rehearsal | None:
        mode = self.settings.rehearsal_for(target)
        if mode == "off":
            return None
        server = self.settings.rehearsal_url or target.url
        return rehearse(
            plan,
            runbook,
            backup=backup,
            tools=tools,
            server_conninfo=server.get_secret_value(),
            data="none" if mode == "schema" else mode,
        )

    def approve(self, run_id: int, user: str) -> Run:
        """Count `user`'s approval if the policy allows it; execute once enough have come."""
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            return self._approve(self.store.get(run_id), user)

    def _approve(self, run: Run, user: str) -> Run:
        decision = decide_approval(
            run, user, approvers=self.approvers(run.target_name), now=self._now()
        )
        if not decision.counts:
            self.refuse(run, user, decision.reason)
            raise NotAllowedError(decision.reason, todo="nothing was changed")
        self._check_binding(run)
        run = self.store.add_approval(
            run, user, render=lambda r: self.notifier.messages(r, "approval_added")
        )
        log.info("run.approval_added", user=user)
        if len(run.approvers) < run.required_approvals:
            self._announce(run, "approval_added")
            return run
        run = self._move(run, RunEvent.APPROVED, actor=user)
        return self.execute(run)

    def execute(self, run: Run) -> Run:
        """Run an approved plan; the outcome is stored before anyone is told."""
        with structlog.contextvars.bound_contextvars(run_id=run.id), self.store.working_on(run.id):
            return self._execute(run)

    def _execute(self, run: Run) -> Run:
        run = self._move(run, RunEvent.EXECUTION_STARTED)
        if run.kind == "restore":
            return self._execute_restore(run)
        plan = run.rollback_plan()
        try:
            runbook = self.runbook(run.runbook_name)
            tools = find_pg_tools(plan.target.server_major, pg_bin=self.settings.pg_bin)
        except RollbotError as exc:
            return self._move(run, RunEvent.FAILED, reason=exc.render())

        def remember(pending: Outcome) -> None:
            self.store.update(run, xid=pending.xid, outcome=pending)

        outcome = execute_plan(
            plan,
            runbook,
            conninfo=self.settings.target_conninfo(run.target_name),
            tools=tools,
            backup_dir=self.settings.backup_dir,
            run_id=run.id,
            on_commit_pending=remember,
            retry=RetryPolicy(
                attempts=self.settings.lock_retries,
                base_delay_s=self.settings.lock_retry_delay.total_seconds(),
            ),
            exclude_schemas=self._exclude(),
        )
        log.info("run.executed", succeeded=outcome.succeeded, duration_s=outcome.duration_s)
        if outcome.succeeded:
            outcome = outcome.model_copy(update={"notes": self._notes(run)})
        event = RunEvent.SUCCEEDED if outcome.succeeded else RunEvent.FAILED
        return self._move(run, event, outcome=outcome, reason=outcome.error)

    def _notes(self, run: Run) -> tuple[str, ...]:
        """What to do next: a migration file left in the folder will be applied again."""
        folder = self.settings.migrations_dir
        if folder is None or not (folder / f"{run.runbook_name}.sql").is_file():
            return ()
        return (
            (
                f"{run.runbook_name}.sql is still in {folder}: the next `drizzle-kit migrate` will "
                "apply it again. Remove it and its meta/_journal.json entry if it should stay "
                "rolled back."
            ),
        )

    def cancel(self, run_id: int, user: str) -> Run:
        """The requester or an approver may cancel a run that has not started executing."""
        run = self.store.get(run_id)
        if user != run.requested_by and user not in self.approvers(run.target_name):
            raise NotAllowedError(
                f"{user} may not cancel {run.label()}",
                why="only its requester or an approver can",
                todo="ask them, or let it expire",
            )
        return self._move(run, RunEvent.CANCELLED, actor=user, reason=f"cancelled by {user}")

    def _check_binding(self, run: Run) -> None:
        """The approval is for this plan: same runbook file, same schema, same SQL."""
        if run.kind == "restore":
            return  # a restore is re-built and compared at execution, under its transaction
        approved = run.rollback_plan()
        try:
            runbook = self.runbook(run.runbook_name)
            current = self._plan(runbook, self.settings.target(run.target_name), count=False)
        except RollbotError as exc:
            why = f"the runbook can no longer be planned: {exc.render()}"
            self._move(run, RunEvent.CANCELLED, reason=why)
            raise StalePlanError(run, None, why) from None
        if current.hash == approved.hash and not current.blocked:
            return
        why = (
            "the runbook file changed since the plan was made"
            if runbook.sha256 != approved.runbook_sha256
            else "the live schema changed since the plan was made"
        )
        self._move(run, RunEvent.CANCELLED, reason=f"stale plan: {why}")
        try:
            new = self.request(run.runbook_name, requested_by=run.requested_by, channel=run.channel)
        except (RollbotError, ConflictError):
            new = None
        raise StalePlanError(run, new, why)
