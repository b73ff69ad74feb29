"""The courier against a busy, strict Slack: poisoned messages, lost answers, refused channels."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bot.core.outbox import Undelivered
from bot.core.states import RunState
from demo.sample import MIGRATIONS_DIR
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS
from tests.fix_slackbot import INCIDENT_CHANNEL, REQUEST_CHANNEL, SlackBot
from tests.slack.test_scenarios import request, thread_texts, wait_state


def wait_given_up(bot: SlackBot, run_id: int, timeout: float = 30) -> list[Undelivered]:
    deadline = time.monotonic() + timeout
    while not (gone := [u for u in bot.components.deliveries.undelivered(run_id) if u.given_up]):
        assert time.monotonic() < deadline, bot.components.deliveries.undelivered(run_id)
        bot.components.courier.wake()
        time.sleep(0.1)
    return gone


def plan_posts(bot: SlackBot) -> list[Any]:
    """Accepted top-level posts in the request channel (plan messages)."""
    return [
        c
        for c in bot.standin.calls("chat.postMessage")
        if c.params.get("channel") == REQUEST_CHANNEL and not c.params.get("thread_ts") and c.ok
    ]


def show(conninfo: str, run_id: int, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": conninfo,
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
    }
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "show", str(run_id)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return shown.stdout + shown.stderr


def test_a_poisoned_message_is_given_up_while_other_runs_are_delivered(
    db_0023: str,
    make_database: Callable[..., str],
    asset_forge_0023_template: str,
    make_slackbot: Callable[..., SlackBot],
    tmp_path: Path,
) -> None:
    """slack_sdk raising on one run's upload holds nothing else up; it is given up in time."""
    staging = make_database(template=asset_forge_0023_template, prefix="rollbot_stg")
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"staging: '{staging}'\n")
    bot = make_slackbot(db_0023, targets_spec=f"@{targets}", delivery_deadline="4s")
    poisoned: list[object] = []

    def first_upload(params: dict[str, Any]) -> bool:
        poisoned[:] = poisoned or [params.get("filename")]
        return params.get("filename") == poisoned[0]

    # No upload_url in Slack's answer: slack_sdk raises ValueError for every try of this file.
    bot.standin.script_malformed(
        "files.getUploadURLExternal", drop=("upload_url",), times=1000, match=first_upload
    )
    request(bot, "0023")
    (first,) = bot.components.store.recent()
    request(bot, "0023 --target staging")
    second = next(r for r in bot.components.store.recent() if r.id != first.id)

    channel, ts = bot.plan_message(second.id)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, second.id, RunState.SUCCEEDED)
    (gone,) = wait_given_up(bot, first.id)
    assert (gone.action, gone.role) == ("upload", "plan")
    assert "ValueError" in gone.error
    assert gone.attempts >= 2  # retried with backoff until the deadline, then given up
    bot.deliver()
    assert [f.name for f in bot.standin.files()] == [f"rollback-run-{second.id}-0023_loud_shen.sql"]
    assert any("succeeded" in t for t in thread_texts(bot, channel, ts))
    first_channel, first_ts = bot.plan_message(first.id)
    assert any(
        "gave up delivering the SQL file" in t and "ValueError" in t
        for t in thread_texts(bot, first_channel, first_ts)
    )
    assert bot.components.store.get(first.id).state is RunState.AWAITING_APPROVAL
    shown = show(db_0023, first.id, tmp_path)
    assert "Slack messages not delivered" in shown
    assert "upload (plan): given up after" in shown
    assert "ValueError" in shown


