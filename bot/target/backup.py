"""Backups with pg_dump, hashed and read back whole by pg_restore while they are written.

No rollback is approved without a full backup, and none executes without a final one of the
tables it changes, taken from the snapshot the rollback itself sees. A backup only counts if
pg_restore can read every block of it and it holds the data of every table that matters, so
both are checked before the file gets its final name. pg_dump writes to a pipe; each chunk goes
to the file, to the sha256 and to a pg_restore reading stdin at once, so the dump is read back
while it is written instead of in two more passes afterwards. Passwords travel to the child process
in its environment only: argv is visible to every local user through `ps`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from bot.core.archive import read_toc
from bot.core.compression import DEFAULT, for_pg_dump, parse_compression
from bot.core.errors import BackupError
from bot.core.names import QualifiedName, dump_pattern, qualified, split_qualified
from bot.core.quarantine import QUARANTINE_PREFIX
from bot.core.redact import redact
from bot.core.results import BackupInfo
from bot.pgclient.conninfo import child_connection
from bot.pgclient.failures import dump_failure, summarise
from bot.pgclient.process import StreamWriteError, run_tool, stream_tool
from bot.pgclient.tools import major_of, probe_version

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from bot.pgclient.conninfo import ChildConnection
    from bot.pgclient.tools import PgTools

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SNAPSHOT_RE = re.compile(r"[0-9A-Fa-f]+(?:-[0-9A-Fa-f]+)+")
_CHUNK = 1 << 20
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


def _prepare_directory(directory: Path) -> None:
    """Backups hold every row: only the bot's user may list or read them."""
    try:
        directory.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
        st = directory.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != _PRIVATE_DIR:
            directory.chmod(_PRIVATE_DIR)
    except OSError as exc:
        raise BackupError(
            f"Cannot use {directory} as the backup directory: {exc.strerror}",
            why="every backup is written there before a rollback may be approved",
            todo="point the backup directory at a path rollbot's user can create and write",
        ) from exc


def _create_private(path: Path) -> None:
    """Create the file 0600 before pg_dump opens it, so it is never readable by others."""
    path.unlink(missing_ok=True)  # a stale partial file from an interrupted run
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE
    )
    os.close(fd)


