"""What the stand-in remembers: calls, messages, files and the actions people took.

Everything here is a frozen value. The stand-in hands these out to tests while its server
threads keep working, so a snapshot must never change under the reader's feet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Identity:
    """The workspace and the app the stand-in pretends to be; tests rarely need other values."""

    team_id: str = "T0STANDIN"
    team_domain: str = "standin"
    team_name: str = "Stand-in Workspace"
    app_id: str = "A0STANDIN"
    bot_id: str = "B0STANDIN"
    bot_user_id: str = "U0ROLLBOT"
    bot_name: str = "rollbot"
    # The deprecated verification token Slack still puts in every payload.
    verification_token: str = "standin-verification-token"  # noqa: S105 - a public fixture value


@dataclass(frozen=True)
class User:
    """A person (or bot) that `users.info` knows."""

    id: str
    name: str
    real_name: str = ""
    deleted: bool = False
    is_bot: bool = False

    def to_api(self, team_id: str) -> JSON:
        """The `user` object of `users.info`, with the fields apps commonly read."""
        real_name = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "tz": "Etc/UTC",
            "profile": {"real_name": real_name, "display_name": self.name},
        }


@dataclass(frozen=True)
class Reaction:
    """One emoji one person put on a message."""

    name: str
    user: str


@dataclass(frozen=True)
class SharedFile:
    """A file uploaded through the v2 flow and shared into a conversation."""

    id: str
    name: str
    title: str
    content: bytes
    user: str

    @property
    def text(self) -> str:
        """The content as text; snippets are UTF-8, anything else shows replacement marks."""
        return self.content.decode("utf-8", errors="replace")

    def to_api(self) -> JSON:
        """The `file` object Slack returns once an upload is complete."""
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "size": len(self.content),
            "user": self.user,
            "mimetype": "text/plain",
        }


@dataclass(frozen=True)
class Message:
    """A message as people in the channel see it now (edits replace the text in place)."""

    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: tuple[JSON, ...] = ()
    attachments: tuple[JSON, ...] = ()
    thread_ts: str | None = None
    bot_id: str | None = None
    visible_to: str | None = None
    edited: bool = False
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    files: tuple[SharedFile, ...] = ()
    via: str = "chat.postMessage"

    @property
    def is_reply(self) -> bool:
        """Whether the message sits inside a thread rather than in the channel."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def is_ephemeral(self) -> bool:
        """Whether only one person can see it."""
        return self.visible_to is not None

    def to_api(self, team_id: str) -> JSON:
        """The `message` object Slack echoes back from `chat.postMessage` and `chat.update`."""
        body: JSON = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts}
        body["team"] = team_id
        if self.bot_id is not None:
            body["bot_id"] = self.bot_id
        if self.blocks:
            body["blocks"] = list(self.blocks)
        if self.attachments:
            body["attachments"] = list(self.attachments)
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.files:
            body["files"] = [f.to_api() for f in self.files]
        if self.edited:
            body["edited"] = {"user": self.user, "ts": self.ts}
        return body


@dataclass(frozen=True)
class Call:
    """One HTTP request the stand-in received, with what it answered."""

    seq: int
    method: str
    params: JSON
    headers: dict[str, str]
    at: float
    status: int
    response: JSON | str | None
    fault: str | None = None
    raw: bytes = field(default=b"", repr=False)

    @property
    def token(self) -> str | None:
        """The bearer token the caller presented, if any."""
        auth = self.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return auth.removeprefix("Bearer ").strip() or None

    @property
    def ok(self) -> bool:
        """Whether the caller was told the call succeeded."""
        if isinstance(self.response, dict):
            return bool(self.response.get("ok"))
        return self.status == 200  # noqa: PLR2004 - uploads and response URLs answer plain text

    @property
    def error(self) -> str | None:
        """Slack's error code for a failed call."""
        if isinstance(self.response, dict):
            error = self.response.get("error")
            return str(error) if error is not None else None
        return None if self.ok else str(self.response)


@dataclass(frozen=True)
class Posted:
    """Timeline entry: a message (or ephemeral message) appeared; its current state is looked up."""

    seq: int
    channel: str
    ts: str


@dataclass(frozen=True)
class CommandTyped:
    """Timeline entry: someone ran a slash command."""

    seq: int
    channel: str
    user: str
    command: str
    text: str


@dataclass(frozen=True)
class Reacted:
    """Timeline entry: someone (a person or the bot) added an emoji to a message."""

    seq: int
    channel: str
    ts: str
    user: str
    name: str


@dataclass(frozen=True)
class EventSent:
    """Timeline entry: any other event delivered to the app, shown by its type."""

    seq: int
    channel: str | None
    user: str | None
    type: str


@dataclass(frozen=True)
class Pressed:
    """Timeline entry: someone pressed a button on a message, or sent a form opened from one."""

    seq: int
    channel: str
    ts: str
    user: str
    what: str  # `pressed [Approve]`, `sent "Reject run 3": …`


Entry: TypeAlias = Posted | CommandTyped | Reacted | EventSent | Pressed
