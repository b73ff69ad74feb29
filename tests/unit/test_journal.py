"""Matching Drizzle's journal rows to the migrations folder, without a database."""

from __future__ import annotations

import dataclasses

from bot.core.journal import JournalPlan, JournalRow
from bot.core.runbook import parse_runbook
from bot.drizzle.folder import Migration
from bot.drizzle.journal import journal_row_for, latest_applied, match_journal
from bot.drizzle.rules import journal_plan
from tests.fix_drizzle import read_chain

CHAIN = read_chain()


def rows_upto(count: int) -> list[JournalRow]:
    """The rows Drizzle writes when it applies the first `count` migrations of the chain."""
    return [
        JournalRow(id=i + 1, hash=m.hash, created_at=m.when) for i, m in enumerate(CHAIN[:count])
    ]


def test_applied_current_and_pending_follow_the_newest_row() -> None:
    """Rows match files by `when`; the newest is current, the rest applied, later ones pending."""
    statuses = match_journal(CHAIN, rows_upto(4))
    assert [(s.migration_id, s.status) for s in statuses] == [
        ("0000", "applied"),
        ("0001", "applied"),
        ("0002", "applied"),
        ("0003", "current"),
        *((m.tag.split("_")[0], "pending") for m in CHAIN[4:]),
    ]
    assert [s.journal_id for s in statuses[:5]] == [1, 2, 3, 4, None]
    assert all(s.hash_matches for s in statuses[:4])
    assert statuses[4].hash_matches is None
    assert not any(s.problems for s in statuses)


def test_latest_applied_is_the_current_migration() -> None:
    """The migration a rollback undoes is the one the newest journal row names."""
    current = latest_applied(match_journal(CHAIN, rows_upto(6)))
    assert current is not None
    assert current.tag == "0005_backfill_teams"
    assert current.journal_id == 6


def test_nothing_applied_means_no_latest() -> None:
    """An empty journal leaves every migration pending and nothing to roll back."""
    statuses = match_journal(CHAIN, [])
    assert {s.status for s in statuses} == {"pending"}
    assert latest_applied(statuses) is None


def test_dates_are_the_utc_day_of_when() -> None:
    """The date shown is the calendar day (UTC) of the journal's `when`, not of the apply."""
    statuses = match_journal(CHAIN, rows_upto(1))
    assert statuses[0].date == "2025-10-01"
    assert statuses[7].date == "2025-11-13"


def test_an_edited_file_is_reported() -> None:
    """A file whose hash no longer matches its row is still applied, with the edit named."""
    edited = [*CHAIN]
    edited[3] = dataclasses.replace(CHAIN[3], text=CHAIN[3].text + "\n-- tweak\n")
    status = match_journal(edited, rows_upto(4))[3]
    assert status.status == "current"
    assert status.hash_matches is False
    assert status.problems == [
        "the file 0003_steady_harbor.sql was edited after it was applied (hash differs)"
    ]


def test_a_row_without_a_file_is_unknown() -> None:
    """A row whose `created_at` matches no journal entry is listed as unknown, with the row."""
    rows = [*rows_upto(2), JournalRow(id=7, hash="ab" * 32, created_at=1759500000000)]
    statuses = match_journal(CHAIN, rows)
    unknown = [s for s in statuses if s.status == "unknown"]
    assert [(s.tag, s.journal_id) for s in unknown] == [("unknown (created_at 1759500000000)", 7)]
    assert unknown[0].problems == [
        "journal row 7 (created_at 1759500000000) matches no migration in the folder"
    ]
    assert [s.migration_id for s in statuses[:3]] == ["0000", None, "0001"]


def test_an_unknown_newest_row_leaves_no_current_migration() -> None:
    """When Drizzle's newest row matches no file, nothing in the folder is called current."""
    rows = [*rows_upto(2), JournalRow(id=3, hash="ab" * 32, created_at=1770000000000)]
    statuses = match_journal(CHAIN, rows)
    assert latest_applied(statuses) is None
    assert "it is the newest row" in statuses[-1].problems[0]


def test_a_skipped_migration_is_reported() -> None:
    """A file with no row but older than the newest row will never run, and says so."""
    rows = [r for r in rows_upto(4) if r.id != 3]
    status = match_journal(CHAIN, rows)[2]
    assert status.status == "pending"
    assert status.problems == [
        (
            "0002_amber_hulk.sql has no journal row but is not newer than the newest one "
            "(row 4): Drizzle will never apply it"
        )
    ]


