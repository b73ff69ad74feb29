"""pg_dump/pg_restore discovery and backups, with the real binaries against a real server."""

from __future__ import annotations

import hashlib
import shlex
import stat
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bot.core.errors import BackupError
from bot.pgclient.embedded import embedded_bin_dir, embedded_server
from bot.pgclient.tools import PgTools, candidate_dirs, find_pg_tools, major_of, probe_version
from bot.target.backup import take_backup, verify_backup
from tests.fix_db import create_database, drop_database, unique_name, with_dbname

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

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
    """Against the embedded PostgreSQL 16, default discovery finds a pg_dump 16 or newer.

    Only discovery is timed: starting the embedded server (initdb included) is the fixture's
    cost and swings with the machine's load, while a slow discovery is the bug looked for.
    """
    with embedded_server() as conninfo:
        major = server_major(conninfo)
        start = time.monotonic()
        tools = find_pg_tools(major)
        elapsed = time.monotonic() - start
    assert major == 16
    assert tools.major >= 16
    # Earlier candidates win only when they are new enough themselves.
    earlier = [d for d in candidate_dirs() if (d / "pg_dump").is_file() and d != embedded_bin_dir()]
    if all(major_of(probe_version(d / "pg_dump", "pg_dump")) < 16 for d in earlier):
        assert tools.pg_dump.parent == embedded_bin_dir()
        assert tools.version.startswith("16.")
    assert elapsed < 5


