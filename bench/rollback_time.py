"""Rollback execution: rollbot's whole transaction against the guide's SQL through psql.

Both start from identical clones of the same template. rollbot's figure is `execute_plan`
alone (planning happens before approval and is not timed), and it includes work psql does not
do: the advisory lock, the write lock and exported snapshot, the final backup of the dropped
tables' rows (pg_dump + read-back), the exclusive locks, the re-check of the approved
inventory, the neighbour counts before and after, and the verification before COMMIT. The
final backup's own time is reported too, so the rest can be compared on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bench.plans import plan_for, seed_runbook, tables_left
from bench.raw import run_psql_file, seed_sql
from bench.stats import median, ratio
from bot.target.database import TargetDatabase
from bot.target.execute import execute_plan
from demo.sample import MIGRATION_0023_TABLES, expected_rows

if TYPE_CHECKING:
    from pathlib import Path

    from bench.server import Server, Tools


class RollbackSample(BaseModel):
    """One rollback by each runner, on its own clone."""

    model_config = ConfigDict(frozen=True)

    rollbot_s: float
    final_backup_s: float  # the part of rollbot_s spent on the final backup
    psql_s: float
    rows_dropped: int  # counted in rollbot's transaction, and in its final backup


class RollbackTime(BaseModel):
    """Medians over the samples, and the ratios to psql."""

    model_config = ConfigDict(frozen=True)

    scale: int
    repeat: int
    samples: tuple[RollbackSample, ...]
    rollbot_median_s: float
    final_backup_median_s: float
    psql_median_s: float
    time_ratio: float  # rollbot / psql
    ratio_without_final_backup: float  # (rollbot - final backup) / psql


def run_rollback_time(
    server: Server, template: str, tools: Tools, workdir: Path, *, scale: int, repeat: int = 3
) -> RollbackTime:
    """`repeat` rollbacks by each runner, alternating which goes first."""
    script = workdir / "seed_0023_rollback.sql"
    script.write_text(seed_sql(), encoding="utf-8")
    samples = []
    for i in range(repeat):
        with server.clone(template) as mine, server.clone(template) as theirs:
            if i % 2 == 0:
                rollbot_s, backup_s, rows = _rollbot(server, mine, tools, workdir, i)
                psql_s = _psql(server, theirs, tools, script)
            else:
                psql_s = _psql(server, theirs, tools, script)
                rollbot_s, backup_s, rows = _rollbot(server, mine, tools, workdir, i)
        samples.append(
            RollbackSample(
                rollbot_s=rollbot_s, final_backup_s=backup_s, psql_s=psql_s, rows_dropped=rows
            )
        )
    rollbot_median = median([s.rollbot_s for s in samples])
    psql_median = median([s.psql_s for s in samples])
    return RollbackTime(
        scale=scale,
        repeat=repeat,
        samples=tuple(samples),
        rollbot_median_s=rollbot_median,
        final_backup_median_s=median([s.final_backup_s for s in samples]),
        psql_median_s=psql_median,
        time_ratio=ratio(rollbot_median, psql_median),
        ratio_without_final_backup=ratio(
            median([s.rollbot_s - s.final_backup_s for s in samples]), psql_median
        ),
    )


def expected_dropped_rows(scale: int) -> int:
    """Rows the seed rollback drops from a template at `scale`."""
    return sum(expected_rows(scale=scale, tables=MIGRATION_0023_TABLES).values())


def _rollbot(
    server: Server, conninfo: str, tools: Tools, workdir: Path, run_id: int
) -> tuple[float, float, int]:
    runbook = seed_runbook()
    plan = plan_for(conninfo, runbook, lock_timeout_s=3.0)
    server.settle()
    outcome = execute_plan(
        plan,
        runbook,
        target=TargetDatabase.at(conninfo),
        tools=tools.pg,
        backup_dir=workdir / "rollback-time-backups",
        run_id=run_id,
        on_commit_pending=lambda _xid: None,
    )
    if not outcome.succeeded or outcome.final_backup is None:
        msg = f"rollbot's rollback failed: {outcome.error}"
        raise RuntimeError(msg)
    outcome.final_backup.path.unlink()
    rows = sum(t.rows for t in outcome.dropped)
    return outcome.duration_s, outcome.final_backup.duration_s, rows


def _psql(server: Server, conninfo: str, tools: Tools, script: Path) -> float:
    server.settle()
    finished = run_psql_file(tools.psql, conninfo, script)
    left = tables_left(conninfo, MIGRATION_0023_TABLES)
    if finished.returncode != 0 or left:
        msg = f"psql's rollback failed (exit {finished.returncode}): {finished.stderr.strip()}"
        raise RuntimeError(msg)
    return finished.wall_s
