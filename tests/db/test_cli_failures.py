"""A missing privilege or a bad connection detail: one clear sentence, exit 2, nothing changed."""

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.db.test_cli import SECRET, env_for, rollbot, with_password
from tests.fix_db import Role
from tests.fix_rollbot import REQUESTER, schema_of

# The runbook of 0023 drops this table, so planning counts its rows.
TABLE = "api_errors"


def _refused(done: str) -> None:
    assert "Traceback" not in done
    assert SECRET not in done
    assert "unexpected error" not in done.lower()


def _no_runs(db: str, tmp_path: Path) -> None:
    assert json.loads(rollbot("runs", "--json", env=env_for(db, tmp_path)).stdout) == []


def test_a_target_role_without_select_on_a_runbook_table_is_told_the_grant(
    db_0023: str, make_role: Callable[[], Role], tmp_path: Path
) -> None:
    """No SELECT on a table the plan counts: the target, the table and the GRANT; no run."""
    role = make_role()
    role.run(
        db_0023,
        "GRANT USAGE ON SCHEMA public, drizzle TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public, drizzle TO {role}",
        f"REVOKE SELECT ON public.{TABLE} FROM {{role}}",
    )
    before = schema_of(db_0023)
    env = env_for(db_0023, tmp_path) | {
        "DATABASE_URL": role.conninfo(db_0023, SECRET),
        "ROLLBOT_STATE_URL": with_password(db_0023),
    }
    done = rollbot("plan", "0023", "--requested-by", REQUESTER, env=env)
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert f"Target default: role {role.name} lacks SELECT on table public.{TABLE}" in done.stderr
    assert f"GRANT SELECT ON public.{TABLE} TO {role.name};" in done.stderr
    assert "permission denied for table" in done.stderr
    assert schema_of(db_0023) == before
    _no_runs(db_0023, tmp_path)


def test_a_state_role_without_rights_on_schema_rollbot_is_told_the_grant(
    db_0023: str, make_role: Callable[[], Role], tmp_path: Path
) -> None:
    """A schema rollbot did not make, not granted: the schema and the GRANT."""
    _make_the_schema(env_for(db_0023, tmp_path))
    role = make_role()
    env = env_for(db_0023, tmp_path) | {"ROLLBOT_STATE_URL": role.conninfo(db_0023, SECRET)}
    done = rollbot("runs", env=env)
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert "The state database (ROLLBOT_STATE_URL)" in done.stderr
    assert f"GRANT USAGE, CREATE ON SCHEMA rollbot TO {role.name};" in done.stderr

    role.run(db_0023, "GRANT USAGE ON SCHEMA rollbot TO {role}")
    done = rollbot("runs", env=env)
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON rollbot." in done.stderr
    _no_runs(db_0023, tmp_path)


def test_a_state_role_that_may_not_create_rollbots_schema_is_told_how(
    scratch_db: str, make_role: Callable[[], Role], tmp_path: Path
) -> None:
    """No schema yet and no CREATE on the database: the GRANT, or the schema to make for it."""
    role = make_role()
    env = env_for(scratch_db, tmp_path) | {"DATABASE_URL": role.conninfo(scratch_db, SECRET)}
    done = rollbot("cancel", "1", "--as", REQUESTER, env=env)  # a command that writes
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert "lacks CREATE on database" in done.stderr
    assert f"CREATE SCHEMA rollbot AUTHORIZATION {role.name};" in done.stderr

    role.run(scratch_db, "CREATE SCHEMA rollbot AUTHORIZATION {role}")
    done = rollbot("runs", "--json", env=env)
    assert done.returncode == 0, done.stderr  # a schema made for rollbot needs no CREATE
    assert json.loads(done.stdout) == []


def test_the_state_session_killed_mid_command_is_one_sentence_and_changes_nothing(
    db_0023: str, tmp_path: Path
) -> None:
    """pg_terminate_backend on the store's session as it writes the run: exit 2, no run."""
    env = env_for(db_0023, tmp_path)
    _make_the_schema(env)
    before = schema_of(db_0023)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION rollbot.die() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;"
            " CREATE TRIGGER die BEFORE INSERT ON rollbot.runs"
            " FOR EACH ROW EXECUTE FUNCTION rollbot.die()"
        )
    done = rollbot("plan", "0023", "--requested-by", REQUESTER, env=env)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute("DROP TRIGGER die ON rollbot.runs; DROP FUNCTION rollbot.die()")
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert "The connection to the state database (DATABASE_URL) was lost" in done.stderr
    assert "terminated" in done.stderr
    assert schema_of(db_0023) == before
    _no_runs(db_0023, tmp_path)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://rollbot:{secret}@127.0.0.1:99999/app", 'its port "99999" is not a port'),
        ("postgresql://rollbot:{secret}@127.0.0.1:5x432/app", 'its port "5x432" is not a port'),
        (
            "postgresql://rollbot:{secret}%zz@127.0.0.1/app",
            "the password in its URL has an invalid percent-encoding",
        ),
        ("postgresql://rollbot:{secret}@127.0.0.1:1/app", "port 1 (connection refused)"),
        ("postgresql://rollbot:{secret}@no-such-host.invalid/app", "cannot be resolved (DNS)"),
        ("postgresql://postgres:{secret}@127.0.0.1/no_such_db_x", 'no database "no_such_db_x"'),
        ("postgresql://no_such_role_x:{secret}@127.0.0.1/postgres", 'no role "no_such_role_x"'),
    ],
)
@pytest.mark.parametrize("which", ["target", "state"])
def test_a_bad_connection_detail_is_named_at_once(
    url: str, said: str, which: str, db_0023: str, tmp_path: Path
) -> None:
    """Bad port, bad percent-encoding, refused, DNS, no database, no role: the cause, no secret."""
    bad = url.format(secret=SECRET)
    env = env_for(db_0023, tmp_path) | {"ROLLBOT_CONNECT_TIMEOUT": "3s"}
    if which == "target":
        env |= {"DATABASE_URL": bad, "ROLLBOT_STATE_URL": with_password(db_0023)}
        done = rollbot("plan", "0023", "--requested-by", REQUESTER, env=env)
        assert "Target default cannot be reached" in done.stderr
    else:
        env |= {"ROLLBOT_STATE_URL": bad}
        done = rollbot("runs", env=env)
        assert "The state database (ROLLBOT_STATE_URL) cannot be reached" in done.stderr
    assert done.returncode == 2, done.stderr
    _refused(done.stderr)
    assert said.lower() in done.stderr.lower()
    assert "%zz" not in done.stderr


def _make_the_schema(env: dict[str, str]) -> None:
    """A command that writes creates rollbot's schema (the looking ones never do)."""
    done = rollbot("cancel", "1", "--as", REQUESTER, env=env)
    assert "There is no run 1" in done.stderr, done.stderr
