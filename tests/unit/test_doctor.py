"""`rollbot doctor`'s decisions and renderings, from facts alone: every gap has its fix."""

from __future__ import annotations

from pathlib import Path

from bot.core.doctor import (
    BackupDirFacts,
    Report,
    RoleFacts,
    StateFacts,
    TableAccess,
    backup_dir_check,
    error,
    ok,
    role_checks,
    runbook_tables,
    scope_checks,
    state_checks,
    table_checks,
    warning,
)
from bot.core.journal import JournalRow
from bot.core.library import load_library
from bot.core.text import doctor_text
from bot.drizzle.journal import journal_checks
from bot.slack.blocks import doctor_message
from tests.fix_drizzle import read_chain
from tests.fix_rollbot import RUNBOOKS

ROLE = RoleFacts(
    role="rollbot",
    database="app",
    server_version="15.4",
    server_major=15,
    superuser=False,
    createdb=True,
    createrole=True,
    advisory_locks=True,
    database_size=10_000_000,
)
GB = 1_000_000_000


def test_the_exit_status_is_1_only_with_an_error_and_the_summary_counts_each_level() -> None:
    """Ok and warnings exit 0; one error exits 1; the summary counts ok, warnings, errors."""
    fine = Report(checks=(ok("a", "b", "c"), warning("a", "d", "e", "f")))
    assert (fine.exit_status(), fine.healthy) == (0, True)
    assert fine.summary() == "1 ok, 1 warning, 0 errors"
    broken = Report(checks=(*fine.checks, error("x", "y", "z", "do this")))
    assert (broken.exit_status(), broken.healthy) == (1, False)
    assert broken.summary() == "1 ok, 1 warning, 1 error"


def test_the_terminal_shows_one_line_per_check_with_its_fix_on_it() -> None:
    """Level first, subject and name, the finding and (unless ok) what to do, on one line."""
    report = Report(
        checks=(
            ok("target default", "reachable", "PostgreSQL 15.4"),
            error("target default", "scratch databases", "role r lacks CREATEDB", "`X;`"),
        )
    )
    assert doctor_text(report).splitlines() == [
        "rollbot doctor: 1 ok, 0 warnings, 1 error",
        "ok      target default: reachable: PostgreSQL 15.4",
        "error   target default: scratch databases: role r lacks CREATEDB; to fix: `X;`",
    ]


def test_slack_shows_errors_first_and_escapes_what_it_quotes() -> None:
    """Errors, then warnings, then ok; a name with markup is shown as typed, not acted on."""
    report = Report(
        checks=(
            ok("runbooks", "parsed", "1 runbook"),
            warning("slack", "scopes", "unknown", "look"),
            error("target <!channel>", "pg_dump", "none found", "install it"),
        )
    )
    text, blocks = doctor_message(report)
    assert text == "rollbot doctor: 1 ok, 1 warning, 1 error"
    sections = [b["text"]["text"] for b in blocks]
    assert sections[1].startswith("*Errors*")
    assert "target &lt;!channel&gt;: pg_dump: none found — to fix: install it" in sections[1]
    assert sections[2].startswith("*Warnings*")
    assert sections[3].startswith("*OK*")
    assert "<!channel>" not in str(blocks)


def test_a_role_without_createdb_createrole_or_reads_is_told_each_fix() -> None:
    """CREATEDB is an error (ALTER ROLE), CREATEROLE a warning, unreadable tables the GRANT."""
    facts = ROLE.model_copy(
        update={
            "createdb": False,
            "createrole": False,
            "advisory_locks": False,
            "unreadable": ("public.a", "public.b"),
            "unreadable_count": 7,
        }
    )
    checks = {c.name: c for c in role_checks("t", facts, rehearses=True)}
    assert checks["scratch databases"].level == "error"
    assert "`ALTER ROLE rollbot CREATEDB;`" in checks["scratch databases"].todo
    assert checks["throwaway role"].level == "warning"
    assert "ALTER ROLE rollbot CREATEROLE;" in checks["throwaway role"].todo
    assert checks["advisory lock"].level == "error"
    assert "public.a, public.b and 5 more" in checks["backup reads"].message
    assert checks["backup reads"].todo == "`GRANT pg_read_all_data TO rollbot;`"

    off = {c.name: c for c in role_checks("t", facts, rehearses=False)}
    assert off["scratch databases"].level == "ok"
    assert "throwaway role" not in off
    assert all(c.level == "ok" for c in role_checks("t", ROLE, rehearses=True))


