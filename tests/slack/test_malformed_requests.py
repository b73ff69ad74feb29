"""Signed but malformed: every shape Slack never sends is a 400 with a reason, never a 500."""

import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.logs import configure_logging
from demo.standin import payloads
from tests.fix_rollbot import REQUESTER
from tests.fix_slackbot import REQUEST_CHANNEL, SlackBot

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MARKER = "marker-3f9a1c"  # in every malformed body: it must never reach the log


def _command(**fields: str) -> bytes:
    return urlencode(fields).encode()


def _payload(value: object) -> bytes:
    return urlencode({"payload": json.dumps(value)}).encode()


def _block_actions(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": REQUESTER, "name": "alice"},
        "team": {"id": "T0ROLLBOT"},
        "api_app_id": "A0ROLLBOT",
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/actions",
        "container": {"type": "message", "channel_id": REQUEST_CHANNEL},
        "actions": [{"action_id": "approve", "block_id": "b", "type": "button", "value": "1"}],
        "marker": MARKER,
    } | overrides


def _event(event: object) -> bytes:
    return json.dumps(
        {"type": "event_callback", "team_id": "T0", "event_id": "Ev0X", "event": event,
         "marker": MARKER}
    ).encode()  # fmt: skip


MALFORMED = {
    "json array": (b"[]", JSON),
    "json null": (b"null", JSON),
    "json number": (b"1", JSON),
    "json string": (b'"' + MARKER.encode() + b'"', JSON),
    "json cut": (b'{"marker": "' + MARKER.encode(), JSON),
    "json without type": (json.dumps({"marker": MARKER}).encode(), JSON),
    "event is a string": (_event(MARKER), JSON),
    "event is null": (_event(None), JSON),
    "event is missing": (json.dumps({"type": "event_callback", "m": MARKER}).encode(), JSON),
    "event without type": (_event({"user": REQUESTER, "marker": MARKER}), JSON),
    "url_verification without challenge": (
        json.dumps({"type": "url_verification", "marker": MARKER}).encode(),
        JSON,
    ),
    "form sent as json": (_command(command="/rollback", text=MARKER), JSON),
    "empty form": (b"", FORM),
    "slash command with no fields": (_command(command="/rollback", text=MARKER), FORM),
    "slash command without user": (
        _command(
            command="/rollback",
            text=MARKER,
            channel_id=REQUEST_CHANNEL,
            team_id="T0",
            trigger_id="1.2.3",
        ),
        FORM,
    ),
    "slash command without a way to answer": (
        _command(
            command="/rollback",
            text=MARKER,
            user_id=REQUESTER,
            channel_id=REQUEST_CHANNEL,
            team_id="T0",
        ),
        FORM,
    ),
    "payload not json": (b"payload=notjson-" + MARKER.encode(), FORM),
    "payload array": (_payload([MARKER]), FORM),
    "payload without type": (_payload({"marker": MARKER}), FORM),
    "block_actions without user": (_payload(_block_actions(user=None)), FORM),
    "block_actions without actions": (_payload(_block_actions(actions=[])), FORM),
    "block_actions action without id": (_payload(_block_actions(actions=[{"m": MARKER}])), FORM),
    "block_actions actions a string": (_payload(_block_actions(actions=MARKER)), FORM),
}


def test_every_malformed_signed_shape_is_a_400_and_never_logged(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Over real HTTP: each malformed shape is a 400 with a reason; no body, no error logged."""
    logs = io.StringIO()
    configure_logging(secrets=[], stream=logs, json=True, level="debug")
    bot = make_slackbot(db_0023)
    for name, (body, content_type) in MALFORMED.items():
        delivery = bot.sender.deliver(body, content_type)
        assert delivery.status == 400, (name, delivery.status, delivery.body)
        assert delivery.body.strip(), name  # a short reason
        assert MARKER not in delivery.body, name
    time.sleep(0.3)  # anything a listener would have done after the ack
    assert bot.components.store.recent() == []
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    refused = [line for line in lines if line.get("event") == "slack.request_refused"]
    assert len(refused) == len(MALFORMED)
    assert all(line["body_sha256"] for line in refused)
    assert not [line for line in lines if line.get("level") == "error"]
    assert MARKER not in logs.getvalue()
    assert bot.standin.calls("chat.postMessage") == []


def test_well_formed_requests_still_work_beside_the_gate(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """Handshake, probe, command and event pass; an unhandled block_actions gets Bolt's 404."""
    bot = make_slackbot(db_0023)
    handshake = bot.sender.url_verification("challenge-7")
    assert (handshake.status, handshake.json()) == (200, {"challenge": "challenge-7"})
    assert bot.sender.ssl_check().status == 200
    mark = bot.standin.mark()
    help_ = bot.sender.slash_command("help", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert help_.status == 200
    answer = bot.standin.wait_for("response_url", since=mark, timeout=10)
    assert "/rollback cancel RUN" in answer.params["text"]
    event = payloads.reaction_added(bot.standin, REQUESTER, "eyes", REQUEST_CHANNEL, "1.000001")
    assert bot.sender.event(event).status == 200
    other = payloads.reaction_added(bot.standin, REQUESTER, "eyes", REQUEST_CHANNEL, "1.000002")
    other["type"] = "app_mention"
    assert bot.sender.event(other).status in {200, 404}  # Bolt's answer for no listener
    actions = bot.sender.deliver(_payload(_block_actions()), FORM)
    assert actions.status == 404, actions.body
    unknown = payloads.slash_command(
        bot.standin, "x", user_id=REQUESTER, channel_id=REQUEST_CHANNEL, command="/other"
    )
    assert bot.sender.deliver(urlencode(unknown).encode(), FORM).status == 404
    json_typed = payloads.url_verification(bot.standin.identity, "c-8")
    body = json.dumps(json_typed).encode()
    assert bot.sender.deliver(body, "application/json; charset=utf-8").status == 200


def test_whatever_still_makes_bolt_raise_is_a_400_with_a_reference(
    db_0023: str, make_slackbot: Callable[..., SlackBot], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: what breaks inside Bolt is a 400 naming a reference logged with it."""
    logs = io.StringIO()
    configure_logging(secrets=[], stream=logs, json=True, level="debug")
    bot = make_slackbot(db_0023)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(MARKER)

    monkeypatch.setattr(bot.components.chatops, "enqueue", broken)  # before the ack
    delivery = bot.sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert delivery.status == 400, delivery.body
    assert "reference" in delivery.body
    reference = delivery.body.split("reference ")[1].split(")")[0]
    monkeypatch.setattr("slack_bolt.adapter.wsgi.handler.SlackRequestHandler.dispatch", broken)
    raised = bot.sender.slash_command("help", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert raised.status == 400, raised.body
    assert "reference" in raised.body
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    errors = [line for line in lines if line.get("level") == "error"]
    assert errors
    assert all(line.get("reference") for line in errors)
    assert any(line.get("reference") == reference for line in errors)
