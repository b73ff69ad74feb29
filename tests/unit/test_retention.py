"""Backup retention, progress arithmetic and compression settings: pure decisions, explained."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.compression import for_pg_dump, parse_compression
from bot.core.progress import Progress, due
from bot.core.results import Backup, BackupInfo, Outcome
from bot.core.retention import Keep, backup_files, decide, parse_keep
from bot.core.run import Promotion, Run
from bot.core.states import RunState
from tests.samples import a_plan

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def info(run_id: int, kind: str, at: datetime) -> BackupInfo:
    return BackupInfo(
        kind="final" if kind == "final" else "full",
        path=Path(f"/backups/default-run-{run_id}-{kind}.dump"),
        size_bytes=1000 * run_id,
        sha256="0" * 64,
        duration_s=0.1,
        pg_dump_version="15.20",
        tables=("public.assets",),
        verified=True,
        created_at=at,
    )


def a_run(
    run_id: int,
    state: RunState,
    *,
    days_ago: float,
    final: bool = False,
    target: str = "default",
    kind: str = "rollback",
    restores: int | None = None,
) -> Run:
    at = NOW - timedelta(days=days_ago)
    return Run(
        id=run_id,
        kind=kind,
        migration_id="0023",
        runbook_name="0023_loud_shen",
        target_name=target,
        target_label=target,
        target_identity=target,
        state=state,
        requested_by="U0REQ",
        plan=a_plan(),
        plan_hash="abc",
        backup=Backup(full=info(run_id, "pre", at)) if kind == "rollback" else None,
        outcome=Outcome(succeeded=True, final_backup=info(run_id, "final", at)) if final else None,
        promoted_from=Promotion(run=restores, summary="restores") if restores else None,
        created_at=at,
        updated_at=at,
    )


def verdicts(runs: list[Run], keep: Keep) -> dict[tuple[int, str], str]:
    return {
        (v.file.run_id, v.file.kind): ("delete" if v.delete else v.reason)
        for v in decide(runs, keep, NOW)
    }


def test_a_count_keeps_the_newest_rollbacks_and_protects_what_a_restore_needs() -> None:
    """Beyond the 2 newest, only the in-progress, newest-succeeded and restorable files stay."""
    runs = [
        a_run(1, RunState.SUCCEEDED, days_ago=9, final=True),  # restored by 6: free to go
        a_run(2, RunState.CANCELLED, days_ago=8),
        a_run(3, RunState.SUCCEEDED, days_ago=7, final=True),  # not restored, 2nd newest success
        a_run(4, RunState.AWAITING_APPROVAL, days_ago=6),  # still in progress
        a_run(5, RunState.SUCCEEDED, days_ago=5, final=True),  # newest success
        a_run(6, RunState.SUCCEEDED, days_ago=4, kind="restore", restores=1),
        a_run(7, RunState.BLOCKED, days_ago=1),
        a_run(8, RunState.FAILED, days_ago=0.5),
        a_run(9, RunState.SUCCEEDED, days_ago=3, final=True, target="staging"),
    ]
    got = verdicts(runs, Keep(runs=2))
    assert got[(1, "pre-approval")] == got[(1, "final")] == "delete"
    assert got[(2, "pre-approval")] == "delete"
    # A restore of run 3 reads its final backup, not the pre-approval one.
    assert got[(3, "final")].startswith("a restore may still need it")
    assert got[(3, "pre-approval")] == "delete"
    assert got[(4, "pre-approval")] == "run 4 is still awaiting approval"
    assert (
        got[(5, "pre-approval")] == got[(5, "final")] == "the newest succeeded rollback on default"
    )
    assert (
        got[(7, "pre-approval")]
        == got[(8, "pre-approval")]
        == ("within retention (the 2 newest rollbacks per target)")
    )
    assert got[(9, "final")] == "the newest succeeded rollback on staging"
    assert (6, "pre-approval") not in got  # a restore writes no backup of its own


def test_an_age_counts_from_now_and_a_restore_window_from_the_newest_success() -> None:
    """A quiet target keeps the restorable rollbacks near its newest success, however old."""
    runs = [
        a_run(1, RunState.SUCCEEDED, days_ago=50),
        a_run(2, RunState.SUCCEEDED, days_ago=32),
        a_run(3, RunState.SUCCEEDED, days_ago=30),
        a_run(4, RunState.CANCELLED, days_ago=3),
    ]
    got = verdicts(runs, parse_keep("14d") or Keep(runs=1))
    assert got[(1, "pre-approval")] == "delete"  # 20 days before the newest success
    assert got[(2, "pre-approval")].startswith("a restore may still need it")
    assert got[(3, "pre-approval")] == "the newest succeeded rollback on default"
    assert got[(4, "pre-approval")] == "within retention (14 days)"


def test_pruned_files_are_listed_as_such_and_not_judged_again() -> None:
    """A file marked pruned stays in the listing with its date and is left out of decisions."""
    run = a_run(1, RunState.CANCELLED, days_ago=30)
    assert run.backup is not None
    gone = run.backup.full.model_copy(update={"pruned_at": NOW})
    run = run.model_copy(update={"backup": run.backup.model_copy(update={"full": gone})})
    assert [f.pruned_at for f in backup_files([run])] == [NOW]
    assert decide([run], Keep(runs=1), NOW) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("all", None), ("", None), ("20", Keep(runs=20)), ("14d", Keep(age=timedelta(days=14)))],
)
def test_keep_reads_a_count_an_age_or_all(text: str, expected: Keep | None) -> None:
    """ROLLBOT_BACKUP_KEEP is `all`, a number of rollbacks per target, or an age."""
    assert parse_keep(text) == expected


@pytest.mark.parametrize("text", ["0", "0d", "soon", "-3"])
def test_keep_refuses_what_would_keep_nothing_or_means_nothing(text: str) -> None:
    """A retention of zero, or not a count nor an age, is refused with what to write instead."""
    with pytest.raises(ValueError, match=r"keep|age"):
        parse_keep(text)


def test_progress_is_bytes_against_the_catalog_capped_until_done() -> None:
    """The fraction never shows 100 % mid-backup, and without a size only bytes are said."""
    assert Progress(written=25_000_000, expected=100_000_000).fraction() == 0.25
    assert Progress(written=120, expected=100).fraction() == 0.99
    assert Progress(written=5, expected=0).fraction() is None
    assert Progress(written=12_000_000, expected=40_000_000).label() == (
        "12.0 MB written of at most ~40.0 MB (the tables' size)"
    )
    assert Progress(written=1_500, expected=0).label() == "1.5 kB written"


def test_progress_is_told_at_most_every_five_seconds() -> None:
    """Slack's plan message is edited at most once per interval, and at once the first time."""
    assert due(None, NOW)
    assert not due(NOW, NOW + timedelta(seconds=4.9))
    assert due(NOW, NOW + timedelta(seconds=5))


