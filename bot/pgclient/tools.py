"""Finding a pg_dump/pg_restore pair that can read the target server.

pg_dump refuses (or worse, misreads the catalog of) a server newer than itself, and the
machine rollbot runs on often has several client versions: the distribution's on PATH,
Debian's versioned directories, the embedded package's. Discovery tries them in a fixed,
explainable order and, when none fits, says which versions it found and where.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel

from bot.core.errors import BackupError
from bot.pgclient.embedded import embedded_bin_dir
from bot.pgclient.process import ToolError, run_tool

DEBIAN_ROOT = Path("/usr/lib/postgresql")
_PROBE_TIMEOUT_S = 10.0
_VERSION_RE = re.compile(r"^(?P<tool>\S+) \([^)]*\) (?P<version>\d+(?:\.\d+)*(?:[a-z]+\d*)?)")
_LEADING_NUMBERS_RE = re.compile(r"^\d+(?:\.\d+)*")


class PgTools(BaseModel, frozen=True):
    """A pg_dump and the pg_restore from the same installation, with their version."""

    pg_dump: Path
    pg_restore: Path
    version: str
    major: int


def parse_tool_version(output: str, tool: str) -> str:
    """The version in `<tool> --version` output; ValueError if it is some other program."""
    match = _VERSION_RE.match(output.strip())
    if match is None or match["tool"] != tool:
        raise ValueError(f"not {tool} --version output: {output.strip()[:80]!r}")
    return match["version"]


def version_tuple(version: str) -> tuple[int, ...]:
    """Numeric parts only, so "17beta1" sorts with 17 and "15.20" after "15.3"."""
    match = _LEADING_NUMBERS_RE.match(version)
    if match is None:
        raise ValueError(f"not a PostgreSQL version: {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def major_of(version: str) -> int:
    """Major release; since PostgreSQL 10 the first number alone is the major."""
    return version_tuple(version)[0]


def probe_version(binary: Path, tool: str) -> str:
    """Ask a binary for its version; BackupError if it cannot run or is not `tool`."""
    try:
        done = run_tool(binary, ["--version"], timeout=_PROBE_TIMEOUT_S)
    except ToolError as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BackupError(
            f"Cannot run {tool} ({binary}): {reason}",
            why=f"rollbot needs a working {tool} to back up before a rollback",
            todo="set ROLLBOT_PG_BIN to the bin directory of a PostgreSQL client installation",
        ) from exc
    try:
        return parse_tool_version(done.stdout, tool)
    except ValueError as exc:
        raise BackupError(
            f"{binary} is not {tool}: `--version` answered {done.stdout.strip()[:80]!r}",
            why=f"rollbot needs the real {tool} to back up before a rollback",
            todo="set ROLLBOT_PG_BIN to the bin directory of a PostgreSQL client installation",
        ) from exc


def debian_bin_dirs(root: Path = DEBIAN_ROOT) -> list[Path]:
    """Debian's per-version client directories, newest first."""
    if not root.is_dir():
        return []
    found = [d / "bin" for d in root.iterdir() if _LEADING_NUMBERS_RE.fullmatch(d.name)]
    return sorted(found, key=lambda d: version_tuple(d.parent.name), reverse=True)


def candidate_dirs(pg_bin: Path | None = None, search_path: str | None = None) -> list[Path]:
    """Where to look, in order; an explicit ROLLBOT_PG_BIN is the only place looked at."""
    if pg_bin is not None:
        return [pg_bin]
    path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    # Empty PATH entries mean the working directory: never run a pg_dump from there.
    dirs = [Path(p) for p in path.split(os.pathsep) if p]
    dirs += debian_bin_dirs()
    embedded = embedded_bin_dir()
    if embedded is not None:
        dirs.append(embedded)
    # /bin is often a link to /usr/bin: look at each real directory once.
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


def _tools_in(directory: Path) -> PgTools | str | None:
    """The pair in one directory, a reason it is unusable, or None when there is no pg_dump."""
    pg_dump, pg_restore = directory / "pg_dump", directory / "pg_restore"
    if not pg_dump.is_file():
        return None
    try:
        version = probe_version(pg_dump, "pg_dump")
        restore_version = probe_version(pg_restore, "pg_restore")
    except BackupError as exc:
        return exc.what
    if major_of(restore_version) != major_of(version):
        return f"pg_restore {restore_version} beside pg_dump {version} ({directory})"
    return PgTools(pg_dump=pg_dump, pg_restore=pg_restore, version=version, major=major_of(version))


def find_pg_tools(
    server_major: int, *, pg_bin: Path | None = None, search_path: str | None = None
) -> PgTools:
    """The first pair at least as new as the server: its catalog queries must be understood."""
    too_old: list[PgTools] = []
    unusable: list[str] = []
    dirs = candidate_dirs(pg_bin, search_path)
    for directory in dirs:
        found = _tools_in(directory)
        if isinstance(found, PgTools):
            if found.major >= server_major:
                return found
            too_old.append(found)
        elif found is not None:
            unusable.append(found)
    raise _not_found(server_major, pg_bin, dirs, too_old, unusable)


def _not_found(
    server_major: int,
    pg_bin: Path | None,
    dirs: list[Path],
    too_old: list[PgTools],
    unusable: list[str],
) -> BackupError:
    """Name every version found and where, so the fix is obvious."""
    server = f"the server (PostgreSQL {server_major})"
    why = "pg_dump must be at least the server's major version to read its catalog"
    if pg_bin is not None:
        todo = (
            f"point ROLLBOT_PG_BIN at the bin directory of PostgreSQL {server_major} "
            "(or newer) client tools, or unset it to search PATH"
        )
        if too_old:
            tools = too_old[0]
            what = f"pg_dump {tools.version} in ROLLBOT_PG_BIN ({pg_bin}) is older than {server}"
            return BackupError(what, why=why, todo=todo)
        problem = unusable[0] if unusable else "it holds no pg_dump"
        return BackupError(f"ROLLBOT_PG_BIN ({pg_bin}) is not usable: {problem}", todo=todo)
    todo = (
        f"set ROLLBOT_PG_BIN to the bin directory of PostgreSQL {server_major} "
        "(or newer) client tools"
    )
    found = ", ".join(f"pg_dump {t.version} ({t.pg_dump})" for t in too_old)
    if too_old:
        verb = "is" if len(too_old) == 1 else "are"
        what = f"{found} {verb} older than {server}"
    else:
        what = f"No pg_dump found for {server}; looked in {', '.join(map(str, dirs))}"
        why = "rollbot takes a verified backup with pg_dump before any rollback"
    if unusable:
        what += f" (also unusable: {'; '.join(unusable)})"
    return BackupError(what, why=why, todo=todo)
