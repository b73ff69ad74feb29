"""Slack scenarios: refusals, idempotency, expiry, cancel, rate limits, concurrency."""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.run import Run
from bot.core.states import RunEvent, RunState
from demo.sample import MIGRATIONS_DIR
from demo.standin.model import Call
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS, SECOND_APPROVER, runbooks_with
from tests.fix_slackbot import BYSTANDER, INCIDENT_CHANNEL, REQUEST_CHANNEL, SlackBot
from tests.samples import quietly

SHORT = """---
journal: false  # not a Drizzle migration of this project
---
# Drop the wolves index

**Migration File**: `0030_wolves.sql`

## Quick Rollback

```sql
DROP INDEX IF EXISTS idx_sessions_expires;
```
"""


def request(bot: SlackBot, text: str = "0023", user: str = REQUESTER) -> Call:
    """Type `/rollback text` and wait for the ephemeral answer."""
    mark = bot.standin.mark()
    assert bot.sender.slash_command(text, user_id=user, channel_id=REQUEST_CHANNEL).status == 200
    return bot.standin.wait_for("response_url", since=mark, timeout=30)


def planned(bot: SlackBot) -> tuple[Run, str, str]:
    """Request 0023 and return the run with its plan message."""
    request(bot)
    run = bot.components.store.recent()[0]
    channel, ts = bot.plan_message(run.id)
    return run, channel, ts


def wait_state(bot: SlackBot, run_id: int, state: RunState, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while (run := bot.components.store.get(run_id)).state is not state:
        assert time.monotonic() < deadline, f"run is {run.state}, wanted {state}"
        time.sleep(0.05)
    return run


def thread_texts(bot: SlackBot, channel: str, ts: str) -> list[str]:
    """The replies under a message (not the message itself)."""
    bot.deliver()
    return [m.text for m in bot.standin.thread(channel, ts) if m.ts != ts]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Which migration should be rolled back?"),
        ("0099", "No runbook for migration '0099'"),
        ("0023; DROP TABLE users", "is not a migration id"),
        ("stauts", "Did you mean `status`?"),
        ("0023 --target prod", "Unknown target 'prod'. Known targets: default"),
    ],
)
def test_bad_commands_get_an_ephemeral_answer_and_plan_nothing(
    db_0023: str, make_slackbot: Callable[..., SlackBot], text: str, words: str
) -> None:
    """Bad input is answered only to its author, says what is wrong, and plans nothing."""
    bot = make_slackbot(db_0023)
    answer = request(bot, text)
    assert words in answer.params["text"]
    assert answer.params.get("response_type") == "ephemeral"
    assert bot.components.store.recent() == []
    assert bot.standin.calls("chat.postMessage") == []


