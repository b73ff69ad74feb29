"""Slack-side guarantees: exactly once, the outbox, hostile input, secrets never shown."""

import io
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.run import Run
from bot.core.states import RunState
from bot.logs import configure_logging
from bot.state.deliveries import Deliveries
from bot.state.store import RunStore
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackStandIn
from tests.fix_rollbot import APPROVER, REQUESTER, SECOND_APPROVER, runbooks_with
from tests.fix_slackbot import REQUEST_CHANNEL, SlackBot, populated
from tests.secrets import (
    VAULT_LOG_RUNBOOK,
    VAULT_RUNBOOK,
    Secrets,
    leaks,
    runbook_holding,
    secret_roles,
    share_the_vault,
    state_tables_text,
)
from tests.slack.test_processes import Served, plan_message
from tests.slack.test_processes import wait_state as wait_for_state
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
    results = [t for t in thread_texts(bot, channel, ts) if t.startswith(f"Run {run.id} succeeded")]
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
    # Skip the backoff, again if an attempt that met the 503 was still recording its own.
    deadline = time.monotonic() + 30
    while bot.components.deliveries.pending():
        assert time.monotonic() < deadline, bot.components.deliveries.pending()
        with bot.components.store.connection() as conn:
            conn.execute("UPDATE rollbot.outbox SET next_attempt_at = now()")
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


def test_no_secret_or_literal_leaves_a_served_rollbot_through_its_failures(
    db_0023: str, tmp_path: Path
) -> None:
    """A real `rollbot serve` with distinctive secrets, driven through the failures that echo them.

    A DBA's session changing a password holds the lock the rollback needs; an application
    trigger's error quotes a connection string and a password; one target does not answer, one
    has a URL libpq quotes whole in its error, one may connect but pg_dump is refused. Not one
    secret, and not the DBA's literal, is in any Slack request, log line or state row.
    """
    secrets = Secrets()
    runbooks = runbooks_with(tmp_path, "0031_vault.md", VAULT_RUNBOOK)
    (runbooks / "0032_vault_log.md").write_text(VAULT_LOG_RUNBOOK)
    (runbooks / "0033_vault_note.md").write_text(runbook_holding(secrets.db_password))
    env = {
        **os.environ,
        **secrets.urls(db_0023),
        "ROLLBOT_RUNBOOKS_DIR": str(runbooks),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "ROLLBOT_APPROVERS": APPROVER,
        "ROLLBOT_LOCK_TIMEOUT": "300ms",
        "ROLLBOT_LOCK_RETRIES": "1",
        "ROLLBOT_REHEARSAL": "affected",
        "ROLLBOT_CONNECT_TIMEOUT": "2s",
        "ROLLBOT_LOG_LEVEL": "debug",
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
    }
    env.pop("SLACK_APP_TOKEN", None)
    with (
        secret_roles(db_0023, secrets),
        SlackStandIn(bot_token=secrets.bot_token, app_token=secrets.app_token) as standin,
    ):
        populated(standin)
        env["SLACK_API_URL"] = standin.api_url
        store = RunStore(db_0023)
        served = Served(env, standin, signing_secret=secrets.signing_secret)
        try:
            blocked = _served_request(served, standin, store, "0023")
            with psycopg.connect(db_0023, application_name="admin-shell") as blocker:
                blocker.execute("SELECT count(*) FROM assets")  # the rollback waits for this
                blocker.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(secrets.victim_role), sql.Literal(secrets.literal)
                    )
                )
                _served_approve(served, store, blocked)
                failed = wait_for_state(store, blocked.id, RunState.FAILED)
            assert failed.outcome is not None
            assert failed.outcome.blockers, "the blocking session was not named"
            echoed = _served_request(served, standin, store, "0031")
            share_the_vault(db_0023, secrets)
            _served_approve(served, store, echoed)
            echo = wait_for_state(store, echoed.id, RunState.FAILED)
            assert "violates not-null constraint" in (echo.reason or "")  # the attack landed
            rehearsed = _served_request(served, standin, store, "0032", RunState.BLOCKED)
            assert rehearsed.rehearsal is not None
            assert not rehearsed.rehearsal.ok
            assert "violates not-null constraint" in (rehearsed.rehearsal.error or "")
            holding = _served_request(served, standin, store, "0033", RunState.BLOCKED)
            assert "holds one of rollbot's secrets" in (holding.reason or "")
            for text in ("0023 --target gone", "0023 --target bad", "0023 --target reader", "list"):
                mark = standin.mark()
                served.sender.slash_command(text, user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
                standin.wait_for("response_url", since=mark, timeout=60)
            _drained(Deliveries(store))
        finally:
            logs = served.stop()
            store.close()
        calls = standin.calls()
        channels = {
            "slack": json.dumps([c.params for c in calls], default=str)
            + b"\n".join(c.raw for c in calls).decode(errors="replace"),
            "logs": logs,
            "state": state_tables_text(db_0023),
        }
    assert leaks(channels, secrets.values()) == []


def _served_request(
    served: Served,
    standin: SlackStandIn,
    store: RunStore,
    text: str,
    state: RunState = RunState.AWAITING_APPROVAL,
) -> Run:
    """`/rollback text` on a served rollbot; the run once it reaches `state`."""
    mark = standin.mark()
    served.sender.slash_command(text, user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    standin.wait_for("response_url", since=mark, timeout=60)
    run = store.recent()[0]
    return wait_for_state(store, run.id, state)


def _served_approve(served: Served, store: RunStore, run: Run) -> None:
    deliveries = Deliveries(store)
    where = plan_message(deliveries, run.id)
    served.sender.reaction_added(APPROVER, "white_check_mark", *where)


def _drained(deliveries: Deliveries, timeout: float = 30) -> None:
    """Wait until the served rollbot's courier has nothing left to deliver."""
    deadline = time.monotonic() + timeout
    while deliveries.pending():
        assert time.monotonic() < deadline, "the outbox was never drained"
        time.sleep(0.1)


HOSTILE = "<!channel> <https://evil.example|click here> <@U0BOSS>"
RAW_MARKUP = ("<!channel>", "<https://evil.example", "<@U0BOSS>")


def test_database_text_in_a_blocked_plan_notifies_nobody_anywhere(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """An object named like Slack markup: every reply, status line and edit shows it as text.

    A view on a table the rollback drops blocks the plan, and the reason quotes the view's
    name. The plan message escaped it, but the thread reply and `/rollback status` did not,
    and Slack rendered an @channel in the request channel.
    """
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE VIEW {} AS SELECT * FROM api_errors").format(sql.Identifier(HOSTILE))
        )
    bot = make_slackbot(db_0023)
    request(bot, "0023")
    (run,) = bot.components.store.recent()
    run = wait_state(bot, run.id, RunState.BLOCKED)
    assert HOSTILE in (run.reason or "")  # the attack reached the reason
    request(bot, f"status {run.id}")
    request(bot, "status")
    bot.deliver()
    said = json.dumps([c.params for c in bot.standin.calls()], ensure_ascii=False)
    assert [raw for raw in RAW_MARKUP if raw in said] == []
    assert "&lt;!channel&gt;" in said
