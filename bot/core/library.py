"""The runbooks directory: every runbook loaded, broken ones kept with their reason.

A broken runbook must not hide the good ones (`rollbot runbooks` lists both), and asking for it
must explain what is wrong with it rather than claim it does not exist.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bot.core.errors import NotFoundError, RollbotError, RunbookError, quoted
from bot.core.names import migration_id_of, migration_query
from bot.core.runbook import Runbook, parse_runbook

if TYPE_CHECKING:
    from pathlib import Path


class BrokenRunbook(BaseModel):
    """A runbook file that could not be parsed, and why."""

    model_config = ConfigDict(frozen=True)

    file: str
    migration_id: str | None
    error: str


class RunbookLibrary(BaseModel):
    """All runbooks of a directory, newest migration first."""

    model_config = ConfigDict(frozen=True)

    directory: str
    runbooks: tuple[Runbook, ...]
    broken: tuple[BrokenRunbook, ...] = ()

    def find(self, query: str) -> Runbook:
        """Look a runbook up by `0023`, `23` or `0023_loud_shen`; explain a miss."""
        parsed = migration_query(query)
        if parsed is None:
            raise NotFoundError(
                f"{quoted(query)} is not a migration id",
                why="a migration is named by its number (0023, 23) or its file name "
                "(0023_loud_shen)",
                todo=self._suggestion(query),
            )
        digits, rest = parsed
        number = int(digits)
        for runbook in self.runbooks:
            if int(runbook.migration_id) == number and (
                rest is None or runbook.name == f"{digits}{rest}"
            ):
                return runbook
        for broken in self.broken:
            if broken.migration_id is not None and int(broken.migration_id) == number:
                raise RollbotError(
                    f"The runbook for migration {broken.migration_id} is broken",
                    why=broken.error,
                    todo="fix the file; nothing was planned",
                )
        raise NotFoundError(
            f"No runbook for migration {quoted(query)} in {self.directory}",
            todo=self._suggestion(query),
        )

    def _suggestion(self, query: str) -> str:
        names = [r.name for r in self.runbooks] + [r.migration_id for r in self.runbooks]
        close = difflib.get_close_matches(query.strip(), names, n=1, cutoff=0.5)
        known = ", ".join(r.name for r in self.runbooks) or "none"
        if close:
            return f"did you mean {close[0]}? Known runbooks: {known}"
        return f"known runbooks: {known}"


# What identifies one version of a file without reading it: an edit changes one of these.
FileStamp = tuple[int, int, int, int]  # st_ino, st_size, st_mtime_ns, st_ctime_ns
Parsed = Runbook | BrokenRunbook


class ParsedRunbooks:
    """Runbooks parsed once per version of their file, for a process that lives (`serve`).

    Parsing (pglast) is the cost of a lookup; a stat per file is not. A file whose inode,
    size or times changed is read and parsed again, so an edit takes effect (and voids the
    plans made from the old text) at the next request; an unchanged one is not re-read.
    """

    def __init__(self) -> None:
        self._parsed: dict[Path, tuple[FileStamp, Parsed]] = {}

    def parse(self, path: Path) -> Parsed:
        """The runbook (or why it is broken) in `path` as the file is now."""
        info = path.stat()
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        known = self._parsed.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        parsed = _parse_file(path)
        self._parsed[path] = (stamp, parsed)
        return parsed


def _parse_file(path: Path) -> Parsed:
    display = str(path)
    try:
        return parse_runbook(path.read_text(encoding="utf-8"), file=display)
    except RunbookError as exc:
        return BrokenRunbook(
            file=display, migration_id=migration_id_of(path.name), error=exc.render()
        )
    except UnicodeDecodeError:
        return BrokenRunbook(file=display, migration_id=None, error="not UTF-8 text")


def load_library(directory: Path, parsed: ParsedRunbooks | None = None) -> RunbookLibrary:
    """Read every `*.md` except README.md; a missing directory is a configuration error.

    With `parsed`, a file unchanged since it was last parsed there is not read again.
    """
    parse = parsed.parse if parsed is not None else _parse_file
    if not directory.is_dir():
        raise RollbotError(
            f"The runbooks directory {directory} does not exist",
            todo="set ROLLBOT_RUNBOOKS_DIR to the folder that holds the runbooks",
        )
    runbooks: list[Runbook] = []
    broken: list[BrokenRunbook] = []
    for path in sorted(directory.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        found = parse(path)
        if isinstance(found, BrokenRunbook):
            broken.append(found)
        else:
            runbooks.append(found)
    runbooks.sort(key=lambda r: int(r.migration_id), reverse=True)
    return RunbookLibrary(directory=str(directory), runbooks=tuple(runbooks), broken=tuple(broken))
