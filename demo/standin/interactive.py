"""The interaction payloads Slack sends when a person presses a button or sends a modal.

`block_actions` and `view_submission` in Slack's field names and shapes, delivered as the form
field `payload=` (HTTP) or an `interactive` envelope (Socket Mode), built here for both. A
press can only be made on a button the message shows now, as in the Slack client: once the
app has taken its buttons away, `press` raises instead of inventing a payload.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo.standin.model import JSON
    from demo.standin.webapi import SlackStandIn


class NoSuchButtonError(LookupError):
    """The message shows no button with that action id (any more)."""


def button(standin: SlackStandIn, channel: str, ts: str, action_id: str) -> tuple[str, JSON]:
    """(block id, element) of the button a message shows now, or NoSuchButtonError."""
    message = standin.message(channel, ts)
    for block in message.blocks if message is not None else ():
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    raise NoSuchButtonError(f"the message {ts} in {channel} shows no {action_id!r} button")


def block_actions(standin: SlackStandIn, user: str, channel: str, ts: str, action_id: str) -> JSON:
    """A press of a button on a message (after its confirmation dialog, if it has one)."""
    block_id, element = button(standin, channel, ts, action_id)
    label = str((element.get("text") or {}).get("text", action_id))
    press = standin.forms.press(user, channel, ts, label)
    standin.workspace.note_press(channel, ts, user, f"pressed [{label}]")
    me = standin.identity
    message = standin.message(channel, ts)
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": element.get("text"),
        "value": element.get("value", ""),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if "style" in element:
        action["style"] = element["style"]
    return {
        "type": "block_actions",
        "user": _user(standin, user),
        "api_app_id": me.app_id,
        "token": me.verification_token,
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": press.trigger_id,
        "team": {"id": me.team_id, "domain": me.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": standin.workspace.channel_name(channel)},
        "message": message.to_api(me.team_id) if message is not None else {},
        "state": {"values": {}},
        "response_url": standin.new_response_url(channel_id=channel, user_id=user),
        "actions": [action],
    }


def view_submission(standin: SlackStandIn, user: str, view_id: str, values: JSON) -> JSON:
    """A modal sent by the person it was opened for; `values` is block id -> action id -> text.

    Each text becomes the `plain_text_input` state Slack sends; a press trigger id comes too.
    """
    form = standin.forms.form(view_id)
    me = standin.identity
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in inputs.items()
        }
        for block, inputs in values.items()
    }
    view = form.to_api(me.team_id, me.app_id, me.bot_id) | {"state": {"values": state}}
    title = str((form.view.get("title") or {}).get("text", ""))
    said = "; ".join(str(t) for inputs in values.values() for t in inputs.values())
    standin.workspace.note_press(form.channel, form.ts, user, f'sent "{title}": {said}')
    trigger = standin.forms.press(user, form.channel, form.ts, title).trigger_id
    return {
        "type": "view_submission",
        "team": {"id": me.team_id, "domain": me.team_domain},
        "user": _user(standin, user),
        "api_app_id": me.app_id,
        "token": me.verification_token,
        "trigger_id": trigger,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def _user(standin: SlackStandIn, user: str) -> JSON:
    name = standin.workspace.user_name(user)
    return {"id": user, "username": name, "name": name, "team_id": standin.identity.team_id}
