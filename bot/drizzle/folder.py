"""Drizzle's migrations folder, read the way Drizzle's PostgreSQL migrator reads it.

The databases rollbot works on were migrated by Drizzle, and a rollback must leave Drizzle's
journal (`drizzle.__drizzle_migrations`) in a state Drizzle itself understands. So the test and
demo databases are built the way Drizzle builds them: the same journal, the same statement
splitting, the same hash and the same "newer than the last row" rule. Reading the folder is
separate from applying it (`bot.target.migrator`) so the plan can look at migrations without a
connection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.errors import NotFoundError, RollbotError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


BREAKPOINT = "--> statement-breakpoint"
JOURNAL_SCHEMA = "drizzle"
JOURNAL_TABLE = "__drizzle_migrations"


@dataclass(frozen=True)
class Migration:
    """One journal entry with its file, as the migrator sees it."""

    tag: str
    when: int
    text: str

    @property
    def hash(self) -> str:
        """What Drizzle stores in the journal: hex sha256 of the whole file."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        """The file cut at Drizzle's breakpoint marker; blank pieces would be empty queries."""
        return [part for part in self.text.split(BREAKPOINT) if part.strip()]


def _entry(journal: Path, raw: object) -> tuple[str, int]:
    if isinstance(raw, dict):
        tag, when = raw.get("tag"), raw.get("when")
        if isinstance(tag, str) and isinstance(when, int) and not isinstance(when, bool):
            return tag, when
    raise RollbotError(
        f"{journal}: journal entry {raw!r} has no string 'tag' and integer 'when'",
        todo="regenerate the journal with drizzle-kit",
    )


def read_migrations(folder: Path) -> list[Migration]:
    """Every migration the journal lists, in journal order (which is the order Drizzle runs)."""
    journal = folder / "meta" / "_journal.json"
    data = _read(
        journal, "cannot read the journal", "point at a folder drizzle-kit generated", json.loads
    )
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RollbotError(
            f"{journal}: no 'entries' list", todo="regenerate the journal with drizzle-kit"
        )
    migrations = []
    for raw in entries:
        tag, when = _entry(journal, raw)
        path = folder / f"{tag}.sql"
        text = _read(
            path,
            f"the journal lists {tag} but its file cannot be read",
            "restore the file or the journal entry",
        )
        migrations.append(Migration(tag=tag, when=when, text=text))
    return migrations


def _read(path: Path, problem: str, todo: str, parse: Callable[[str], Any] = str) -> Any:  # noqa: ANN401 - whatever `parse` makes of the text
    """A file's text (parsed), or an error naming the file; what went wrong goes into `why`.

    A missing file, bad UTF-8 and malformed JSON are one failure to the person: this file.
    """
    try:
        # Bytes, not read_text: universal newlines would change the hash of a CRLF file.
        return parse(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise RollbotError(f"{path}: {problem}", why=str(exc), todo=todo) from exc


def select_upto(migrations: list[Migration], upto: str) -> list[Migration]:
    """The prefix of the journal that ends at the first tag starting with `upto`."""
    for position, migration in enumerate(migrations):
        if migration.tag.startswith(upto):
            return migrations[: position + 1]
    tags = ", ".join(m.tag for m in migrations) or "none"
    raise NotFoundError(
        f"No migration tag starts with {upto!r}",
        why=f"the journal lists {tags}",
        todo="pass the number of a listed migration",
    )
