"""A real PostgreSQL for the tests, and a scratch database per test.

The server is chosen once per session: `TEST_DATABASE_URL` if set; else the local server on
127.0.0.1:5432 if it answers; else an embedded pgserver. Databases are created per test (cloned
from a template where a fixture schema is needed, which is much faster than rebuilding it) and
dropped afterwards, so tests never see each other's objects.

The asset_forge templates are built once per session, one at migration 0022 and one at 0023,
each with the deterministic sample rows; `db_0022` and `db_0023` hand every test its own clone.
A clone costs a few tenths of a second, so tests that only read the catalog or count rows may
share one per module through `readonly_db_0022` and `readonly_db_0023`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.pgclient.embedded import embedded_server
from bot.pgclient.tools import find_pg_tools
from demo.sample import BASELINE_TABLES, build_asset_forge, expected_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

LOCAL_SERVER = "host=127.0.0.1 port=5432 dbname=postgres"

# Rows per table in the asset_forge clones, derived independently of what the build reports.
SAMPLE_COUNTS: dict[str, int] = expected_rows()
SAMPLE_COUNTS_0022: dict[str, int] = expected_rows(tables=BASELINE_TABLES)


def _answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Conninfo of the maintenance database of the server the session tests against."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    local = os.environ.get("ROLLBOT_TEST_LOCAL_SERVER", LOCAL_SERVER)
    if _answers(local):
        yield local
        return
    with embedded_server() as conninfo:
        yield conninfo


def with_dbname(conninfo: str, dbname: str) -> str:
    """The same server, another database."""
    params = conninfo_to_dict(conninfo)
    params["dbname"] = dbname
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def create_database(server: str, name: str, template: str | None = None) -> str:
    """Create a database (optionally cloned from a template) and return its conninfo."""
    with psycopg.connect(server, autocommit=True) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        conn.execute(stmt)
    return with_dbname(server, name)


def drop_database(server: str, name: str) -> None:
    """Drop a database even if a test left sessions open in it."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def unique_name(prefix: str) -> str:
    """A database name no other test or worker uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_database(pg_server: str) -> Iterator[Callable[..., str]]:
    """Factory: `make_database(template=None, prefix="t")` -> conninfo; dropped after the test."""
    created: list[str] = []

    def make(template: str | None = None, prefix: str = "rollbot_t") -> str:
        name = unique_name(prefix)
        conninfo = create_database(pg_server, name, template)
        created.append(name)
        return conninfo

    yield make
    for name in created:
        with contextlib.suppress(psycopg.Error):
            drop_database(pg_server, name)


@pytest.fixture
def scratch_db(make_database: Callable[..., str]) -> str:
    """An empty database of its own for this test."""
    return make_database()


def _asset_forge_template(server: str, upto: str) -> Iterator[str]:
    # build_asset_forge closes its connection: CREATE DATABASE ... TEMPLATE refuses a source
    # database anyone is connected to.
    name = unique_name(f"rollbot_af{upto}")
    conninfo = create_database(server, name)
    try:
        build_asset_forge(conninfo, upto=upto)
        yield name
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_database(server, name)


@pytest.fixture(scope="session")
def asset_forge_0023_template(pg_server: str) -> Iterator[str]:
    """Name of a database at migration 0023 with sample rows, to clone, never to connect to."""
    yield from _asset_forge_template(pg_server, "0023")


@pytest.fixture(scope="session")
def asset_forge_0022_template(pg_server: str) -> Iterator[str]:
    """Name of a database at migration 0022 (before 0023) with sample rows, to clone."""
    yield from _asset_forge_template(pg_server, "0022")


@pytest.fixture
def db_0023(make_database: Callable[..., str], asset_forge_0023_template: str) -> str:
    """Conninfo of this test's own asset_forge at 0023: what a rollback starts from."""
    return make_database(template=asset_forge_0023_template, prefix="rollbot_0023")


@pytest.fixture
def db_0022(make_database: Callable[..., str], asset_forge_0022_template: str) -> str:
    """Conninfo of this test's own asset_forge at 0022: the schema a rollback must end at."""
    return make_database(template=asset_forge_0022_template, prefix="rollbot_0022")


def _shared_clone(server: str, template: str, prefix: str) -> Iterator[str]:
    name = unique_name(prefix)
    conninfo = create_database(server, name, template)
    try:
        yield conninfo
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_database(server, name)


@pytest.fixture(scope="module")
def readonly_db_0023(pg_server: str, asset_forge_0023_template: str) -> Iterator[str]:
    """Conninfo of a 0023 clone shared by a module's tests; writing to it is a test bug."""
    yield from _shared_clone(pg_server, asset_forge_0023_template, "rollbot_ro0023")


@pytest.fixture(scope="module")
def readonly_db_0022(pg_server: str, asset_forge_0022_template: str) -> Iterator[str]:
    """Conninfo of a 0022 clone shared by a module's tests; writing to it is a test bug."""
    yield from _shared_clone(pg_server, asset_forge_0022_template, "rollbot_ro0022")


class Role:
    """A login role made for one test, with only the privileges the test grants it."""

    def __init__(self, server: str, name: str) -> None:
        self.server = server
        self.name = name
        self._databases: set[str] = set()

    def conninfo(self, conninfo: str, password: str | None = None) -> str:
        """The same database, reached as this role (the password, if any, is for show)."""
        params = conninfo_to_dict(conninfo)
        params["user"] = self.name
        if password is not None:
            params["password"] = password
        return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})

    def run(self, conninfo: str, *statements: str) -> None:
        """Run statements as the server's superuser in that database; `{role}` is this role."""
        dbname = str(conninfo_to_dict(conninfo).get("dbname") or "")
        self._databases.add(dbname)
        role = sql.Identifier(self.name).as_string()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.replace("{role}", role).encode())

    def drop(self) -> None:
        """Take back every grant (in each database it was given in), then drop the role."""
        role = sql.Identifier(self.name)
        for dbname in self._databases:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(with_dbname(self.server, dbname), autocommit=True) as conn,
            ):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


@pytest.fixture
def make_role(pg_server: str) -> Iterator[Callable[[], Role]]:
    """Factory: a fresh LOGIN role with a unique name and no privileges; dropped after."""
    made: list[Role] = []

    def make() -> Role:
        role = Role(pg_server, unique_name("rollbot_role"))
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role.name)))
        made.append(role)
        return role

    yield make
    for role in made:
        role.drop()


@contextlib.contextmanager
def restored(pg_server: str, dump: Path) -> Iterator[str]:
    """A scratch database holding what a final backup holds: schema, and the rows it kept."""
    name = unique_name("rollbot_final")
    conninfo = create_database(pg_server, name)
    try:
        with psycopg.connect(conninfo) as conn:
            major = conn.info.server_version // 10000
        subprocess.run(
            [
                str(find_pg_tools(major).pg_restore),
                "--no-owner",
                "--section=pre-data",
                "--section=data",
                "--exit-on-error",
                f"--dbname={conninfo}",
                str(dump),
            ],
            check=True,
            capture_output=True,
        )
        yield conninfo
    finally:
        drop_database(pg_server, name)
