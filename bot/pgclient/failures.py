"""Turning pg_dump's stderr into an error someone can act on at 3 a.m.

pg_dump reports every problem the same way (exit status 1 and a few lines of text), but the
fix differs: free disk space, start the server, wait for a lock. The text is matched here,
purely, after secrets have been taken out of it.
"""

from __future__ import annotations

from typing import NamedTuple

from bot.core.errors import BackupError, LockWaitError

_SUMMARY_LIMIT = 400
_RETRY = "retry; if it fails again, take a manual pg_dump and investigate before any rollback"


def summarise(stderr: str, tool: str) -> str:
    """The tool's message on one line, without its `pg_dump: error:` prefixes, capped."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip().removeprefix(f"{tool}: ").removeprefix("error: ")
        if line:
            lines.append(line)
    text = "; ".join(lines) or "no message"
    if len(text) > _SUMMARY_LIMIT:
        text = text[: _SUMMARY_LIMIT - 1] + "…"
    return text


class _Rule(NamedTuple):
    needles: tuple[str, ...]  # any of these, in lower-cased stderr
    what: str
    todo: str
    why: str = "pg_dump said: {said}"
    error: type[BackupError] = BackupError


# First match wins: a refused login also mentions "connection to server".
_RULES = (
    _Rule(
        ("no space left on device",),
        "The disk holding {directory} is full; the backup of {where} did not fit",
        "free space in {directory} (a dump needs up to the database's size) "
        "or point the backup directory at a larger disk",
    ),
    _Rule(
        ("could not write", "could not open output file"),
        "pg_dump could not write the backup into {directory}",
        "check that {directory} is writable and its disk healthy",
    ),
    _Rule(
        ("server version mismatch",),
        "pg_dump is older than the server of {where}",
        "set ROLLBOT_PG_BIN to the bin directory of client tools at least as new as the server",
    ),
    _Rule(
        ("password authentication failed", "no password supplied", "no pg_hba.conf entry"),
        "{where} refused pg_dump's login",
        "check the user and password in the target's connection string",
    ),
    _Rule(
        ("connection to server", "could not connect", "could not translate host name"),
        "pg_dump could not connect to {where}",
        "check that the server is running and that host, port and database name in the "
        "target's connection string are right",
    ),
    _Rule(
        ("invalid snapshot identifier",),
        "The exported snapshot of {where} no longer exists",
        "keep the transaction that exported the snapshot open until the backup ends",
    ),
    _Rule(
        ("statement timeout", "could not obtain lock"),
        "pg_dump gave up waiting for a table lock in {where}",
        "find the blocking session in pg_locks and retry when it has finished, "
        "or allow a longer lock wait",
        why="another session holds a conflicting lock; pg_dump said: {said}",
        error=LockWaitError,
    ),
    _Rule(
        ("permission denied",),
        "pg_dump lacks privileges in {where}",
        "back up as a role that can read every table (e.g. a member of pg_read_all_data)",
    ),
)


def dump_failure(stderr: str, returncode: int, *, where: str, directory: str) -> BackupError:
    """A BackupError for a failed pg_dump; `stderr` must already be redacted."""
    fields = {"said": summarise(stderr, "pg_dump"), "where": where, "directory": directory}
    if returncode < 0:
        return BackupError(
            f"pg_dump was stopped by signal {-returncode} while backing up {where}",
            why="something outside rollbot killed it (out of memory, an operator, a restart)",
            todo=_RETRY,
        )
    lowered = stderr.lower()
    for rule in _RULES:
        if any(needle in lowered for needle in rule.needles):
            return rule.error(
                rule.what.format(**fields),
                why=rule.why.format(**fields),
                todo=rule.todo.format(**fields),
            )
    return BackupError(
        f"pg_dump failed on {where} (exit status {returncode})",
        why="pg_dump said: {said}".format(**fields),
        todo=_RETRY,
    )
