"""The run state machine and the approval policy: pure, table-driven, every refusal explained."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import ConflictError
from bot.core.policy import decide_approval, decide_rejection, user_id_problem
from bot.core.run import TRANSITIONS, Run, next_state, transition
from bot.core.states import RunEvent, RunState
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


@pytest.mark.parametrize("state", list(RunState))
def test_refusals_name_every_state_in_a_sentence_that_reads(state: RunState) -> None:
    """No "run 1 is succeeded": finished states take "has" wherever a refusal names them."""
    said = [
        decide_approval(a_run(state), "U0BOB", approvers=APPROVERS, now=NOW).reason,
        decide_rejection(a_run(state), "U0BOB", approvers=APPROVERS).reason,
    ]
    said += [str(e) for e in _illegal_moves(state)]
    for text in said:
        for wrong in ("is succeeded", "is failed", "is expired", "?.", "!.", ".."):
            assert wrong not in text, text


def _illegal_moves(state: RunState) -> list[ConflictError]:
    found = []
    for event in RunEvent:
        try:
            next_state(state, event)
        except ConflictError as exc:
            found.append(exc)
    return found


def test_an_approver_in_a_group_nobody_could_expand_is_told_to_set_the_bot_token() -> None:
    """Without Slack a group's members are unknown: the refusal names SLACK_BOT_TOKEN."""
    decision = decide_approval(
        a_run(), "U0DBA", approvers=APPROVERS, now=NOW, unexpanded=("S02DBAS",)
    )
    assert not decision.counts
    assert "S02DBAS" in decision.reason
    assert "SLACK_BOT_TOKEN" in decision.reason
    assert "ROLLBOT_APPROVERS" not in decision.reason


@pytest.mark.parametrize("text", ["", " ", "alice", "u02bob", "U0", "S02DBAS", "U02BOB "])
def test_command_line_identities_must_be_slack_member_ids(text: str) -> None:
    """`--as`/`--requested-by` take a member ID (U…/W…); names, blanks and groups are refused."""
    problem = user_id_problem(text)
    assert problem is not None
    assert "U… or W…" in problem
    assert user_id_problem("U02BOB") is None
    assert user_id_problem("W0123ABC") is None
