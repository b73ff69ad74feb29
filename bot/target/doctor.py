"""What `rollbot doctor` reads from a target: the role's rights, the tables, the tools.

Everything is read in one READ ONLY transaction, from the catalog and the `has_*_privilege`,
`pg_has_role` functions, which answer "could this role?" without trying: nothing is locked,
created or dropped. The backup directory is looked at with `os.access` and `statvfs`, so no
probe file is written either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import BaseModel, ConfigDict

from bot.core.doctor import BackupDirFacts, RoleFacts, TableAccess
from bot.core.errors import BackupError, DatabaseUnavailableError, PrivilegeError
from bot.core.journal import JournalRow
from bot.target.database import postgres_message

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from bot.target.database import TargetDatabase

PURPOSE = "doctor"
_UNREADABLE_SHOWN = 5

_ROLE = """
SELECT quote_ident(current_user), quote_ident(current_database()),
       r.rolsuper, r.rolcreatedb, r.rolcreaterole,
       has_function_privilege('pg_catalog.pg_try_advisory_xact_lock(integer, integer)',
                              'EXECUTE'),
       pg_database_size(current_database()),
       current_setting('server_version'), current_setting('server_version_num')::int
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""

# What pg_dump reads: every table, partition and materialized view outside the system
# schemas and those rollbot leaves out of its backups.
_UNREADABLE = """
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname <> ALL (%s)
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
ORDER BY 1
"""

_TABLE = """
SELECT format('%%I.%%I', n.nspname, c.relname), quote_ident(pg_get_userbyid(c.relowner)),
       pg_has_role(c.relowner, 'USAGE'),
       has_table_privilege(c.oid, 'SELECT'),
       has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE')
           OR has_table_privilege(c.oid, 'TRUNCATE'),
       has_schema_privilege(n.oid, 'USAGE'),
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = c.relowner)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""


class TargetFindings(BaseModel):
    """What was found on one target; each part None when it could not be read (and why)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    role: RoleFacts
    tables: tuple[TableAccess, ...]
    tools: str | None  # pg_dump's version, when a usable pair was found
    tools_problem: BackupError | None
    journal: list[JournalRow] | None  # None: no Drizzle journal table
    journal_problem: PrivilegeError | None


def examine(
    db: TargetDatabase, tables: Mapping[str, Iterable[str]], *, exclude: Iterable[str] = ()
) -> TargetFindings:
    """Read everything doctor decides on; TargetUnreachableError when it cannot connect.

    `tables` maps each table a runbook changes, as the runbook names it, to those runbooks.
    """
    with db.connect(PURPOSE, read_only=True) as conn:
        try:
            role = _role(conn, exclude)
            access = _tables(conn, tables)
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                f"Target {db.name}: the catalog could not be read",
                why=f"PostgreSQL said: {postgres_message(exc, db.secrets)}",
                todo="check the role's access to the database; nothing was changed",
            ) from None
        conn.rollback()
    tools: str | None = None
    tools_problem: BackupError | None = None
    try:
        tools = db.tools(role.server_major).version
    except BackupError as exc:
        tools_problem = exc
    journal: list[JournalRow] | None = None
    journal_problem: PrivilegeError | None = None
    try:
        journal = db.journal_rows()
    except PrivilegeError as exc:
        journal_problem = exc
    return TargetFindings(
        role=role,
        tables=access,
        tools=tools,
        tools_problem=tools_problem,
        journal=journal,
        journal_problem=journal_problem,
    )


def server_facts(db: TargetDatabase) -> RoleFacts:
    """The role's rights on a server only (a rehearsal server: CREATEDB is what matters)."""
    with db.connect(PURPOSE, read_only=True) as conn:
        try:
            return _role(conn, ())
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                f"Server {db.name}: the catalog could not be read",
                why=f"PostgreSQL said: {postgres_message(exc, db.secrets)}",
                todo="check the role's access to the database; nothing was changed",
            ) from None


def _role(conn: psycopg.Connection[Any], exclude: Iterable[str]) -> RoleFacts:
    row = conn.execute(_ROLE).fetchone()
    if row is None:  # current_user always has a pg_roles row; this is for the type checker
        raise RuntimeError("pg_roles has no row for current_user")
    unreadable = [str(r[0]) for r in conn.execute(_UNREADABLE.encode(), (list(exclude),))]
    number = int(row[8])
    return RoleFacts(
        role=str(row[0]),
        database=str(row[1]),
        superuser=bool(row[2]),
        createdb=bool(row[3]),
        createrole=bool(row[4]),
        advisory_locks=bool(row[5]),
        database_size=int(row[6]),
        server_version=str(row[7]).split(" ", 1)[0],
        server_major=number // 10000,
        unreadable=tuple(unreadable[:_UNREADABLE_SHOWN]),
        unreadable_count=len(unreadable),
    )


def _tables(
    conn: psycopg.Connection[Any], tables: Mapping[str, Iterable[str]]
) -> tuple[TableAccess, ...]:
    """Each named table that exists, once, with every runbook that changes it.

    A runbook for a migration not applied names tables that are not there: nothing to check.
    """
    found: dict[str, TableAccess] = {}
    for name, runbooks in tables.items():
        row = conn.execute(_TABLE.encode(), (name,)).fetchone()
        if row is None:
            continue
        qualified = str(row[0])
        earlier = found.get(qualified)
        names = tuple(sorted({*(earlier.runbooks if earlier else ()), *runbooks}))
        found[qualified] = TableAccess(
            table=qualified,
            runbooks=names,
            owner=str(row[1]),
            owns=bool(row[2]),
            select=bool(row[3]),
            lock=bool(row[4]),
            schema_usage=bool(row[5]),
            owner_superuser=bool(row[6]),
        )
    return tuple(found[k] for k in sorted(found))


def backup_dir_facts(path: Path) -> BackupDirFacts:
    """Whether backups can be written there, and the room left, without writing anything.

    rollbot creates the directory on first use, so a missing one is fine when its nearest
    existing parent is writable.
    """
    exists = path.exists()
    probe = path if exists else next((p for p in path.parents if p.exists()), Path("/"))
    writable = os.access(probe, os.W_OK | os.X_OK)
    try:
        stats = os.statvfs(probe)
        free: int | None = stats.f_bavail * stats.f_frsize
    except OSError:
        free = None
    return BackupDirFacts(
        path=str(path), exists=exists, writable=writable, is_dir=probe.is_dir(), free_bytes=free
    )