def test_each_missing_table_privilege_has_its_grant() -> None:
    """Not the owner: membership of the owner; no SELECT or USAGE: the GRANT for each."""
    table = TableAccess(
        table="public.api_errors",
        runbooks=("0023_loud_shen",),
        owner="app_owner",
        owns=True,
        select=True,
        lock=True,
        schema_usage=True,
    )
    assert [c.level for c in table_checks("t", "rollbot", [table])] == ["ok"]
    bare = table.model_copy(update={"owns": False, "select": False, "schema_usage": False})
    todos = [c.todo for c in table_checks("t", "rollbot", [bare])]
    assert todos == [
        "`GRANT USAGE ON SCHEMA public TO rollbot;`",
        "`GRANT SELECT ON public.api_errors TO rollbot;`",
        "`GRANT app_owner TO rollbot;` (membership of the owner)",
    ]
    locked = table_checks("t", "rollbot", [table.model_copy(update={"lock": False})])
    assert locked[0].todo == "`GRANT UPDATE, DELETE ON public.api_errors TO rollbot;`"


def test_the_state_schema_is_creatable_usable_and_not_from_a_newer_rollbot() -> None:
    """No schema and no CREATE: both fixes; no table rights: the GRANTs; newer: an error."""
    bare = StateFacts(
        role="rollbot",
        database="app",
        schema_exists=False,
        schema_owned=False,
        schema_usage=False,
        schema_create=False,
        database_create=False,
        version=None,
        tables_writable=False,
    )
    (missing,) = state_checks("state", "DATABASE_URL", bare, 9)
    assert missing.level == "error"
    assert "`GRANT CREATE ON DATABASE app TO rollbot;`" in missing.todo
    assert "`CREATE SCHEMA rollbot AUTHORIZATION rollbot;`" in missing.todo
    creatable = bare.model_copy(update={"database_create": True})
    assert [c.level for c in state_checks("state", "DATABASE_URL", creatable, 9)] == ["ok"]

    there = bare.model_copy(
        update={"schema_exists": True, "schema_usage": True, "schema_create": True, "version": 9}
    )
    refused = state_checks("state", "DATABASE_URL", there, 9)
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rollbot" in refused[0].todo
    newer = there.model_copy(update={"tables_writable": True, "version": 10})
    assert [c.level for c in state_checks("state", "DATABASE_URL", newer, 9)] == ["ok", "error"]


def test_the_backup_directory_must_be_writable_with_room_for_the_largest_target() -> None:
    """Not writable: error; less free than the largest database: error; under twice: warning."""
    facts = BackupDirFacts(path="/b", exists=True, writable=True, is_dir=True, free_bytes=5 * GB)
    assert backup_dir_check(facts, {"a": GB, "b": 2 * GB}).level == "ok"
    assert backup_dir_check(facts, {"big": 3 * GB}).level == "warning"
    full = backup_dir_check(facts, {"big": 6 * GB})
    assert full.level == "error"
    assert "less than target big's 6.0 GB" in full.message
    locked = facts.model_copy(update={"writable": False})
    assert backup_dir_check(locked, {}).level == "error"


def test_missing_scopes_are_named_and_an_unknown_set_is_a_warning() -> None:
    """Each scope the manifest asks for and the token lacks is named."""
    needed = frozenset({"chat:write", "users:read", "commands"})
    (missing,) = scope_checks(frozenset({"commands"}), needed)
    assert missing.level == "error"
    assert "lacks the scopes chat:write, users:read" in missing.message
    assert scope_checks(needed, needed)[0].level == "ok"
    assert scope_checks(None, needed)[0].level == "warning"


def test_the_folder_is_matched_to_the_journal_row_by_row() -> None:
    """Unset with a journal: warning; an edited file: error naming it; matching: ok."""
    chain = read_chain()
    rows = [JournalRow(id=i + 1, hash=m.hash, created_at=m.when) for i, m in enumerate(chain)]
    assert journal_checks("t", chain, rows, journal="drizzle.j")[0].level == "ok"
    assert journal_checks("t", None, rows, journal="drizzle.j")[0].level == "warning"
    assert journal_checks("t", None, None, journal="drizzle.j")[0].level == "ok"
    edited = [rows[0].model_copy(update={"hash": "0" * 64}), *rows[1:]]
    (problem,) = journal_checks("t", chain, edited, journal="drizzle.j")
    assert problem.level == "error"
    assert f"{chain[0].tag}.sql was edited after it was applied" in problem.message


def test_the_tables_each_runbook_changes_are_collected_quoted() -> None:
    """The seed runbook's dropped tables, quoted as written, each with the runbook's name."""
    tables = runbook_tables(load_library(Path(RUNBOOKS)))
    assert tables['"api_errors"'] == ("0023_loud_shen",)
    assert len(tables) >= 6
