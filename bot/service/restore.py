"""Restores as runs: planned from a succeeded rollback's backup, approved, executed once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.errors import (
    NotAllowedError,
    RollbotError,
)
from bot.core.results import Backup, Outcome, TableCount
from bot.core.run import Promotion, Run
from bot.core.states import RunEvent, RunState, state_predicate
from bot.target.restore import (
    build_move_back,
    build_purge,
    build_restore,
    run_move_back,
    run_restore,
    run_verify_queries,
    source_backup,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.restore import RestorePlan
    from bot.pgclient.tools import PgTools
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner
    from bot.target.database import TargetDatabase


log = structlog.get_logger()


class Restore:
    """`rollbot restore RUN` and `/rollback restore RUN`."""

    def __init__(self, runs: Lifecycle, planner: Planner) -> None:
        self._runs = runs
        self._planner = planner
        self._settings = planner.settings

    def request(self, run_id: int, *, requested_by: str, channel: str | None = None) -> Run:
        """Plan the restore of what a rollback dropped; it then awaits approval like a rollback."""
        return self._request("restore", run_id, requested_by=requested_by, channel=channel)

    def request_purge(self, run_id: int, *, requested_by: str, channel: str | None = None) -> Run:
        """Plan dropping a rollback's quarantine for good; approved like a rollback."""
        source = self._runs.get(run_id)
        outcome = source.outcome
        if outcome is None or outcome.quarantine is None:
            raise NotAllowedError(
                f"Run {run_id} has no quarantine to purge",
                why="only a rollback that succeeded in quarantine mode moved tables aside",
                todo="name such a run; `rollbot runs` shows each quarantine and its size",
            )
        return self._request("purge", run_id, requested_by=requested_by, channel=channel)

    def _request(
        self, kind: str, run_id: int, *, requested_by: str, channel: str | None = None
    ) -> Run:
        source = self._runs.get(run_id)
        if source.kind != "rollback" or source.state is not RunState.SUCCEEDED:
            raise NotAllowedError(
                f"Run {run_id} cannot be {'restored' if kind == 'restore' else 'purged'}",
                why=f"it is a {source.kind} that {state_predicate(source.state)}; only a "
                f"succeeded rollback has something to {kind}",
                todo="name a rollback run that succeeded on this target",
            )
        if kind == "restore":
            _refuse_if_definitions_put_back(source)
        config = self._settings.target(source.target_name)
        database = self._planner.database(config.name)
        major = source.rollback_plan().target.server_major
        restore, _, _ = self._restore_plan(kind, source, database, lambda: database.tools(major))
        backup = source_backup(source)
        run_id = self._runs.reserve_id()
        with (
            self._runs.store.working_on(run_id),
            structlog.contextvars.bound_contextvars(run_id=run_id),
        ):
            run = self._runs.create(
                run_id,
                kind=kind,
                migration_id=source.migration_id,
                runbook_name=source.runbook_name,
                target_name=source.target_name,
                target_label=source.target_label,
                target_identity=source.target_identity,
                requested_by=requested_by,
                channel=channel,
                required_approvals=self._settings.approvals_for(config),
                plan=restore,
                plan_hash=restore.hash,
                promoted_from=Promotion(
                    run=source.id,
                    summary=f"restores run {source.id}"
                    if kind == "restore"
                    else f"purges the quarantine of run {source.id}",
                ),
            )
            log.info(
                "run.restore_requested", kind=kind, source=source.id, requested_by=requested_by
            )
            self._runs.announce(run, "requested")
            if restore.blocked:
                return self._runs.move(run, RunEvent.BLOCKED, reason="; ".join(restore.blockers))
            run = self._runs.move(run, RunEvent.BACKUP_STARTED)
            return self._runs.move(
                run,
                RunEvent.BACKUP_VERIFIED,
                backup=Backup(full=backup, rows=dict(restore.rows)),
                expires_at=self._runs.now() + self._settings.approval_ttl,
            )

    def _restore_plan(
        self, kind: str, source: Run, database: TargetDatabase, tools: Callable[[], PgTools]
    ) -> tuple[RestorePlan, str, bool]:
        """The plan, its script, and whether psql must run it (else the driver does).

        `tools` probes the client tools; a move back that reloads nothing never calls it.
        """
        lock_timeout_s = self._settings.lock_timeout.total_seconds()
        quarantined = source.outcome is not None and source.outcome.quarantine is not None
        if kind == "purge":
            purge, script = build_purge(
                source, tools=tools(), target=database, lock_timeout_s=lock_timeout_s
            )
            return purge, script, True
        if quarantined:
            return build_move_back(
                source,
                tools=tools,
                target=database,
                lock_timeout_s=lock_timeout_s,
                verify_queries=self._planner.runbook(source.runbook_name).verify_queries,
            )
        restore, script = build_restore(
            source,
            tools=tools(),
            target=database,
            lock_timeout_s=lock_timeout_s,
            verify_queries=self._planner.runbook(source.runbook_name).verify_queries,
        )
        return restore, script, True

    def execute(self, run: Run) -> Run:
        """Recreate what the source rollback dropped, exactly as approved, in one transaction."""
        approved = run.restore_plan()
        source = self._runs.get(approved.source_run)
        database = self._planner.database(run.target_name)
        major = approved.target.server_major
        recorded = [run]

        def remember(xid: int) -> None:
            # Stored before the script runs: a crash around COMMIT is settled by this id.
            recorded.append(self._runs.record(recorded[-1], xid=xid))

        try:
            current, script, client = self._restore_plan(
                run.kind, source, database, lambda: database.tools(major)
            )
            _same_as_approved(current, approved)
            if client:
                duration = run_restore(
                    script,
                    tools=database.tools(major),
                    target=database,
                    run_id=run.id,
                    on_xid=remember,
                )
            else:
                duration = run_move_back(script, target=database, run_id=run.id, on_xid=remember)
        except RollbotError as exc:
            run = recorded[-1]
            outcome = Outcome(succeeded=False, error=exc.render())
            return self._runs.move(run, RunEvent.FAILED, outcome=outcome, reason=exc.render())
        run = recorded[-1]
        queries = approved.verify_queries  # as approved: the hash above covers them
        if run.kind == "purge":
            outcome = Outcome(succeeded=True, changed=True, duration_s=duration)
            log.info("run.purged", duration_s=duration, schema=approved.quarantine)
            return self._runs.move(run, RunEvent.SUCCEEDED, outcome=outcome)
        outcome = Outcome(
            succeeded=True,
            changed=True,
            duration_s=duration,
            notes=run_verify_queries(database, queries, timeout=self._settings.statement_timeout),
            restored=tuple(
                TableCount(table=table, rows=rows, backup_rows=rows) for table, rows in current.rows
            ),
            objects_expected=len(current.objects),
            objects_gone=len(current.objects),
        )
        log.info("run.restored", duration_s=duration)
        return self._runs.move(run, RunEvent.SUCCEEDED, outcome=outcome)