def _run(binary: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run a client tool without a shell or a terminal; (exit status, stdout, stderr)."""
    try:
        done = run_tool(binary, args, env=env)
    except OSError as exc:
        raise BackupError(
            f"Cannot run {binary}: {exc.strerror}",
            todo="set ROLLBOT_PG_BIN to the bin directory of PostgreSQL client tools",
        ) from exc
    return done.returncode, done.stdout, done.stderr


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks: backups are far larger than memory should hold."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: a crash must not leave a verified backup unnamed."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names(tables: Sequence[str], role: str) -> list[QualifiedName]:
    names = []
    for text in tables:
        try:
            names.append(split_qualified(text))
        except ValueError as exc:
            raise BackupError(
                f"{role} {text!r} is not a table name rollbot can match exactly",
                why=str(exc),
                todo='write it as schema.table, quoting odd names: "my schema"."My Table"',
            ) from exc
    return names


def take_backup(
    tools: PgTools,
    conninfo: str,
    directory: Path,
    *,
    name: str,
    kind: Literal["full", "final"] = "full",
    required_tables: Sequence[str] = (),
    snapshot: str | None = None,
    exclude_table_data: Sequence[str] = (),
    exclude_schemas: Sequence[str] = (),
    lock_wait_timeout_s: float | None = None,
    application_name: str = "rollbot",
    compression: str = DEFAULT,
    scope: Literal["all", "affected"] = "all",
    on_bytes: Callable[[int], None] = lambda _: None,
    schemas: Sequence[str] = (),
) -> BackupInfo:
    """Dump the whole database (the tables need their types), verify it, then publish it.

    The dump is written as `<name>.dump.partial` and renamed to `<name>.dump` only once
    verified, so a `.dump` file is always a good one; on any failure the partial file goes.
    Table names are `schema.table` as SQL reads them (quote odd names); schema names in
    `exclude_schemas` (and `schemas`, which limit the dump to themselves) are exact; the
    quarantines are never in a whole-database dump (each has its own). A final backup passes
    the `snapshot` its caller exported, so
    it holds what the rollback's own transaction sees, not what commits meanwhile.
    `compression` is the ROLLBOT_BACKUP_COMPRESSION setting (a pg_dump older than 16 falls
    back to gzip for lz4 and zstd); `on_bytes` hears the bytes written so far, per chunk.
    """
    started, created_at = time.monotonic(), datetime.now(UTC)
    if not _NAME_RE.fullmatch(name):
        raise BackupError(
            f"{name!r} is not a usable backup name",
            todo="use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
        )
    required = _names(required_tables, "Required table")
    excluded = _names(exclude_table_data, "Table to leave out")
    if clash := set(required) & set(excluded):
        listed = ", ".join(sorted(qualified(n) for n in clash))
        raise BackupError(
            f"{listed} would be both required in the backup and left out of it",
            todo="do not exclude the data of tables the rollback changes",
        )
    if snapshot is not None and not _SNAPSHOT_RE.fullmatch(snapshot):
        raise BackupError(
            f"{snapshot!r} is not a snapshot id",
            todo="pass what pg_export_snapshot() returned",
        )
    target = child_connection(conninfo, application_name, os.environ)
    version = probe_version(tools.pg_dump, "pg_dump")
    _prepare_directory(directory)
    final, partial = directory / f"{name}.dump", directory / f"{name}.dump.partial"
    if final.exists():
        raise BackupError(
            f"A backup named {name} already exists in {directory}",
            why="rollbot never overwrites a backup",
            todo="choose another name, or move the old backup away",
        )
    used, compress = for_pg_dump(parse_compression(compression), major_of(version))
    args = ["--format=custom", "--no-password", *compress]
    if snapshot is not None:
        args.append(f"--snapshot={snapshot}")
    if lock_wait_timeout_s is not None:
        args.append(f"--lock-wait-timeout={max(1, round(lock_wait_timeout_s * 1000))}ms")
    args += [f"--exclude-table-data={dump_pattern(*n)}" for n in excluded]
    args += _schema_args(exclude_schemas, schemas)
    args.append(f"--dbname={target.dbname_arg}")
    published = False
    try:
        try:
            _create_private(partial)
        except OSError as exc:
            raise BackupError(
                f"Cannot create {partial}: {exc.strerror}",
                todo="point the backup directory at a path rollbot's user can write",
            ) from exc
        tables, size, digest = _dump_and_check(
            tools, args, partial, target=target, required=required, on_bytes=on_bytes
        )
        partial.replace(final)
        _sync_directory(directory)
        published = True
    finally:
        if not published:
            partial.unlink(missing_ok=True)
    return BackupInfo(
        kind=kind,
        path=final,
        size_bytes=size,
        sha256=digest,
        duration_s=time.monotonic() - started,
        pg_dump_version=version,
        tables=tables,
        verified=True,
        created_at=created_at,
        compression=used.label(),
        scope=scope,
    )


def _dump_and_check(
    tools: PgTools,
    args: list[str],
    partial: Path,
    *,
    target: ChildConnection,
    required: list[QualifiedName],
    on_bytes: Callable[[int], None],
) -> tuple[tuple[str, ...], int, str]:
    """pg_dump to the file, pg_restore reading every block alongside; (tables, size, sha256)."""
    reader = (tools.pg_restore, [f"--file={os.devnull}"])
    directory = str(partial.parent)
    try:
        streamed = stream_tool(
            tools.pg_dump, args, out=partial, env=target.env, reader=reader, on_bytes=on_bytes
        )
    except StreamWriteError as exc:
        raise dump_failure(
            f"pg_dump: error: could not write: {exc.strerror}",
            1,
            where=target.where,
            directory=directory,
        ) from None
    except OSError as exc:
        raise BackupError(
            f"Cannot run {tools.pg_dump}: {exc.strerror}",
            todo="set ROLLBOT_PG_BIN to the bin directory of PostgreSQL client tools",
        ) from exc
    if streamed.returncode != 0:
        raise dump_failure(
            redact(streamed.stderr, target.secrets),
            streamed.returncode,
            where=target.where,
            directory=directory,
        )
    # The partial file is deleted on failure, so errors name the database instead.
    label = f"The new backup of {target.where}"
    if streamed.reader_returncode != 0:
        raise _unreadable(label, redact(streamed.reader_stderr, target.secrets))
    tables = _check_contents(tools, partial, required, label)
    return tables, streamed.size_bytes, streamed.sha256


def _schema_args(exclude_schemas: Sequence[str], schemas: Sequence[str]) -> list[str]:
    args = [f"--exclude-schema={dump_pattern(s)}" for s in exclude_schemas]
    args += [f"--schema={dump_pattern(s)}" for s in schemas]
    if not schemas:
        args.append(f"--exclude-schema={QUARANTINE_PREFIX}*")
    return args


def verify_backup(tools: PgTools, path: Path, required_tables: Sequence[str]) -> tuple[str, ...]:
    """Read the dump back whole and check it holds the required tables' rows.

    `pg_restore --list` only reads the table of contents at the front, so it passes on a
    truncated file; restoring to /dev/null reads every data block. Returns the tables with
    data, as `schema.table`.
    """
    return _verify(tools, path, _names(required_tables, "Required table"), f"The backup {path}")


def _verify(
    tools: PgTools, path: Path, required: list[QualifiedName], label: str
) -> tuple[str, ...]:
    """Verification of a file on disk, with errors naming the backup as the caller knows it."""
    returncode, _, stderr = _run(tools.pg_restore, [f"--file={os.devnull}", str(path)])
    if returncode != 0:
        raise _unreadable(label, stderr)
    return _check_contents(tools, path, required, label)


def _unreadable(label: str, stderr: str) -> BackupError:
    return BackupError(
        f"{label} cannot be read back",
        why=f"pg_restore said: {summarise(stderr, 'pg_restore')}",
        todo="take the backup again; if this repeats, check the disk and that pg_restore "
        "is as new as the pg_dump that wrote it",
    )


def _check_contents(
    tools: PgTools, path: Path, required: list[QualifiedName], label: str
) -> tuple[str, ...]:
    """The table of contents (at the front of the file) must list every required table's rows."""
    returncode, listing, stderr = _run(tools.pg_restore, ["--list", str(path)])
    if returncode != 0:
        raise _unreadable(label, stderr)
    contents = read_toc(listing, required)
    missing = [n for n in required if n not in contents.table_data]
    if missing:
        detail = ", ".join(
            qualified(n) + (" (definition only, no rows)" if n in contents.tables else "")
            for n in missing
        )
        raise BackupError(
            f"{label} lacks the data of {detail}",
            why="a rollback may only go ahead with a backup of every table it changes",
            todo="check the table names in the runbook against the database, and do not "
            "exclude their data or schema",
        )
    return tuple(sorted(qualified(n) for n in contents.table_data))


def backup_on_disk(path: Path) -> bool:
    """Whether the file a run recorded is still where it was written."""
    return path.is_file()


def remove_backup(path: Path) -> str | None:
    """Delete a pruned backup file; the problem, or None. A file already gone is no problem."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return f"{path} could not be deleted ({exc.strerror}); delete it by hand"
    return None
