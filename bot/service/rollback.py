"""The rollback service: the one object the CLI and the Slack handlers call.

It only wires the use cases together (planning, approval, execution, restore, recovery) around
one run lifecycle, and forwards to them; what each step does lives with the step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.core.errors import RollbotError
from bot.service.approval import Approval, RefusedError, StalePlanError
from bot.service.execution import Execution
from bot.service.lifecycle import Lifecycle, SilentNotifier
from bot.service.planner import Planner
from bot.service.planning import Planning
from bot.service.recover import Recovery
from bot.service.reminders import Reminders
from bot.service.restore import Restore
from bot.target.quarantine import list_quarantines

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.config import Settings
    from bot.core.library import RunbookLibrary
    from bot.core.plan import Plan
    from bot.core.run import Run
    from bot.drizzle.history import HistoryEntry
    from bot.service.lifecycle import Notifier
    from bot.state.store import RunStore

__all__ = ["RefusedError", "Rollbot", "StalePlanError"]


class Rollbot:
    """Requests, approvals and executions of rollbacks (and restores), on named targets."""

    def __init__(
        self,
        settings: Settings,
        store: RunStore,
        *,
        notifier: Notifier | None = None,
        approvers: Callable[[tuple[str, ...]], frozenset[str]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        defer: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        # `defer`: where a quarantined run's final backup is carried on once its outcome is
        # stored and announced (`serve` hands it to a worker); None: the caller takes it with
        # `final_backup`, or the next sweep does.
        self.settings = settings
        self.store = store
        self.notifier = notifier or SilentNotifier()
        self.runs = Lifecycle(store, self.notifier, clock)
        self.planner = Planner(settings, store, approvers)
        self.planning = Planning(self.runs, self.planner)
        self.restores = Restore(self.runs, self.planner)
        self.execution = Execution(self.runs, self.planner, self.restores, defer=defer)
        self.approval = Approval(self.runs, self.planner, self.planning, self.execution)
        self.recovery = Recovery(self.runs, self.planner)
        self.reminders = Reminders(self.runs, settings)

    def request(
        self,
        query: str,
        *,
        requested_by: str,
        channel: str | None = None,
        target: str | None = None,
        after: int | None = None,
    ) -> Run:
        """Plan a rollback, take and verify the backup, and leave it awaiting approval.

        Runs whose approval window has closed are expired first, so a forgotten plan never
        blocks a new one for the same migration, whether or not a sweeper is running.
        """
        self.recovery.expire_due()
        return self.planning.request(
            query, requested_by=requested_by, channel=channel, target=target, after=after
        )

    def preview(self, query: str, *, target: str | None = None) -> Plan:
        """The plan as it would be made now, with no run, no backup and nothing posted."""
        config = self.settings.target(target)
        runbook = self.planner.runbook(query, config.name)
        return self.planner.plan(runbook, config, count=True, latest_only=True)

    def settle(self, *, final_backups: bool = True) -> list[Run]:
        """Settle runs whose process is gone and expire closed approval windows.

        `final_backups=False`: no pending final backup is taken (after Ctrl-C: see reconcile).
        """
        return [
            *self.recovery.reconcile(final_backups=final_backups),
            *self.recovery.expire_due(),
        ]

    def approve(self, run_id: int, user: str, *, privately: bool = False) -> Run:
        """Count `user`'s approval if the policy allows it; execute once enough have come."""
        return self.approval.approve(run_id, user, privately=privately)

    def final_backup(self, run_id: int) -> Run:
        """Take a quarantined run's pending final backup (a dump of the quarantine only)."""
        return self.execution.final_backup(run_id)

    def may_reject(self, run: Run, user: str) -> None:
        """Refuse, before a reason is asked, a rejection `user` may not give."""
        self.approval.may_reject(run, user)

    def reject(self, run_id: int, user: str, reason: str) -> Run:
        """Cancel a plan awaiting approval, with the rejecter's reason."""
        return self.approval.reject(run_id, user, reason)

    def remind_due(self) -> list[Run]:
        """Remind approvers, once per run, that an approval window closes soon."""
        return self.reminders.remind_due()

    def cancel(self, run_id: int, user: str) -> Run:
        """The requester or an approver may cancel a run that has not started executing."""
        return self.approval.cancel(run_id, user)

    def withdraw(self, run_id: int, reason: str) -> Run | None:
        """Rollbot cancels a run it cannot announce (None if it already executes or ended)."""
        return self.approval.withdraw(run_id, reason)

    def refuse(self, run: Run, user: str, reason: str, *, public: bool = True) -> bool:
        """Record why `user`'s action did not count; True the first time they are told so."""
        return self.runs.refuse(run, user, reason, public=public)

    def request_restore(self, run_id: int, *, requested_by: str, channel: str | None = None) -> Run:
        """Plan the restore of what a rollback dropped; it then awaits approval like a rollback."""
        return self.restores.request(run_id, requested_by=requested_by, channel=channel)

    def request_purge(self, run_id: int, *, requested_by: str, channel: str | None = None) -> Run:
        """Plan dropping a quarantine for good; it then awaits approval like a rollback."""
        return self.restores.request_purge(run_id, requested_by=requested_by, channel=channel)

    def quarantines_held(self, runs: list[Run]) -> dict[str, int | None]:
        """The disk each of these runs' quarantines holds now, by schema name.

        None: restored or purged since. A target that cannot be reached is left out (its runs
        then show the size stored at plan time).
        """
        held: dict[str, int | None] = {}
        quarantined = [
            (r.target_name, r.outcome.quarantine.schema_name)
            for r in runs
            if r.outcome and r.outcome.quarantine
        ]
        for name in sorted({target for target, _ in quarantined}):
            try:
                found = {
                    q.schema_name: q.size_bytes
                    for q in list_quarantines(self.planner.database(name))
                }
            except (RollbotError, KeyError):
                continue
            held |= {schema: found.get(schema) for target, schema in quarantined if target == name}
        return held

    def reconcile(self) -> list[Run]:
        """Settle runs whose process died mid-way; never re-run anything."""
        return self.recovery.reconcile()

    def expire_due(self) -> list[Run]:
        """Close the approval window of runs whose time is up (also after a restart)."""
        return self.recovery.expire_due()

    def run(self, run_id: int) -> Run:
        """One run by id."""
        return self.runs.get(run_id)

    def library(self) -> RunbookLibrary:
        """Runbooks are read fresh each time: an edit takes effect (and voids old plans)."""
        return self.planner.library()

    def history(
        self, target: str | None = None, person: Callable[[str], str] = str
    ) -> list[HistoryEntry]:
        """The migration history of a target, live from its Drizzle journal and rollbot's runs."""
        return self.planner.history(target, person)

    def approvers(self, target_name: str) -> frozenset[str]:
        """User ids allowed to approve on a target (user groups expanded)."""
        return self.planner.approvers(target_name)
