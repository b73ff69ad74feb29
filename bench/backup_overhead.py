"""Backup overhead: rollbot's verified backup against a plain `pg_dump -Fc` of the same data.

rollbot's backup (`backup_with_counts`) does more than pg_dump: it exports a snapshot and
counts the rows of the tables to be dropped in it, dumps from that snapshot, then reads the
whole dump back with pg_restore (to /dev/null) and checks its table of contents, hashes the
file and fsyncs the directory. This scenario prices that extra work.

Each sample runs in a freshly spawned Python process, so `getrusage(RUSAGE_CHILDREN)` there
is exactly the CPU time of that sample's pg_dump/pg_restore, and `RUSAGE_SELF` that process's
own peak memory (the interpreter and rollbot's imports included: both sides import the same
modules). The programs' own peak memory is read from /proc while they run (see memory.py).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import BaseModel, ConfigDict

from bench.memory import ChildPeaks
from bench.raw import run_pg_dump
from bench.stats import median, ratio
from bot.target.database import TargetDatabase
from bot.target.snapshots import backup_with_counts
from demo.sample import MIGRATION_0023_TABLES, expected_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.server import Server, Tools
    from bot.pgclient.tools import PgTools

DROPPED = tuple(f"public.{table}" for table in MIGRATION_0023_TABLES)


class BackupSample(BaseModel):
    """One backup: its wall time, its file, and what its processes cost."""

    model_config = ConfigDict(frozen=True)

    wall_s: float
    size_bytes: int
    peak_rss_kib: dict[str, int]  # per program: {"pg_dump": …, "pg_restore": …}
    child_cpu_s: float  # user + system time of all of them
    python_peak_rss_kib: int  # the Python process that ran the sample


class BackupSide(BaseModel):
    """Repeated samples of one way of backing up, and their summary."""

    model_config = ConfigDict(frozen=True)

    samples: tuple[BackupSample, ...]
    median_s: float
    child_cpu_median_s: float
    peak_rss_kib: dict[str, int]
    python_peak_rss_kib: int

    @classmethod
    def of(cls, samples: list[BackupSample]) -> BackupSide:
        """Medians of the times; peaks are the largest seen in any sample."""
        peaks: dict[str, int] = {}
        for sample in samples:
            for program, kib in sample.peak_rss_kib.items():
                peaks[program] = max(peaks.get(program, 0), kib)
        return cls(
            samples=tuple(samples),
            median_s=median([s.wall_s for s in samples]),
            child_cpu_median_s=median([s.child_cpu_s for s in samples]),
            peak_rss_kib=peaks,
            python_peak_rss_kib=max(s.python_peak_rss_kib for s in samples),
        )


class BackupOverhead(BaseModel):
    """rollbot's verified backup against pg_dump -Fc, on the same database."""

    model_config = ConfigDict(frozen=True)

    scale: int
    rows: int
    database_bytes: int
    repeat: int
    rollbot: BackupSide
    pg_dump: BackupSide
    time_ratio: float  # rollbot's median / pg_dump's median


def run_backup_overhead(
    server: Server, template: str, tools: Tools, workdir: Path, *, scale: int, repeat: int = 3
) -> BackupOverhead:
    """Alternate the two sides `repeat` times on one clone, after an untimed warm-up dump."""
    directory = workdir / "backup-overhead"
    directory.mkdir(parents=True, exist_ok=True)
    rollbot: list[BackupSample] = []
    raw: list[BackupSample] = []
    with server.clone(template) as conninfo:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        size = int(row[0]) if row else 0
        warm_up = directory / "warm-up.dump"
        run_pg_dump(tools.pg.pg_dump, conninfo, warm_up)
        warm_up.unlink(missing_ok=True)
        for i in range(repeat):
            name = f"bench-{i}"
            sides: list[tuple[list[BackupSample], Callable[..., BackupSample], tuple[Any, ...]]]
            sides = [
                (rollbot, rollbot_backup, (tools.pg, conninfo, str(directory), name)),
                (raw, raw_backup, (str(tools.pg.pg_dump), conninfo, str(directory), name)),
            ]
            for samples, function, args in sides if i % 2 == 0 else reversed(sides):
                server.settle()
                samples.append(_isolated(function, *args))
            for leftover in directory.iterdir():
                leftover.unlink()
    return BackupOverhead(
        scale=scale,
        rows=sum(expected_rows(scale=scale).values()),
        database_bytes=size,
        repeat=repeat,
        rollbot=BackupSide.of(rollbot),
        pg_dump=BackupSide.of(raw),
        time_ratio=ratio(median([s.wall_s for s in rollbot]), median([s.wall_s for s in raw])),
    )


def _isolated(function: Callable[..., BackupSample], *args: Any) -> BackupSample:  # noqa: ANN401
    """Run one sample in a new process, so its resource usage is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def rollbot_backup(tools: PgTools, conninfo: str, directory: str, name: str) -> BackupSample:
    """One `backup_with_counts` of the database, counting the tables 0023's rollback drops."""
    with ChildPeaks() as peaks:
        started = time.perf_counter()
        target = TargetDatabase.at(conninfo)
        info, _ = backup_with_counts(tools, target, Path(directory), name=name, tables=DROPPED)
        wall_s = time.perf_counter() - started
    return _sample(wall_s, info.size_bytes, peaks)


def raw_backup(pg_dump: str, conninfo: str, directory: str, name: str) -> BackupSample:
    """One plain `pg_dump -Fc` of the database."""
    file = Path(directory) / f"{name}.raw.dump"
    with ChildPeaks() as peaks:
        finished = run_pg_dump(Path(pg_dump), conninfo, file)
    if finished.returncode != 0:
        msg = f"pg_dump failed: {finished.stderr.strip()}"
        raise RuntimeError(msg)
    return _sample(finished.wall_s, file.stat().st_size, peaks)


def _sample(wall_s: float, size_bytes: int, peaks: ChildPeaks) -> BackupSample:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)  # ru_maxrss is in KiB on Linux
    return BackupSample(
        wall_s=wall_s,
        size_bytes=size_bytes,
        peak_rss_kib=peaks.peaks_kib(),
        child_cpu_s=children.ru_utime + children.ru_stime,
        python_peak_rss_kib=own.ru_maxrss,
    )
