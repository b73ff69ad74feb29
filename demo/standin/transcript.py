"""The conversation as a person would read it in the Slack client, as plain text.

`make demo` prints this, and scenario tests assert on its lines, so it favours what a reader
sees over what the API sent: blocks rather than the notification fallback text, names rather
than ids, the latest text of an edited message, threads under their parent (in Slack a reply
shows under its parent, not where it falls in time) and reactions where they happened.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from demo.standin.blocks import render_blocks, render_mrkdwn
from demo.standin.model import CommandTyped, EventSent, Message, Posted, Pressed, Reacted

if TYPE_CHECKING:
    from demo.standin.model import Entry, SharedFile
    from demo.standin.workspace import Snapshot

SNIPPET_LINES = 5
QUOTE_CHARS = 40


def render_transcript(snapshot: Snapshot) -> str:
    """Every top-level item in time order, each followed by its thread."""
    return _Transcript(snapshot).render()


class _Transcript:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snap = snapshot
        self.names = {uid: "@" + user.name for uid, user in snapshot.users.items()}
        self.names[snapshot.identity.bot_user_id] = snapshot.identity.bot_name

    def render(self) -> str:
        threads: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        top: list[Entry] = []
        roots = {
            (e.channel, e.ts)
            for e in self.snap.entries
            if isinstance(e, Posted) and not self.snap.messages[e.channel, e.ts].is_reply
        }
        for entry in self.snap.entries:
            root = self._root_of(entry)
            (threads[root] if root in roots else top).append(entry)
        lines: list[str] = []
        last_channel: str | None = None
        for entry in top:
            channel = getattr(entry, "channel", None) or ""
            if last_channel is not None and channel != last_channel:
                lines.append("")
            last_channel = channel
            label = self._channel(channel) + "  "
            lines.extend(self._lines(entry, label, nested=False))
            if isinstance(entry, Posted):
                pad = " " * len(label)
                for child in threads.get((entry.channel, entry.ts), []):
                    lines.extend(self._lines(child, pad + "↳ ", nested=True))
        return "\n".join(lines) + "\n" if lines else ""

    def _root_of(self, entry: Entry) -> tuple[str, str] | None:
        if isinstance(entry, Posted | Reacted | Pressed):
            message = self.snap.messages.get((entry.channel, entry.ts))
            if message is None:
                return None
            if isinstance(entry, Reacted | Pressed):
                return entry.channel, message.thread_ts or message.ts
            if message.thread_ts is not None and message.is_reply:
                return entry.channel, message.thread_ts
        return None

    def _lines(self, entry: Entry, prefix: str, *, nested: bool) -> list[str]:
        indent = " " * (len(prefix) + 2)
        if isinstance(entry, Posted):
            head, body = self._message(self.snap.messages[entry.channel, entry.ts], nested=nested)
        elif isinstance(entry, CommandTyped):
            head, body = f"{self._who(entry.user)}: {entry.command} {entry.text}".rstrip(), []
        elif isinstance(entry, Reacted):
            head, body = self._reaction(entry, nested=nested), []
        elif isinstance(entry, Pressed):
            head, body = f"{self._who(entry.user)} {entry.what}", []
        else:
            head, body = self._event(entry), []
        return [prefix + head, *(indent + line for line in body)]

    def _message(self, message: Message, *, nested: bool) -> tuple[str, list[str]]:
        who = self._who(message.user)
        if message.visible_to is not None:
            who += f" (only visible to {self._who(message.visible_to)})"
        if message.is_reply and not nested:
            who += " (in a thread)"
        if message.deleted:
            return f"{who}: (message deleted)", []
        body = self._content(message)
        for shared in message.files:
            body.extend(self._file(shared))
        head = f"{who}: {body.pop(0)}" if body else f"{who}:"
        if message.edited:
            head += " (edited)"
        return head, body

    def _content(self, message: Message) -> list[str]:
        lines = render_blocks(message.blocks, self._mention) if message.blocks else []
        if not lines and message.text:
            lines = render_mrkdwn(message.text, self._mention)
        for attachment in message.attachments:
            text = attachment.get("text") or attachment.get("fallback") or ""
            lines.extend("> " + line for line in render_mrkdwn(str(text), self._mention))
        return lines

    @staticmethod
    def _file(shared: SharedFile) -> list[str]:
        title = f" ({shared.title})" if shared.title and shared.title != shared.name else ""
        lines = [f"uploaded {shared.name}{title}"]
        content = shared.text.splitlines()
        lines.extend("| " + line for line in content[:SNIPPET_LINES])
        if len(content) > SNIPPET_LINES:
            lines.append(f"| ... {len(content) - SNIPPET_LINES} more lines")
        return lines

    def _reaction(self, entry: Reacted, *, nested: bool) -> str:
        head = f"{self._who(entry.user)} reacted :{entry.name}:"
        target = self.snap.messages.get((entry.channel, entry.ts))
        if target is None:
            return head + f" to a message the stand-in never saw ({entry.ts})"
        if nested and not target.is_reply:
            return head
        return head + f" to {self._who(target.user)}'s {self._quote(target)}"

    def _quote(self, message: Message) -> str:
        lines = self._content(message) or [f.name for f in message.files] or [""]
        text = lines[0]
        if len(text) > QUOTE_CHARS:
            text = text[: QUOTE_CHARS - 3] + "..."
        return f'"{text}"'

    def _event(self, entry: EventSent) -> str:
        who = self._who(entry.user) if entry.user else "Slack"
        return f"({who}: {entry.type} event)"

    def _who(self, user_id: str) -> str:
        return self.names.get(user_id, f"<@{user_id}>")

    def _channel(self, channel_id: str) -> str:
        name = self.snap.channels.get(channel_id)
        if name is None:
            return "#" + channel_id if channel_id else "(no channel)"
        return "DM " + name if name.startswith("@") else "#" + name

    def _mention(self, kind: str, target: str) -> str:
        """How `<@U1>`, `<#C1>` and `<!subteam^S1>` read: as names."""
        if kind == "@":
            return self._who(target)
        if kind == "#":
            return self._channel(target)
        return "@" + self.snap.groups.get(target, target)
