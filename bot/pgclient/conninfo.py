"""Connection strings for client tools: what may go on the command line, what may not.

The target's connection string can carry a password, and a child's argv is readable by every
local user through `ps`. So it is split: the password goes into the child's environment
only, the rest into `--dbname`, and a short description of the target is kept for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.errors import BackupError
from bot.core.redact import redact
from bot.pgclient.failures import summarise
from bot.pgclient.process import run_tool, run_transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

_SECRET_KEYS = ("password", "sslpassword")


@dataclass(frozen=True)
class ChildConnection:
    """How a client tool reaches the target without exposing the password."""

    dbname_arg: str  # conninfo without secrets, for --dbname
    env: dict[str, str]  # the child's whole environment, PGPASSWORD included
    secrets: list[str]  # to redact from anything the child prints
    where: str  # `database "app" on host:5432`, for messages


def _params(conninfo: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except ProgrammingError:
        # libpq's message may quote the string, password included: say nothing of it.
        raise BackupError(
            "The target's connection string cannot be parsed",
            todo="write it as key=value pairs or as a postgresql:// URI",
        ) from None


def public_conninfo(conninfo: str) -> str:
    """The connection string with its secrets removed, safe to show or to put in argv."""
    params = _params(conninfo)
    return make_conninfo(**{k: v for k, v in params.items() if k not in _SECRET_KEYS})


def child_connection(
    conninfo: str, application_name: str, environ: Mapping[str, str]
) -> ChildConnection:
    """Split a connection string for a child process inheriting `environ`."""
    params = _params(conninfo)
    if params.get("sslpassword"):
        raise BackupError(
            "The target's connection string carries sslpassword",
            why="pg_dump could only receive it on its command line, visible to every local user",
            todo="use a client key without a passphrase, readable only by rollbot's user",
        )
    password = params.get("password", "")
    env = {**environ, "PGAPPNAME": application_name}
    if password:
        env["PGPASSWORD"] = password
    public = {k: v for k, v in params.items() if k not in _SECRET_KEYS}
    public["application_name"] = application_name
    secrets = [s for s in (password, environ.get("PGPASSWORD", "")) if s]
    host, port = public.get("host", "local socket"), public.get("port", "5432")
    where = redact(f'database "{public.get("dbname", "?")}" on {host}:{port}', secrets)
    return ChildConnection(make_conninfo(**public), env, secrets, where)


class ClientResult(NamedTuple):
    """What a client tool did: its exit status, its output, and its complaint, made safe."""

    returncode: int
    stdout: str
    said: str  # stderr, secrets redacted, summarised to one line


def run_client(binary: Path, args: list[str], child: ChildConnection) -> ClientResult:
    """Run psql, pg_dump or pg_restore with the password in its environment only."""
    done = run_tool(binary, args, env=child.env)
    said = summarise(redact(done.stderr, child.secrets), binary.name)
    return ClientResult(done.returncode, done.stdout, said)


def run_client_transaction(
    psql: Path,
    args: list[str],
    child: ChildConnection,
    *,
    script: str,
    on_xid: Callable[[int], None],
) -> ClientResult:
    """Run `script` through psql in one transaction whose id `on_xid` stores before it runs."""
    done = run_transaction(psql, args, script=script, env=child.env, on_xid=on_xid)
    said = summarise(redact(done.stderr, child.secrets), psql.name)
    return ClientResult(done.returncode, "", said)
