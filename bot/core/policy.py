"""Who may approve a run, and when: one pure decision shared by Slack and the CLI.

Every refusal says why, because the person reacting at 3 a.m. needs to know whether to wait,
ask someone else, or request a new plan.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic needs it at runtime

from pydantic import BaseModel, ConfigDict

from bot.core.run import Run, RunState


class Decision(BaseModel):
    """Whether an approval counts; when it does, whether it completes the approvals."""

    model_config = ConfigDict(frozen=True)

    counts: bool
    reason: str
    complete: bool = False


def decide_approval(  # noqa: PLR0911 - one guard per reason reads best
    run: Run, user: str, *, approvers: frozenset[str], now: datetime
) -> Decision:
    """May `user` approve `run` now? `approvers` holds user ids, groups already expanded."""
    name = f"run {run.id}"
    if run.state in {RunState.REQUESTED, RunState.BACKING_UP}:
        return Decision(
            counts=False,
            reason=f"The backup for {name} is not verified yet: approval opens when it is",
        )
    if run.state in {RunState.APPROVED, RunState.EXECUTING}:
        return Decision(counts=False, reason=f"{name} is already approved and running")
    if run.state is not RunState.AWAITING_APPROVAL:
        return Decision(
            counts=False,
            reason=f"{name} is {run.state.replace('_', ' ')}: request a new plan to roll back",
        )
    if run.expires_at is not None and now >= run.expires_at:
        return Decision(
            counts=False,
            reason=f"The approval window for {name} closed at "
            f"{run.expires_at:%Y-%m-%d %H:%M} UTC: request a new plan",
        )
    if user == run.requested_by:
        return Decision(
            counts=False,
            reason=f"you requested {name}, so you cannot approve it: another approver must",
        )
    if user not in approvers:
        return Decision(
            counts=False,
            reason=f"you are not an approver for {name} (ROLLBOT_APPROVERS lists who may approve)",
        )
    if user in run.approvers:
        missing = run.required_approvals - len(run.approvers)
        return Decision(
            counts=False,
            reason=f"you already approved {name}; {missing} more approval(s) needed "
            "from other approvers",
        )
    complete = len(run.approvers) + 1 >= run.required_approvals
    remaining = run.required_approvals - len(run.approvers) - 1
    reason = "approved" if complete else f"approval recorded; {remaining} more needed"
    return Decision(counts=True, reason=reason, complete=complete)