# --- backups ---------------------------------------------------------------------------

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE users (id int PRIMARY KEY, mood mood NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users, mood mood);
INSERT INTO users SELECT g, 'happy' FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, g, 'sad' FROM generate_series(1, 300) g;
"""
PASSWORD = "hunter2-Sekret"


def fill(conninfo: str) -> str:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return conninfo


@pytest.fixture(scope="module")
def populated(pg_server: str) -> Iterator[str]:
    """An enum and two tables with rows, shared by the tests that only read it."""
    name = unique_name("rollbot_backup")
    yield fill(create_database(pg_server, name))
    drop_database(pg_server, name)


def counts(conninfo: str, *tables: str) -> list[int]:
    with psycopg.connect(conninfo) as conn:
        return [
            int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in tables
        ]


def restore(tools: PgTools, dump: Path, conninfo: str, *extra: str) -> None:
    done = subprocess.run(
        [str(tools.pg_restore), f"--dbname={conninfo}", "--exit-on-error", *extra, str(dump)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def wrapped(tools: PgTools, tmp_path: Path, extra: str = "") -> PgTools:
    """The same tools, but pg_dump goes through a script that records argv and environment."""
    bin_dir = tmp_path / "wrapper"
    bin_dir.mkdir()
    script = bin_dir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" >> {shlex.quote(str(bin_dir / "argv.log"))}\n'
        f"env >> {shlex.quote(str(bin_dir / 'env.log'))}\n"
        f'exec {shlex.quote(str(tools.pg_dump))} "$@" {extra}\n'
    )
    script.chmod(0o700)
    return tools.model_copy(update={"pg_dump": script})


def with_password(conninfo: str, password: str = PASSWORD) -> str:
    return make_conninfo(conninfo, password=password)


def test_full_backup_is_private_verified_and_restorable(
    pg_tools: PgTools, populated: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    """A full backup is a 0600 file in a 0700 directory, hashed, verified, and restores rows."""
    directory = tmp_path / "backups" / "nested"
    info = take_backup(
        pg_tools, populated, directory, name="run-1", required_tables=["public.users"]
    )
    assert info.path == directory / "run-1.dump"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert info.size_bytes == info.path.stat().st_size
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    assert info.tables == ("public.orders", "public.users")
    assert info.verified
    assert info.kind == "full"
    assert info.pg_dump_version == pg_tools.version
    assert info.created_at.utcoffset() == timedelta(0)
    assert 0 < info.duration_s < 10
    assert sorted(p.name for p in directory.iterdir()) == ["run-1.dump"]

    target = make_database()
    restore(pg_tools, info.path, target)
    assert counts(target, "users", "orders") == [2000, 300]


def test_existing_wide_directory_is_tightened(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A backup directory we own that others can read is narrowed to 0700 before writing."""
    directory = tmp_path / "wide"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    take_backup(pg_tools, populated, directory, name="b")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_truncated_dump_fails_verification_though_list_passes(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A dump cut short still lists its contents but fails the full read-back."""
    info = take_backup(pg_tools, populated, tmp_path, name="whole")
    cut = tmp_path / "cut.dump"
    cut.write_bytes(info.path.read_bytes()[:-200])
    listed = subprocess.run(
        [str(pg_tools.pg_restore), "--list", str(cut)], capture_output=True, check=False
    )
    assert listed.returncode == 0
    assert b"TABLE DATA public users" in listed.stdout
    with pytest.raises(BackupError) as caught:
        verify_backup(pg_tools, cut, ["public.users"])
    assert caught.value.what == f"The backup {cut} cannot be read back"
    assert "could not read from input file" in caught.value.why


def test_missing_required_table_is_named_and_nothing_is_left(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A required table absent from the dump fails the backup, naming it, and removes the file."""
    with pytest.raises(BackupError) as caught:
        take_backup(
            pg_tools, populated, tmp_path, name="m", required_tables=["public.users", "public.gone"]
        )
    assert caught.value.what.startswith("The new backup of database ")
    assert caught.value.what.endswith(" lacks the data of public.gone")
    assert "public.users" not in caught.value.what
    assert list(tmp_path.iterdir()) == []


def test_snapshot_backup_sees_the_snapshot_not_later_rows(
    pg_tools: PgTools, scratch_db: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    """With an exported snapshot the dump holds the rows as of that snapshot only."""
    populated = fill(scratch_db)
    with psycopg.connect(populated) as holder:
        holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        row = holder.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        with psycopg.connect(populated, autocommit=True) as other:
            other.execute("INSERT INTO users SELECT g, 'sad' FROM generate_series(2001, 2500) g")
            other.execute("DELETE FROM orders WHERE id > 100")
        info = take_backup(
            pg_tools,
            populated,
            tmp_path,
            name="final",
            kind="final",
            snapshot=str(row[0]),
            required_tables=["public.users", "public.orders"],
        )
        holder.rollback()
    assert info.kind == "final"
    assert counts(populated, "users", "orders") == [2500, 100]
    target = make_database()
    restore(pg_tools, info.path, target)
    assert counts(target, "users", "orders") == [2000, 300]


def test_excluded_table_data_keeps_schema_and_the_rest_restores_alone(
    pg_tools: PgTools, populated: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    """Excluded tables keep their definition without rows; kept tables restore with their enum."""
    info = take_backup(
        pg_tools,
        populated,
        tmp_path,
        name="x",
        kind="final",
        exclude_table_data=["public.orders"],
        required_tables=["public.users"],
    )
    assert info.tables == ("public.users",)
    whole = make_database()
    restore(pg_tools, info.path, whole)
    assert counts(whole, "users", "orders") == [2000, 0]

    # Only the enum and the kept table: possible because the dump carries the type.
    listing = subprocess.run(
        [str(pg_tools.pg_restore), "--list", str(info.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted_entries = ("TYPE public mood", "TABLE public users", "TABLE DATA public users")
    wanted = [
        line
        for line in listing.splitlines()
        if any(f" {entry} " in line for entry in wanted_entries)
    ]
    assert len(wanted) == 3, listing
    use_list = tmp_path / "users.list"
    use_list.write_text("\n".join(wanted) + "\n")
    alone = make_database()
    restore(pg_tools, info.path, alone, f"--use-list={use_list}")
    assert counts(alone, "users") == [2000]


def test_excluded_names_match_exactly_despite_pattern_characters(
    pg_tools: PgTools, scratch_db: str, tmp_path: Path
) -> None:
    """Excluding "a*b", "a.b" and "Weird Name" leaves axb, aXb and weird name untouched."""
    names = ["a*b", "axb", "a.b", "Weird Name", "weird name", "aXb"]
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        for name in names:
            table = sql.Identifier("public", name)
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
    info = take_backup(
        pg_tools,
        scratch_db,
        tmp_path,
        name="odd",
        exclude_table_data=['public."a*b"', 'public."a.b"', 'public."Weird Name"'],
        required_tables=['public."aXb"', 'public."weird name"'],
    )
    assert info.tables == ('public."aXb"', 'public."weird name"', "public.axb")


# --- failures --------------------------------------------------------------------------


def test_password_reaches_pg_dump_only_through_its_environment(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """The password is in the child's PGPASSWORD, never in its argv; the app name is set."""
    tools = wrapped(pg_tools, tmp_path)
    take_backup(tools, with_password(populated), tmp_path / "b", name="pw")
    argv = (tmp_path / "wrapper" / "argv.log").read_text()
    env = (tmp_path / "wrapper" / "env.log").read_text().splitlines()
    assert "--format=custom" in argv
    assert PASSWORD not in argv
    assert f"PGPASSWORD={PASSWORD}" in env
    assert "PGAPPNAME=rollbot" in env
    assert "application_name=rollbot" in argv


def test_backup_directory_under_a_regular_file_is_refused(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A directory that cannot be created gives a BackupError naming it and the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    directory = blocker / "backups"
    with pytest.raises(BackupError) as caught:
        take_backup(pg_tools, populated, directory, name="b")
    assert caught.value.what == (f"Cannot use {directory} as the backup directory: Not a directory")
    assert "backup directory" in caught.value.todo


def test_pg_dump_that_is_not_executable_is_refused(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A pg_dump path that cannot be executed gives a BackupError, not an OSError."""
    fake = tmp_path / "pg_dump"
    fake.write_text("not a program")
    tools = pg_tools.model_copy(update={"pg_dump": fake})
    with pytest.raises(BackupError) as caught:
        take_backup(tools, populated, tmp_path / "b", name="b")
    assert caught.value.what == f"Cannot run pg_dump ({fake}): Permission denied"


def test_pg_dump_that_is_another_program_is_refused(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A pg_dump path holding another program is caught before anything is written."""
    tools = pg_tools.model_copy(update={"pg_dump": pg_tools.pg_restore})
    with pytest.raises(BackupError) as caught:
        take_backup(tools, populated, tmp_path / "b", name="b")
    assert caught.value.what.startswith(f"{pg_tools.pg_restore} is not pg_dump")
    assert not (tmp_path / "b").exists()


def test_connection_refused_is_explained_without_the_password(
    pg_tools: PgTools, tmp_path: Path
) -> None:
    """An unreachable server gives a connect error that names the target but not the secret."""
    conninfo = f"host=127.0.0.1 port=1 dbname=app user=bot password={PASSWORD}"
    with pytest.raises(BackupError) as caught:
        take_backup(pg_tools, conninfo, tmp_path, name="b")
    error = caught.value
    assert error.what == 'pg_dump could not connect to database "app" on 127.0.0.1:1'
    assert "Connection refused" in error.why
    assert PASSWORD not in error.render()
    assert list(tmp_path.iterdir()) == []


def test_password_echoed_by_the_server_is_redacted(
    pg_tools: PgTools, pg_server: str, tmp_path: Path
) -> None:
    """Server text that happens to contain the password reaches the error as ***."""
    conninfo = with_dbname(pg_server, f"no_{PASSWORD}_db")
    with pytest.raises(BackupError) as caught:
        take_backup(pg_tools, with_password(conninfo), tmp_path, name="b")
    text = caught.value.render()
    assert PASSWORD not in text
    assert 'database "no_***_db" does not exist' in text


def test_disk_full_is_reported_and_the_partial_file_removed(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """When pg_dump runs out of space the error says the disk is full and no file is left."""
    tools = wrapped(pg_tools, tmp_path, extra="--file=/dev/full")
    directory = tmp_path / "b"
    with pytest.raises(BackupError) as caught:
        take_backup(tools, populated, directory, name="full")
    assert caught.value.what.startswith(f"The disk holding {directory} is full")
    assert "No space left on device" in caught.value.why
    assert list(directory.iterdir()) == []


def test_lock_wait_timeout_gives_up_with_a_lock_error(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """A table locked by another session makes pg_dump give up after the lock wait timeout."""
    with psycopg.connect(populated) as locker:
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(BackupError) as caught:
            take_backup(pg_tools, populated, tmp_path, name="b", lock_wait_timeout_s=0.2)
        locker.rollback()
    assert caught.value.what.startswith("pg_dump gave up waiting for a table lock")


def test_vanished_snapshot_is_explained(pg_tools: PgTools, populated: str, tmp_path: Path) -> None:
    """A snapshot whose transaction has ended is reported as gone, with what to do."""
    with psycopg.connect(populated) as holder:
        row = holder.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
    with pytest.raises(BackupError) as caught:
        take_backup(pg_tools, populated, tmp_path, name="b", snapshot=str(row[0]))
    assert "snapshot" in caught.value.what
    assert "no longer exists" in caught.value.what


def test_existing_backup_is_never_overwritten(
    pg_tools: PgTools, populated: str, tmp_path: Path
) -> None:
    """Taking a backup under a name already used is refused and the old file is untouched."""
    first = take_backup(pg_tools, populated, tmp_path, name="same")
    with pytest.raises(BackupError, match="already exists"):
        take_backup(pg_tools, populated, tmp_path, name="same")
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../escape"}, "not a usable backup name"),
        ({"name": "b", "snapshot": "x'; DROP"}, "not a snapshot id"),
        ({"name": "b", "required_tables": ["users"]}, "not a table name"),
        (
            {"name": "b", "required_tables": ["public.users"], "exclude_table_data": ["users"]},
            "not a table name",
        ),
    ],
)
def test_bad_arguments_are_refused_before_pg_dump_runs(
    pg_tools: PgTools, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    """Unsafe names, malformed snapshot ids and unqualified tables are refused up front."""
    with pytest.raises(BackupError, match=message):
        take_backup(pg_tools, "host=/nonexistent dbname=x", tmp_path / "b", **kwargs)
    assert not (tmp_path / "b").exists()


def test_table_both_required_and_excluded_is_refused(pg_tools: PgTools, tmp_path: Path) -> None:
    """Asking to back up a table's rows and to leave them out is a contradiction, reported."""
    with pytest.raises(BackupError, match="both required in the backup and left out"):
        take_backup(
            pg_tools,
            "host=/nonexistent dbname=x",
            tmp_path,
            name="b",
            required_tables=["public.users"],
            exclude_table_data=["PUBLIC.USERS"],
        )
