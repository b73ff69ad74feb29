"""Code a database user wrote never runs on rollbot's behalf, however PostgreSQL would reach it.

Each test plants a function that deletes another table, writes an audit row, advances a
sequence and ends an application session, then hides it where a runbook's plain-looking SQL
makes PostgreSQL run it: a view, an operator, a cast, a lying STABLE or IMMUTABLE wrapper, a
default that ON DELETE SET DEFAULT writes, a CHECK or domain constraint, an index expression, a
generated column, a row-level security policy, a foreign table. Every plan must end BLOCKED,
naming the object and the function, before anything ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bot.core.states import RunState
from tests.db.test_cascade import runbook_text, service_for
from tests.fix_db import unique_name
from tests.fix_rollbot import REQUESTER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bot.service.rollback import Rollbot

VICTIM_APP = "victim-app"
BASE = """
CREATE TABLE victims (id int PRIMARY KEY);
INSERT INTO victims SELECT generate_series(1, 100);
CREATE TABLE audit (at timestamptz DEFAULT now());
CREATE SEQUENCE evil_seq;
CREATE TABLE parents (id int PRIMARY KEY);
INSERT INTO parents SELECT generate_series(1, 10);
CREATE TABLE feature_flags (id int PRIMARY KEY, name text);
INSERT INTO feature_flags SELECT g, 'flag ' || g FROM generate_series(1, 10) g;
-- harmless while the fixture builds its objects and rows; made evil once they exist
CREATE FUNCTION evil() RETURNS boolean VOLATILE LANGUAGE plpgsql AS $$ BEGIN RETURN true; END $$;
CREATE FUNCTION chk(int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS
    $$ BEGIN RETURN evil(); END $$;
CREATE FUNCTION key_of(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
    $$ BEGIN PERFORM evil(); RETURN $1; END $$;
"""
EVIL = f"""
CREATE OR REPLACE FUNCTION evil() RETURNS boolean VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM victims;
    INSERT INTO audit DEFAULT VALUES;
    PERFORM nextval('evil_seq');
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = '{VICTIM_APP}';
    RETURN true;
END $$;
"""

CASES = {
    "view": (
        "CREATE VIEW flags_to_remove AS SELECT id FROM feature_flags WHERE id > 5 AND evil();",
        "DELETE FROM feature_flags WHERE id IN (SELECT id FROM flags_to_remove);",
        ["public.flags_to_remove is a view", "public.evil()"],
    ),
    "operator": (
        (
            "CREATE FUNCTION evil_eq(int, int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS"
            " $$ BEGIN RETURN evil() AND $1 = $2; END $$;"
            " CREATE OPERATOR === (FUNCTION = evil_eq, LEFTARG = int, RIGHTARG = int);"
        ),
        "DELETE FROM feature_flags WHERE id === 9;",
        [
            "`===` may resolve to operator public.===(integer, integer)",
            "public.evil_eq(integer, integer) is user-defined code",
            "IMMUTABLE label is its author's claim",
        ],
    ),
    "set default": (
        (
            "CREATE FUNCTION evil_default() RETURNS int VOLATILE LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM evil(); RETURN nextval('evil_seq'); END $$;"
            " CREATE TABLE children (id int PRIMARY KEY,"
            "   parent_id int DEFAULT evil_default() REFERENCES parents ON DELETE SET DEFAULT);"
            " INSERT INTO children SELECT g, g FROM generate_series(1, 10) g;"
        ),
        "DELETE FROM parents WHERE id = 1;",
        [
            "the default of public.children.parent_id (reached by",
            "(reached by ON DELETE SET DEFAULT from public.parents (children_parent_id_fkey))",
            "public.evil_default() is user-defined code",
        ],
    ),
    "built-in nextval default": (
        (
            "CREATE TABLE children (id int PRIMARY KEY,"
            "   parent_id int DEFAULT nextval('evil_seq')"
            "   REFERENCES parents ON DELETE SET DEFAULT);"
            " INSERT INTO children SELECT g, g FROM generate_series(1, 10) g;"
        ),
        "DELETE FROM parents WHERE id = 1;",
        [
            "the default of public.children.parent_id",
            "pg_catalog.nextval(regclass) is never allowed: sequence changes are not undone",
        ],
    ),
    "stable liar": (
        (
            "CREATE FUNCTION safe_pick() RETURNS int STABLE LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM evil(); RETURN 3; END $$;"
        ),
        "DELETE FROM feature_flags WHERE id = safe_pick();",
        [
            (
                "0031_test_users.md:11: public.safe_pick() is user-defined code: rollbot cannot"
                " know what it does (its STABLE label is its author's claim); compute the rows"
                " another way or run it by hand"
            )
        ],
    ),
    "check constraint": (
        (
            "CREATE TABLE notes (id int PRIMARY KEY, parent_id int REFERENCES parents"
            "   ON DELETE SET NULL);"
            " INSERT INTO notes SELECT g, g FROM generate_series(1, 10) g;"
            " ALTER TABLE notes ADD CONSTRAINT notes_chk CHECK (chk(id));"
        ),
        "DELETE FROM parents WHERE id = 1;",
        [
            "CHECK constraint notes_chk on public.notes (reached by ON DELETE SET NULL",
            "public.chk(integer) is user-defined code",
        ],
    ),
    "index expression": (
        (
            "CREATE TABLE tagged (id int PRIMARY KEY, parent_id int REFERENCES parents"
            "   ON DELETE SET NULL);"
            " INSERT INTO tagged SELECT g, g FROM generate_series(1, 10) g;"
            " CREATE INDEX tagged_key ON tagged (key_of(parent_id));"
        ),
        "DELETE FROM parents WHERE id = 1;",
        ["index public.tagged_key on public.tagged", "public.key_of(integer)"],
    ),
    "generated column": (
        (
            "CREATE TABLE gen (id int PRIMARY KEY, parent_id int REFERENCES parents"
            "   ON DELETE SET NULL, g int GENERATED ALWAYS AS (key_of(id)) STORED);"
            " INSERT INTO gen (id, parent_id) SELECT g, g FROM generate_series(1, 10) g;"
        ),
        "DELETE FROM parents WHERE id = 1;",
        ["generated column public.gen.g", "public.key_of(integer)"],
    ),
    "domain": (
        (
            "CREATE DOMAIN parent_ref AS int CHECK (chk(VALUE));"
            " CREATE TABLE dom_child (id int PRIMARY KEY, parent_id parent_ref REFERENCES parents"
            "   ON DELETE SET NULL);"
            " INSERT INTO dom_child SELECT g, g FROM generate_series(1, 10) g;"
        ),
        "DELETE FROM parents WHERE id = 1;",
        [
            "domain constraint parent_ref_check of parent_ref on column public.dom_child.parent_id",
            "public.chk(integer)",
        ],
    ),
    "foreign table": (
        (
            "CREATE FOREIGN DATA WRAPPER dummy_fdw;"
            " CREATE SERVER dummy FOREIGN DATA WRAPPER dummy_fdw;"
            " CREATE FOREIGN TABLE remote_flags (id int) SERVER dummy;"
        ),
        "DELETE FROM feature_flags WHERE id IN (SELECT id FROM remote_flags);",
        ["public.remote_flags is a foreign table", "foreign-data wrapper's code"],
    ),
    "user cast": (
        (
            "CREATE TYPE mood AS ENUM ('calm', 'angry');"
            " CREATE FUNCTION mood_of(int) RETURNS mood IMMUTABLE LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM evil(); RETURN 'calm'; END $$;"
            " CREATE CAST (int AS mood) WITH FUNCTION mood_of(int);"
        ),
        "DELETE FROM feature_flags WHERE id::mood = 'calm';",
        ["the cast to mood may run the cast (integer AS mood)", "public.mood_of(integer)"],
    ),
}


@pytest.fixture
def victim(scratch_db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A live application session that the planted code would end."""
    with psycopg.connect(scratch_db, application_name=VICTIM_APP, autocommit=True) as conn:
        yield conn


def _plant(conninfo: str, setup: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(BASE.encode())
        conn.execute(setup.encode())
        conn.execute(EVIL.encode())


def _untouched(conninfo: str, victim: psycopg.Connection[tuple[object, ...]]) -> None:
    """The planted code never ran: no row gone, no audit row, no sequence step, no session ended."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM victims), (SELECT count(*) FROM audit),"
            " (SELECT is_called FROM evil_seq), (SELECT count(*) FROM parents),"
            " (SELECT count(*) FROM feature_flags)"
        ).fetchone()
    assert row == (100, 0, False, 10, 10)
    assert victim.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("case", list(CASES))
def test_user_code_anywhere_postgresql_would_run_it_blocks_the_plan_before_anything_runs(
    case: str,
    scratch_db: str,
    victim: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
    make_service: Callable[..., Rollbot],
) -> None:
    """Planning (counts included) runs none of it; the plan is blocked naming object and code."""
    setup, sql, expected = CASES[case]
    _plant(scratch_db, setup)
    service = service_for(make_service, scratch_db, tmp_path, runbook_text(sql))
    run = service.request("0031", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    reason = run.reason or ""
    for text in expected:
        assert text in reason, reason
    _untouched(scratch_db, victim)


def test_a_forced_row_level_security_policy_blocks_the_plan(
    scratch_db: str,
    victim: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
    make_service: Callable[..., Rollbot],
) -> None:
    """FORCE ROW LEVEL SECURITY applies the policy to its owner: the DELETE would run chk()."""
    role = unique_name("rollbot_owner")
    _plant(scratch_db, "")
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN".encode())
        dbname = conn.info.dbname
        conn.execute(
            f"""
            GRANT CREATE ON DATABASE {dbname} TO {role};
            GRANT ALL ON victims, audit, evil_seq, parents TO {role};
            CREATE TABLE secrets (id int PRIMARY KEY, body text);
            INSERT INTO secrets SELECT g, 's' || g FROM generate_series(1, 10) g;
            ALTER TABLE secrets OWNER TO {role};
            ALTER TABLE secrets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
            CREATE POLICY secrets_visible ON secrets USING (chk(id));
            """.encode()
        )
    try:
        as_owner = make_conninfo(scratch_db, user=role)
        service = service_for(
            make_service, as_owner, tmp_path, runbook_text("DELETE FROM secrets WHERE id < 3;")
        )
        run = service.request("0031", requested_by=REQUESTER)
        assert run.state is RunState.BLOCKED
        reason = run.reason or ""
        assert "row-level security policy secrets_visible on public.secrets" in reason, reason
        assert "public.chk(integer) is user-defined code" in reason
        service.store.close()
        with psycopg.connect(scratch_db) as conn:
            assert conn.execute("SELECT count(*) FROM secrets").fetchone() == (10,)
        _untouched(scratch_db, victim)
    finally:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}".encode())


def test_plain_tables_built_in_code_and_a_materialized_view_plan_as_before(
    scratch_db: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """Subqueries on tables and a matview, built-in functions, casts and operators still plan."""
    _plant(scratch_db, "CREATE MATERIALIZED VIEW old_flags AS SELECT id FROM feature_flags;")
    sql = (
        "DELETE FROM feature_flags f USING parents p WHERE f.id = p.id"
        " AND f.id IN (SELECT id FROM old_flags WHERE id BETWEEN 2 AND 4 ORDER BY id)"
        " AND lower(f.name) LIKE 'flag%' AND f.id::text <> '' AND now() > now() - interval '1 day'"
        " AND f.id IN (SELECT id FROM victims WHERE id < 5);"
    )
    service = service_for(make_service, scratch_db, tmp_path, runbook_text(sql))
    run = service.request("0031", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
