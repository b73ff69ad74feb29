"""What `rollbot doctor` reads from the state database, without creating anything there.

The run store creates and upgrades its schema when it starts; doctor must not, so it opens
one plain READ ONLY connection of its own and asks the catalog what the role could do.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from bot.core.dbfailures import connection_cause
from bot.core.doctor import StateFacts
from bot.core.errors import DatabaseUnavailableError
from bot.core.redact import Redactor
from bot.state.schema import MIGRATIONS
from bot.state.store import STATE_SCHEMA

LATEST = max(version for version, _ in MIGRATIONS)

_FACTS = """
SELECT quote_ident(current_user), quote_ident(current_database()),
       n.oid IS NOT NULL,
       coalesce(pg_has_role(n.nspowner, 'USAGE'), false),
       coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
       coalesce(has_schema_privilege(n.oid, 'CREATE'), false),
       has_database_privilege(current_database(), 'CREATE'),
       to_regclass(%(versions)s) IS NOT NULL,
       NOT EXISTS (
           SELECT FROM pg_catalog.pg_class c
           WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
             AND NOT (has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
                      AND has_table_privilege(c.oid, 'UPDATE')
                      AND has_table_privilege(c.oid, 'DELETE')))
FROM (SELECT) AS one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = %(schema)s
"""


def state_facts(conninfo: str, *, variable: str, timeout: float) -> StateFacts:
    """The schema's state and the role's rights on it; DatabaseUnavailableError if unreachable."""
    redactor = Redactor([conninfo])
    try:
        conn = psycopg.connect(
            conninfo, connect_timeout=max(1, int(timeout)), application_name="rollbot doctor"
        )
    except psycopg.Error as exc:
        cause = connection_cause(redactor.text(str(exc)), conninfo)
        raise DatabaseUnavailableError(
            f"The state database ({variable}) cannot be reached",
            why=cause.why,
            todo=f"{cause.todo}; nothing was changed",
            lasting=cause.lasting,
        ) from None
    try:
        with conn:
            conn.read_only = True
            row, version = _read(conn)
            conn.rollback()
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"The state database ({variable}): its catalog could not be read",
            why=f"PostgreSQL said: {redactor.text(exc.diag.message_primary or str(exc))}",
            todo="check the role's access to the database; nothing was changed",
        ) from None
    return StateFacts(
        role=str(row[0]),
        database=str(row[1]),
        schema_exists=bool(row[2]),
        schema_owned=bool(row[3]),
        schema_usage=bool(row[4]),
        schema_create=bool(row[5]),
        database_create=bool(row[6]),
        version=version,
        tables_writable=bool(row[8]),
    )


def _read(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[tuple[object, ...], int | None]:
    row = conn.execute(
        _FACTS, {"schema": STATE_SCHEMA, "versions": f"{STATE_SCHEMA}.schema_version"}
    ).fetchone()
    assert row is not None  # noqa: S101 - a LEFT JOIN from one row yields one row
    version: int | None = None
    if row[4] and row[7] and row[8]:  # USAGE, the versions table, and SELECT on it
        found = conn.execute(
            sql.SQL("SELECT max(version) FROM {}.schema_version").format(
                sql.Identifier(STATE_SCHEMA)
            )
        ).fetchone()
        version = int(str(found[0])) if found and found[0] is not None else None
    return row, version
