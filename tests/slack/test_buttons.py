"""The Approve and Reject buttons: the reaction's path, exactly once, refusals said privately."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.app import build
from bot.core.states import RunState
from bot.slack.buttons import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackStandIn, interactive
from demo.standin.interactive import NoSuchButtonError
from demo.standin.socket import SocketModeServer
from tests.db.test_cli import env_for, rollbot
from tests.fix_rollbot import APPROVER, REQUESTER, SECOND_APPROVER
from tests.fix_slackbot import BYSTANDER, REQUEST_CHANNEL, SlackBot, socket_settings
from tests.slack.test_safety_slack import together
from tests.slack.test_scenarios import planned, thread_texts, wait_state


def kinds(bot: SlackBot, run_id: int) -> list[str]:
    """The audit trail of a run, by kind."""
    return [e["kind"] for e in bot.components.store.events(run_id)]


def actions_shown(bot: SlackBot, channel: str, ts: str) -> list[str]:
    """The action ids of the buttons the message shows now."""
    message = bot.standin.message(channel, ts)
    assert message is not None
    return [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def _buttons(standin: SlackStandIn, channel: str, ts: str) -> list[str]:
    """The action ids of the buttons a message shows now, read from the stand-in."""
    message = standin.message(channel, ts)
    blocks = message.blocks if message is not None else ()
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def private_answers(bot: SlackBot, user: str, *, at_least: int = 1) -> list[str]:
    """What rollbot said to `user` alone (response URLs, chat.postEphemeral), oldest first.

    Answers come after the ack (an approval's from a worker), so this waits for `at_least`
    of them, then a little longer for any that should not come.
    """
    deadline = time.monotonic() + 10
    while len(found := [m.text for m in bot.standin.ephemerals(user=user)]) < at_least:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    time.sleep(0.5)
    return [m.text for m in bot.standin.ephemerals(user=user)]


def test_approve_button_replayed_executes_once_and_its_buttons_go(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """The same block_actions payload delivered twice at once: one approval, one execution."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    assert actions_shown(bot, channel, ts) == [APPROVE_ACTION, REJECT_ACTION]
    press = interactive.block_actions(bot.standin, APPROVER, channel, ts, APPROVE_ACTION)
    answers: list[int] = []
    together(
        lambda: answers.append(bot.sender.interaction(press).status),
        lambda: answers.append(bot.sender.interaction(press).status),
    )
    assert answers == [200, 200]
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.deliver()
    assert kinds(bot, run.id).count("approval_added") == 1
    assert kinds(bot, run.id).count("execution_started") == 1
    assert actions_shown(bot, channel, ts) == []
    with pytest.raises(NoSuchButtonError):
        bot.sender.press(APPROVER, channel, ts, APPROVE_ACTION)
    assert len([t for t in thread_texts(bot, channel, ts) if "succeeded" in t]) == 1


def test_approve_double_clicked_executes_once(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Two presses by one approver at the same moment (two trigger ids): one execution."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    first = interactive.block_actions(bot.standin, APPROVER, channel, ts, APPROVE_ACTION)
    second = interactive.block_actions(bot.standin, APPROVER, channel, ts, APPROVE_ACTION)
    assert first["trigger_id"] != second["trigger_id"]
    together(lambda: bot.sender.interaction(first), lambda: bot.sender.interaction(second))
    wait_state(bot, run.id, RunState.SUCCEEDED)
    assert kinds(bot, run.id).count("approval_added") == 1
    assert kinds(bot, run.id).count("execution_started") == 1
    assert bot.components.store.get(run.id).approvers == (APPROVER,)


def test_a_bystanders_press_is_refused_once_privately_and_changes_nothing(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Approve pressed by a non-approver: told once, only them; no approval, nothing posted."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    before = thread_texts(bot, channel, ts)
    for _ in range(3):
        assert bot.sender.press(BYSTANDER, channel, ts, APPROVE_ACTION).status == 200
    answers = private_answers(bot, BYSTANDER)
    assert len(answers) == 1, answers
    assert "you are not an approver" in answers[0]
    bot.sender.reaction_added(BYSTANDER, "white_check_mark", channel, ts)  # the same refusal
    time.sleep(0.5)
    assert thread_texts(bot, channel, ts) == before
    assert private_answers(bot, BYSTANDER) == answers
    assert kinds(bot, run.id).count("approval_refused") == 1
    stored = bot.components.store.get(run.id)
    assert stored.state is RunState.AWAITING_APPROVAL
    assert stored.approvers == ()
    assert bot.sender.press(BYSTANDER, channel, ts, REJECT_ACTION).status == 200
    assert "you may not reject" in private_answers(bot, BYSTANDER, at_least=2)[-1]
    assert bot.standin.forms_opened() == []
    assert bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL


def test_reject_asks_for_a_reason_and_cancels_the_run_with_it(
    db_0023: str, make_slackbot: Callable[..., SlackBot], tmp_path: Path
) -> None:
    """Reject opens a modal; a blank reason keeps it open; a reason cancels, shown everywhere."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    mark = bot.standin.mark()
    assert bot.sender.press(SECOND_APPROVER, channel, ts, REJECT_ACTION).status == 200
    opened = bot.standin.wait_for("views.open", since=mark)
    assert opened.ok, opened.response
    (form,) = bot.standin.forms_opened()
    assert form.user == SECOND_APPROVER

    blank = bot.sender.submit_form(SECOND_APPROVER, form.id, {REASON_BLOCK: {REASON_INPUT: "  "}})
    assert blank.status == 200
    assert blank.json()["response_action"] == "errors"
    assert "Say why" in blank.json()["errors"][REASON_BLOCK]
    assert bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL

    reason = "the <!channel> index is still read by billing & reports"
    sent = bot.sender.submit_form(SECOND_APPROVER, form.id, {REASON_BLOCK: {REASON_INPUT: reason}})
    assert sent.status == 200
    assert sent.body in {"", "null"} or "response_action" not in sent.json()
    cancelled = wait_state(bot, run.id, RunState.CANCELLED)
    assert cancelled.reason == f"rejected by {SECOND_APPROVER}: {reason}"
    events = bot.components.store.events(run.id)
    assert [e["data"]["reason"] for e in events if e["kind"] == "cancelled"] == [reason]
    assert [e["actor"] for e in events if e["kind"] == "cancelled"] == [SECOND_APPROVER]

    replies = thread_texts(bot, channel, ts)
    assert any(
        "the &lt;!channel&gt; index is still read by billing &amp; reports" in t for t in replies
    )
    assert not any("<!channel>" in t for t in replies)
    assert actions_shown(bot, channel, ts) == []
    shown = rollbot("show", str(run.id), env=env_for(db_0023, tmp_path))
    assert reason in shown.stdout


def test_the_requester_may_reject_but_not_approve(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """The requester's Approve is refused privately; their Reject opens the form."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.sender.press(REQUESTER, channel, ts, APPROVE_ACTION)
    assert "you requested run" in private_answers(bot, REQUESTER)[-1]
    bot.sender.press(REQUESTER, channel, ts, REJECT_ACTION)
    bot.standin.wait_for("views.open")
    (form,) = bot.standin.forms_opened()
    bot.sender.submit_form(REQUESTER, form.id, {REASON_BLOCK: {REASON_INPUT: "wrong migration"}})
    assert wait_state(bot, run.id, RunState.CANCELLED).reason == (
        f"rejected by {REQUESTER}: wrong migration"
    )


def test_a_form_sent_after_the_run_was_approved_changes_nothing(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Reject opened, then someone approves: the late reason is refused, privately, run intact."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.sender.press(SECOND_APPROVER, channel, ts, REJECT_ACTION)
    bot.standin.wait_for("views.open")
    (form,) = bot.standin.forms_opened()
    bot.sender.press(APPROVER, channel, ts, APPROVE_ACTION)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.sender.submit_form(SECOND_APPROVER, form.id, {REASON_BLOCK: {REASON_INPUT: "too late"}})
    bot.standin.wait_for("chat.postEphemeral")
    assert "can no longer be rejected" in private_answers(bot, SECOND_APPROVER)[-1]
    assert bot.components.store.get(run.id).state is RunState.SUCCEEDED


def test_buttons_over_socket_mode_ack_at_once_and_approve(
    db_0023: str, slack_workspace: SlackStandIn, tmp_path: Path
) -> None:
    """Over the websocket: a blank reason keeps the form open in the ack; Approve executes."""
    standin = slack_workspace
    settings = socket_settings(
        db_0023,
        standin,
        tmp_path,
        approvers=(APPROVER, SECOND_APPROVER),
        migrations_dir=MIGRATIONS_DIR,
        rehearsal="off",
    )
    components = build(settings)
    components.start()
    with SocketModeServer(standin) as server:
        handler = SocketModeHandler(components.bolt, app_token=standin.app_token)
        handler.connect()  # type: ignore[no-untyped-call]
        try:
            server.wait_for_connection()
            server.wait_for_ack(
                server.send_slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
            )
            standin.wait_for("response_url", timeout=30)
            (run,) = components.store.recent()
            deadline = time.monotonic() + 30
            while (where := components.deliveries.slack_message(run.id, "plan")) is None or (
                REJECT_ACTION not in _buttons(standin, *where)
            ):
                assert time.monotonic() < deadline, "the plan message never showed its buttons"
                components.courier.wake()
                time.sleep(0.05)

            server.wait_for_ack(server.press(SECOND_APPROVER, *where, REJECT_ACTION))
            standin.wait_for("views.open", timeout=10)
            (form,) = standin.forms_opened()
            blank = interactive.view_submission(
                standin, SECOND_APPROVER, form.id, {REASON_BLOCK: {REASON_INPUT: ""}}
            )
            ack = server.wait_for_ack(server.send_interactive(blank))
            assert ack.payload is not None
            assert ack.payload["response_action"] == "errors"

            sent = time.time()
            ack = server.wait_for_ack(server.press(APPROVER, *where, APPROVE_ACTION))
            assert ack.at - sent < 3
            deadline = time.monotonic() + 30
            while components.store.get(run.id).state is not RunState.SUCCEEDED:
                assert time.monotonic() < deadline, components.store.get(run.id)
                time.sleep(0.1)
            kinds = [e["kind"] for e in components.store.events(run.id)]
            assert kinds.count("execution_started") == 1
        finally:
            server.stop()
            handler.close()  # type: ignore[no-untyped-call]
            components.stop()
