"""The chain as the reference: a rollback that changes the journal must land exactly on N-1."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.core.errors import NotAllowedError
from bot.core.states import RunState
from bot.core.text import plan_text
from bot.drizzle.folder import read_migrations
from bot.target.database import TargetDatabase
from bot.target.migrator import migrate
from bot.target.reference import build
from tests.db.test_rehearsal import role_without_createdb  # noqa: F401 - a fixture
from tests.db.test_rollback import journal_of
from tests.fix_drizzle import CHAIN_DIR
from tests.fix_rollbot import REQUESTER, RUNBOOKS, schema_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bot.service.rollback import Rollbot

SEED = (RUNBOOKS / "0023_loud_shen.md").read_text()
FORGETS_VARIANT_STATISTICS = SEED.replace("DROP TABLE IF EXISTS variant_statistics;\n", "")
LABELS_ONLY = """# Rollback 0008

## Quick Rollback

```sql
DROP TABLE labels;
```
"""
LABELS_AND_COMMENTS = """# Rollback 0008

## Quick Rollback

```sql
DROP TABLE labels;
DROP TABLE comments;
```
"""


def _runbooks(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "runbooks"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


def _scratch_databases(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'rollbot\\_reference\\_%'"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_the_seed_rollback_is_proved_equal_to_0022_and_the_reference_is_reused(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """The seed's runbook leaves 0022's schema; a second plan reuses the replay, none is left."""
    service = make_service(db_0023, rehearsal="schema")
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    assert run.rehearsal.proof is not None
    assert run.rehearsal.proof.holds
    assert "proved equal to 0022" in plan_text(run)
    assert service.planner.references.builds == 1
    service.cancel(run.id, REQUESTER)
    again = service.request("0023", requested_by=REQUESTER)
    assert again.state is RunState.AWAITING_APPROVAL, again.reason
    assert "proved equal to 0022" in plan_text(again)
    assert service.planner.references.builds == 1
    # Other tests replay references on the same server meanwhile and drop theirs when done: a
    # leftover is one that stays, so wait for the transient ones to go (a leak never does).
    deadline = time.monotonic() + 60
    while (left := _scratch_databases(db_0023)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []


def test_a_runbook_that_forgets_a_table_is_blocked_before_approval(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """Without `DROP TABLE variant_statistics` it is blocked with the diff; nothing changes."""
    runbooks = _runbooks(tmp_path, "0023_loud_shen.md", FORGETS_VARIANT_STATISTICS)
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="schema")
    schema, journal = schema_of(db_0023), journal_of(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert run.reason is not None
    assert "left behind: table variant_statistics" in run.reason
    assert "left behind: table variant_statistics" in plan_text(run)
    assert schema_of(db_0023) == schema
    assert journal_of(db_0023) == journal


def test_a_runbook_that_drops_a_table_older_than_n_is_blocked(
    drizzle_db: Callable[[str | None], str], make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """0008's `IF NOT EXISTS` made no `comments`: dropping it goes past 0007 and is blocked."""
    database = drizzle_db("0008")
    runbooks = _runbooks(tmp_path, "0008_lush_labels.md", LABELS_AND_COMMENTS)
    service = make_service(
        database, runbooks_dir=runbooks, migrations_dir=CHAIN_DIR, rehearsal="schema"
    )
    run = service.request("0008", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert run.reason is not None
    assert "missing: table comments" in run.reason
    assert "missing: index comments_task_created_idx" not in run.reason  # said by its table


def test_a_hand_written_rollback_of_if_not_exists_is_proved(
    drizzle_db: Callable[[str | None], str], make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """Dropping only what 0008 really created is proved equal to 0007."""
    database = drizzle_db("0008")
    runbooks = _runbooks(tmp_path, "0008_lush_labels.md", LABELS_ONLY)
    service = make_service(
        database, runbooks_dir=runbooks, migrations_dir=CHAIN_DIR, rehearsal="schema"
    )
    run = service.request("0008", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert "proved equal to 0007" in plan_text(run)


def test_the_latest_only_refusal_comes_before_derivation(
    drizzle_db: Callable[[str | None], str], make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """Asking for the irreversible 0004 while 0005 is applied says: roll back 0005 first."""
    empty = tmp_path / "no-runbooks"
    empty.mkdir()
    service = make_service(drizzle_db("0005"), runbooks_dir=empty, migrations_dir=CHAIN_DIR)
    with pytest.raises(NotAllowedError) as caught:
        service.request("0004", requested_by=REQUESTER)
    assert "0005 is applied after 0004: roll back 0005 first" in caught.value.render()
    assert service.store.recent() == []


def test_a_journal_false_runbook_is_not_held_to_n_minus_1(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """A runbook that leaves the journal alone is not compared with 0022, and is approvable."""
    text = "---\njournal: false\n---\n" + FORGETS_VARIANT_STATISTICS
    runbooks = _runbooks(tmp_path, "0023_loud_shen.md", text)
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="schema")
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    assert run.rehearsal.proof is None
    assert service.planner.references.builds == 0


def test_a_refused_create_database_is_said_loudly_and_left_approvable(
    db_0023: str,
    make_service: Callable[..., Rollbot],
    role_without_createdb: str,  # noqa: F811 - the fixture imported above
) -> None:
    """Without CREATEDB on the rehearsal server, the plan says it is NOT proved, and why."""
    service = make_service(db_0023, rehearsal="schema", rehearsal_url=role_without_createdb)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert (
        "NOT proved equal to 0022: the server refused CREATE DATABASE "
        "(permission denied to create database)"
    ) in plan_text(run)


def _folder(tmp_path: Path, migrations: dict[str, str]) -> Path:
    """A drizzle-kit folder of `tag: sql` migrations with its journal."""
    folder = tmp_path / "drizzle"
    (folder / "meta").mkdir(parents=True)
    entries = []
    for idx, (tag, text) in enumerate(migrations.items()):
        (folder / f"{tag}.sql").write_text(text)
        entries.append({"idx": idx, "version": "7", "when": 1700000000000 + idx, "tag": tag})
    journal = {"version": "7", "dialect": "postgresql", "entries": entries}
    (folder / "meta" / "_journal.json").write_text(json.dumps(journal))
    return folder


def test_a_name_that_resolves_elsewhere_here_is_blocked_not_proved(
    scratch_db: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """The database's search_path finds another `users` first: the copy must find it too.

    Drizzle made public.users and its column `name`; a schema `app` that no migration made
    holds its own `users` first on the path. The derived `DROP COLUMN name` would reach
    app.users, lose its values and leave public.users as it is under a journal saying 0000.
    The rehearsal runs under the target's path, so the copy shows it, and the plan blocks.
    """
    folder = _folder(
        tmp_path,
        {
            "0000_users": 'CREATE TABLE "users" ("id" integer PRIMARY KEY);',
            "0001_name": 'ALTER TABLE "users" ADD COLUMN "name" text;',
        },
    )
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        migrate(conn, read_migrations(folder))
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.users (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO app.users VALUES (1, 'precious')")
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET search_path = app, public')
    empty = tmp_path / "runbooks"
    empty.mkdir()
    service = make_service(
        scratch_db, runbooks_dir=empty, migrations_dir=folder, rehearsal="schema"
    )
    schema, journal = schema_of(scratch_db), journal_of(scratch_db)
    run = service.request("0001", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert run.reason is not None
    assert "removed outside the chain: column app.users.name" in run.reason
    assert "left behind: column users.name" in run.reason
    assert "SET LOCAL search_path TO app, public" in run.rollback_plan().sql
    assert schema_of(scratch_db) == schema
    assert journal_of(scratch_db) == journal


def test_a_migration_replayed_for_n_minus_1_cannot_go_back_to_rollbots_role(
    scratch_db: str, tmp_path: Path
) -> None:
    """The replay's session is the throwaway role's own: RESET ROLE in a migration stays it.

    The first migration checks who it runs as; the second tries, on the scratch copy only,
    to become rollbot's role again (a superuser here) and create a role: refused, so the
    replay fails and says why, and no such role exists.
    """
    prefix = f"rollbot_rp_{uuid.uuid4().hex[:8]}"
    escaped = f"{prefix}_escaped"
    on_copy = f"starts_with(current_database(), '{prefix}')"
    folder = _folder(
        tmp_path,
        {
            "0000_who": (
                f"DO $$ BEGIN IF {on_copy} AND session_user::text <> current_database() THEN "
                "RAISE EXCEPTION 'replayed as %', session_user; END IF; END $$;"
            ),
            "0001_escape": (
                f"DO $$ BEGIN IF {on_copy} THEN RESET ROLE; "
                f"EXECUTE 'CREATE ROLE {escaped} SUPERUSER'; END IF; END $$;"
            ),
        },
    )
    built, skipped = build(
        TargetDatabase.at(scratch_db), read_migrations(folder), exclude=(), name_prefix=prefix
    )
    assert built is None
    assert skipped is not None
    assert "must be superuser to create superusers" in skipped
    with psycopg.connect(scratch_db) as conn:
        found = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (escaped,))
        assert found.fetchone() == (0,)
        left = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        )
        assert left.fetchone() == (0,)


def test_a_migration_that_sleeps_on_the_copy_is_stopped(scratch_db: str, tmp_path: Path) -> None:
    """The replay has a deadline its SQL cannot lift: past it, it is cancelled and says so."""
    prefix = f"rollbot_rp_{uuid.uuid4().hex[:8]}"
    sleeps = (
        f"DO $$ BEGIN IF starts_with(current_database(), '{prefix}') THEN "
        "SET statement_timeout = 0; PERFORM pg_sleep(60); END IF; END $$;"
    )
    folder = _folder(tmp_path, {"0000_sleeps": sleeps, "0001_next": "SELECT 1;"})
    built, skipped = build(
        TargetDatabase.at(scratch_db),
        read_migrations(folder),
        exclude=(),
        name_prefix=prefix,
        limit=timedelta(seconds=1),
    )
    assert built is None
    assert skipped == (
        "replaying the migrations took longer than 1s and was stopped (does a migration wait "
        "or loop?)"
    )
    with psycopg.connect(scratch_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
        )
        assert left.fetchone() == (0,)
