"""`/rollback doctor` in Slack: approvers only, answered to them alone, Slack's gaps named."""

import json
from collections.abc import Callable

from demo.standin.methods import manifest_scopes
from demo.standin.model import Call
from tests.fix_rollbot import APPROVER
from tests.fix_slackbot import BYSTANDER, INCIDENT_CHANNEL, REQUEST_CHANNEL, SlackBot


def test_doctor_answers_an_approver_alone_naming_a_missing_scope_and_channel(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """An approver sees every check, ephemerally; a bystander is refused; /healthz says it."""
    bot = make_slackbot(db_0023, allowed_channels=(REQUEST_CHANNEL,))
    bot.standin.grant_scopes(manifest_scopes() - {"usergroups:read"})
    bot.standin.add_channel(INCIDENT_CHANNEL, "incident", member=False)
    mark = bot.standin.mark()

    answer = _doctor(bot, APPROVER)
    assert answer.params.get("response_type") == "ephemeral"
    shown = json.dumps(answer.params["blocks"], ensure_ascii=False)
    errors = next(b["text"]["text"] for b in answer.params["blocks"] if "*Errors*" in str(b))
    assert "the bot token lacks the scope usergroups:read" in errors
    assert "rollbot is not a member of #incident" in errors
    assert "`/invite @rollbot` in #incident" in errors
    assert "rollbot is a member of #ops" in shown
    assert "target default: reachable" in shown
    assert "auth.test" in shown
    (auth,) = bot.standin.calls("auth.test", since=mark)
    assert auth.token == bot.standin.bot_token
    asked = {c.params["channel"] for c in bot.standin.calls("conversations.info", since=mark)}
    assert asked == {REQUEST_CHANNEL, INCIDENT_CHANNEL}

    refused = _doctor(bot, BYSTANDER)
    assert "may not run `/rollback doctor`" in refused.params["text"]
    assert "Errors" not in json.dumps(refused.params.get("blocks"))
    assert bot.standin.calls("chat.postMessage", since=mark) == []
    assert bot.components.store.recent() == []

    # The same report at start-up: shown by /healthz, which still answers healthy.
    bot.components.check_setup().join(timeout=30)
    health = bot.components.health()
    assert health["doctor"] == "2 error(s) at start-up: run rollbot doctor"
    assert health["ok"] is True


def _doctor(bot: SlackBot, user: str) -> Call:
    mark = bot.standin.mark()
    delivery = bot.sender.slash_command("doctor", user_id=user, channel_id=REQUEST_CHANNEL)
    assert delivery.status == 200
    return bot.standin.wait_for("response_url", since=mark, timeout=30)
