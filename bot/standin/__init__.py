"""A local stand-in for Slack, so the bot can be driven exactly as Slack drives it.

`SlackStandIn` answers the Web API on 127.0.0.1 and records every call. Tests and `make demo`
both use it; nothing here talks to anything but the loopback interface.
"""

from bot.standin.model import Call, Identity, Message, SharedFile, User
from bot.standin.webapi import SlackStandIn

__all__ = [
    "Call",
    "Identity",
    "Message",
    "SharedFile",
    "SlackStandIn",
    "User",
]
