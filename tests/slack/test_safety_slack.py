"""Slack-side guarantees: exactly once, the outbox, hostile input, secrets never shown."""

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.run import RunState
from bot.logs import configure_logging
from tests.fix_rollbot import APPROVER, SECOND_APPROVER, runbooks_with
from tests.fix_slackbot import SlackBot
from tests.slack.test_scenarios import planned, request, thread_texts, wait_state


def together(*actions: Callable[[], object]) -> None:
    """Run actions at the same moment, as concurrent deliveries from Slack would arrive."""
    barrier = threading.Barrier(len(actions))

    def go(action: Callable[[], object]) -> None:
        barrier.wait()
        action()

    threads = [threading.Thread(target=go, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_approvers_at_the_same_moment_execute_once(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Two approvals racing: one execution, one result message."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    together(
        lambda: bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts),
        lambda: bot.sender.reaction_added(SECOND_APPROVER, "white_check_mark", channel, ts),
    )
    wait_state(bot, run.id, RunState.SUCCEEDED)
    time.sleep(0.3)
    kinds = [e["kind"] for e in bot.components.store.events(run.id)]
    assert kinds.count("execution_started") == 1
    results = [t for t in thread_texts(bot, channel, ts) if "succeeded" in t]
    assert len(results) == 1


def test_same_event_delivered_twice_at_once_is_handled_once(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Concurrent duplicate deliveries of one event id: acted on once."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    event = {
        "type": "reaction_added",
        "user": APPROVER,
        "reaction": "white_check_mark",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": "1700000200.000100",
    }
    together(
        lambda: bot.sender.event(event, event_id="Ev0TWICE"),
        lambda: bot.sender.event(event, event_id="Ev0TWICE", retry_num=1),
    )
    wait_state(bot, run.id, RunState.SUCCEEDED)
    kinds = [e["kind"] for e in bot.components.store.events(run.id)]
    assert kinds.count("approval_added") == 1


def test_result_is_kept_while_slack_is_down_and_delivered_after(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Slack fails while the rollback runs: it completes anyway; its messages wait, then arrive."""
    bot = make_slackbot(db_0023, lock_timeout="10s")
    run, channel, ts = planned(bot)
    with psycopg.connect(db_0023) as blocker:
        blocker.execute("SELECT count(*) FROM assets")  # holds the rollback at its lock
        bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
        wait_state(bot, run.id, RunState.EXECUTING)
        bot.standin.set_unavailable(True, how="503")
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.components.courier.deliver_pending()
    assert any(p.message.action == "reply" for p in bot.components.deliveries.pending())
    bot.standin.set_unavailable(False)
    with bot.components.store.connection() as conn:
        conn.execute("UPDATE rollbot.outbox SET next_attempt_at = now()")  # skip the backoff
    bot.deliver(timeout=30)
    assert any("succeeded" in t for t in thread_texts(bot, channel, ts))


def test_reactions_from_bots_and_deactivated_users_do_not_approve(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A bot or a deactivated approver cannot approve, and the thread says why."""
    bot = make_slackbot(db_0023)
    bot.standin.add_user("U0GONE", "gone", deleted=True)
    bot.standin.add_user("U0ROBOT", "robot", is_bot=True)
    bot = make_slackbot(db_0023, approvers=("U0GONE", "U0ROBOT"))
    run, channel, ts = planned(bot)
    bot.sender.reaction_added("U0GONE", "white_check_mark", channel, ts)
    bot.sender.reaction_added("U0ROBOT", "white_check_mark", channel, ts)
    deadline = time.monotonic() + 10
    while len(texts := thread_texts(bot, channel, ts)) < 3:
        assert time.monotonic() < deadline, texts
        time.sleep(0.1)
    assert any("deactivated accounts cannot approve" in t for t in texts)
    assert any("bots cannot approve" in t for t in texts)
    assert bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL


BROKEN = """# Broken

**Migration File**: `0031_broken.sql`

## Quick Rollback

```sql
BEGIN;
DROP INDEX CONCURRENTLY idx_assets_owner;
COMMIT;
```
"""


def test_broken_runbook_is_explained_and_nothing_is_planned(
    db_0023: str, make_slackbot: Callable[..., SlackBot], tmp_path: Path
) -> None:
    """A runbook with a non-transactional statement: file, line and fix; no run, no post."""
    runbooks = runbooks_with(tmp_path, "0031_broken.md", BROKEN)
    bot = make_slackbot(db_0023, runbooks_dir=runbooks)
    answer = request(bot, "0031").params["text"]
    assert "0031_broken.md:9" in answer
    assert "cannot run inside a transaction block" in answer
    assert bot.components.store.recent() == []
    assert "0031" not in request(bot, "list").params["text"].split("BROKEN")[0]


def test_no_secret_reaches_logs_or_slack(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A full flow with known secrets: not one byte of them in logs or any Slack call body."""
    params = conninfo_to_dict(db_0023)
    params["password"] = "pw-7f1c9e-secret"
    database_url = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    logs = io.StringIO()
    configure_logging(
        secrets=["pw-7f1c9e-secret", "8f742231b10e8888abcd99yyyzzz85a5"],
        stream=logs,
        json=True,
        level="debug",
    )
    bot = make_slackbot(database_url)
    run, channel, ts = planned(bot)
    request(bot, "0023; DROP TABLE users")  # a refusal path too
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.deliver()
    secrets = ["pw-7f1c9e-secret", bot.standin.bot_token, "8f742231b10e8888abcd99yyyzzz85a5"]
    bodies = json.dumps([c.params for c in bot.standin.calls()], default=str)
    text = logs.getvalue()
    assert text, "the flow logged nothing"
    for secret in secrets:
        assert secret not in bodies
        assert secret not in text
    stored = json.dumps([r.model_dump(mode="json") for r in bot.components.store.recent()])
    assert "pw-7f1c9e-secret" not in stored