@pytest.mark.parametrize(
    ("setting", "major", "used", "args"),
    [
        ("gzip:1", 15, "gzip:1", ["--compress=1"]),
        ("6", 15, "gzip:6", ["--compress=6"]),
        ("none", 15, "none", ["--compress=0"]),
        ("0", 16, "none", ["--compress=0"]),
        ("lz4", 15, "gzip:1", ["--compress=1"]),  # pg_dump 15 has no lz4: the fallback
        ("zstd:3", 16, "zstd:3", ["--compress=zstd:3"]),
        ("lz4", 17, "lz4", ["--compress=lz4"]),
    ],
)
def test_compression_falls_back_to_gzip_on_a_pg_dump_without_the_method(
    setting: str, major: int, used: str, args: list[str]
) -> None:
    """lz4 and zstd need pg_dump 16; older ones get gzip at level 1 instead of a failure."""
    chosen, given = for_pg_dump(parse_compression(setting), major)
    assert (chosen.label(), given) == (used, args)


@pytest.mark.parametrize("setting", ["zip", "gzip:10", "zstd:0", "lz4:x"])
def test_compression_refuses_what_pg_dump_would_not_take(setting: str) -> None:
    """A method or level pg_dump does not know is refused at start-up, not at the backup."""
    with pytest.raises(ValueError, match=r"compression|levels"):
        parse_compression(setting)
