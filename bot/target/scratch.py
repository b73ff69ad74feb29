"""Scratch databases: created next to the target, filled from a verified backup, then dropped.

A scratch copy is restored as a throwaway role made for it when rollbot's role may create roles
(CREATEROLE): that role owns the copy and nothing else, has no attribute or membership, and is
dropped with the copy, so a runbook rehearsed as it cannot reach past the copy even if a
dangerous call slipped past the function checks. Without CREATEROLE the copy is restored as the
role that created it (`--no-owner --no-privileges`), which needs nothing but CREATEDB. The
password, as for pg_dump, reaches pg_restore through its environment only. What the server or
pg_restore refuses is raised as `ScratchRefusedError` with PostgreSQL's own words: the caller
decides whether that blocks anything.

A process killed while it holds a scratch copy cannot drop it, so every copy is held under a
lease (`scratch_lease`): a session named after the copy, open on the server from before the
copy and its role exist until after both are dropped. The session ends when its process
does, however it dies, and the next lease taken with the same prefix on that server drops
every copy and role of that prefix whose session is gone. A lease's session is all that
marks a copy as in use, so nothing but rollbot's own names is ever swept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import tempfile
import uuid
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psycopg
import structlog
from psycopg import sql

from bot.core.archive import data_list
from bot.core.errors import BackupError
from bot.core.names import split_qualified
from bot.pgclient.conninfo import ChildConnection, run_client
from bot.target.database import TargetUnreachableError, postgres_message

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from bot.core.results import BackupInfo
    from bot.pgclient.tools import PgTools
    from bot.target.database import TargetDatabase

DataMode = Literal["none", "affected", "all"]
PURPOSE = "scratch"
# Short enough that `rollbot keeps <name>` fits in an application_name (63 bytes) whole.
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]{0,25}")
_KEEPER = "keeps "  # a lease's session is named `rollbot keeps <scratch name>`
_UNHELD = """
SELECT name FROM (
    SELECT datname AS name FROM pg_database UNION SELECT rolname FROM pg_roles
) AS scratch
WHERE name ~ %(pattern)s
AND NOT EXISTS (
    SELECT FROM pg_stat_activity a WHERE a.application_name = %(keeper)s || scratch.name
)
ORDER BY name
"""
log = structlog.get_logger()
_FOREIGN_KEYS = """
SELECT format('%I.%I', cn.nspname, c.relname), format('%I.%I', pn.nspname, p.relname)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f'
"""


class ScratchRefusedError(Exception):
    """The server or pg_restore would not make the scratch copy; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def scratch_name(prefix: str) -> str:
    """`<prefix>_<UTC time>_<random>`: unique, sortable, and a plain identifier."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"{prefix!r} is not a usable database name prefix (a-z, 0-9, _)")
    return f"{prefix}_{datetime.now(UTC):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"


@contextmanager
def scratch_lease(server: TargetDatabase, prefix: str) -> Iterator[str]:
    """A new scratch name, leased for as long as the block runs; dead holders' copies swept.

    The lease's session opens before the caller creates anything under the name, so a
    sweeper never sees a copy of a live holder without its session. When the server cannot
    be reached the name is handed out all the same: creating the copy fails then too, and
    says so where the caller reports it.
    """
    name = scratch_name(prefix)
    with ExitStack() as stack:
        try:
            keeper = stack.enter_context(server.connect(f"{_KEEPER}{name}", autocommit=True))
        except TargetUnreachableError:
            keeper = None
        if keeper is not None:
            with suppress(psycopg.Error):  # a server before 14 has no idle session timeout
                keeper.execute("SELECT set_config('idle_session_timeout', '0', false)")
            sweep_scratch(server, prefix)
        yield name


def sweep_scratch(server: TargetDatabase, prefix: str) -> list[str]:
    """Drop the copies and roles named `<prefix>_<time>_<random>` that no lease holds.

    What cannot be dropped (another role's copy, a server that went away) is logged and left
    for the next sweep; the names dropped are returned.
    """
    pattern = f"^{re.escape(prefix)}_[0-9]{{8}}_[0-9]{{6}}_[0-9a-f]{{6}}$"
    try:
        with server.connect(PURPOSE, autocommit=True) as conn:
            rows = conn.execute(
                _UNHELD, {"pattern": pattern, "keeper": f"rollbot {_KEEPER}"}
            ).fetchall()
    except (TargetUnreachableError, psycopg.Error) as exc:
        log.warning("scratch.sweep_failed", prefix=prefix, problem=str(exc))
        return []
    swept: list[str] = []
    for (name,) in rows:
        problem = drop_scratch(server, str(name)) or drop_role(server, str(name))
        if problem is not None:
            log.warning("scratch.left", name=name, problem=problem)
            continue
        log.info("scratch.swept", name=name)
        swept.append(str(name))
    return swept


def throwaway_password() -> str:
    """A password for one throwaway role: random, held in memory only, never shown."""
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, RFC 7677).

    Handing the server the verifier instead of the password keeps the password out of its
    statement log (`log_statement = ddl` logs CREATE ROLE whole), as psql's password command does.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def as_throwaway(server: TargetDatabase, name: str, password: str) -> TargetDatabase:
    """The scratch copy `name` reached by logging in as its throwaway role (named the same).

    Everything that runs SQL rollbot did not write (a migration's replay, pg_restore of the
    copy, a runbook rehearsed there, with every function and trigger they reach) must run in
    a session whose session user is that role: `SET ROLE` alone is undone by `RESET ROLE`,
    which any function may run.
    """
    return server.sibling(name, user=name, password=password)


def create_role(server: TargetDatabase, name: str, password: str) -> str | None:
    """Create the throwaway role `name` for one scratch copy; None, or why it could not be.

    No attribute and no grants: the role has PUBLIC's privileges, what it will own, and (as
    the copy's owner) `pg_database_owner` there. It may log in, with `password`, for a day at
    most and a few sessions at once, so that the sessions running the copy's SQL are its own
    and no function can go back to rollbot's role from them. rollbot's own role is made a
    member so that it can drop what the role owns (the other way round gives the role
    nothing of rollbot's).
    """
    role = sql.Identifier(name)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    try:
        with server.connect(PURPOSE, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                    " NOBYPASSRLS CONNECTION LIMIT 8 PASSWORD {} VALID UNTIL {}"
                ).format(role, sql.Literal(scram_verifier(password)), sql.Literal(until))
            )
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
    except TargetUnreachableError as exc:
        return f"the server cannot be reached ({exc.message})"
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return "rollbot's role may not create roles (grant it CREATEROLE to rehearse as one)"
        drop_role(server, name)
        return f"CREATE ROLE failed ({postgres_message(exc, server.secrets)})"
    return None


def drop_role(server: TargetDatabase, name: str) -> str | None:
    """Drop the throwaway role once its copy is gone; what went wrong instead of raising."""
    problem = _quietly(server, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    if problem is None:
        return None
    return f"the rehearsal role {name} could not be dropped ({problem}); drop it by hand"


def _quietly(server: TargetDatabase, statement: sql.Composed) -> str | None:
    """Run one clean-up statement; PostgreSQL's words if it failed, else None."""
    try:
        with server.connect(PURPOSE, autocommit=True) as conn:
            conn.execute(statement)
    except TargetUnreachableError as exc:
        return exc.message
    except psycopg.Error as exc:
        return postgres_message(exc, server.secrets)
    return None


def create_scratch(
    server: TargetDatabase, name: str, *, owner: str | None = None
) -> TargetDatabase:
    """Create an empty database `name` (owned by `owner`) on `server`'s server; how to reach it."""
    hidden = server.secrets
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    if owner is not None:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    try:
        with server.connect(PURPOSE, autocommit=True) as conn:
            conn.execute(statement)
    except TargetUnreachableError as exc:
        raise ScratchRefusedError(f"the server cannot be reached ({exc.message})") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = f"the server refused CREATE DATABASE ({postgres_message(exc, hidden)})"
        raise ScratchRefusedError(reason) from None
    except psycopg.Error as exc:
        reason = f"CREATE DATABASE failed ({postgres_message(exc, hidden)})"
        raise ScratchRefusedError(reason) from None
    return server.sibling(name)


def drop_scratch(server: TargetDatabase, name: str) -> str | None:
    """Drop `name`, sessions and all; what went wrong instead of raising, else None."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    problem = _quietly(server, statement)
    if problem is None:
        return None
    return f"the scratch database {name} could not be dropped ({problem}); drop it by hand"


def restore_scratch(
    tools: PgTools,
    backup: BackupInfo,
    scratch: TargetDatabase,
    *,
    data: DataMode,
    tables: Iterable[str] = (),
) -> None:
    """Restore `backup` into the empty database `scratch`: its schema, and rows per `data`.

    "none" restores the schema only; "all" everything; "affected" the schema plus the rows of
    `tables` and of every table they reference, transitively, parents first, so that each
    foreign key holds as the rows arrive. Everything is created as, and owned by, the role
    `scratch` logs in as: its throwaway role (`as_throwaway`), when there is one.
    """
    try:
        child = scratch.child(f"{PURPOSE} restore")
    except BackupError as exc:
        raise ScratchRefusedError(exc.what) from None
    path = str(backup.path)
    common = [
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
        f"--dbname={child.dbname_arg}",
    ]
    if data == "all":
        _pg_restore(tools, child, [*common, path])
        return
    _pg_restore(tools, child, [*common, "--schema-only", path])
    if data == "none":
        return
    with scratch.connect(PURPOSE) as conn:
        foreign_keys = [(str(c), str(p)) for c, p in conn.execute(_FOREIGN_KEYS).fetchall()]
    ordered = parents_first(tables, foreign_keys)
    listing = _pg_restore(tools, child, ["--list", path])
    with tempfile.TemporaryDirectory(prefix="rollbot-scratch-") as directory:
        use_list = Path(directory) / "data.list"
        use_list.write_text(data_list(listing, [split_qualified(t) for t in ordered]))
        _pg_restore(tools, child, [*common, "--data-only", f"--use-list={use_list}", path])


def parents_first(tables: Iterable[str], foreign_keys: Iterable[tuple[str, str]]) -> list[str]:
    """`tables` and every table they reference, transitively, each after its FK parents.

    `foreign_keys` are (child, parent) pairs. Tables in a cycle come last, in name order:
    no order satisfies them, and pg_restore will say which rows do not fit.
    """
    parents: dict[str, set[str]] = {}
    for child, parent in foreign_keys:
        if child != parent:
            parents.setdefault(child, set()).add(parent)
    wanted: set[str] = set()
    todo = list(tables)
    while todo:
        table = todo.pop()
        if table not in wanted:
            wanted.add(table)
            todo.extend(parents.get(table, ()))
    ordered: list[str] = []
    remaining = sorted(wanted)
    while remaining:
        placed = set(ordered)
        ready = [t for t in remaining if parents.get(t, set()) <= placed] or remaining
        ordered += ready
        remaining = [t for t in remaining if t not in ready]
    return ordered


def _pg_restore(tools: PgTools, child: ChildConnection, args: list[str]) -> str:
    """Run pg_restore with the password in its environment only; its stdout."""
    try:
        result = run_client(tools.pg_restore, args, child)
    except OSError as exc:
        raise ScratchRefusedError(f"cannot run {tools.pg_restore} ({exc.strerror})") from None
    if result.returncode != 0:
        raise ScratchRefusedError(
            "the backup could not be restored into the scratch database "
            f"(pg_restore said: {result.said})"
        )
    return result.stdout
