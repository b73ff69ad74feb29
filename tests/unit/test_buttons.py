"""The approval buttons, the rejection form and the approvers' calls, as pure data."""

from datetime import timedelta

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.config import load_settings
from bot.core.errors import ConfigError
from bot.core.policy import decide_rejection, reason_problem, reminder_due
from bot.core.states import RunState
from bot.slack.blocks import plan_message
from bot.slack.buttons import APPROVE_ACTION, REJECT_ACTION, approvers_call, reject_form
from tests.unit.test_views import NOW, a_run


def actions(state: RunState) -> list[str]:
    """The action ids of the buttons a run's plan message shows in `state`."""
    _, blocks = plan_message(a_run(state), reaction="white_check_mark", approvers=("U0APP",))
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize("state", list(RunState))
def test_buttons_are_shown_only_while_approval_is_open(state: RunState) -> None:
    """Approve and Reject while the plan awaits approval; no button in any other state."""
    expected = [APPROVE_ACTION, REJECT_ACTION] if state is RunState.AWAITING_APPROVAL else []
    assert actions(state) == expected


def test_the_buttons_and_the_form_are_valid_block_kit() -> None:
    """slack_sdk's models accept both unchanged; Approve asks Slack to confirm first."""
    run = a_run(RunState.AWAITING_APPROVAL, expires_at=NOW + timedelta(minutes=30))
    _, blocks = plan_message(run, reaction="white_check_mark", approvers=("U0APP",))
    (buttons,) = [b for b in blocks if b["type"] == "actions"]
    assert Block.parse(buttons).to_dict() == buttons  # type: ignore[union-attr]
    approve = buttons["elements"][0]
    assert approve["confirm"]["confirm"]["text"] == "Approve"
    form = reject_form(run, channel="C0OPS", ts="1.2")
    assert View(**form).to_dict() == form  # type: ignore[arg-type]


def test_names_from_the_run_cannot_become_markup_in_the_buttons_or_calls() -> None:
    """A target label holding `<!channel>` stays text in the dialog and the approvers' call."""
    run = a_run(
        RunState.AWAITING_APPROVAL,
        target_label="<!channel> & co",
        approvers=(),
        expires_at=NOW + timedelta(minutes=30),
    )
    _, blocks = plan_message(run, reaction="white_check_mark", approvers=("U0APP",))
    (buttons,) = [b for b in blocks if b["type"] == "actions"]
    assert "&lt;!channel&gt; &amp; co" in buttons["elements"][0]["confirm"]["text"]["text"]
    call = approvers_call(run, ("U0APP", "S0DBAS", "U0REQ"))
    assert call.startswith("<@U0APP>, <!subteam^S0DBAS>: Rollback run 7")
    assert "<!channel>" not in call
    assert "&lt;!channel&gt;" in call


def test_the_call_leaves_out_the_requester_and_who_already_approved() -> None:
    """Nobody is asked to act who cannot (the requester) or already did."""
    run = a_run(RunState.AWAITING_APPROVAL, approvers=("U0APP",))
    call = approvers_call(run, ("U0APP", "U0TWO", "U0REQ"), reminder=True)
    assert call.startswith("<@U0TWO>: Reminder: run 7")
    assert "Nobody can approve" in approvers_call(run, ("U0REQ",))


def test_who_may_reject_and_when() -> None:
    """An approver or the requester, while awaiting approval, with a real reason."""
    run = a_run(RunState.AWAITING_APPROVAL, approvers=())
    approvers = frozenset({"U0APP"})
    assert decide_rejection(run, "U0APP", approvers=approvers, reason="no").counts
    assert decide_rejection(run, "U0REQ", approvers=approvers).counts
    assert not decide_rejection(run, "U0MALLORY", approvers=approvers).counts
    assert not decide_rejection(run, "U0APP", approvers=approvers, reason=" \n ").counts
    executing = a_run(RunState.EXECUTING)
    refused = decide_rejection(executing, "U0APP", approvers=approvers, reason="stop")
    assert "can no longer be rejected" in refused.reason
    assert reason_problem("x" * 501) is not None
    assert reason_problem("  the index is still used  ") is None


def test_the_reminder_is_due_only_inside_its_lead() -> None:
    """Due from `before` ahead of expiry until expiry, never when off or not awaiting."""
    run = a_run(RunState.AWAITING_APPROVAL, expires_at=NOW + timedelta(minutes=30))
    lead = timedelta(minutes=5)
    assert not reminder_due(run, before=lead, now=NOW)
    assert reminder_due(run, before=lead, now=NOW + timedelta(minutes=25))
    assert not reminder_due(run, before=lead, now=NOW + timedelta(minutes=30))
    assert not reminder_due(run, before=None, now=NOW + timedelta(minutes=26))
    cancelled = run.model_copy(update={"state": RunState.CANCELLED})
    assert not reminder_due(cancelled, before=lead, now=NOW + timedelta(minutes=26))


def test_the_reminder_setting_is_a_duration_or_off_never_zero() -> None:
    """`off` turns it off; 0 is refused by name; a lead not shorter than the window sends none."""
    assert load_settings(approval_reminder="off").reminder_lead() is None
    assert load_settings().reminder_lead() == timedelta(minutes=5)
    assert load_settings(approval_ttl="2min").reminder_lead() is None
    with pytest.raises(ConfigError, match="ROLLBOT_APPROVAL_REMINDER: '0'"):
        load_settings(approval_reminder="0")
