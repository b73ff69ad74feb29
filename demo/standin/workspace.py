"""The state behind the stand-in: conversations, people and response URLs.

No sockets here: the HTTP layer parses a request, calls one of these operations and encodes
what comes back, so the behaviour that must match Slack's (thread roots, edits in place,
duplicate reactions, ts ordering) can be read and changed in one place. One re-entrant lock
guards everything; every read returns frozen snapshots.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from demo.standin.model import (
    CommandTyped,
    Entry,
    EventSent,
    Identity,
    Message,
    Posted,
    Pressed,
    Reacted,
    Reaction,
    SharedFile,
    User,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from demo.standin.model import JSON

# Message timestamps start here and grow by 100 microseconds, so they are unique, ordered
# and look like Slack's without depending on the wall clock.
FIRST_TS_SECONDS = 1_700_000_000
TS_STEP_MICROS = 100


class SlackError(Exception):
    """A Web API error code, raised by an operation and answered as `{"ok": false}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Responder:
    """Where replies to one `response_url` land, and the ephemeral reply it may replace."""

    channel: str
    user: str
    last_ts: str | None = None
    # The timeline entry of the command this URL belongs to, where its immediate answer goes.
    command_seq: int | None = None


@dataclass(frozen=True)
class Conversation:
    """A channel of the workspace: its name, and whether the bot was invited."""

    id: str
    name: str
    member: bool
    private: bool

    def to_api(self, team_id: str) -> JSON:
        """`conversations.info`'s `channel`, with the fields Slack always sends for a channel."""
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.private,
            "is_group": self.private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.private,
            "is_archived": False,
            "is_general": False,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": self.member,
            "context_team_id": team_id,
            "shared_team_ids": [team_id],
            "created": FIRST_TS_SECONDS,
            "creator": "",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [],
        }


@dataclass(frozen=True)
class Snapshot:
    """Everything the transcript needs, copied under the lock."""

    identity: Identity
    entries: tuple[Entry, ...]
    messages: dict[tuple[str, str], Message]
    users: dict[str, User]
    channels: dict[str, str]
    groups: dict[str, str]


class Workspace:
    """One Slack workspace with one app installed."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        bot = User(identity.bot_user_id, identity.bot_name, is_bot=True)
        self._users: dict[str, User] = {bot.id: bot}
        self._groups: dict[str, tuple[str, ...]] = {}
        self._group_handles: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._conversations: dict[str, Conversation] = {}
        self._messages: dict[tuple[str, str], Message] = {}
        self._timeline: list[Entry] = []
        self._responders: dict[str, Responder] = {}

    # -- configuration -------------------------------------------------------------------

    def add_user(self, user: User) -> None:
        """Make a person known to `users.info` and give them a name in the transcript."""
        with self._lock:
            self._users[user.id] = user

    def add_usergroup(self, group_id: str, user_ids: Iterable[str], handle: str = "") -> None:
        """Define a user group's members for `usergroups.users.list`."""
        with self._lock:
            self._groups[group_id] = tuple(user_ids)
            self._group_handles[group_id] = handle or group_id

    def add_channel(
        self, channel_id: str, name: str, *, member: bool = True, private: bool = False
    ) -> None:
        """Name a channel (the transcript says `#ops`), and say whether the bot is in it."""
        with self._lock:
            self._channels[channel_id] = name
            self._conversations[channel_id] = Conversation(channel_id, name, member, private)

    def conversation(self, channel_id: str) -> Conversation:
        """A channel as `conversations.info` shows it to the bot; `channel_not_found` else.

        Slack shows a bot every public channel, member or not, but a private one only to
        its members.
        """
        with self._lock:
            found = self._conversations.get(channel_id)
        if found is None or (found.private and not found.member):
            raise SlackError("channel_not_found")
        return found

    def user(self, user_id: str) -> User:
        """A known user; raises `user_not_found` like `users.info`."""
        with self._lock:
            if user_id not in self._users:
                raise SlackError("user_not_found")
            return self._users[user_id]

    def user_name(self, user_id: str) -> str:
        """The handle payloads carry for a user (`user_name`), made up for unknown ids."""
        with self._lock:
            known = self._users.get(user_id)
        return known.name if known else user_id.lower()

    def channel_name(self, channel_id: str) -> str:
        """The name payloads carry for a channel (`channel_name`)."""
        with self._lock:
            return self._channels.get(channel_id, channel_id.lower())

    def group_members(self, group_id: str) -> tuple[str, ...]:
        """Members of a user group; raises `no_such_subteam` like Slack."""
        with self._lock:
            if group_id not in self._groups:
                raise SlackError("no_such_subteam")
            return self._groups[group_id]

    # -- identifiers ---------------------------------------------------------------------

    def next_ts(self) -> str:
        """A fresh message timestamp, later than every earlier one."""
        micros = next(self._ts) * TS_STEP_MICROS
        return f"{FIRST_TS_SECONDS + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def new_id(self, prefix: str) -> str:
        """A fresh Slack-style id such as `F0000000001`."""
        return f"{prefix}{next(self._ids):010d}"

    # -- messages ------------------------------------------------------------------------

    def resolve_channel(self, channel: str) -> str:
        """The conversation a `channel` argument names: a user id means that user's DM."""
        with self._lock:
            if channel.startswith("#"):
                for channel_id, name in self._channels.items():
                    if name == channel[1:]:
                        return channel_id
                raise SlackError("channel_not_found")
            if channel[:1] in {"U", "W"}:
                dm = "D" + channel[1:]
                self._channels.setdefault(dm, "@" + self.user_name(channel))
                return dm
            return channel

    def post(
        self,
        channel: str,
        user: str,
        *,
        text: str = "",
        blocks: tuple[JSON, ...] = (),
        attachments: tuple[JSON, ...] = (),
        thread_ts: str | None = None,
        visible_to: str | None = None,
        files: tuple[SharedFile, ...] = (),
        via: str = "chat.postMessage",
        after: int | None = None,
    ) -> Message:
        """Add a message; a `thread_ts` naming a reply is moved to that reply's root.

        `after` places it in the timeline right after that entry rather than at the end: a
        command's immediate answer belongs under the command, even if the bot's other work
        reached Slack before the answer did.
        """
        with self._lock:
            channel = self.resolve_channel(channel)
            if thread_ts:
                parent = self._messages.get((channel, thread_ts))
                if parent is not None and parent.thread_ts is not None:
                    thread_ts = parent.thread_ts
            ts = self.next_ts()
            message = Message(
                channel=channel,
                ts=ts,
                user=user,
                text=text,
                blocks=blocks,
                attachments=attachments,
                thread_ts=thread_ts or None,
                bot_id=self.identity.bot_id if user == self.identity.bot_user_id else None,
                visible_to=visible_to,
                files=files,
                via=via,
            )
            self._messages[channel, ts] = message
            place = len(self._timeline)
            if after is not None:
                place = next((i + 1 for i, e in enumerate(self._timeline) if e.seq == after), place)
            self._timeline.insert(place, Posted(next(self._seq), channel, ts))
            return message

    def message(self, channel: str, ts: str) -> Message:
        """A visible message; raises `message_not_found` like Slack."""
        with self._lock:
            found = self._messages.get((self.resolve_channel(channel), ts))
            if found is None or found.deleted:
                raise SlackError("message_not_found")
            return found

    def edit(
        self,
        channel: str,
        ts: str,
        *,
        text: str | None = None,
        blocks: tuple[JSON, ...] | None = None,
        attachments: tuple[JSON, ...] | None = None,
    ) -> Message:
        """Replace a message's content in place, as `chat.update` does; omitted parts stay."""
        with self._lock:
            current = self.message(channel, ts)
            if current.user != self.identity.bot_user_id:
                raise SlackError("cant_update_message")
            updated = dataclasses.replace(
                current,
                edited=True,
                text=current.text if text is None else text,
                blocks=current.blocks if blocks is None else blocks,
                attachments=current.attachments if attachments is None else attachments,
            )
            self._messages[current.channel, ts] = updated
            return updated

    def delete(self, channel: str, ts: str) -> None:
        """Remove a message from view; the transcript still shows that it was there."""
        with self._lock:
            current = self.message(channel, ts)
            self._messages[current.channel, ts] = dataclasses.replace(current, deleted=True)

    def react(self, channel: str, ts: str, user: str, name: str) -> None:
        """Add one person's emoji to a message; a second identical one is `already_reacted`."""
        with self._lock:
            current = self.message(channel, ts)
            reaction = Reaction(name=name.strip(":"), user=user)
            if reaction in current.reactions:
                raise SlackError("already_reacted")
            updated = dataclasses.replace(current, reactions=(*current.reactions, reaction))
            self._messages[current.channel, ts] = updated
            self._timeline.append(
                Reacted(next(self._seq), current.channel, ts, user, reaction.name)
            )

    def note_reaction(self, channel: str, ts: str, user: str, name: str) -> None:
        """Put a reaction to a message the stand-in never saw into the timeline."""
        with self._lock:
            self._timeline.append(Reacted(next(self._seq), channel, ts, user, name.strip(":")))

    def note_command(self, channel: str, user: str, command: str, text: str) -> int:
        """Put a slash command someone ran into the timeline; returns its place in it."""
        with self._lock:
            seq = next(self._seq)
            self._timeline.append(CommandTyped(seq, channel, user, command, text))
            return seq

    def note_press(self, channel: str, ts: str, user: str, what: str) -> None:
        """Put a button press (or a form sent from one) on a message into the timeline."""
        with self._lock:
            self._timeline.append(Pressed(next(self._seq), channel, ts, user, what))

    def note_event(self, channel: str | None, user: str | None, event_type: str) -> None:
        """Put any other delivered event into the timeline."""
        with self._lock:
            self._timeline.append(EventSent(next(self._seq), channel, user, event_type))

    # -- response URLs ---------------------------------------------------------------------

    def new_responder(self, channel: str, user: str, command_seq: int | None = None) -> str:
        """The secret key of a new response URL replying to `user` in `channel`."""
        with self._lock:
            key = secrets.token_hex(12)
            self._responders[key] = Responder(channel, user, command_seq=command_seq)
            return key

    def responder(self, key: str) -> Responder | None:
        """Where a response URL replies, or None if it was never handed out."""
        with self._lock:
            return self._responders.get(key)

    def remember_reply(self, key: str, ts: str) -> None:
        """Note a response URL's latest ephemeral reply so `replace_original` can edit it."""
        with self._lock:
            self._responders[key] = dataclasses.replace(self._responders[key], last_ts=ts)

    # -- reads -----------------------------------------------------------------------------

    def messages(self, channel: str | None = None, *, ephemeral: bool = False) -> list[Message]:
        """Visible messages (or only ephemeral ones), oldest first, replies included."""
        with self._lock:
            found = [
                m
                for m in self._messages.values()
                if not m.deleted
                and m.is_ephemeral == ephemeral
                and (channel is None or m.channel == channel)
            ]
        return sorted(found, key=lambda m: float(m.ts))

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread's root followed by its replies, oldest first."""
        return [m for m in self.messages(channel) if ts in {m.ts, m.thread_ts}]

    def files(self) -> list[SharedFile]:
        """Every file shared into a conversation, oldest first."""
        return [f for m in self.messages() for f in m.files]

    def snapshot(self) -> Snapshot:
        """A consistent copy of the conversation for rendering."""
        with self._lock:
            return Snapshot(
                identity=self.identity,
                entries=tuple(self._timeline),
                messages=dict(self._messages),
                users=dict(self._users),
                channels=dict(self._channels),
                groups=dict(self._group_handles),
            )
