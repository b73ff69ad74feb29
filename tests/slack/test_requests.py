"""Anyone who can reach /slack/events: malformed, forged and replayed requests act never."""

import io
import json
import time
from collections.abc import Callable
from urllib.parse import urlencode

from bot.core.states import RunState
from bot.logs import configure_logging
from demo.standin import payloads
from demo.standin.sender import Delivery, sign
from tests.fix_rollbot import APPROVER, REQUESTER
from tests.fix_slackbot import REQUEST_CHANNEL, SIGNING_SECRET, SlackBot
from tests.slack.test_scenarios import planned, wait_state

FORM = "application/x-www-form-urlencoded"


def _command_body(bot: SlackBot, text: str) -> bytes:
    fields = payloads.slash_command(
        bot.standin, text, user_id=REQUESTER, channel_id=REQUEST_CHANNEL
    )
    return urlencode(fields).encode()


def _signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(SIGNING_SECRET, stamp, body),
    }


def _replay(bot: SlackBot, body: bytes, headers: dict[str, str], content: str = FORM) -> Delivery:
    return bot.sender.deliver(body, content, headers)


def test_malformed_timestamps_are_refused_with_401_never_500(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A timestamp that is empty, not a number or not ASCII digits is a 401, and plans nothing."""
    bot = make_slackbot(db_0023)
    body = _command_body(bot, "0023")
    for stamp in ("abc", "", "1e9", "-5", "\u00b9\u00b2\u00b3"):
        headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + "0" * 64}
        delivery = _replay(bot, body, headers)
        assert delivery.status == 401, (stamp, delivery.status)
    assert bot.components.store.recent() == []


def test_a_signed_body_that_is_not_utf8_is_a_400(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Correctly signed bytes that are not UTF-8 are a 400, not a crash in Bolt's parser."""
    bot = make_slackbot(db_0023)
    body = b"command=%2Frollback&text=\xff\xfe0023&user_id=" + REQUESTER.encode()
    assert _replay(bot, body, _signed(body)).status == 400
    event = b'{"type": "\xff"}'
    assert _replay(bot, event, _signed(event), "application/json").status == 400
    assert bot.components.store.recent() == []


def test_an_oversized_body_is_refused_before_it_is_read_whole(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A body far beyond anything Slack sends is a 413."""
    bot = make_slackbot(db_0023)
    body = b"text=" + b"x" * (2 << 20)
    assert _replay(bot, body, _signed(body)).status == 413


def test_a_forged_request_is_logged_by_size_and_hash_not_by_content(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """The refusal names why; the forged body (which may carry anything) never reaches the log."""
    logs = io.StringIO()
    configure_logging(secrets=[], stream=logs, json=True, level="debug")
    bot = make_slackbot(db_0023)
    marker = "hostile-body-7c1e55"
    body = _command_body(bot, f"0023 {marker}")
    headers = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"}
    assert _replay(bot, body, headers).status == 401
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    refused = [line for line in lines if line.get("event") == "slack.request_refused"]
    assert refused
    assert refused[0]["body_bytes"] == len(body)
    assert "signature" in refused[0]["why"]
    assert marker not in logs.getvalue()


def test_a_replayed_slash_command_acts_once_even_after_its_run_ended(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """The same signed bytes sent again inside the window are acked and do nothing."""
    bot = make_slackbot(db_0023)
    body = _command_body(bot, "0023")
    headers = _signed(body)
    assert _replay(bot, body, headers).status == 200
    deadline = time.monotonic() + 30
    while not bot.components.store.recent():
        assert time.monotonic() < deadline, "the command planned nothing"
        time.sleep(0.05)
    run = wait_state(bot, bot.components.store.recent()[0].id, RunState.AWAITING_APPROVAL)
    bot.components.service.cancel(run.id, REQUESTER)

    again = _replay(bot, body, headers)
    assert again.status == 200
    assert again.body == ""
    assert [r.id for r in bot.components.store.recent()] == [run.id]


def test_a_replayed_reaction_event_approves_nothing_twice(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A captured, signed approval replayed later neither approves nor answers again."""
    bot = make_slackbot(db_0023)
    run, channel, ts = planned(bot)
    event = payloads.reaction_added(bot.standin, APPROVER, "white_check_mark", channel, ts)
    envelope = payloads.event_callback(bot.standin, event, event_id=None, retry=False)
    body = json.dumps(envelope).encode()
    headers = _signed(body)
    assert _replay(bot, body, headers, "application/json").status == 200
    wait_state(bot, run.id, RunState.SUCCEEDED)
    events = len(bot.components.store.events(run.id))
    assert _replay(bot, body, headers, "application/json").status == 200
    time.sleep(0.5)
    assert len(bot.components.store.events(run.id)) == events


def test_trigger_ids_older_than_the_window_are_forgotten(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Remembered trigger ids are pruned once a replay would fail the timestamp check anyway."""
    bot = make_slackbot(db_0023)
    body = _command_body(bot, "help")
    assert _replay(bot, body, _signed(body)).status == 200
    # The ack goes out before the command is handled; its answer means the id is remembered.
    bot.standin.wait_for("response_url", timeout=30)
    deliveries = bot.components.deliveries
    assert deliveries.forget_seen("trigger:", older_than_s=3600) == 0
    assert deliveries.forget_seen("trigger:", older_than_s=0) == 1
