"""The benchmark scenarios at a tiny size: they run, and their results hold together.

These pin the shape of the results and one behaviour, never a speed: timings belong to
`make bench`, which compares rollbot with the raw tools on the same machine.
"""

import os
from pathlib import Path

import psycopg
import pytest

from bench.ack_latency import AckOptions, run_ack_latency
from bench.backup_overhead import run_backup_overhead
from bench.dataset import dropped_rows, rows_at
from bench.lock_safety import LockOptions, run_lock_safety
from bench.report import Machine, Report, render
from bench.rollback_time import expected_dropped_rows, run_rollback_time
from bench.scale import ScaleOptions, run_scale
from bench.server import Server, Tools

# Each drives real servers and subprocesses for half a minute at most; they test the benchmark
# harness, not rollbot, so they run with it in `make test-scale` rather than in `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.scale]

TINY_ACK = AckOptions(requests=12, concurrency=3, rounds=2, warmup=2, workers=2, queue_size=1)
TINY_LOCK = LockOptions(
    blocker_s=1.0,
    lock_timeout_s=0.2,
    attempts=2,
    retry_delay_s=0.05,
    readers=2,
    warmup_s=0.2,
    tail_s=0.1,
)


@pytest.fixture(scope="module")
def server(pg_server: str) -> Server:
    return Server(pg_server)


@pytest.fixture(scope="module")
def tools(server: Server) -> Tools:
    return server.tools()


def test_lock_safety_psql_stalls_readers_longer_than_rollbot(
    server: Server, tools: Tools, asset_forge_0023_template: str, tmp_path: Path
) -> None:
    """With a blocker outlasting the lock timeout, psql's worst read is slower than rollbot's."""
    result = run_lock_safety(
        server, asset_forge_0023_template, tools, tmp_path, scale=1, options=TINY_LOCK
    )
    for case in (result.rollbot, result.psql):
        assert case.latencies.reads > 0
        assert 0 < case.latencies.p50_s <= case.latencies.p99_s <= case.latencies.worst_s
        assert case.rollback_s > 0
        assert case.blocker_pid > 0
        assert case.summary
    assert result.psql.succeeded, result.psql.summary
    assert result.rollbot.succeeded or result.rollbot.blocker_pid in result.rollbot.named_pids
    assert result.psql.latencies.worst_s > result.rollbot.latencies.worst_s
    assert result.worst_ratio > 1


def test_backup_overhead_reports_both_sides(
    server: Server, tools: Tools, asset_forge_0023_template: str, tmp_path: Path
) -> None:
    """One sample of each backup: wall time, file size and peak memory are all measured."""
    result = run_backup_overhead(
        server, asset_forge_0023_template, tools, tmp_path, scale=1, repeat=1
    )
    for side in (result.rollbot, result.pg_dump):
        (sample,) = side.samples
        assert sample.wall_s > 0
        assert sample.size_bytes > 0
        assert sample.peak_rss_kib.get("pg_dump", 0) > 0
        assert sample.child_cpu_s > 0
        assert sample.python_peak_rss_kib > 0
        assert side.median_s == sample.wall_s
    assert result.time_ratio > 0
    assert result.rows > 0
    assert result.database_bytes > 0


def test_rollback_time_reports_both_runners_and_renders(
    server: Server, tools: Tools, asset_forge_0023_template: str, tmp_path: Path
) -> None:
    """One rollback by each runner; rollbot dropped and backed up every row; tables render."""
    result = run_rollback_time(
        server, asset_forge_0023_template, tools, tmp_path, scale=1, repeat=1
    )
    (sample,) = result.samples
    assert 0 < sample.final_backup_s < sample.rollbot_s
    assert sample.psql_s > 0
    assert sample.rows_dropped == expected_dropped_rows(1)
    assert result.time_ratio > 0
    assert result.ratio_without_final_backup > 0
    report = Report.model_validate(
        {
            "started_at": "2025-11-13T00:00:00Z",
            "command": "python -m bench --only rollback",
            "machine": Machine(
                cpus=2, platform="test", python="3.11", server_version="15", pg_dump_version="15"
            ),
            "rollback_time": result,
        }
    )
    text = render(report)
    assert "3. Rollback execution" in text
    assert "psql -f" in text
    assert Report.model_validate_json(report.model_dump_json()) == report