def test_a_null_created_at_is_reported() -> None:
    """A row without `created_at` is what Drizzle reads first, so it is flagged."""
    rows = [*rows_upto(1), JournalRow(id=2, hash="cd" * 32, created_at=None)]
    statuses = match_journal(CHAIN, rows)
    assert statuses[-1].tag == "unknown (created_at null)"
    assert "would run every migration again" in statuses[-1].problems[0]
    assert statuses[0].status == "applied"


def test_duplicate_rows_are_reported() -> None:
    """Two rows recording the same migration are both named."""
    rows = [*rows_upto(2), JournalRow(id=3, hash=CHAIN[1].hash, created_at=CHAIN[1].when)]
    status = match_journal(CHAIN, rows)[1]
    assert status.status == "current"
    assert status.journal_id == 2
    assert status.problems == [
        f"journal rows 2, 3 all record 0001_brisk_storm.sql (created_at {CHAIN[1].when})"
    ]


def test_without_a_folder_rows_are_listed_by_created_at() -> None:
    """With no folder, every row is applied under an unknown tag and the newest is current."""
    statuses = match_journal(None, list(reversed(rows_upto(3))))
    assert [(s.tag, s.status, s.journal_id) for s in statuses] == [
        (f"unknown (created_at {CHAIN[0].when})", "applied", 1),
        (f"unknown (created_at {CHAIN[1].when})", "applied", 2),
        (f"unknown (created_at {CHAIN[2].when})", "current", 3),
    ]
    assert all(s.hash_matches is None and not s.problems for s in statuses)


def test_without_a_folder_v1_names_become_tags() -> None:
    """A v1 journal's `name` column stands in for the tag when there is no folder."""
    rows = [JournalRow(id=1, hash="ef" * 32, created_at=5, name="0042_brave_wolf")]
    (status,) = match_journal(None, rows)
    assert (status.tag, status.migration_id, status.status) == (
        "0042_brave_wolf",
        "0042",
        "current",
    )


def test_journal_row_for_prefers_the_matching_hash() -> None:
    """Of two rows with the migration's `when`, the one with its hash is the one returned."""
    migration = CHAIN[2]
    rows = [
        JournalRow(id=3, hash="00" * 32, created_at=migration.when),
        JournalRow(id=4, hash=migration.hash, created_at=migration.when),
    ]
    row = journal_row_for(migration, rows)
    assert row is not None
    assert row.id == 4
    assert journal_row_for(CHAIN[3], rows) is None


def test_the_journal_delete_matches_any_hash_the_row_holds() -> None:
    """A hash that is not lowercase hex is still deleted, and quoted, never left in place."""
    for stored in ["AB" * 32, "x' OR true --"]:
        plan = JournalPlan(
            schema_name="drizzle",
            table="__drizzle_migrations",
            row=JournalRow(id=2, hash=stored, created_at=1),
        )
        sql = plan.delete_sql()
        assert sql is not None
        quoted = stored.replace("'", "''")
        assert sql == (
            f'DELETE FROM "drizzle"."__drizzle_migrations" WHERE id = 2 AND hash = \'{quoted}\''
        )


def test_a_rollback_is_blocked_while_the_folder_and_the_journal_disagree() -> None:
    """An edited file up to N, or two rows recording N: the proof and the journal would lie."""
    first = Migration(tag="0000_users", when=1, text='CREATE TABLE "users" ("id" int);')
    second = Migration(tag="0001_name", when=2, text='ALTER TABLE "users" ADD COLUMN "n" text;')
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nDROP INDEX x;\n```\n", file="0001_name.md"
    )
    rows = [JournalRow(id=1, hash=first.hash, created_at=1)]
    good = [*rows, JournalRow(id=2, hash=second.hash, created_at=2)]

    def blocker(folder: list[Migration], journal: list[JournalRow]) -> str | None:
        plan = journal_plan(book, folder, journal, schema="drizzle", table="__drizzle_migrations")
        assert plan is not None
        return plan.blocker

    assert blocker([first, second], good) is None
    edited = Migration(tag=first.tag, when=1, text=first.text + "\n-- tidied")
    assert blocker([edited, second], good) == (
        "the migrations folder and the Drizzle journal disagree up to 0001_name: the file "
        "0000_users.sql was edited after it was applied (hash differs); make the folder the one "
        "the database was migrated from (same files, unedited) and the journal hold one row per "
        "migration, then plan again"
    )
    twice = [*good, JournalRow(id=3, hash=second.hash, created_at=2)]
    assert "journal rows 2, 3 all record 0001_name.sql" in (blocker([first, second], twice) or "")
    later = Migration(tag="0002_later", when=3, text="SELECT 1;")
    assert blocker([first, second, later], good) is None  # not applied yet, and after N
