"""The shapes Slack sends, checked before Bolt reads them.

Bolt trusts a signed body: `[]`, an `event` that is a string, a slash command without a user
or an interactive `payload=` that is not JSON make its middleware raise, and the request is
answered 500 with a traceback in the log. A signature proves who sent a body, not that the
sender (or a bug, or a replayed capture) got its shape right. So each kind of request Slack
sends is checked here for the fields Bolt and rollbot's listeners rely on, and anything else is
refused with a short reason (never quoting the body). Both transports use it: the HTTP gate
on the raw body, Socket Mode on each envelope's payload.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPE = "application/json"
COMMAND_FIELDS = ("command", "user_id", "channel_id", "team_id")


def http_refusal(raw: str, content_type: str | None) -> str | None:  # noqa: PLR0911 - one per shape
    """Why a signed HTTP body is not one Slack sends, or None.

    The body is read exactly as Bolt reads it (its `parse_body`): JSON when the content type
    says so or the body starts with `{`, an interactive payload when `payload` occurs in it,
    else form fields; so what is checked is what Bolt will see.
    """
    if not raw:
        return "the body is empty"
    if content_type == JSON_TYPE or raw.startswith("{"):
        try:
            body = json.loads(raw)
        except ValueError:
            return "the body is not valid JSON"
        return event_refusal(body)
    if "payload" in raw:
        payload = dict(parse_qsl(raw, keep_blank_values=True)).get("payload")
        if payload is None:
            return "the form has no payload field"
        try:
            return interactive_refusal(json.loads(payload))
        except ValueError:
            return "the interactive payload is not valid JSON"
    fields = dict(parse_qsl(raw, keep_blank_values=True))
    if fields.get("ssl_check") == "1":
        return None  # Slack's certificate probe; Bolt answers it
    return command_refusal(fields)


def envelope_refusal(kind: str, payload: object) -> str | None:
    """Why a Socket Mode envelope's payload is not one Slack sends, or None."""
    if kind == "events_api":
        return event_refusal(payload)
    if kind == "slash_commands":
        if not isinstance(payload, dict):
            return "the slash command is not an object"
        return command_refusal(payload)
    if kind == "interactive":
        return interactive_refusal(payload)
    return f"the envelope type {_short(kind)} is not one rollbot knows"


def event_refusal(body: object) -> str | None:  # noqa: PLR0911 - one per shape
    """The Events API: an object with a type; an event_callback carries an event object."""
    if not isinstance(body, dict):
        return f"the JSON body is {_kind(body)}, not an object"
    kind = body.get("type")
    if not _text(kind):
        return "the JSON body has no type"
    if kind == "url_verification" and not isinstance(body.get("challenge"), str):
        return "the url_verification has no challenge"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict):
            return f"the event_callback's event is {_kind(event)}, not an object"
        if not _text(event.get("type")):
            return "the event_callback's event has no type"
        if "event_id" in body and not _text(body["event_id"]):
            return "the event_callback's event_id is not a string"
    return None


def command_refusal(fields: dict[str, Any]) -> str | None:
    """A slash command: who typed what where, and a way to answer them."""
    missing = [name for name in COMMAND_FIELDS if not _text(fields.get(name))]
    if missing:
        return f"the slash command lacks {', '.join(missing)}"
    if not str(fields["command"]).startswith("/"):
        return "the slash command's command does not start with /"
    if not (_text(fields.get("trigger_id")) or _text(fields.get("response_url"))):
        return "the slash command has neither trigger_id nor response_url"
    if "text" in fields and not isinstance(fields["text"], str):
        return "the slash command's text is not a string"
    return None


def interactive_refusal(payload: object) -> str | None:  # noqa: PLR0911 - one per shape
    """An interactive payload (buttons, shortcuts, modals): an object with a type and a user."""
    if not isinstance(payload, dict):
        return f"the interactive payload is {_kind(payload)}, not an object"
    kind = payload.get("type")
    if not _text(kind):
        return "the interactive payload has no type"
    user = payload.get("user")
    if not (isinstance(user, dict) and _text(user.get("id"))):
        return f"the {_short(kind)} payload has no user id"
    if kind == "block_actions":
        actions = payload.get("actions")
        if not (isinstance(actions, list) and actions):
            return "the block_actions payload has no actions"
        if not all(isinstance(a, dict) and _text(a.get("action_id")) for a in actions):
            return "an action of the block_actions payload has no action_id"
    if kind in {"view_submission", "view_closed"} and not isinstance(payload.get("view"), dict):
        return f"the {kind} payload has no view"
    if kind in {"shortcut", "message_action"} and not _text(payload.get("callback_id")):
        return f"the {kind} payload has no callback_id"
    return None


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _short(value: object) -> str:
    """A type name from the request, bounded: never more of the body than that."""
    text = str(value)
    return repr(text[:40] + ("…" if len(text) > 40 else ""))  # noqa: PLR2004