def test_ack_latency_answers_every_request_and_says_busy_when_the_queue_is_full(
    server: Server, asset_forge_0023_template: str, tmp_path: Path
) -> None:
    """Both servers answer every request in both phases; plans beyond the queue hear "busy"."""
    result = run_ack_latency(server, asset_forge_0023_template, tmp_path, options=TINY_ACK)
    assert (result.idle.in_flight, result.loaded.in_flight) == (0, 2 * TINY_ACK.workers)
    for phase in (result.idle, result.loaded):
        for side in (phase.rollbot, phase.bare):
            assert side.requests == side.answered == len(side.samples) == TINY_ACK.requests
            assert (side.failed, side.timeouts) == (0, 0)
            lat = side.latency
            assert 0 < lat.p50_s <= lat.p99_s <= lat.max_s
            assert sum(p.requests for p in side.by_command.values()) == side.answered
        assert min(phase.p50_ratio, phase.p99_ratio, phase.max_ratio) > 0
    answers = [plan.answer for plan in result.loaded.plans]
    assert len(answers) == result.loaded.in_flight
    assert all(plan.status == 200 for plan in result.loaded.plans)
    assert set(answers) <= {"queued", "busy"}, result.loaded.plans
    capacity = TINY_ACK.workers + TINY_ACK.queue_size
    assert answers.count("busy") >= len(answers) - capacity
    queued = answers.count("queued")
    assert queued >= 1
    parked = min(queued, TINY_ACK.workers)
    assert (result.loaded.parked_before, result.loaded.parked_after) == (parked, parked)
    assert result.loaded.runs_after == {"awaiting_approval": queued}
    report = Report.model_validate(
        {
            "started_at": "2025-11-13T00:00:00Z",
            "command": "python -m bench --only ack",
            "machine": Machine(
                cpus=2, platform="test", python="3.11", server_version="15", pg_dump_version="15"
            ),
            "ack_latency": result,
        }
    )
    text = render(report)
    assert "4. Ack latency" in text
    assert "busy" in text
    assert Report.model_validate_json(report.model_dump_json()) == report


def test_scale_builds_its_database_and_drives_rollbot_through_plan_execute_restore(
    server: Server, tools: Tools, tmp_path: Path
) -> None:
    """At a tiny scale every step runs once per side, rollbot's runs succeed, the tables render."""
    options = ScaleOptions(scales=(0.001,), repeat=1, warmup_s=0.1, tail_s=0.05)
    result = run_scale(server, tools, tmp_path, options)
    (point,) = result.points
    assert point.rows == sum(rows_at(0.001).values())
    assert point.dropped_rows == dropped_rows(0.001)
    assert point.outcomes == ("plan: awaiting_approval", "approve: succeeded", "restore: succeeded")
    for spread in (
        point.plan,
        point.pg_dump_plain,
        point.pg_dump_custom,
        point.execute,
        point.psql,
    ):
        assert len(spread.samples) == 1
        assert spread.median_s > 0
    assert point.restore_plan.median_s < point.restore.median_s
    # Quarantine mode (the default): execution ends at the printed outcome, the dump follows.
    assert point.final_dump is not None
    assert point.final_dump.median_s > 0
    assert min(point.plan_vs_plain, point.execute_vs_psql, point.restore_vs_pg_restore) > 0
    assert point.plain_bytes > 0
    assert point.custom_bytes > 0
    assert point.rollbot_backup_bytes > 0
    for loads in (point.load_rollbot, point.load_psql):
        (load,) = loads
        for stream in (load.insert_dropped, load.insert_kept, load.read_kept):
            assert 0 < stream.p50_s <= stream.p99_s <= stream.max_s
        assert load.insert_dropped.failed > 0  # the table went away under the application
    assert point.peak_kib["plan"]["rollbot"] > 0
    assert point.peak_kib["plan"]["pg_dump"] > 0
    assert point.peak_kib["approve"]["rollbot"] > 0
    with psycopg.connect(server.conninfo) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%%\\_' || %s || '\\_%%'",
            (str(os.getpid()),),
        ).fetchall()
    assert left == []
    report = Report.model_validate(
        {
            "started_at": "2025-11-13T00:00:00Z",
            "command": "python -m bench --only scale --scale 0.001",
            "machine": Machine(
                cpus=2, platform="test", python="3.11", server_version="15", pg_dump_version="15"
            ),
            "scale": result,
        }
    )
    text = render(report)
    assert "5. At scale" in text
    assert "pg_dump > backup.sql" in text
    assert Report.model_validate_json(report.model_dump_json()) == report
