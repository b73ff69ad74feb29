"""Rehearsals on a real PostgreSQL: a scratch copy from the verified backup, always dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.core.library import load_library
from bot.core.plan import Plan, build_plan
from bot.core.results import Rehearsal, RowChange
from bot.core.runbook import Runbook, parse_runbook
from bot.pgclient.tools import PgTools, find_pg_tools
from bot.target import rehearsal as rehearsal_module
from bot.target.catalog import describe_target, read_facts
from bot.target.database import TargetDatabase
from bot.target.rehearsal import rehearse
from bot.target.scratch import drop_scratch, sweep_scratch
from bot.target.snapshots import backup_with_counts
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import RUNBOOKS, counts_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bot.core.results import BackupInfo
    from bot.target.scratch import DataMode

DROPPED = [
    "api_errors",
    "asset_variants",
    "error_aggregations",
    "generation_pipelines",
    "pipeline_stages",
    "variant_statistics",
]

FAILS_AT_RUN_TIME = """# Fails only against the real schema

**Migration File**: `0024_fails_at_run_time.sql`

## Quick Rollback

```sql
BEGIN;
DROP INDEX IF EXISTS idx_errors_user;
DROP INDEX IF EXISTS idx_errors_endpoint;
ALTER TABLE api_errors DROP CONSTRAINT IF EXISTS api_errors_user_id_users_id_fk;
DROP TABLE IF EXISTS variant_statistics;
DELETE FROM sessions WHERE user_id = 'not-a-uuid';
DROP TABLE IF EXISTS api_errors;
COMMIT;
```
"""

DELETES_SESSIONS = """# Deletes rows

**Migration File**: `0024_deletes_sessions.sql`

## Quick Rollback

```sql
BEGIN;
DELETE FROM sessions WHERE user_agent = 'curl/8.5';
DROP TABLE IF EXISTS api_errors;
COMMIT;
```
"""


@pytest.fixture(scope="module")
def tools(pg_server: str) -> PgTools:
    """The pg_dump/pg_restore pair discovery picks for the test server."""
    with psycopg.connect(pg_server) as conn:
        return find_pg_tools(conn.info.server_version // 10000)


@dataclass(frozen=True)
class Scene:
    """A target at 0023, the server to rehearse on, and a scratch-name prefix of its own."""

    server: str
    target: str
    tools: PgTools
    directory: Path
    prefix: str

    def prepare(self, runbook: Runbook, *, miss_user_code: bool = False) -> tuple[Plan, BackupInfo]:
        """Plan the runbook against the target and take its verified full backup.

        `miss_user_code` plans as if the catalog check had not seen the runbook's user-defined
        functions, to attack what stands behind it.
        """
        with psycopg.connect(self.target) as conn:
            conn.read_only = True
            target = describe_target(conn)
            facts = read_facts(conn, runbook, target, count_budget=timedelta(seconds=2))
        if miss_user_code:
            facts = facts.model_copy(update={"user_functions": {}})
        plan = build_plan(
            runbook,
            facts,
            lock_timeout=timedelta(seconds=3),
            statement_timeout=timedelta(seconds=60),
        )
        assert not plan.blocked, plan.blockers
        backup, _ = backup_with_counts(
            self.tools,
            TargetDatabase.at(self.target),
            self.directory,
            name=f"full-{uuid.uuid4().hex[:8]}",
            tables=plan.write_locked,
        )
        return plan, backup

    def rehearse(
        self,
        runbook: Runbook,
        *,
        server: str | None = None,
        data: DataMode = "none",
        miss_user_code: bool = False,
    ) -> Rehearsal:
        """Plan, back up and rehearse the runbook."""
        plan, backup = self.prepare(runbook, miss_user_code=miss_user_code)
        return rehearse(
            plan,
            runbook,
            backup=backup,
            tools=self.tools,
            server=TargetDatabase.at(server or self.server),
            data=data,
            name_prefix=self.prefix,
        )

    def scratch_databases(self) -> list[str]:
        """Databases on the server whose name starts with this scene's prefix."""
        with psycopg.connect(self.server) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (self.prefix,)
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def scene(pg_server: str, db_0023: str, tools: PgTools, tmp_path: Path) -> Scene:
    """This test's own target database and a prefix no other test uses."""
    prefix = f"rollbot_rh_{uuid.uuid4().hex[:8]}"
    return Scene(pg_server, db_0023, tools, tmp_path, prefix)


