"""What a rehearsal reports, and the pure pieces it is built from."""

import pytest

from bot.core.results import Rehearsal, RowChange, lock_counts
from bot.target.rehearsal import lock_label, strongest_locks

EIGHT = tuple(f"ACCESS EXCLUSIVE on public.t{i}" for i in range(8))


def test_summary_of_a_passing_rehearsal_names_time_and_locks() -> None:
    """A pass reads `rehearsed: ok in 0.4 s (ACCESS EXCLUSIVE on 8 tables)`."""
    assert Rehearsal(ok=True, duration_s=0.42, locks=EIGHT).summary() == (
        "rehearsed: ok in 0.4 s (ACCESS EXCLUSIVE on 8 tables)"
    )


def test_summary_keeps_two_decimals_below_a_tenth_of_a_second() -> None:
    """A very short rehearsal is not shown as taking 0.0 s, and no locks means no brackets."""
    assert Rehearsal(ok=True, duration_s=0.013).summary() == "rehearsed: ok in 0.01 s"


def test_summary_of_a_failure_names_the_runbook_line_and_the_message() -> None:
    """A failed statement reads `rehearsal failed at line N: <PostgreSQL's message>`."""
    result = Rehearsal(
        ok=False,
        failed_statement="DELETE FROM sessions WHERE user_id = 'x'",
        failed_line=57,
        error='invalid input syntax for type uuid: "x"',
    )
    assert (
        result.summary() == 'rehearsal failed at line 57: invalid input syntax for type uuid: "x"'
    )


def test_summary_of_a_failed_check_has_no_line() -> None:
    """A failure found by the checks before COMMIT is reported without a line."""
    result = Rehearsal(ok=False, error="the check before COMMIT found: still present: public.a")
    assert result.summary() == (
        "rehearsal failed: the check before COMMIT found: still present: public.a"
    )


def test_summary_of_a_skip_gives_the_reason_once() -> None:
    """A skip says why, without repeating "rehearsal skipped" at both ends."""
    result = Rehearsal(
        ok=False,
        skipped="the server refused CREATE DATABASE (permission denied to create database); "
        "rehearsal skipped",
    )
    assert result.summary() == (
        "rehearsal skipped: the server refused CREATE DATABASE "
        "(permission denied to create database)"
    )


def test_summary_mentions_a_scratch_database_left_behind() -> None:
    """A failed DROP DATABASE is added to whatever the rehearsal found."""
    result = Rehearsal(
        ok=True,
        duration_s=1.0,
        cleanup_error="the scratch database x could not be dropped (boom); drop it by hand",
    )
    assert result.summary() == (
        "rehearsed: ok in 1.0 s; the scratch database x could not be dropped (boom); "
        "drop it by hand"
    )


def test_rehearsal_round_trips_as_json() -> None:
    """A stored rehearsal reads back equal, so a run can keep it beside its backup."""
    result = Rehearsal(
        ok=True,
        duration_s=0.42,
        total_s=1.5,
        locks=("ACCESS EXCLUSIVE on public.users",),
        data="affected",
        rows=(RowChange(table="public.sessions", before=3, after=1),),
    )
    assert Rehearsal.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize(
    ("mode", "label"),
    [
        ("AccessExclusiveLock", "ACCESS EXCLUSIVE"),
        ("ShareRowExclusiveLock", "SHARE ROW EXCLUSIVE"),
        ("ShareUpdateExclusiveLock", "SHARE UPDATE EXCLUSIVE"),
        ("RowExclusiveLock", "ROW EXCLUSIVE"),
        ("ShareLock", "SHARE"),
    ],
)
def test_lock_label_spells_modes_as_lock_table_does(mode: str, label: str) -> None:
    """pg_locks' CamelCase mode names become the words LOCK TABLE uses."""
    assert lock_label(mode) == label


def test_strongest_locks_keeps_one_mode_per_relation_strongest_first() -> None:
    """A relation locked twice is listed once, with its strongest mode; stronger modes first."""
    held = [
        ("public.users", "ShareRowExclusiveLock"),
        ("public.users", "AccessExclusiveLock"),
        ("public.sessions", "RowExclusiveLock"),
        ("public.assets", "AccessExclusiveLock"),
        ("public.assets", "AccessShareLock"),
    ]
    assert strongest_locks(held) == (
        "ACCESS EXCLUSIVE on public.assets",
        "ACCESS EXCLUSIVE on public.users",
        "ROW EXCLUSIVE on public.sessions",
    )


def test_lock_counts_groups_by_mode() -> None:
    """Counts per mode, singular for one table."""
    locks = (*EIGHT, "ROW EXCLUSIVE on public.sessions")
    assert lock_counts(locks) == "ACCESS EXCLUSIVE on 8 tables, ROW EXCLUSIVE on 1 table"