def test_allow_lists_refuse_other_channels_and_people(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Outside ROLLBOT_ALLOWED_CHANNELS or ROLLBOT_REQUESTERS, nothing is planned."""
    bot = make_slackbot(db_0023, allowed_channels=("C0ELSEWHERE",))
    assert "does not take requests in this channel" in request(bot).params["text"]
    bot = make_slackbot(db_0023, requesters=(APPROVER,))
    assert "may not request rollbacks" in request(bot).params["text"]
    assert bot.components.store.recent() == []


def test_help_list_and_status(db_0023: str, make_slackbot: Callable[..., SlackBot]) -> None:
    """Help shows the usage, list the runbooks, status the active runs."""
    bot = make_slackbot(db_0023)
    assert "/rollback cancel RUN" in request(bot, "help").params["text"]
    assert "0023_loud_shen" in request(bot, "list").params["text"]
    assert request(bot, "status").params["text"] == "No active runs."
    run, _, _ = planned(bot)
    assert f"Run {run.id}: `0023_loud_shen`" in request(bot, "status").params["text"]
    assert "awaiting approval" in request(bot, f"status {run.id}").params["text"]


def test_approvals_that_do_not_count_are_answered_once(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Requester and bystander reactions are refused in the thread, once each; emoji ignored."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.sender.reaction_added(REQUESTER, "white_check_mark", channel, ts)
    bot.sender.reaction_added(BYSTANDER, "white_check_mark", channel, ts)
    bot.sender.reaction_added(BYSTANDER, "white_check_mark", channel, ts)  # again, new event id
    bot.sender.reaction_added(APPROVER, "tada", channel, ts)  # unrelated emoji
    other = bot.standin.add_user_message(REQUEST_CHANNEL, REQUESTER, "unrelated")
    bot.sender.reaction_added(APPROVER, "white_check_mark", REQUEST_CHANNEL, other)
    time.sleep(0.5)
    texts = thread_texts(bot, channel, ts)
    refusals = [t for t in texts if "cannot approve" in t or "not an approver" in t]
    assert len(refusals) == 2, texts
    assert any(t.startswith(f"<@{REQUESTER}>: you requested run") for t in refusals)
    assert any(t.startswith(f"<@{BYSTANDER}>: you are not an approver") for t in refusals)
    assert bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL


def test_retried_event_is_acted_on_once(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Slack's retry of the same event id (X-Slack-Retry-Num) executes nothing twice."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    event = {
        "type": "reaction_added",
        "user": APPROVER,
        "reaction": "white_check_mark",
        "item_user": "U0ROLLBOT",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": "1700000100.000100",
    }
    bot.sender.event(event, event_id="Ev0RETRY1")
    bot.sender.event(event, event_id="Ev0RETRY1", retry_num=1, retry_reason="http_timeout")
    wait_state(bot, run.id, RunState.SUCCEEDED)
    texts = thread_texts(bot, channel, ts)
    assert sum("succeeded" in t for t in texts) == 1
    kinds = [e["kind"] for e in bot.components.store.events(run.id)]
    assert kinds.count("execution_started") == 1


def test_reaction_before_the_backup_is_verified_is_refused(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """While the backup runs, an approval does not count and the thread says why."""
    bot = make_slackbot(db_0023)
    run, _channel, _ts = planned(bot)
    store = bot.components.store
    runs = quietly(store)
    runs.move(run, RunEvent.CANCELLED, actor="test")
    backing_up = runs.create(
        runs.reserve_id(),
        migration_id="0024",
        runbook_name="0024_x",
        target_name=run.target_name,
        target_label=run.target_label,
        target_identity=run.target_identity,
        requested_by=REQUESTER,
        channel=REQUEST_CHANNEL,
        plan=run.plan,
        plan_hash=run.plan_hash,
    )
    backing_up = runs.move(backing_up, RunEvent.BACKUP_STARTED, actor="test")
    ts2 = bot.standin.add_user_message(REQUEST_CHANNEL, "U0ROLLBOT", "plan of run 2")
    bot.components.deliveries.remember_message(backing_up.id, "plan", REQUEST_CHANNEL, ts2)
    bot.sender.reaction_added(APPROVER, "white_check_mark", REQUEST_CHANNEL, ts2)
    bot.standin.wait_for(
        "chat.postMessage", lambda c: "not verified yet" in str(c.params.get("text")), timeout=10
    )
    assert store.get(backing_up.id).state is RunState.BACKING_UP


def test_expired_run_refuses_approval(db_0023: str, make_slackbot: Callable[..., SlackBot]) -> None:
    """After the approval window the reaction is refused and the run is expired."""
    bot = make_slackbot(db_0023, approval_ttl="1s")
    run, channel, ts = planned(bot)
    time.sleep(1.2)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    texts: list[str] = []
    deadline = time.monotonic() + 10
    while not any("request a new plan" in t for t in texts):
        assert time.monotonic() < deadline, texts
        texts = thread_texts(bot, channel, ts)
    bot.components.service.expire_due()
    assert bot.components.store.get(run.id).state is RunState.EXPIRED


def test_cancel_by_requester_and_not_by_bystander(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A bystander cannot cancel; the requester can, and the plan message says so."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    assert "may not cancel" in request(bot, f"cancel {run.id}", user=BYSTANDER).params["text"]
    assert "is cancelled" in request(bot, f"cancel {run.id}").params["text"]
    bot.deliver()
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "cancelled" in message.text
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    bot.standin.wait_for(
        "chat.postMessage", lambda c: "is cancelled" in str(c.params.get("text")), timeout=10
    )
    assert bot.components.store.get(run.id).state is RunState.CANCELLED


def test_rate_limited_update_is_retried_and_the_run_completes(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A 429 on chat.update is retried after Retry-After; the rollback is not held up."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.standin.script_error("chat.update", "ratelimited", status=429, retry_after=1)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.deliver(timeout=20)
    limited = [c for c in bot.standin.calls("chat.update") if c.status == 429]
    assert len(limited) == 1
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "succeeded" in message.text


def test_second_request_is_pointed_to_the_first(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """One active run per migration and target: a second request names the first."""
    bot = make_slackbot(db_0023)
    run, _, _ = planned(bot)
    answer = request(bot, "23", user=APPROVER)
    assert f"run {run.id}" in answer.params["text"]
    assert "already has an active rollback" in answer.params["text"]
    assert len(bot.components.store.recent()) == 1


def test_short_sql_is_shown_in_the_message(
    db_0023: str, make_slackbot: Callable[..., SlackBot], tmp_path: Path
) -> None:
    """SQL that fits goes in the message itself, and no snippet is uploaded."""
    bot = make_slackbot(db_0023, runbooks_dir=runbooks_with(tmp_path, "0030_wolves.md", SHORT))
    request(bot, "0030")
    run = bot.components.store.recent()[0]
    channel, ts = bot.plan_message(run.id)
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "DROP INDEX IF EXISTS idx_sessions_expires;" in str(message.blocks)
    assert bot.standin.files() == []


def test_two_required_approvals_need_two_people(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """With ROLLBOT_REQUIRED_APPROVALS=2 the first approval waits for a second approver."""
    bot = make_slackbot(db_0023, required_approvals=2)
    run, channel, ts = planned(bot)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    bot.standin.wait_for(
        "chat.postMessage", lambda c: "1 more needed" in str(c.params.get("text")), timeout=10
    )
    assert bot.components.store.get(run.id).state is RunState.AWAITING_APPROVAL
    bot.sender.reaction_added(SECOND_APPROVER, "white_check_mark", channel, ts)
    done = wait_state(bot, run.id, RunState.SUCCEEDED)
    assert done.approvers == (APPROVER, SECOND_APPROVER)


def test_user_group_members_may_approve(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """An approver listed through a user group (usergroups.users.list) can approve."""
    bot = make_slackbot(db_0023, approvers=("S0DBAS",))
    bot.standin.add_usergroup("S0DBAS", [SECOND_APPROVER], handle="dbas")
    run, channel, ts = planned(bot)
    bot.sender.reaction_added(SECOND_APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    assert bot.standin.calls("usergroups.users.list")


def test_forged_and_stale_signatures_are_rejected(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A wrong signing secret or a timestamp over 5 minutes old gets 401; nothing happens."""
    bot = make_slackbot(db_0023)
    forged = bot.sender.forged(signing_secret="not-the-secret")
    stale = bot.sender.forged(age=301)
    for sender in (forged, stale):
        answer = sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
        assert answer.status == 401
    time.sleep(0.3)
    assert bot.components.store.recent() == []
    assert bot.standin.calls("chat.postMessage") == []
    assert bot.standin.calls("response_url") == []


def test_history_and_restore_from_slack(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """/rollback history names the rollback; /rollback restore plans it back, approved by emoji."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    answer = request(bot, "history")
    history = json.dumps(answer.params["blocks"], ensure_ascii=False)
    assert "`0023_loud_shen.sql` · 2025-11-13 · *rolled back by run" in history
    assert f"rolled back by run {run.id} (requested by <@{REQUESTER}>" in history
    assert "| --- |" not in history  # Slack renders no Markdown tables

    answer = request(bot, f"restore {run.id}").params["text"]
    restore = bot.components.store.recent()[0]
    assert restore.kind == "restore", answer
    assert f"Run {restore.id}: awaiting approval" in answer
    r_channel, r_ts = bot.plan_message(restore.id)
    message = bot.standin.message(r_channel, r_ts)
    assert message is not None
    assert f"what run {run.id} rolled back" in str(message.blocks)
    bot.sender.reaction_added(APPROVER, "white_check_mark", r_channel, r_ts)
    wait_state(bot, restore.id, RunState.SUCCEEDED)
    assert any("restored" in t for t in thread_texts(bot, r_channel, r_ts))


def test_a_channel_slack_does_not_know_does_not_hold_up_the_run(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A message Slack refuses for good (channel_not_found) is given up; the rest go on."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.standin.script_error("chat.postMessage", "channel_not_found", times=1)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.deliver()
    failed = [c for c in bot.standin.calls("chat.postMessage") if c.error == "channel_not_found"]
    assert len(failed) == 1
    assert any("succeeded" in t for t in thread_texts(bot, channel, ts))


def test_target_from_slack_is_named_in_every_message(
    db_0023: str,
    make_database: Callable[..., str],
    asset_forge_0023_template: str,
    make_slackbot: Callable[..., SlackBot],
    tmp_path: Path,
) -> None:
    """/rollback 0023 --target staging plans on staging, and the messages say so."""
    staging = make_database(template=asset_forge_0023_template, prefix="rollbot_stg")
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"staging: '{staging}'\n")
    bot = make_slackbot(db_0023, targets_spec=f"@{targets}")
    answer = request(bot, "0023 --target staging")
    run = bot.components.store.recent()[0]
    assert run.target_name == "staging", answer.params["text"]
    channel, ts = bot.plan_message(run.id)
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "staging: " in str(message.blocks)
    incident = [m for m in bot.standin.messages(INCIDENT_CHANNEL) if not m.is_reply]
    assert "staging: " in incident[-1].text


CLI_COMMAND = re.compile(
    r"\brollbot (plan|approve|restore|cancel|runs|show|history|lint|derive|runbooks|serve)\b"
)


def test_slack_replies_never_point_to_cli_commands(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Someone in Slack may have no terminal: every reply and message speaks Slack's commands.

    The refusals are driven the way a person stumbles on them: a run that does not exist, a
    restore of a run that rolled nothing back, an unknown migration, a bystander's cancel,
    then a whole rollback with its outcome.
    """
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    for text in ("status 999", "restore 999", f"restore {run.id}", "9999", "list", "history"):
        request(bot, text)
    request(bot, f"cancel {run.id}", user=BYSTANDER)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    bot.deliver()
    said = [json.dumps(c.params) for c in bot.standin.calls()]
    assert [m.group(0) for text in said for m in CLI_COMMAND.finditer(text)] == []
    assert any("/rollback restore" in text for text in said)  # the outcome's undo, in Slack's words


def test_the_audit_trail_in_slack_is_escaped_and_complete(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """/rollback log RUN: each step, in order, as inert text, with who did it."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    wait_state(bot, run.id, RunState.SUCCEEDED)
    answer = request(bot, f"log {run.id}")
    trail = answer.params["blocks"][1]["text"]["text"]
    kinds = [line.split()[3] for line in trail.splitlines()[1:]]
    assert kinds[0] == "requested"
    assert kinds[-1] == "succeeded"
    assert APPROVER in trail
    assert "<@" not in trail  # people are named, not mentioned, in an audit


def test_a_slack_run_approved_from_the_cli_is_reported_in_slack(
    db_0023: str, make_slackbot: Callable[..., SlackBot], tmp_path: Path
) -> None:
    """Break-glass approval from a terminal: the tables go, and Slack is told, step by step.

    The CLI stored its moves without Slack's messages, so the plan message kept its Approve
    button over dropped tables and neither thread heard of it.
    """
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    bot.standin.add_usergroup("S0BREAK", [APPROVER], handle="breakglass")
    env = {
        **os.environ,
        "DATABASE_URL": db_0023,
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "ROLLBOT_APPROVERS": "S0BREAK",  # the approver is known to the CLI through the group
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
        "ROLLBOT_INCIDENT_CHANNEL": INCIDENT_CHANNEL,
        "SLACK_BOT_TOKEN": bot.standin.bot_token,
        "SLACK_API_URL": bot.standin.api_url,
    }

    def approve(**environment: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "approve", str(run.id), "--as", APPROVER],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )

    without_slack = {k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}
    refused = approve(**without_slack)
    assert refused.returncode == 2
    assert "S0BREAK" in refused.stderr
    assert "SLACK_BOT_TOKEN" in refused.stderr
    approved = approve(**env)
    assert approved.returncode == 0, approved.stderr
    replies = thread_texts(bot, channel, ts)
    assert any("succeeded" in text for text in replies), replies
    message = bot.standin.message(channel, ts)
    assert message is not None
    assert "succeeded" in message.text
    assert "Approve" not in json.dumps(message.blocks)  # no button left over dropped tables
    incident = [m.text for m in bot.standin.messages(INCIDENT_CHANNEL)]
    assert any("succeeded" in text for text in incident), incident


def test_a_dry_run_answers_the_requester_alone_and_changes_nothing(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """/rollback 0023 --dry-run: the preview, to the requester; no run, backup or post."""
    bot = make_slackbot(db_0023)
    mark = bot.standin.mark()
    answer = request(bot, "0023 --dry-run")
    shown = json.dumps(answer.params["blocks"], ensure_ascii=False)
    assert "preview only" in shown
    assert "DROP TABLE IF EXISTS api_errors" in shown
    assert "nothing was run, backed up or posted" in shown
    assert answer.params.get("response_type") == "ephemeral"
    assert bot.components.store.recent() == []
    assert bot.standin.calls("chat.postMessage", since=mark) == []
    backups = bot.components.settings.backup_dir
    assert not backups.exists() or not any(backups.iterdir())
