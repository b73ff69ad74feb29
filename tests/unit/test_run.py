"""The run state machine and the approval policy: pure, table-driven, every refusal explained."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import ConflictError
from bot.core.policy import decide_approval
from bot.core.run import TRANSITIONS, Run, RunEvent, RunState, transition
from tests.samples import a_plan

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def a_run(state: RunState = RunState.AWAITING_APPROVAL, **changes: object) -> Run:
    base = Run(
        id=7,
        migration_id="0023",
        runbook_name="0023_loud_shen",
        target_name="default",
        target_label="asset_forge on db:5432",
        target_identity="default|db|5432|asset_forge",
        state=state,
        requested_by="U0REQ",
        plan=a_plan(),
        plan_hash="abc",
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
    )
    return base.model_copy(update=changes)


def test_happy_path_is_legal() -> None:
    """Requested → backing_up → awaiting_approval → approved → executing → succeeded."""
    run = a_run(RunState.REQUESTED)
    for event in (
        RunEvent.BACKUP_STARTED,
        RunEvent.BACKUP_VERIFIED,
        RunEvent.APPROVED,
        RunEvent.EXECUTION_STARTED,
        RunEvent.SUCCEEDED,
    ):
        run = transition(run, event, NOW)
    assert run.state is RunState.SUCCEEDED
    assert not run.active


@pytest.mark.parametrize("state", list(RunState))
@pytest.mark.parametrize("event", list(RunEvent))
def test_every_move_not_in_the_table_raises(state: RunState, event: RunEvent) -> None:
    """Anything outside the transition table is a ConflictError and changes nothing."""
    run = a_run(state)
    if (state, event) in TRANSITIONS:
        assert transition(run, event, NOW).state is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(ConflictError):
            transition(run, event, NOW)


def test_final_states_have_no_way_out() -> None:
    """Succeeded, failed, blocked, cancelled and expired runs never move again."""
    final = {RunState.SUCCEEDED, RunState.FAILED, RunState.BLOCKED, RunState.CANCELLED}
    final.add(RunState.EXPIRED)
    assert not [key for key in TRANSITIONS if key[0] in final]


APPROVERS = frozenset({"U0BOB", "U0CAROL", "U0REQ"})


@pytest.mark.parametrize(
    ("run", "user", "reason"),
    [
        (a_run(RunState.BACKING_UP), "U0BOB", "not verified yet"),
        (a_run(), "U0REQ", "you cannot approve it: another approver must"),
        (a_run(), "U0MALLORY", "you are not an approver"),
        (a_run(expires_at=NOW), "U0BOB", "approval window"),
        (a_run(RunState.EXECUTING), "U0BOB", "already approved"),
        (a_run(RunState.CANCELLED), "U0BOB", "is cancelled"),
        (
            a_run(approvers=("U0BOB",), required_approvals=2),
            "U0BOB",
            "already approved",
        ),
    ],
)
def test_approvals_that_do_not_count_say_why(run: Run, user: str, reason: str) -> None:
    """Bystanders, the requester, a closed window or a wrong state do not approve."""
    decision = decide_approval(run, user, approvers=APPROVERS, now=NOW)
    assert not decision.counts
    assert reason in decision.reason


def test_two_approvals_needed_means_two_people() -> None:
    """With two required, the first approval is recorded and the second completes it."""
    run = a_run(required_approvals=2)
    first = decide_approval(run, "U0BOB", approvers=APPROVERS, now=NOW)
    assert (first.counts, first.complete) == (True, False)
    second = decide_approval(
        run.model_copy(update={"approvers": ("U0BOB",)}), "U0CAROL", approvers=APPROVERS, now=NOW
    )
    assert (second.counts, second.complete) == (True, True)