def _same_as_approved(current: RestorePlan, approved: RestorePlan) -> None:
    """The restore about to run must be the one approved, and must still be possible."""
    if current.hash != approved.hash or current.blocked:
        raise RollbotError(
            "The backup, the schema or the runbook's verify queries changed after the restore "
            "was approved",
            why="; ".join(current.blockers) or "the restore SQL is no longer the same",
            todo="request the restore again",
        )


def _refuse_if_definitions_put_back(source: Run) -> None:
    """A restore moves back what the rollback dropped, and the journal row: nothing more.

    A rollback that also put definitions back (a rename, NOT NULL, an index or constraint,
    an enum made again) would leave them at N-1 while the journal says N: schema and journal
    apart. Going forward again is then the migration's own business.
    """
    put_back = source.rollback_plan().puts_back()
    if not put_back:
        return
    first, more = put_back[0], len(put_back) - 1
    others = f" and {more} more" if more else ""
    outcome = source.outcome
    quarantine = outcome.quarantine if outcome is not None else None
    kept = (
        f"; the rows it moved aside stay in {quarantine.schema_name} (and its final backup) "
        "until a purge: copy back by hand what the migration makes again empty"
        if quarantine is not None
        else ""
    )
    raise NotAllowedError(
        f"Run {source.id} cannot be restored",
        why=f"besides dropping, it put definitions back ({first.kind}, line {first.line} of "
        f"its runbook{others}); a restore moves back only what was dropped, so the schema "
        f"would not be {source.migration_id}'s while Drizzle's journal said it is",
        todo=f"apply {source.migration_id} again the way it was applied (drizzle-kit "
        f"migrate){kept}",
    )
