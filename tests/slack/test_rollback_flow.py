"""`/rollback 0023` in Slack, end to end: signed requests in, Web API calls out."""

from collections.abc import Callable

from bot.core.states import RunState
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, DROP_MODE, REQUESTER
from tests.fix_slackbot import INCIDENT_CHANNEL, REQUEST_CHANNEL, SlackBot


def final_backup_told(bot: SlackBot, run_id: int) -> None:
    """Announced at COMMIT; the quarantine's dump follows and the thread is told of it."""
    taken = bot.standin.wait_for(
        "chat.postMessage",
        lambda call: "is taken" in str(call.params.get("text", "")),
        timeout=30,
    )
    assert "final backup of rollbot_quarantine_0023_" in taken.params["text"]
    outcome = bot.components.store.get(run_id).outcome
    assert outcome is not None
    assert outcome.quarantine_backup is not None


def test_happy_path_plan_backup_approval_and_counts(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A request, an approver's reaction, and the verification counts in the thread."""
    bot = make_slackbot(db_0023)
    mark = bot.standin.mark()
    delivery = bot.sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert delivery.status == 200

    answer = bot.standin.wait_for("response_url", since=mark, timeout=30)
    assert "awaiting approval" in answer.params["text"]
    (run,) = bot.components.store.recent()
    assert run.state is RunState.AWAITING_APPROVAL
    channel, ts = bot.plan_message(run.id)
    plan = bot.standin.message(channel, ts)
    assert plan is not None
    rendered = str(plan.blocks)
    assert "Rollback run" in rendered
    assert "verified" in rendered
    assert "React with :white_check_mark:" in rendered
    assert "error_aggregations_resolved_by_users_id_fk" in rendered  # the no-op is shown
    # While the backup ran, the plan message was edited with the bytes written so far.
    progress = [
        c
        for c in bot.standin.calls("chat.update", since=mark)
        if "written of at most" in str(c.params.get("blocks", ""))
    ]
    assert progress, "no chat.update carried the backup's progress"
    assert "B written of at most ~" in str(progress[0].params["blocks"])
    (snippet,) = bot.standin.files()
    if DROP_MODE == "drop":
        assert "DROP TABLE IF EXISTS api_errors;" in snippet.text
    else:  # the snippet is the SQL that runs: the table is moved aside, not dropped
        assert "ALTER TABLE public.api_errors SET SCHEMA rollbot_quarantine_0023_" in snippet.text
        assert "DROP TABLE" not in snippet.text

    bot.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
    bot.standin.wait_for(
        "chat.postMessage",
        lambda call: "succeeded" in str(call.params.get("text", "")),
        timeout=30,
    )
    assert bot.components.store.get(run.id).state is RunState.SUCCEEDED
    if DROP_MODE != "drop":
        final_backup_told(bot, run.id)
    bot.deliver()
    thread = bot.standin.thread(channel, ts)
    outcome = "\n".join(str(m.blocks) for m in thread)
    gone = "dropped" if DROP_MODE == "drop" else "moved aside"
    assert f"`public.api_errors`: {SAMPLE_COUNTS['api_errors']:,} rows {gone}" in outcome
    if DROP_MODE != "drop":
        assert "Objects moved aside to the quarantine schema rollbot_quarantine_0023_" in outcome
        assert "Objects dropped" not in outcome
    incident = [m for m in bot.standin.messages(INCIDENT_CHANNEL) if not m.is_reply]
    assert len(incident) == 1
    assert "request thread" in str(incident[0].blocks)
    updates = bot.standin.thread(INCIDENT_CHANNEL, incident[0].ts)
    texts = [m.text for m in updates]
    assert any("Backup verified" in t for t in texts)
    assert any("Approved by" in t for t in texts)
    assert any("succeeded" in t for t in texts)
