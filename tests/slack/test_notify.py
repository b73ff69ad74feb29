"""Approvers are told: a mention in a new message, one reminder before expiry, the expiry."""

import time
from collections.abc import Callable

from bot.core.states import RunState
from demo.standin.model import Message
from tests.fix_rollbot import APPROVER, REQUESTER, SECOND_APPROVER
from tests.fix_slackbot import INCIDENT_CHANNEL, SlackBot
from tests.slack.test_safety_slack import together
from tests.slack.test_scenarios import planned, wait_state


def replies(bot: SlackBot, channel: str, ts: str) -> list[Message]:
    """The messages posted under a message, as Slack keeps them."""
    bot.deliver()
    return [m for m in bot.standin.thread(channel, ts) if m.ts != ts]


def test_approvers_are_mentioned_in_a_new_thread_message(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Once approvable, a new reply (not an edit) mentions each approver, not the requester."""
    bot = make_slackbot(db_0023, approvers=(APPROVER, SECOND_APPROVER, REQUESTER))
    run, channel, ts = planned(bot)
    (call,) = [m for m in replies(bot, channel, ts) if "awaits your approval" in m.text]
    assert call.thread_ts == ts
    assert not call.edited
    assert call.text.startswith(f"<@{APPROVER}>, <@{SECOND_APPROVER}>: Rollback run {run.id}")
    assert f"<@{REQUESTER}>" not in call.text
    posted = bot.standin.calls("chat.postMessage")
    assert any(c.params.get("thread_ts") == ts and "awaits" in c.params["text"] for c in posted)


def test_a_user_group_is_mentioned_as_the_group(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Approvers given as a user group are called by the group's mention."""
    bot = make_slackbot(db_0023)
    bot.standin.add_usergroup("S0DBAS", [APPROVER], handle="dbas")
    bot = make_slackbot(db_0023, approvers=("S0DBAS",))
    _, channel, ts = planned(bot)
    texts = [m.text for m in replies(bot, channel, ts)]
    assert any(t.startswith("<!subteam^S0DBAS>: Rollback run") for t in texts), texts
    assert "@dbas: Rollback run" in bot.standin.transcript()


def test_the_reminder_is_sent_once_with_two_replicas(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Two rollbots on one state database both find the reminder due: it is sent once."""
    one = make_slackbot(db_0023, approval_ttl="60s", approval_reminder="59s")
    two = make_slackbot(db_0023, approval_ttl="60s", approval_reminder="59s")
    run, channel, ts = planned(one)
    time.sleep(1.2)
    for _ in range(3):
        together(one.components.service.remind_due, two.components.service.remind_due)
    time.sleep(0.5)
    one.deliver()
    two.deliver()
    reminders = [m for m in replies(one, channel, ts) if "Reminder:" in m.text]
    assert len(reminders) == 1, reminders
    assert reminders[0].text.startswith(f"<@{APPROVER}>, <@{SECOND_APPROVER}>: Reminder: run")
    events = [e["kind"] for e in one.components.store.events(run.id)]
    assert events.count("approval_reminded") == 1
    assert one.components.store.get(run.id).state is RunState.AWAITING_APPROVAL


def test_no_reminder_is_sent_when_it_is_off_or_not_yet_due(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """`off` sends none; a reminder due later is not sent early."""
    bot = make_slackbot(db_0023, approval_reminder="off")
    run, channel, ts = planned(bot)
    assert bot.components.service.remind_due() == []
    later = make_slackbot(db_0023, approval_ttl="30min", approval_reminder="5min")
    assert later.components.service.remind_due() == []
    assert not any("Reminder:" in m.text for m in replies(bot, channel, ts))
    assert "approval_reminded" not in [e["kind"] for e in bot.components.store.events(run.id)]


def test_expiry_unapproved_is_announced_in_the_incident_channel(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Nobody approves in time: the incident channel says the run expired unapproved."""
    bot = make_slackbot(db_0023, approval_ttl="2s", approval_reminder="off")
    run, _, _ = planned(bot)
    time.sleep(2.2)
    bot.components.service.expire_due()
    wait_state(bot, run.id, RunState.EXPIRED)
    bot.deliver()
    where = bot.components.deliveries.slack_message(run.id, "incident")
    assert where is not None
    assert where[0] == INCIDENT_CHANNEL
    texts = [m.text for m in bot.standin.thread(*where)]
    assert any(f"Run {run.id} expired unapproved" in t for t in texts), texts
