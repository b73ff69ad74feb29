"""Files on their way in: Slack's v2 upload flow keeps them apart until they are shared.

`files.getUploadURLExternal` hands out a file id and a one-off URL, the bytes are POSTed there,
and only `files.completeUploadExternal` turns them into a file in a conversation. An app that
skips or reorders a step gets the errors Slack would give, which is why this state is kept.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from demo.standin.model import SharedFile
from demo.standin.workspace import SlackError

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class PendingUpload:
    """A file id handed out by `files.getUploadURLExternal`, waiting for its bytes."""

    file_id: str
    filename: str
    content: bytes | None = None


class Uploads:
    """Upload URLs handed out and the bytes received on them."""

    def __init__(self, new_id: Callable[[str], str]) -> None:
        self._new_id = new_id
        self._lock = threading.Lock()
        self._pending: dict[str, PendingUpload] = {}

    def reserve(self, filename: str) -> tuple[str, str]:
        """A file id and the secret key of its upload URL."""
        with self._lock:
            file_id = self._new_id("F")
            key = secrets.token_hex(8)
            self._pending[key] = PendingUpload(file_id=file_id, filename=filename)
            return file_id, key

    def receive(self, key: str, content: bytes) -> bool:
        """Store the bytes POSTed to an upload URL; False for a URL never handed out."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return False
            self._pending[key] = dataclasses.replace(pending, content=content)
            return True

    def complete(self, files: list[tuple[str, str]], user: str) -> list[SharedFile]:
        """Files from `(id, title)` pairs, all or none; an id without bytes is `file_not_found`."""
        with self._lock:
            by_id = {p.file_id: p for p in self._pending.values()}
        done: list[SharedFile] = []
        for file_id, title in files:
            pending = by_id.get(file_id)
            if pending is None or pending.content is None:
                raise SlackError("file_not_found")
            name = pending.filename
            done.append(SharedFile(file_id, name, title or name, pending.content, user))
        return done