def test_a_database_error_right_after_slack_accepted_does_not_post_twice(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Recording the plan message fails once: the answer is recorded later, never re-posted."""
    bot = make_slackbot(db_0023)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        # A sequence is not rolled back with the failed insert, so this fails exactly once.
        conn.execute("CREATE SEQUENCE rollbot.fail_once")
        conn.execute(
            """
            CREATE FUNCTION rollbot.fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('rollbot.fail_once') = 1 THEN
                    RAISE EXCEPTION 'the state database failed once' USING ERRCODE = 'XX000';
                END IF;
                RETURN NEW;
            END
            $$"""
        )
        conn.execute(
            "CREATE TRIGGER fail_once BEFORE INSERT ON rollbot.slack_messages"
            " FOR EACH ROW EXECUTE FUNCTION rollbot.fail_once()"
        )
    request(bot, "0023")
    (run,) = bot.components.store.recent()
    channel, ts = bot.plan_message(run.id)
    bot.deliver()
    (post,) = plan_posts(bot)
    assert (post.response["channel"], post.response["ts"]) == (channel, ts)
    assert [m.ts for m in bot.standin.messages(REQUEST_CHANNEL) if not m.is_reply] == [ts]
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    assert any("succeeded" in t for t in thread_texts(bot, channel, ts))


def test_a_malformed_answer_fails_that_message_and_it_is_not_posted_again(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """`ok` without a ts: the plan post is given up (not re-posted) and the run is cancelled."""
    bot = make_slackbot(db_0023)
    bot.standin.script_malformed(
        "chat.postMessage",
        drop=("ts",),
        match=lambda p: p.get("channel") == REQUEST_CHANNEL and not p.get("thread_ts"),
    )
    request(bot, "0023")
    (run,) = bot.components.store.recent()
    cancelled = wait_state(bot, run.id, RunState.CANCELLED)
    assert cancelled.reason is not None
    assert "answer had no ts" in cancelled.reason
    gone = wait_given_up(bot, run.id)[0]
    assert (gone.action, gone.role) == ("post", "plan")
    assert "answer had no ts" in gone.error
    bot.deliver()
    assert len(plan_posts(bot)) == 1  # Slack's one post stands; nothing was posted again
    told = bot.standin.wait_for(
        "chat.postEphemeral", lambda c: c.params.get("user") == REQUESTER, timeout=10
    )
    assert f"run {run.id} was cancelled" in told.params["text"]


def test_not_in_the_request_channel_tells_the_requester_and_cancels_the_run(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """not_in_channel: an ephemeral answer says `/invite @rollbot`; the run is cancelled first."""
    bot = make_slackbot(db_0023)
    bot.standin.refuse_channel(REQUEST_CHANNEL, "not_in_channel")
    mark = bot.standin.mark()
    assert bot.sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    told = bot.standin.wait_for(
        "response_url", lambda c: "/invite @rollbot" in str(c.params.get("text")), since=mark
    )
    assert f"<#{REQUEST_CHANNEL}>" in told.params["text"]
    assert told.params.get("response_type") == "ephemeral"
    (run,) = bot.components.store.recent()
    cancelled = wait_state(bot, run.id, RunState.CANCELLED)
    assert cancelled.reason is not None
    assert "not_in_channel" in cancelled.reason
    assert "/invite @rollbot" in cancelled.reason
    (event,) = [e for e in bot.components.store.events(run.id) if e["kind"] == "cancelled"]
    assert event["at"].timestamp() <= told.at  # stored before anyone was told
    answer = bot.standin.wait_for(
        "response_url", lambda c: "cancelled —" in str(c.params.get("text")), since=mark
    )
    assert "not_in_channel" in answer.params["text"]
    bot.deliver()
    assert plan_posts(bot) == []
    (incident,) = [m for m in bot.standin.messages(INCIDENT_CHANNEL) if not m.is_reply]
    notes = [m.text for m in bot.standin.thread(INCIDENT_CHANNEL, incident.ts)]
    assert any("Cancelled" in t and "not_in_channel" in t for t in notes)


def test_a_refused_incident_channel_cancels_the_run_and_says_so_in_the_request_thread(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """No audit trail, no approval: the run is cancelled, the thread and the requester told."""
    bot = make_slackbot(db_0023)
    bot.standin.refuse_channel(INCIDENT_CHANNEL, "channel_not_found")
    request(bot, "0023")
    (run,) = bot.components.store.recent()
    cancelled = wait_state(bot, run.id, RunState.CANCELLED)
    assert cancelled.reason is not None
    assert f"channel {INCIDENT_CHANNEL} (channel_not_found)" in cancelled.reason
    told = bot.standin.wait_for(
        "chat.postEphemeral", lambda c: c.params.get("user") == REQUESTER, timeout=10
    )
    assert f"/invite @rollbot` in <#{INCIDENT_CHANNEL}>" in told.params["text"]
    assert "ROLLBOT_INCIDENT_CHANNEL" in told.params["text"]
    assert told.params["channel"] == REQUEST_CHANNEL
    channel, ts = bot.plan_message(run.id)
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "cancelled" in message.text
    assert any("channel_not_found" in t for t in thread_texts(bot, channel, ts))
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    bot.deliver()
    assert bot.components.store.get(run.id).state is RunState.CANCELLED
