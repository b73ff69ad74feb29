"""Who may approve a run, and when: one pure decision shared by Slack and the CLI.

Every refusal says why, because the person reacting at 3 a.m. needs to know whether to wait,
ask someone else, or request a new plan.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta  # noqa: TC003 - pydantic needs it at runtime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bot.core import texts
from bot.core.states import RunState, state_predicate

if TYPE_CHECKING:
    from bot.core.run import Run


class Decision(BaseModel):
    """Whether an approval counts; when it does, whether it completes the approvals."""

    model_config = ConfigDict(frozen=True)

    counts: bool
    reason: str
    complete: bool = False


def decide_approval(  # noqa: PLR0911 - one guard per reason reads best
    run: Run,
    user: str,
    *,
    approvers: frozenset[str],
    now: datetime,
    unexpanded: tuple[str, ...] = (),
) -> Decision:
    """May `user` approve `run` now? `approvers` holds user ids, groups already expanded.

    `unexpanded` names the configured user groups nobody could look up (no Slack token): a
    member of one is refused with the fix for that, not told they are no approver.
    """
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
            reason=f"{name} {state_predicate(run.state)}: request a new plan to roll back",
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
        return Decision(counts=False, reason=texts.not_an_approver(name, unexpanded))
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


# A person as Slack names them: a member ID, which stays the same when their name changes.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def user_id_problem(text: str) -> str | None:
    """What is wrong with a user ID typed on the command line, or None.

    The command line records the ID it is given as the requester or approver; a name, an
    empty string or a typo would be recorded as someone nobody can find afterwards.
    """
    return None if _USER_ID.fullmatch(text) else texts.not_a_user_id(text)


REASON_LIMIT = 500  # a rejection's reason, as stored and shown


def decide_rejection(
    run: Run, user: str, *, approvers: frozenset[str], reason: str | None = None
) -> Decision:
    """Whether `user` may reject `run` now: cancel it before approval, with a reason.

    A rejection is the approver's "no": only an approver or the requester may give it, and
    only while the plan awaits approval, so it can never race an execution that has begun.
    `reason` is checked when given; the form asks for it before anything is decided.
    """
    name = f"run {run.id}"
    if run.state is not RunState.AWAITING_APPROVAL:
        return Decision(
            counts=False,
            reason=f"{name} {state_predicate(run.state)}: it can no longer be rejected",
        )
    if user != run.requested_by and user not in approvers:
        return Decision(
            counts=False,
            reason=f"you may not reject {name}: only its requester or an approver can "
            "(ROLLBOT_APPROVERS lists who may approve)",
        )
    if reason is not None:
        problem = reason_problem(reason)
        if problem is not None:
            return Decision(counts=False, reason=problem)
    return Decision(counts=True, reason="rejected", complete=True)


def reason_problem(reason: str) -> str | None:
    """What is wrong with a rejection's reason, or None: the people who come next need it."""
    flat = " ".join(reason.split())
    if not flat:
        return "Say why the plan is rejected: the reason is kept with the run and shown to all"
    if len(flat) > REASON_LIMIT:
        return f"Keep the reason under {REASON_LIMIT} characters"
    return None


def one_line(reason: str) -> str:
    """A reason as stored: one line, its whitespace collapsed."""
    return " ".join(reason.split())


def reminder_due(run: Run, *, before: timedelta | None, now: datetime) -> bool:
    """Whether the approvers should now be reminded that `run`'s approval window is closing.

    Pure, so every replica decides the same; the store makes sure only one of them sends it.
    """
    if before is None or run.state is not RunState.AWAITING_APPROVAL or run.expires_at is None:
        return False
    return run.expires_at - before <= now < run.expires_at