def seed_runbook() -> Runbook:
    return load_library(RUNBOOKS).find("0023")


def test_seed_rehearsal_passes_and_leaves_the_target_alone(scene: Scene) -> None:
    """The seed plan commits on the scratch copy, reports its locks, and the copy is dropped."""
    result = scene.rehearse(seed_runbook())
    assert result.ok, result.summary()
    assert result.skipped is None
    assert result.error is None
    assert 0 < result.duration_s <= result.total_s
    assert "ACCESS EXCLUSIVE on public.users" in result.locks
    assert "ACCESS EXCLUSIVE on public.assets" in result.locks
    assert {f"ACCESS EXCLUSIVE on public.{t}" for t in DROPPED} <= set(result.locks)
    assert result.summary().startswith("rehearsed: ok in ")
    assert result.summary().endswith(
        " s (ACCESS EXCLUSIVE on 8 tables); ran as a throwaway role owning only the copy"
    )
    assert result.rows == tuple(
        RowChange(table=f"public.{t}", before=0, after=None) for t in sorted(DROPPED)
    )
    tables = [*DROPPED, "users", "assets"]
    assert counts_of(scene.target, tables) == {t: SAMPLE_COUNTS[t] for t in tables}
    assert scene.scratch_databases() == []


def test_statement_that_fails_against_the_real_schema_is_named_with_its_line(
    scene: Scene,
) -> None:
    """A DELETE that plans fine but fails at run time: statement, line, PostgreSQL's message."""
    result = scene.rehearse(parse_runbook(FAILS_AT_RUN_TIME, file="0024_fails_at_run_time.md"))
    assert not result.ok
    assert result.skipped is None
    assert result.failed_statement == "DELETE FROM sessions WHERE user_id = 'not-a-uuid'"
    assert result.failed_line == 13
    assert result.error == 'invalid input syntax for type uuid: "not-a-uuid"'
    assert result.summary() == (
        'rehearsal failed at line 13: invalid input syntax for type uuid: "not-a-uuid"; '
        "ran as a throwaway role owning only the copy"
    )
    assert scene.scratch_databases() == []
    tables = ["sessions", "variant_statistics"]
    assert counts_of(scene.target, tables) == {t: SAMPLE_COUNTS[t] for t in tables}


@pytest.mark.parametrize(
    ("data", "restored"),
    [("none", False), ("affected", True), ("all", True)],
)
def test_data_mode_decides_which_rows_the_scratch_copy_holds(
    scene: Scene, data: DataMode, restored: bool
) -> None:
    """With rows restored the DELETE removes 200 of 600 sessions; schema-only tables are empty."""
    result = scene.rehearse(
        parse_runbook(DELETES_SESSIONS, file="0024_deletes_sessions.md"), data=data
    )
    assert result.data == data
    api_errors = SAMPLE_COUNTS["api_errors"] if restored else 0
    sessions = (600, 400) if restored else (0, 0)
    assert SAMPLE_COUNTS["sessions"] == 600
    assert result.rows == (
        RowChange(table="public.api_errors", before=api_errors, after=None),
        RowChange(table="public.sessions", before=sessions[0], after=sessions[1]),
    )
    assert result.ok, result.summary()
    tables = ["sessions", "api_errors"]
    assert counts_of(scene.target, tables) == {t: SAMPLE_COUNTS[t] for t in tables}
    assert scene.scratch_databases() == []


@pytest.fixture
def role_without_createdb(pg_server: str) -> Iterator[str]:
    """Conninfo of the test server as a LOGIN role without CREATEDB, dropped afterwards."""
    role = f"rollbot_nocreatedb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    params = {k: str(v) for k, v in conninfo_to_dict(pg_server).items() if v is not None}
    params["user"] = role
    params["password"] = "s3cret-never-shown"  # trust auth ignores it; messages must too
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_refused_create_database_is_a_skip_that_leaves_nothing(
    scene: Scene, role_without_createdb: str
) -> None:
    """A role without CREATEDB gets a skip naming PostgreSQL's refusal, not a failure."""
    result = scene.rehearse(seed_runbook(), server=role_without_createdb)
    assert not result.ok
    assert result.skipped == (
        "the server refused CREATE DATABASE (permission denied to create database); "
        "rehearsal skipped"
    )
    assert result.error is None
    assert result.failed_statement is None
    assert result.summary() == (
        "rehearsal skipped: the server refused CREATE DATABASE "
        "(permission denied to create database)"
    )
    assert "s3cret" not in result.model_dump_json()
    assert scene.scratch_databases() == []


