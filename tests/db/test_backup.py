"""pg_dump/pg_restore discovery and backups, with the real binaries against a real server."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from bot.embedded import embedded_bin_dir, embedded_server
from bot.errors import BackupError
from bot.pgtools import PgTools, candidate_dirs, find_pg_tools, major_of, probe_version

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


def server_major(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


@pytest.fixture(scope="session")
def pg_tools(pg_server: str) -> PgTools:
    """The client tools the suite backs up with: whatever discovery picks for its server."""
    return find_pg_tools(server_major(pg_server))


def test_find_pg_tools_picks_a_new_enough_pair(pg_server: str) -> None:
    """Discovery returns a pg_dump and pg_restore at least as new as the server."""
    major = server_major(pg_server)
    tools = find_pg_tools(major)
    assert tools.major >= major
    assert tools.pg_restore.parent == tools.pg_dump.parent
    assert probe_version(tools.pg_restore, "pg_restore") == tools.version


def test_find_pg_tools_names_the_versions_it_found_when_none_fits() -> None:
    """With a server newer than every client, the error names the server and each version."""
    with pytest.raises(BackupError) as caught:
        find_pg_tools(99)
    text = caught.value.render()
    assert "PostgreSQL 99" in text
    assert "ROLLBOT_PG_BIN" in text
    found = [d / "pg_dump" for d in candidate_dirs() if (d / "pg_dump").is_file()]
    assert found
    for pg_dump in found:
        assert f"pg_dump {probe_version(pg_dump, 'pg_dump')} ({pg_dump})" in text


@pytest.mark.skipif(not DEBIAN_15.is_dir(), reason="needs Debian's PostgreSQL 15 client")
def test_find_pg_tools_blames_rollbot_pg_bin_when_it_is_too_old() -> None:
    """An explicit ROLLBOT_PG_BIN that is too old is reported as such, not silently bypassed."""
    with pytest.raises(BackupError) as caught:
        find_pg_tools(16, pg_bin=DEBIAN_15)
    error = caught.value
    version = probe_version(DEBIAN_15 / "pg_dump", "pg_dump")
    assert error.what == (
        f"pg_dump {version} in ROLLBOT_PG_BIN ({DEBIAN_15}) is older than the server "
        "(PostgreSQL 16)"
    )
    assert "ROLLBOT_PG_BIN" in error.todo
    assert "PostgreSQL 16" in error.todo


def test_find_pg_tools_rejects_a_pg_bin_holding_another_program(tmp_path: Path) -> None:
    """A directory whose pg_dump is not pg_dump gives a clear error, not a crash."""
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(BackupError) as caught:
        find_pg_tools(15, pg_bin=tmp_path)
    text = caught.value.render()
    assert f"ROLLBOT_PG_BIN ({tmp_path}) is not usable" in text
    assert "is not pg_dump" in text


@pytest.mark.skipif(embedded_bin_dir() is None, reason="needs the embedded PostgreSQL")
def test_find_pg_tools_reaches_the_embedded_client_for_a_newer_server() -> None:
    """Against the embedded PostgreSQL 16, default discovery finds a pg_dump 16 or newer."""
    start = time.monotonic()
    with embedded_server() as conninfo:
        major = server_major(conninfo)
        tools = find_pg_tools(major)
    assert major == 16
    assert tools.major >= 16
    # Earlier candidates win only when they are new enough themselves.
    earlier = [d for d in candidate_dirs() if (d / "pg_dump").is_file() and d != embedded_bin_dir()]
    if all(major_of(probe_version(d / "pg_dump", "pg_dump")) < 16 for d in earlier):
        assert tools.pg_dump.parent == embedded_bin_dir()
        assert tools.version.startswith("16.")
    assert time.monotonic() - start < 5
