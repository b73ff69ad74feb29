"""The server a benchmark runs against, and the scratch databases it makes there.

Every scenario works on databases it creates and drops itself: an asset_forge template built
once per scale (migrated to 0023, filled, vacuumed so hint bits are already set), and a clone
of it per measured case, so rollbot and the raw tool always start from identical copies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.pgclient.embedded import embedded_server
from bot.pgclient.tools import PgTools, find_pg_tools
from demo.sample import build_asset_forge

if TYPE_CHECKING:
    from collections.abc import Iterator

LOCAL_SERVER = "host=127.0.0.1 port=5432 dbname=postgres"


@dataclass(frozen=True)
class Tools:
    """The client programs a benchmark runs: rollbot's pair, and psql beside them."""

    pg: PgTools
    psql: Path


@dataclass
class Server:
    """A PostgreSQL server reached through its maintenance database's conninfo."""

    conninfo: str
    _created: list[str] = field(default_factory=list)

    def version(self) -> str:
        """The server's version, e.g. `15.20`."""
        with psycopg.connect(self.conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"

    def tools(self) -> Tools:
        """pg_dump/pg_restore as rollbot finds them, and the psql of the same installation."""
        with psycopg.connect(self.conninfo) as conn:
            major = conn.info.server_version // 10000
        pg = find_pg_tools(major)
        psql = pg.pg_dump.parent / "psql"
        if not psql.is_file():
            found = shutil.which("psql")
            if found is None:
                msg = f"no psql beside {pg.pg_dump} nor on PATH"
                raise FileNotFoundError(msg)
            psql = Path(found)
        return Tools(pg=pg, psql=psql)

    def database(self, name: str) -> str:
        """Conninfo of another database on this server."""
        params = {k: str(v) for k, v in conninfo_to_dict(self.conninfo).items() if v is not None}
        params["dbname"] = name
        return make_conninfo(**params)

    def create(self, prefix: str, template: str | None = None, *, file_copy: bool = False) -> str:
        """Create an empty database, or a clone of `template`; return its name.

        `file_copy` copies the template's files instead of writing every page through the
        WAL (PostgreSQL 15's default): much faster for a large template, at the price of a
        checkpoint. Before PostgreSQL 15 copying files is the only way, and the option is moot.
        """
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            if template is not None:
                statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
                if file_copy and conn.info.server_version >= 150000:
                    statement = sql.SQL("{} STRATEGY FILE_COPY").format(statement)
            conn.execute(statement)
        self._created.append(name)
        return name

    def drop(self, name: str) -> None:
        """Drop a database this object created, even if sessions were left in it."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self._created:
            self._created.remove(name)

    def drop_all(self) -> None:
        """Drop every database still left from this object (after an interrupted run)."""
        for name in list(self._created):
            with contextlib.suppress(psycopg.Error):
                self.drop(name)

    @contextmanager
    def clone(
        self, template: str, prefix: str = "rollbot_bench", *, file_copy: bool = False
    ) -> Iterator[str]:
        """A fresh copy of `template` for one measured case; yields its conninfo."""
        name = self.create(prefix, template, file_copy=file_copy)
        try:
            yield self.database(name)
        finally:
            with contextlib.suppress(psycopg.Error):
                self.drop(name)

    @contextmanager
    def asset_forge(self, scale: int) -> Iterator[str]:
        """A template database at migration 0023 with `scale` x the sample rows; yields its name.

        Nobody stays connected to it, so it can be cloned.
        """
        name = self.create(f"rollbot_bench_af{scale}")
        try:
            conninfo = self.database(name)
            build_asset_forge(conninfo, upto="0023", scale=scale)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")
            yield name
        finally:
            with contextlib.suppress(psycopg.Error):
                self.drop(name)

    def settle(self) -> None:
        """Flush dirty pages before a timed step, so a checkpoint does not land inside it.

        Needs superuser or pg_checkpoint; without them the step is simply skipped.
        """
        with (
            contextlib.suppress(psycopg.errors.InsufficientPrivilege),
            psycopg.connect(self.conninfo, autocommit=True) as conn,
        ):
            conn.execute("CHECKPOINT")


def answers(conninfo: str) -> bool:
    """Whether a server accepts a connection within two seconds."""
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def open_server(url: str | None) -> Iterator[Server]:
    """`url` if given; else the local server if it answers; else an embedded one."""
    if url:
        server = Server(url)
    elif answers(LOCAL_SERVER):
        server = Server(LOCAL_SERVER)
    else:
        with embedded_server() as conninfo:
            server = Server(conninfo)
            try:
                yield server
            finally:
                server.drop_all()
        return
    try:
        yield server
    finally:
        server.drop_all()
