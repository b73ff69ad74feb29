"""`rollbot doctor` against a real server: every gap named with its fix, and nothing changed."""

import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.db.test_cli import SECRET, env_for, rollbot
from tests.fix_db import Role
from tests.fix_rollbot import schema_of


def _has_state_schema(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regnamespace('rollbot') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _checks(stdout: str) -> list[dict[str, str]]:
    report = json.loads(stdout)
    assert isinstance(report["checks"], list)
    return report["checks"]


def test_a_bare_role_is_told_every_grant_and_once_granted_all_is_ok(
    db_0023: str, make_role: Callable[[], Role], tmp_path: Path
) -> None:
    """No privileges: errors with the GRANT or ALTER ROLE for each, exit 1; granted: all ok."""
    role = make_role()
    env = env_for(db_0023, tmp_path) | {"DATABASE_URL": role.conninfo(db_0023, SECRET)}

    bare = rollbot("doctor", env=env)
    assert bare.returncode == 1, bare.stderr
    assert SECRET not in bare.stdout + bare.stderr
    errors = [line for line in bare.stdout.splitlines() if line.startswith("error")]
    text = "\n".join(errors)
    assert f"`ALTER ROLE {role.name} CREATEDB;`" in text
    assert f"`GRANT pg_read_all_data TO {role.name};`" in text
    assert "table public.api_errors: role" in text
    assert "does not own it (owner " in text
    assert f"GRANT USAGE ON SCHEMA drizzle TO {role.name};" in text  # the journal
    assert "`GRANT CREATE ON DATABASE " in text  # the state schema, on first use
    assert not any(line.startswith("ok      target default: table") for line in errors)

    # The tables' owner is the test server's superuser: never advised as a role to join.
    assert "for the application's own role" in text
    assert f"then `GRANT app_owner TO {role.name};`" in text
    # The fixes as an administrator applies them (ownership rather than a superuser's role).
    role.run(
        db_0023,
        "ALTER ROLE {role} CREATEDB CREATEROLE",
        f"GRANT CREATE ON DATABASE {conninfo_to_dict(db_0023)['dbname']} TO {{role}}",
        "GRANT USAGE ON SCHEMA drizzle TO {role}",
        "DO $$ DECLARE t record; BEGIN FOR t IN SELECT format('%I.%I', schemaname, tablename)"
        " AS name FROM pg_tables WHERE schemaname IN ('public', 'drizzle') LOOP"
        " EXECUTE format('ALTER TABLE %s OWNER TO {role}', t.name); END LOOP; END $$",
    )
    assert not _has_state_schema(db_0023)
    before = schema_of(db_0023)
    fixed = rollbot("doctor", "--json", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    checks = _checks(fixed.stdout)
    assert [c for c in checks if c["level"] != "ok"] == []
    names = {c["name"] for c in checks}
    assert {"reachable", "pg_dump", "scratch databases", "advisory lock", "backup reads"} <= names
    assert "table public.api_errors" in names
    assert "migrations folder" in names

    assert schema_of(db_0023) == before
    assert not _has_state_schema(db_0023)
    assert not (tmp_path / "backups").exists()


def test_unreachable_databases_are_named_by_cause_at_once(pg_server: str, tmp_path: Path) -> None:
    """A closed port and an unknown database: each cause in a line, in seconds, nothing else."""
    server = conninfo_to_dict(pg_server)
    where = f"{server.get('host') or '127.0.0.1'}:{server.get('port') or 5432}"
    missing = f"postgresql://{server.get('user') or 'postgres'}:{SECRET}@{where}/no_such_db_doctor"
    env = env_for(pg_server, tmp_path) | {
        "DATABASE_URL": f"postgresql://rollbot:{SECRET}@127.0.0.1:1/app",
        "ROLLBOT_TARGETS": f"gone={missing}",
        "ROLLBOT_STATE_URL": missing,
        "ROLLBOT_CONNECT_TIMEOUT": "5s",
    }
    started = time.monotonic()
    done = rollbot("doctor", env=env)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert took < 10, took
    assert SECRET not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    (closed,) = [line for line in lines if line.startswith("error   target default:")]
    assert "reachable" in closed
    assert "port 1 (connection refused)" in closed
    (gone,) = [line for line in lines if line.startswith("error   target gone:")]
    assert 'no database "no_such_db_doctor"' in gone
    (state,) = [line for line in lines if "state database" in line]
    assert state.startswith("error")
    assert "no_such_db_doctor" in state
