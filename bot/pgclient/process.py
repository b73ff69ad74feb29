"""The one way rollbot starts a child process: a client tool, an argument list, no shell.

Every call closes stdin or writes it itself (a tool that asks for a password fails instead of
hanging), captures output, and creates files readable by rollbot's user only. Callers turn a
failure to start into their own error, because only they know what the person should do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# Raised when a tool cannot be started or runs past its timeout.
ToolError = (OSError, subprocess.TimeoutExpired)
_STREAM_CHUNK = 1 << 20


def run_tool(
    binary: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `binary` with `args`; its exit status is the caller's to judge."""
    return subprocess.run(
        [str(binary), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        umask=0o077,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


class Streamed(NamedTuple):
    """What a streamed dump did: each program's exit status and complaint, and the bytes."""

    returncode: int
    stderr: str
    size_bytes: int
    sha256: str
    reader_returncode: int | None  # None when there was no reader
    reader_stderr: str


def stream_tool(
    binary: Path,
    args: list[str],
    *,
    out: Path,
    env: dict[str, str] | None = None,
    reader: tuple[Path, list[str]] | None = None,
    on_bytes: Callable[[int], None] = lambda _: None,
) -> Streamed:
    """Run `binary`, copying its stdout to `out` while hashing it and feeding `reader`.

    A backup read back after it is written costs a second pass over the disk and a third to
    hash it; here every chunk is written, hashed and handed to the reader (pg_restore reading
    stdin) as it arrives, so the three run side by side. `out` must exist (created private by
    the caller); it is fsynced before returning. `on_bytes` gets the running total. A reader
    that stops early is left to report its own failure through its exit status.
    """
    digest = hashlib.sha256()
    with (
        tempfile.TemporaryFile() as dump_err,
        tempfile.TemporaryFile() as read_err,
        out.open("r+b") as file,
    ):
        file.truncate(0)
        dump = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=dump_err,
            env=env,
            umask=0o077,
        )
        processes = [dump]
        try:
            if reader is not None:
                processes.append(
                    subprocess.Popen(
                        [str(reader[0]), *reader[1]],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=read_err,
                        env=env,
                        umask=0o077,
                    )
                )
            sink = processes[1].stdin if reader is not None else None
            total = _pump(dump, file, sink, digest, on_bytes)
        except BaseException:
            # A full disk or a Ctrl-C here: nobody reads the pipes any more, so stop both.
            for process in processes:
                process.kill()
            raise
        finally:
            for process in processes:
                process.wait()
                for pipe in (process.stdin, process.stdout):
                    if pipe is not None:
                        with contextlib.suppress(BrokenPipeError):
                            pipe.close()
        return Streamed(
            returncode=dump.returncode,
            stderr=_text(dump_err),
            size_bytes=total,
            sha256=digest.hexdigest(),
            reader_returncode=processes[1].returncode if reader is not None else None,
            reader_stderr=_text(read_err) if reader is not None else "",
        )


def _pump(
    dump: subprocess.Popen[bytes],
    file: IO[bytes],
    sink: IO[bytes] | None,
    digest: hashlib._Hash,
    on_bytes: Callable[[int], None],
) -> int:
    """Copy the dump's stdout to the file, the digest and the reader; the bytes copied."""
    source = dump.stdout
    assert isinstance(source, io.BufferedReader)  # noqa: S101 - asked for with stdout=PIPE
    total = 0
    while chunk := source.read1(_STREAM_CHUNK):
        _write(file, chunk)
        digest.update(chunk)
        if sink is not None:
            try:
                sink.write(chunk)
            except BrokenPipeError:
                sink = None  # the reader gave up; its exit status says why
        total += len(chunk)
        on_bytes(total)
    if sink is not None:
        with contextlib.suppress(BrokenPipeError):
            sink.close()
    _write(file, b"", sync=True)
    return total


class StreamWriteError(OSError):
    """The output file could not be written (a full disk, most often): not the tool's fault."""


def _write(file: IO[bytes], chunk: bytes, *, sync: bool = False) -> None:
    try:
        file.write(chunk)
        if sync:
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        raise StreamWriteError(exc.errno, exc.strerror) from exc


def _text(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


class Transacted(NamedTuple):
    """How a script run by `run_transaction` ended: psql's exit status and complaint."""

    returncode: int
    stderr: str


_BEGIN = b"BEGIN;\nSELECT pg_catalog.pg_current_xact_id();\n"


def run_transaction(
    psql: Path,
    args: list[str],
    *,
    script: str,
    env: dict[str, str] | None = None,
    on_xid: Callable[[int], None],
) -> Transacted:
    """Run `script` through psql in one transaction whose id is handed to `on_xid` first.

    A process killed after psql's COMMIT but before it stored the outcome must still be able to
    tell that the transaction committed; PostgreSQL answers that for a transaction id
    (`pg_xact_status`), so the id is known, and stored by `on_xid`, before a byte of the script
    is sent. The script goes through psql's standard input (which also carries COPY data) and
    is followed by COMMIT only once all of it is written: if rollbot dies on the way, psql
    reads the end of its input inside an open transaction, and PostgreSQL rolls it back. No
    copy of the script (rows of a backup) is ever written to disk. If `on_xid` raises, psql is
    stopped before anything but BEGIN ran.
    """
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            umask=0o077,
        )
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None  # noqa: S101 - asked for with PIPE
        assert stdout is not None  # noqa: S101
        try:
            try:
                stdin.write(_BEGIN)
                stdin.flush()
                answer = stdout.readline().strip()
                if answer.isdigit():
                    on_xid(int(answer))
                    # Nothing reads psql's output from here on, and it must outlive rollbot: a
                    # write to the closed pipe of a killed rollbot would end it mid-script.
                    # One write, flushed at once: psql gets the script and its COMMIT together.
                    stdin.write(b"\\o /dev/null\n" + script.encode() + b"\nCOMMIT;\n")
                    stdin.flush()
            except BrokenPipeError:
                pass  # psql stopped on an error; its exit status and stderr say which
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
            process.wait()
        except BaseException:
            process.kill()  # its input ends without COMMIT: the transaction is rolled back
            process.wait()
            raise
        finally:
            stdout.close()
        return Transacted(process.returncode, _text(err))
