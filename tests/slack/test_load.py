"""A busy rollbot is never deaf: slow work waits in rollbot's own queue, not Slack's threads."""

import time
from collections.abc import Callable

import psycopg

from bot.core.states import RunState
from tests.fix_rollbot import APPROVER, REQUESTER
from tests.fix_slackbot import REQUEST_CHANNEL, SlackBot
from tests.slack.test_scenarios import planned, thread_texts, wait_state


def _command(bot: SlackBot, text: str) -> str:
    """Send `/rollback text`; the text of the ack (Slack shows it at once)."""
    delivery = bot.sender.slash_command(text, user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert delivery.status == 200, delivery
    if delivery.headers.get("content-type", "").startswith("application/json"):
        return str(delivery.json().get("text", ""))
    return delivery.body


def test_plans_parked_behind_a_lock_leave_every_command_answered(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """One worker, a queue of two, every plan stuck behind an ACCESS EXCLUSIVE lock.

    Before the queue, plans ran on Bolt's five listener threads, so five stuck plans left
    nothing to ack `/rollback help`. Now each plan is acked with its place in the queue, the
    one that does not fit is told rollbot is busy, and help and status are answered at once.
    """
    bot = make_slackbot(db_0023, workers=1, queue_size=2, lock_timeout="60s")
    with psycopg.connect(db_0023, application_name="long-migration") as holder:
        holder.execute("LOCK TABLE api_errors IN ACCESS EXCLUSIVE MODE")
        first = _command(bot, "0023")
        assert (
            first
            == "Planning the rollback: backing up first. The answer comes here when it is ready."
        )
        deadline = time.monotonic() + 30
        while not bot.components.store.recent():
            assert time.monotonic() < deadline, "the first plan never started"
            time.sleep(0.05)
        assert _command(bot, "0023").startswith("Planning the rollback (1 ahead of it)")
        assert _command(bot, "0023").startswith("Planning the rollback (2 ahead of it)")
        assert _command(bot, "0023") == (
            "rollbot is busy: 3 requests running or waiting; nothing was planned. "
            "Try again in a few minutes"
        )
        for text, words in (("help", "/rollback cancel RUN"), ("status", "Run 1")):
            mark = bot.standin.mark()
            assert _command(bot, text) == ""
            answer = bot.standin.wait_for("response_url", since=mark, timeout=10)
            assert words in answer.params["text"]
        (run,) = bot.components.store.recent()
        assert run.state in {RunState.REQUESTED, RunState.BACKING_UP}  # parked, and alone
    # The lock is gone: the first plan finishes, the two queued ones are told it exists.
    run = wait_state(bot, run.id, RunState.AWAITING_APPROVAL)
    deadline = time.monotonic() + 30
    while len(plans := _answers(bot)[2:]) < 3:  # the three plans queued
        assert time.monotonic() < deadline, plans
        time.sleep(0.05)
    assert plans[0] == f"Run {run.id}: awaiting approval. Details in its message."
    assert [r.id for r in bot.components.store.recent()] == [run.id]


def _answers(bot: SlackBot) -> list[str]:
    """Texts sent through response URLs (the later answers, not the acks)."""
    return [str(c.params.get("text", "")) for c in bot.standin.calls("response_url")]


def test_a_flood_of_plans_never_turns_an_approval_away(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Plans fill their queue; an approval arriving then still counts (its own pool)."""
    bot = make_slackbot(db_0023, workers=1, queue_size=1, lock_timeout="60s")
    run, channel, ts = planned(bot)
    with psycopg.connect(db_0023, application_name="long-migration") as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        answers = [_command(bot, "0023 --target default") for _ in range(4)]
        assert any(a.startswith("rollbot is busy") for a in answers), answers
        bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
        deadline = time.monotonic() + 30
        while bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL:
            assert time.monotonic() < deadline, "the approval was never taken up"
            time.sleep(0.05)
    assert wait_state(bot, run.id, RunState.SUCCEEDED).state is RunState.SUCCEEDED
    assert not any("busy" in text for text in thread_texts(bot, channel, ts))
