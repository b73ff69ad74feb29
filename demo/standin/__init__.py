"""A local stand-in for Slack, so the bot can be driven exactly as Slack drives it.

`SlackStandIn` answers the Web API on 127.0.0.1, `SlackSender` delivers signed slash commands
and events to the app's Request URL, and `demo.standin.socket` (imported on its own, because it
needs the `websockets` package) plays Socket Mode. Tests and `make demo` both use them; nothing
here talks to anything but the loopback interface.
"""

from demo.standin.model import Call, Identity, Message, SharedFile, User
from demo.standin.sender import Delivery, SlackSender
from demo.standin.serving import serve_wsgi
from demo.standin.webapi import SlackStandIn

__all__ = [
    "Call",
    "Delivery",
    "Identity",
    "Message",
    "SharedFile",
    "SlackSender",
    "SlackStandIn",
    "User",
    "serve_wsgi",
]
