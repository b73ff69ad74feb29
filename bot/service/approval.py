"""Approvals and cancellations: who may, for which plan, and what happens once enough came.

An approval is bound to the plan it was given for: the runbook is re-planned against the live
schema first, and a plan that changed is cancelled and re-requested instead of executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core import texts
from bot.core.errors import ConflictError, NotAllowedError, RollbotError
from bot.core.policy import decide_approval, decide_rejection, one_line
from bot.core.run import RESTORE_KINDS, TRANSITIONS, Run
from bot.core.states import RunEvent
from bot.core.texts import rejected

if TYPE_CHECKING:
    from bot.service.execution import Execution
    from bot.service.lifecycle import Lifecycle
    from bot.service.planner import Planner
    from bot.service.planning import Planning

log = structlog.get_logger()
_WITHDRAW_ATTEMPTS = 3


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


class RefusedError(NotAllowedError):
    """An approval or rejection that did not count; `first` says whether to tell the person.

    The refusal is recorded either way; a person is told once per run and reason, however
    often they press or react.
    """

    def __init__(self, reason: str, *, first: bool) -> None:
        super().__init__(reason, todo="nothing was changed")
        self.reason = reason
        self.first = first


class Approval:
    """`rollbot approve`, the approval reaction, and cancelling a run not yet executing."""

    def __init__(
        self, runs: Lifecycle, planner: Planner, planning: Planning, execution: Execution
    ) -> None:
        self._runs = runs
        self._planner = planner
        self._planning = planning
        self._execution = execution

    def approve(self, run_id: int, user: str, *, privately: bool = False) -> Run:
        """Count `user`'s approval if the policy allows it; execute once enough have come.

        `privately`: a refusal is for the caller to tell the person (a button press), not
        posted in the thread (a reaction, which everyone saw).
        """
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            return self._approve(self._runs.get(run_id), user, privately=privately)

    def _approve(self, run: Run, user: str, *, privately: bool) -> Run:
        decision = decide_approval(
            run,
            user,
            approvers=self._planner.approvers(run.target_name),
            now=self._runs.now(),
            unexpanded=self._planner.unexpanded_groups(run.target_name),
        )
        if not decision.counts:
            first = self._runs.refuse(run, user, decision.reason, public=not privately)
            raise RefusedError(decision.reason, first=first)
        self._still_the_approved_plan(run)
        run = self._runs.add_approval(run, user)
        log.info("run.approval_added", user=user)
        if len(run.approvers) < run.required_approvals:
            self._runs.announce(run, "approval_added")
            return run
        return self._execution.approve_and_execute(run, user)

    def cancel(self, run_id: int, user: str) -> Run:
        """The requester or an approver may cancel a run that has not started executing."""
        run = self._runs.get(run_id)
        if user != run.requested_by and user not in self._planner.approvers(run.target_name):
            unexpanded = self._planner.unexpanded_groups(run.target_name)
            raise NotAllowedError(
                f"{user} may not cancel {run.label()}",
                why="only its requester or an approver can",
                todo=texts.not_an_approver(run.label(), unexpanded)
                if unexpanded
                else "ask them, or let it expire",
            )
        return self._runs.move(run, RunEvent.CANCELLED, actor=user, reason=f"cancelled by {user}")

    def withdraw(self, run_id: int, reason: str) -> Run | None:
        """Rollbot cancels a run it cannot announce; None if it is past cancelling.

        A run executing or finished is left as it is: the caller says so instead.
        """
        for _ in range(_WITHDRAW_ATTEMPTS):
            run = self._runs.get(run_id)
            if (run.state, RunEvent.CANCELLED) not in TRANSITIONS:
                return None
            try:
                return self._runs.move(run, RunEvent.CANCELLED, reason=reason)
            except ConflictError:
                continue  # it moved on meanwhile (its backup finished): look again
        return None

    def may_reject(self, run: Run, user: str) -> None:
        """Refuse (RefusedError) a rejection `user` may not give, before they write a reason."""
        decision = decide_rejection(run, user, approvers=self._planner.approvers(run.target_name))
        if not decision.counts:
            first = self._runs.refuse(run, user, decision.reason, public=False)
            raise RefusedError(decision.reason, first=first)

    def reject(self, run_id: int, user: str, reason: str) -> Run:
        """Cancel a plan awaiting approval, with the reason in the rejecter's own words.

        The same policy decides as for the button that asked for the reason (the run may have
        moved on since), and the move is a compare-and-set from awaiting approval, so a
        rejection can never cancel a run that has begun executing.
        """
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            run = self._runs.get(run_id)
            decision = decide_rejection(
                run, user, approvers=self._planner.approvers(run.target_name), reason=reason
            )
            if not decision.counts:
                first = self._runs.refuse(run, user, decision.reason, public=False)
                raise RefusedError(decision.reason, first=first)
            said = one_line(reason)
            log.info("run.rejected", user=user)
            return self._runs.move(
                run,
                RunEvent.CANCELLED,
                actor=user,
                data={"reason": said},
                reason=rejected(user, said),
            )

    def _still_the_approved_plan(self, run: Run) -> None:
        """The approval is for this plan: same runbook file, same schema, same SQL."""
        if run.kind in RESTORE_KINDS:
            return  # a restore or purge is re-built and compared at execution
        approved = run.rollback_plan()
        try:
            runbook = self._planner.runbook(run.runbook_name, run.target_name)
            target = self._planner.settings.target(run.target_name)
            current = self._planner.plan(runbook, target, count=False)
        except RollbotError as exc:
            why = f"the runbook can no longer be planned: {exc.render()}"
            self._runs.move(run, RunEvent.CANCELLED, reason=why)
            raise StalePlanError(run, None, why) from None
        if current.hash == approved.hash and not current.blocked:
            return
        why = (
            "the runbook file changed since the plan was made"
            if runbook.sha256 != approved.runbook_sha256
            else "the live schema changed since the plan was made"
        )
        self._runs.move(run, RunEvent.CANCELLED, reason=f"stale plan: {why}")
        try:
            new = self._planning.request(
                run.runbook_name, requested_by=run.requested_by, channel=run.channel
            )
        except (RollbotError, ConflictError):
            new = None
        raise StalePlanError(run, new, why)
