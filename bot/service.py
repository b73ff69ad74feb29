"""The rollback service: where a request becomes a plan, a backup, an approval, an execution.

The CLI and the Slack handlers both call this and nothing else.

Every step is persisted (compare-and-set, with its audit event) before it is announced, so a
crash or a lost Slack message never leaves anyone believing something that did not happen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
import structlog

from bot.catalog import describe_target, read_facts
from bot.derive import derive_runbook
from bot.drizzle import Migration, read_migrations
from bot.errors import (
    BackupError,
    ConflictError,
    DatabaseUnavailableError,
    NotAllowedError,
    NotFoundError,
    RollbotError,
)
from bot.execute import RetryPolicy, execute_plan, xact_status
from bot.journal import read_journal
from bot.library import RunbookLibrary, load_library
from bot.migrations import find_by_query, journal_plan, lint, newer_applied, unexpected_drops
from bot.pgtools import PgTools, find_pg_tools
from bot.plan import Plan, build_plan
from bot.policy import decide_approval
from bot.rehearsal import rehearse
from bot.results import BackupInfo, Outcome, Rehearsal, outcome_of
from bot.run import Run, RunEvent, RunState
from bot.runbook import parse_runbook
from bot.snapshots import backup_with_counts
from bot.store import STATE_SCHEMA, RunStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.config import Settings
    from bot.outbox import Message
    from bot.runbook import Runbook
    from bot.targets import TargetConfig

log = structlog.get_logger()


class Notifier(Protocol):
    """How a run's changes reach people.

    `messages` renders what to send for a change; the store saves those messages in the same
    transaction as the change. `notice` renders a note that changes nothing (a refusal).
    `run_changed` is called after the commit (deliver now, print a line).
    """

    def messages(self, run: Run, event: str) -> list[Message]:
        """Messages announcing `event`, rendered from the run as stored."""

    def notice(self, run: Run, text: str) -> list[Message]:
        """Messages carrying a note about the run (e.g. why an approval did not count)."""

    def run_changed(self, run: Run, event: str) -> None:
        """Called once the change (and its messages) are committed."""


class SilentNotifier:
    """For callers that read the returned run instead."""

    def messages(self, run: Run, event: str) -> list[Message]:  # noqa: ARG002 - protocol
        """Nothing to send."""
        return []

    def notice(self, run: Run, text: str) -> list[Message]:  # noqa: ARG002 - protocol
        """Nothing to send."""
        return []

    def run_changed(self, run: Run, event: str) -> None:
        """Nothing to tell."""


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


class Rollbot:
    """Requests, approvals and executions of rollbacks, for one target database."""

    def __init__(
        self,
        settings: Settings,
        store: RunStore,
        *,
        notifier: Notifier | None = None,
        approvers: Callable[[tuple[str, ...]], frozenset[str]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier or SilentNotifier()
        self._expand = approvers or _direct_ids
        self._now = clock

    # -- reading ---------------------------------------------------------------------------

    def library(self) -> RunbookLibrary:
        """Runbooks are read fresh each time: an edit takes effect (and voids old plans)."""
        return load_library(self.settings.runbooks_dir)

    def run(self, run_id: int) -> Run:
        """One run by id."""
        return self.store.get(run_id)

    # -- the flow ----------------------------------------------------------------------------

    def approvers(self, target_name: str) -> frozenset[str]:
        """User ids allowed to approve on a target (user groups expanded)."""
        return self._expand(self.settings.approvers_for(self.settings.target(target_name)))

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
            plan=plan.model_dump(mode="json"),
            plan_hash=plan.hash,
            promoted_from=promoted,
        )
        with structlog.contextvars.bound_contextvars(run_id=run.id):
            log.info("run.requested", migration=runbook.name, requested_by=requested_by)
            self._announce(run, "requested")
            return self._prepare(run, plan, runbook, config)

    def _promotion(self, after: int, runbook_name: str, target: str) -> dict[str, Any]:
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
        outcome = outcome_of(earlier)
        counts = ", ".join(f"{t.table} {t.rows:,}" for t in outcome.dropped) if outcome else ""
        return {
            "run": earlier.id,
            "target": earlier.target_label,
            "summary": f"run {earlier.id} succeeded on {earlier.target_label}"
            + (f" ({counts})" if counts else ""),
        }

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
                backup={"full": backup.model_dump(mode="json"), "rows": rows},
                rehearsal=rehearsal.model_dump(mode="json"),
                reason=rehearsal.summary(),
            )
        return self._move(
            run,
            RunEvent.BACKUP_VERIFIED,
            backup={"full": backup.model_dump(mode="json"), "rows": rows},
            rehearsal=rehearsal.model_dump(mode="json") if rehearsal else None,
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
        plan = Plan.model_validate(run.plan)
        try:
            runbook = self.runbook(run.runbook_name)
            tools = find_pg_tools(plan.target.server_major, pg_bin=self.settings.pg_bin)
        except RollbotError as exc:
            return self._move(run, RunEvent.FAILED, reason=exc.render())

        def remember(pending: Outcome) -> None:
            self.store.update(run, xid=pending.xid, outcome=pending.model_dump(mode="json"))

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
        event = RunEvent.SUCCEEDED if outcome.succeeded else RunEvent.FAILED
        return self._move(run, event, outcome=outcome.model_dump(mode="json"), reason=outcome.error)

    def refuse(self, run: Run, user: str, reason: str) -> None:
        """Record why `user`'s action did not count, and tell them once (not per retry)."""
        notice = self.notifier.notice(run, f"{_mention(user)}: {reason}.")
        if self.store.record_refusal(run.id, user, reason, notice):
            log.info("run.approval_refused", user=user, why=reason)
            self._announce(run, "approval_refused")

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

    def reconcile(self) -> list[Run]:
        """Settle runs whose process died mid-way (kill -9, OOM); never re-run anything.

        A run is only touched when no live process holds its liveness lock, so a second
        replica starting up leaves the first one's work alone.
        """
        settled: list[Run] = []
        in_flight = [RunState.REQUESTED, RunState.BACKING_UP, RunState.APPROVED, RunState.EXECUTING]
        quiet_since = self._now() - self.settings.orphan_grace
        for run in self.store.recent(limit=500, states=in_flight):
            # A run is picked up by its worker a moment after it moves: only runs quiet for
            # the grace period, whose liveness lock nobody holds, are orphans.
            if run.updated_at > quiet_since or not self.store.orphaned(run.id):
                continue
            with structlog.contextvars.bound_contextvars(run_id=run.id):
                try:
                    moved = self._settle(run)
                except ConflictError:
                    continue
            if moved is not None:
                settled.append(moved)
        return settled

    def _settle(self, run: Run) -> Run | None:
        restarted = "rollbot stopped while this run was"
        if run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
            why = f"{restarted} backing up; nothing was run. Request a new plan"
            return self._move(run, RunEvent.BLOCKED, reason=why)
        if run.state is RunState.APPROVED:
            why = f"{restarted} about to execute; nothing was run. Request a new plan"
            return self._move(run, RunEvent.CANCELLED, reason=why)
        if run.xid is None:
            why = (
                f"{restarted} executing, before COMMIT: the transaction rolled back, "
                "nothing changed"
            )
            return self._move(run, RunEvent.FAILED, reason=why)
        status = xact_status(self.settings.target_conninfo(run.target_name), run.xid)
        if status == "in progress":
            return None  # its COMMIT is still being decided; look again at the next sweep
        if status == "committed":
            log.info("run.reconciled", xid=run.xid, status=status)
            return self._move(run, RunEvent.SUCCEEDED, reason=None)
        why = (
            f"{restarted} executing; PostgreSQL reports its transaction {status}: nothing changed"
            if status == "aborted"
            else f"{restarted} executing and PostgreSQL no longer knows transaction {run.xid}: "
            "check the schema by hand"
        )
        return self._move(run, RunEvent.FAILED, reason=why)

    def expire_due(self) -> list[Run]:
        """Close the approval window of runs whose time is up (also after a restart)."""
        now = self._now()
        expired: list[Run] = []
        for run in self.store.recent(limit=200, states=[RunState.AWAITING_APPROVAL]):
            if run.expires_at is not None and run.expires_at <= now:
                with structlog.contextvars.bound_contextvars(run_id=run.id):
                    try:
                        expired.append(
                            self._move(run, RunEvent.EXPIRED, reason="the approval window closed")
                        )
                    except ConflictError:
                        continue  # approved or cancelled in the meantime
        return expired

    # -- helpers ---------------------------------------------------------------------------

    def runbook(self, query: str) -> Runbook:
        """The runbook for a migration, or one derived from its forward migration file."""
        try:
            return self.library().find(query)
        except NotFoundError:
            migration = find_by_query(self.migrations(), query)
            if migration is None:
                raise
        text = derive_runbook(migration)
        derived = parse_runbook(text, file=f"derived from {migration.tag}.sql")
        return derived.model_copy(update={"derived": True})

    def migrations(self) -> list[Migration] | None:
        """The project's Drizzle migrations folder (ROLLBOT_MIGRATIONS_DIR), when configured."""
        folder = self.settings.migrations_dir
        return read_migrations(folder) if folder is not None else None

    def _plan(
        self, runbook: Runbook, target: TargetConfig, *, count: bool, latest_only: bool = False
    ) -> Plan:
        conninfo = target.url.get_secret_value()
        migrations = self.migrations()
        try:
            with psycopg.connect(
                conninfo,
                connect_timeout=max(1, int(self.settings.connect_timeout.total_seconds())),
                application_name="rollbot plan",
            ) as conn:
                conn.read_only = True
                described = describe_target(conn, name=target.name)
                rows = read_journal(
                    conn, schema=self.settings.drizzle_schema, table=self.settings.drizzle_table
                )
                budget = self.settings.count_budget if count else None
                facts = read_facts(conn, runbook, described, count_budget=budget)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(
                "The target database cannot be reached",
                why=type(exc).__name__,
                todo=f"check the connection of target {target.name} (DATABASE_URL or "
                "ROLLBOT_TARGETS) and that the server is up; nothing was planned",
            ) from None
        newer = newer_applied(runbook, migrations, rows)
        if latest_only and newer is not None:
            raise NotAllowedError(
                f"Only the newest applied migration can be rolled back, and that is {newer}",
                why=f"{runbook.name} is older; rolling it back first would leave {newer} on top "
                "of a schema it does not expect",
                todo=f"roll back {newer} first (several migrations = several runs, newest first)",
            )
        return build_plan(
            runbook,
            facts,
            lock_timeout=self.settings.lock_timeout,
            statement_timeout=self.settings.statement_timeout,
            journal=journal_plan(
                runbook,
                migrations,
                rows,
                schema=self.settings.drizzle_schema,
                table=self.settings.drizzle_table,
            ),
            lint=lint(runbook, migrations),
            more_blockers=unexpected_drops(runbook, facts, migrations)
            + ([f"{newer} was applied after {runbook.name}: roll it back first"] if newer else []),
        )

    def _check_binding(self, run: Run) -> None:
        """The approval is for this plan: same runbook file, same schema, same SQL."""
        approved = Plan.model_validate(run.plan)
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

    def _move(self, run: Run, event: RunEvent, *, actor: str | None = None, **changes: Any) -> Run:  # noqa: ANN401
        run = self.store.apply(
            run,
            event,
            actor=actor or "rollbot",
            render=lambda moved: self.notifier.messages(moved, event.value),
            **changes,
        )
        log.info("run.moved", to=run.state.value, on=event.value)
        self._announce(run, event.value)
        return run

    def _announce(self, run: Run, event: str) -> None:
        try:
            self.notifier.run_changed(run, event)
        except Exception:
            log.exception("notify.failed", on=event)

    def _exclude(self) -> tuple[str, ...]:
        """The state schema lives in the target unless ROLLBOT_STATE_URL says otherwise."""
        return (STATE_SCHEMA,) if self.settings.state_url is None else ()


def _mention(user: str) -> str:
    """Slack mentions for Slack ids; other names (CLI users) as they are."""
    return f"<@{user}>" if user[:1] in {"U", "W"} and user.isalnum() else user


def _direct_ids(configured: tuple[str, ...]) -> frozenset[str]:
    """Without Slack, user groups cannot be expanded: only user ids approve."""
    return frozenset(i for i in configured if i[:1] in {"U", "W"} or not i[:1].isupper())
