"""The payloads Slack delivers to an app, in Slack's field names and shapes.

The HTTP sender and the Socket Mode server deliver the same payloads in different envelopes,
so both build them here. Preparing a payload also tells the stand-in what the person did
(ran a command, added a reaction), which is how the transcript shows it before the bot's reply.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo.standin.model import JSON, Identity
    from demo.standin.webapi import SlackStandIn

_ID_CHARS = string.ascii_uppercase + string.digits


def new_event_id() -> str:
    """An id like Slack's `Ev0PV52K21`, unique per event (retries reuse it)."""
    return "Ev" + "".join(secrets.choice(_ID_CHARS) for _ in range(10))


def new_trigger_id() -> str:
    """An opaque trigger id in Slack's dotted shape."""
    return f"{int(time.time())}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def slash_command(
    standin: SlackStandIn,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    command: str = "/rollback",
    user_name: str | None = None,
    channel_name: str | None = None,
) -> dict[str, str]:
    """A slash command's fields, with a fresh response URL; the command enters the transcript."""
    workspace = standin.workspace
    me = standin.identity
    seq = standin.note_command(channel_id, user_id, command, text)
    response_url = standin.new_response_url(channel_id=channel_id, user_id=user_id, command_seq=seq)
    return {
        "token": me.verification_token,
        "team_id": me.team_id,
        "team_domain": me.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or workspace.channel_name(channel_id),
        "user_id": user_id,
        "user_name": user_name or workspace.user_name(user_id),
        "command": command,
        "text": text,
        "api_app_id": me.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": new_trigger_id(),
    }


def event_callback(
    standin: SlackStandIn, event: JSON, *, event_id: str | None, retry: bool
) -> JSON:
    """The `event_callback` envelope around one event; a retry is not noted a second time."""
    if not retry:
        standin.note_event(event)
    me = standin.identity
    return {
        "token": me.verification_token,
        "team_id": me.team_id,
        "api_app_id": me.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": int(time.time()),
        "authorizations": [_authorization(me)],
        "is_ext_shared_channel": False,
        "event_context": _event_context(me),
    }


def reaction_added(
    standin: SlackStandIn,
    user: str,
    reaction: str,
    channel: str,
    ts: str,
    *,
    item_user: str | None = None,
) -> JSON:
    """A `reaction_added` event; `item_user` defaults to the author of the message."""
    if item_user is None:
        target = standin.message(channel, ts)
        item_user = target.user if target is not None else ""
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction.strip(":"),
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": standin.workspace.next_ts(),
    }


def url_verification(identity: Identity, challenge: str) -> JSON:
    """The handshake Slack sends when a Request URL is saved."""
    return {
        "token": identity.verification_token,
        "challenge": challenge,
        "type": "url_verification",
    }


def _authorization(me: Identity) -> JSON:
    return {
        "enterprise_id": None,
        "team_id": me.team_id,
        "user_id": me.bot_user_id,
        "is_bot": True,
        "is_enterprise_install": False,
    }


def _event_context(me: Identity) -> str:
    """An opaque string, like Slack's, that apps pass back to `apps.event.authorizations.list`."""
    inner = json.dumps({"tid": me.team_id, "aid": me.app_id}).encode()
    return "4-" + base64.urlsafe_b64encode(inner).decode().rstrip("=")