def test_scratch_database_is_dropped_when_the_rehearsal_raises(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error after the scratch database exists propagates, and the copy is gone."""
    seen: list[str] = []

    def broken_restore(*_args: object, **_kwargs: object) -> None:
        seen.extend(scene.scratch_databases())
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(rehearsal_module, "restore_scratch", broken_restore)
    with pytest.raises(RuntimeError, match="disk on fire"):
        scene.rehearse(seed_runbook())
    assert len(seen) == 1
    assert scene.scratch_databases() == []


def test_a_scratch_database_that_cannot_be_dropped_is_reported_not_raised(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed DROP DATABASE lands in the result and its summary; the rehearsal still passed."""

    def drop_then_complain(server: TargetDatabase, name: str) -> str:
        assert drop_scratch(server, name) is None
        return f"the scratch database {name} could not be dropped (simulated); drop it by hand"

    monkeypatch.setattr(rehearsal_module, "drop_scratch", drop_then_complain)
    result = scene.rehearse(seed_runbook())
    assert result.ok
    assert result.cleanup_error is not None
    assert result.cleanup_error.startswith(f"the scratch database {scene.prefix}_")
    assert result.summary().endswith("could not be dropped (simulated); drop it by hand")


HOLD_A_LEASE = """
import sys, time
from bot.target.database import TargetDatabase
from bot.target.scratch import create_role, create_scratch, scratch_lease
server = TargetDatabase.at(sys.argv[1])
with scratch_lease(server, sys.argv[2]) as name:
    create_role(server, name, "held")
    create_scratch(server, name, owner=name)
    print(name, flush=True)
    time.sleep(60)
"""


def hold_a_scratch_copy(scene: Scene) -> tuple[subprocess.Popen[str], str]:
    """A process that made a scratch copy and its role under a lease, and holds them."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_LEASE, scene.server, scene.prefix],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert holder.stdout is not None
    return holder, holder.stdout.readline().strip()


def test_a_killed_holders_scratch_copy_is_swept_and_a_live_ones_kept(scene: Scene) -> None:
    """A killed holder's copy and role are dropped by the next rehearsal; a live one's are kept.

    The sweep tells them apart by the lease's session alone, so the live holder here runs in
    another process, as another rollbot would.
    """
    killed, left = hold_a_scratch_copy(scene)
    alive, held = hold_a_scratch_copy(scene)
    try:
        killed.kill()
        killed.wait()
        assert sorted(scene.scratch_databases()) == sorted([left, held])
        result = scene.rehearse(seed_runbook())
        assert result.ok, result.summary()
        assert scene.scratch_databases() == [held]
        with psycopg.connect(scene.server) as conn:
            roles = conn.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (scene.prefix,)
            ).fetchall()
        assert [r[0] for r in roles] == [held]
    finally:
        alive.kill()
        alive.wait()
    assert sweep_scratch(TargetDatabase.at(scene.server), scene.prefix) == [held]
    assert scene.scratch_databases() == []


LYING_FUNCTION = """
CREATE FUNCTION public.is_stale(pid int) RETURNS boolean STABLE LANGUAGE sql
AS $$ SELECT pg_terminate_backend(pid) $$
"""

KILLS_A_SESSION = """---
journal: false
---
# Delete stale sessions through a function that lies about its volatility

**Migration File**: `0024_stale_sessions.sql`

## Quick Rollback

```sql
DELETE FROM sessions WHERE public.is_stale({pid});
```
"""


def rehearsal_roles(server: str, prefix: str) -> list[str]:
    with psycopg.connect(server) as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall()
    return [r[0] for r in rows]


def test_the_rehearsal_runs_as_a_throwaway_role_that_cannot_reach_past_the_copy(
    scene: Scene,
) -> None:
    """A STABLE function that really kills sessions: rehearsed, it cannot touch a live one.

    The plan blocks a user-defined function whatever its label; should that check miss one,
    the rehearsal's role still stands between it and the application: the copy's owner, with
    no attribute or membership, may not signal another role's session. The role is gone
    afterwards, like the copy.
    """
    with psycopg.connect(scene.target, autocommit=True) as conn:
        conn.execute(LYING_FUNCTION)
    with psycopg.connect(scene.target, application_name="asset-forge-api", autocommit=True) as app:
        pid = app.info.backend_pid
        runbook = parse_runbook(KILLS_A_SESSION.format(pid=pid), file="0024_stale_sessions.md")
        result = scene.rehearse(runbook, data="all", miss_user_code=True)
        assert app.execute("SELECT 1").fetchone() == (1,)  # still alive
    assert not result.ok
    assert result.failed_line == 11
    assert "to terminate" in (result.error or ""), result.error  # refused, not done
    assert result.ran_as == result.scratch
    assert result.privilege_note is None
    assert result.summary().endswith("; ran as a throwaway role owning only the copy")
    assert rehearsal_roles(scene.server, scene.prefix) == []
    assert scene.scratch_databases() == []


ESCAPING_CHECK = """
CREATE FUNCTION public.lets_in(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF starts_with(current_database(), '{prefix}') THEN  -- on the scratch copy only
        RESET ROLE;  -- back to the session's own user, whoever SET ROLE made it
        EXECUTE format('CREATE ROLE %I SUPERUSER', '{escaped}');
    END IF;
    RETURN true;
END $$;
CREATE TABLE public.vaults (v int CHECK (public.lets_in(v)));
INSERT INTO public.vaults VALUES (1), (2);
"""
TOUCHES_VAULTS = """# Touches the vaults

**Migration File**: `0024_vaults.sql`

## Quick Rollback

```sql
BEGIN;
DELETE FROM vaults WHERE v < 0;
COMMIT;
```
"""


def test_code_in_the_copy_cannot_go_back_to_rollbots_role(scene: Scene) -> None:
    """A CHECK's function runs RESET ROLE as its rows are restored: it stays the throwaway role.

    The copy's sessions log in as that role, so RESET ROLE returns to it and the function's
    CREATE ROLE is refused; the failed restore is not retried as rollbot's own role (a
    superuser here), which would have let it through.
    """
    escaped = f"{scene.prefix}_escaped"
    with psycopg.connect(scene.target, autocommit=True) as conn:
        conn.execute(ESCAPING_CHECK.format(escaped=escaped, prefix=scene.prefix))
    runbook = parse_runbook(TOUCHES_VAULTS, file="0024_vaults.md")
    result = scene.rehearse(runbook, data="affected")
    assert result.skipped is not None
    assert 'COPY failed for table "vaults"' in result.skipped  # refused as it arrived
    assert "rollbot does not retry as its own role" in result.skipped
    with psycopg.connect(scene.server) as conn:
        found = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (escaped,))
        assert found.fetchone() == (0,)
    assert rehearsal_roles(scene.server, scene.prefix) == []
    assert scene.scratch_databases() == []


def test_a_role_without_createrole_rehearses_as_itself_and_says_so(
    scene: Scene, role_with_createdb_only: str
) -> None:
    """No CREATEROLE: the rehearsal still runs, as rollbot's own role, and the summary says so."""
    result = scene.rehearse(seed_runbook(), server=role_with_createdb_only)
    assert result.ok, result.summary()
    user = conninfo_to_dict(role_with_createdb_only)["user"]
    assert result.ran_as == user
    assert result.summary().endswith(
        f"ran as rollbot's own role {user}: rollbot's role may not create roles "
        "(grant it CREATEROLE to rehearse as one)"
    )
    assert scene.scratch_databases() == []


@pytest.fixture
def role_with_createdb_only(pg_server: str) -> Iterator[str]:
    """Conninfo of the test server as a LOGIN CREATEDB role without CREATEROLE."""
    role = f"rollbot_createdb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(role)))
    params = {k: str(v) for k, v in conninfo_to_dict(pg_server).items() if v is not None}
    params["user"] = role
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
