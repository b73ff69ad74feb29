"""rollbot at a realistic size: the whole CLI against the raw tools, at several data sizes.

Each scale gets its own asset_forge database (`bench/dataset.py`), and every measured case a
fresh copy of it (`CREATE DATABASE … TEMPLATE`, not timed). rollbot is driven exactly as a
person drives it, through its command line in a child process, so the figures include its
start-up, its own state database and whatever it does today; the harness does not know how
rollbot backs up or executes, only what it prints with `--json`.

Per repeat, alternating which side goes first (A B, then B A):

- ready for approval: `rollbot plan 0023` (plan, verified backup, rehearsal) against the
  seed's own backup step, `pg_dump > backup.sql`, and against `pg_dump -Fc` followed by
  `pg_restore -f /dev/null` (the read-back rollbot's verification does);
- execution: `rollbot approve RUN` against the seed's SQL through `psql -f`, each on its own
  copy, while an application writes to a table the rollback drops and to one that stays and
  reads the one that stays, each statement timed;
- restore: `rollbot restore RUN` and the approval of the restore run, against putting the
  seed's backup back into a rolled-back copy the way its guide says (`psql < backup.sql`) and
  with `pg_restore` of the custom-format dump;
- memory: the peak resident set of rollbot's process and of every pg_dump/pg_restore it
  starts, read from /proc while they run.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from bench.dataset import dropped_rows, rows_at, scaled_template
from bench.memory import ChildPeaks
from bench.raw import run_psql_file, seed_sql
from bench.stats import median, percentile, ratio
from bot.pgclient.conninfo import child_connection
from demo.sample import MIGRATION_0023_TABLES, MIGRATIONS_DIR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bench.server import Server, Tools

ROOT = Path(__file__).parents[1]
REQUESTER, APPROVER = "U0BENCHREQ", "U0BENCHAPP"
DROP_MODES = ("quarantine", "drop")
PEAK_INTERVAL_S = 0.02  # /proc is read this often on both sides, so both pay the same


@dataclass(frozen=True)
class ScaleOptions:
    """What to measure: the sizes, the samples per side, and how rollbot is configured."""

    scales: tuple[float, ...] = (0.25, 1.0, 4.0)
    repeat: int = 3
    drop_mode: str | None = None  # passed as ROLLBOT_DROP_MODE; None leaves rollbot's default
    pace_s: float = 0.01  # between one application statement and the next, per stream
    warmup_s: float = 0.5  # the application runs this long before a timed command starts
    tail_s: float = 0.3  # and this long after it ends


class Spread(BaseModel):
    """Samples of one timed step: every one, the median, and the spread around it."""

    model_config = ConfigDict(frozen=True)

    samples: tuple[float, ...]
    median_s: float
    min_s: float
    max_s: float

    @classmethod
    def of(cls, samples: list[float]) -> Spread:
        """Summarise wall times in seconds."""
        return cls(
            samples=tuple(samples),
            median_s=median(samples),
            min_s=min(samples),
            max_s=max(samples),
        )


class Stream(BaseModel):
    """One application connection's statements during a timed step."""

    model_config = ConfigDict(frozen=True)

    statements: int
    failed: int  # e.g. an insert into a table that was dropped meanwhile
    max_s: float
    p99_s: float
    p50_s: float

    @classmethod
    def of(cls, samples: list[tuple[float, bool]]) -> Stream:
        """Summarise (latency, succeeded) pairs; failed statements count, they waited too."""
        latencies = [s for s, _ in samples] or [0.0]
        return cls(
            statements=len(samples),
            failed=sum(1 for _, ok in samples if not ok),
            max_s=max(latencies),
            p99_s=percentile(latencies, 0.99),
            p50_s=percentile(latencies, 0.50),
        )


class AppLoad(BaseModel):
    """What the application felt during one execution."""

    model_config = ConfigDict(frozen=True)

    insert_dropped: Stream  # INSERT INTO api_errors, a table the rollback drops
    insert_kept: Stream  # INSERT INTO assets, a table that stays
    read_kept: Stream  # SELECT … FROM assets WHERE owner_id = …


class ScalePoint(BaseModel):
    """Every figure at one scale."""

    model_config = ConfigDict(frozen=True)

    scale: float
    rows: int
    dropped_rows: int
    database_bytes: int
    build_s: float
    repeat: int
    plan: Spread  # rollbot plan → awaiting approval
    pg_dump_plain: Spread  # pg_dump > backup.sql
    pg_dump_custom: Spread  # pg_dump -Fc, then pg_restore -f /dev/null
    plain_bytes: int
    custom_bytes: int
    rollbot_backup_bytes: int
    execute: Spread  # rollbot approve RUN, up to the committed, stored outcome it prints
    psql: Spread  # psql -f (the seed's SQL)
    load_rollbot: tuple[AppLoad, ...]
    load_psql: tuple[AppLoad, ...]
    restore: Spread  # rollbot restore RUN + rollbot approve RESTORE_RUN
    restore_plan: Spread  # the first of those two
    restore_psql: Spread  # psql < backup.sql into a rolled-back copy
    restore_pg_restore: Spread  # pg_restore of the custom-format dump into one
    peak_kib: dict[str, dict[str, int]]  # step -> program -> largest VmHWM seen
    outcomes: tuple[str, ...]  # each rollbot run's final state, in order
    # Quarantine mode: the rest of `rollbot approve`, the dump of the quarantine after COMMIT
    # (locks nothing the application uses). None in drop mode, where it is inside execution.
    final_dump: Spread | None = None

    @property
    def plan_vs_plain(self) -> float:
        """Ready for approval / the seed's backup."""
        return ratio(self.plan.median_s, self.pg_dump_plain.median_s)

    @property
    def plan_vs_custom(self) -> float:
        """Ready for approval / pg_dump -Fc + pg_restore -f /dev/null."""
        return ratio(self.plan.median_s, self.pg_dump_custom.median_s)

    @property
    def execute_vs_psql(self) -> float:
        """Execution: `rollbot approve` / `psql -f`."""
        return ratio(self.execute.median_s, self.psql.median_s)

    @property
    def restore_vs_psql(self) -> float:
        """Restore: `rollbot restore` + approve / `psql < backup.sql`."""
        return ratio(self.restore.median_s, self.restore_psql.median_s)

    @property
    def restore_vs_pg_restore(self) -> float:
        """Restore: `rollbot restore` + approve / `pg_restore`."""
        return ratio(self.restore.median_s, self.restore_pg_restore.median_s)


class ScaleResult(BaseModel):
    """The scale scenario: its options and one point per scale, smallest first."""

    model_config = ConfigDict(frozen=True)

    repeat: int
    drop_mode: str | None
    points: tuple[ScalePoint, ...]


def run_scale(
    server: Server,
    tools: Tools,
    workdir: Path,
    options: ScaleOptions,
    progress: Callable[[str], None] = lambda _text: None,
) -> ScaleResult:
    """Build each scale's database, measure it, drop it; the points come back in order."""
    if options.drop_mode is not None and options.drop_mode not in DROP_MODES:
        raise ValueError(f"drop mode must be one of {DROP_MODES}, got {options.drop_mode!r}")
    # An installed rollbot has its bytecode compiled at install time (pip does so); run from
    # a checkout under PYTHONDONTWRITEBYTECODE, every command would compile its modules anew.
    compileall.compile_dir(ROOT / "bot", quiet=1)
    points = []
    for scale in sorted(options.scales):
        progress(f"scale {scale:g}: building {sum(rows_at(scale).values()):,} rows")
        with scaled_template(server, scale) as built:
            progress(f"  built {built.database_bytes / 2**20:,.0f} MiB in {built.build_s:.1f} s")
            directory = workdir / f"scale-{scale:g}"
            case = _Case(server, tools, directory, options, built.name, progress, built.rows)
            points.append(case.measure(scale, built.database_bytes, built.build_s))
    return ScaleResult(repeat=options.repeat, drop_mode=options.drop_mode, points=tuple(points))


@dataclass(frozen=True)
class _Timed:
    """One child program's run: how it ended, how long it took, what it printed."""

    wall_s: float
    returncode: int
    stdout: str
    stderr: str
    peaks: dict[str, int]
    marked_s: float | None = None  # when a line starting with the marker reached stderr


@dataclass
class _Samples:
    """Everything gathered over the repeats, before it is summarised."""

    plan: list[float]
    plain: list[float]
    custom: list[float]
    execute: list[float]
    psql: list[float]
    restore: list[float]
    restore_plan: list[float]
    restore_psql: list[float]
    restore_pg_restore: list[float]
    final_dump: list[float]
    load_rollbot: list[AppLoad]
    load_psql: list[AppLoad]
    peaks: dict[str, dict[str, int]]
    outcomes: list[str]
    sizes: dict[str, int]

    def peak(self, step: str, found: dict[str, int]) -> None:
        mine = self.peaks.setdefault(step, {})
        for program, kib in found.items():
            mine[program] = max(mine.get(program, 0), kib)


@dataclass
class _Round:
    """One repeat's two copies, rollbot's settings, the raw dumps, and the run planned."""

    mine: str  # rollbot's copy
    theirs: str  # the raw tools' copy
    env: dict[str, str]
    plain: Path
    custom: Path
    script: Path
    rolled_back: str  # template the raw restores start from
    got: _Samples
    run_id: int = 0


@dataclass
class _Case:
    """One scale's template, and the databases and files its repeats make from it."""

    server: Server
    tools: Tools
    workdir: Path
    options: ScaleOptions
    template: str
    progress: Callable[[str], None]
    rows: dict[str, int]

    def measure(self, scale: float, size: int, build_s: float) -> ScalePoint:
        """Alternate rollbot and the raw tools `repeat` times; summarise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = self.workdir / "seed_0023_rollback.sql"
        script.write_text(seed_sql(), encoding="utf-8")
        got = _Samples([], [], [], [], [], [], [], [], [], [], [], [], {}, [], {})
        state = self.server.create("bench_state")
        rolled_back = self._rolled_back_template(script)
        try:
            for i in range(self.options.repeat):
                self.progress(f"  repeat {i + 1} of {self.options.repeat}")
                self._repeat(i, script, rolled_back, self.server.database(state), got)
        finally:
            self.server.drop(rolled_back)
            self.server.drop(state)
        expected = dropped_rows(scale)
        return ScalePoint(
            scale=scale,
            rows=sum(self.rows.values()),
            dropped_rows=expected,
            database_bytes=size,
            build_s=build_s,
            repeat=self.options.repeat,
            plan=Spread.of(got.plan),
            pg_dump_plain=Spread.of(got.plain),
            pg_dump_custom=Spread.of(got.custom),
            plain_bytes=got.sizes.get("plain", 0),
            custom_bytes=got.sizes.get("custom", 0),
            rollbot_backup_bytes=got.sizes.get("rollbot", 0),
            execute=Spread.of(got.execute),
            psql=Spread.of(got.psql),
            load_rollbot=tuple(got.load_rollbot),
            load_psql=tuple(got.load_psql),
            restore=Spread.of(got.restore),
            restore_plan=Spread.of(got.restore_plan),
            restore_psql=Spread.of(got.restore_psql),
            restore_pg_restore=Spread.of(got.restore_pg_restore),
            peak_kib=got.peaks,
            outcomes=tuple(got.outcomes),
            final_dump=Spread.of(got.final_dump) if got.final_dump else None,
        )

    def _rolled_back_template(self, script: Path) -> str:
        """A copy rolled back by psql, for the raw restores to start from."""
        name = self.server.create("bench_rolledback", self.template, file_copy=True)
        finished = run_psql_file(self.tools.psql, self.server.database(name), script)
        if finished.returncode != 0:
            raise RuntimeError(f"psql's rollback failed: {finished.stderr.strip()}")
        return name

    def _repeat(self, i: int, script: Path, rolled_back: str, state: str, got: _Samples) -> None:
        backups = self.workdir / "rollbot-backups"
        with (
            self.server.clone(self.template, "bench_rollbot", file_copy=True) as mine,
            self.server.clone(self.template, "bench_psql", file_copy=True) as theirs,
        ):
            rnd = _Round(
                mine=mine,
                theirs=theirs,
                env=self._environment(mine, state, backups),
                plain=self.workdir / "backup.sql",
                custom=self.workdir / "backup.dump",
                script=script,
                rolled_back=rolled_back,
                got=got,
            )
            first = i % 2 == 0
            _in_order(first, lambda: self._plan(rnd), lambda: self._dumps(rnd))
            _in_order(first, lambda: self._execute(rnd), lambda: self._psql(rnd))
            _in_order(first, lambda: self._restore(rnd), lambda: self._raw_restores(rnd))
        for leftover in (rnd.plain, rnd.custom, *(backups.iterdir() if backups.is_dir() else ())):
            leftover.unlink(missing_ok=True)

    def _plan(self, rnd: _Round) -> None:
        """Ready for approval: a fresh run on a fresh copy, planned, backed up, rehearsed."""
        self.server.settle()
        timed = _rollbot(["plan", "0023", "--requested-by", REQUESTER], rnd.env)
        run = _run_json(timed, "plan", "awaiting_approval")
        rnd.got.plan.append(timed.wall_s)
        rnd.got.peak("plan", timed.peaks)
        rnd.got.sizes["rollbot"] = int(run["backup"]["full"]["size_bytes"])
        rnd.got.outcomes.append(f"plan: {run['state']}")
        rnd.run_id = int(run["id"])

    def _dumps(self, rnd: _Round) -> None:
        """The seed's backup, and a custom-format dump read back once."""
        self.server.settle()
        timed = _pg_dump_plain(self.tools, rnd.theirs, rnd.plain)
        rnd.got.plain.append(timed.wall_s)
        rnd.got.peak("pg_dump > backup.sql", timed.peaks)
        rnd.got.sizes["plain"] = rnd.plain.stat().st_size
        self.server.settle()
        timed = _pg_dump_custom(self.tools, rnd.theirs, rnd.custom)
        rnd.got.custom.append(timed.wall_s)
        rnd.got.peak("pg_dump -Fc + pg_restore", timed.peaks)
        rnd.got.sizes["custom"] = rnd.custom.stat().st_size

    def _execute(self, rnd: _Round) -> None:
        """`rollbot approve` of the run just planned, with the application running."""
        self.server.settle()
        with _Application(rnd.mine, self.options) as app:
            timed = _rollbot(
                ["approve", str(rnd.run_id), "--as", APPROVER], rnd.env, marker=COMMITTED
            )
        run = _run_json(timed, "approve", "succeeded")
        _check_dropped(run)
        if timed.marked_s is None:  # drop mode: the final backup is inside the transaction
            rnd.got.execute.append(timed.wall_s)
        else:
            rnd.got.execute.append(timed.marked_s)
            rnd.got.final_dump.append(timed.wall_s - timed.marked_s)
        rnd.got.load_rollbot.append(app.load())
        rnd.got.peak("approve", timed.peaks)
        rnd.got.outcomes.append(f"approve: {run['state']}")

    def _psql(self, rnd: _Round) -> None:
        """The seed's SQL through psql, with the same application running."""
        self.server.settle()
        with (
            _Application(rnd.theirs, self.options) as app,
            ChildPeaks(interval_s=PEAK_INTERVAL_S, tree=True) as peaks,
        ):
            finished = run_psql_file(self.tools.psql, rnd.theirs, rnd.script)
        if finished.returncode != 0:
            raise RuntimeError(f"psql's rollback failed: {finished.stderr.strip()}")
        rnd.got.psql.append(finished.wall_s)
        rnd.got.load_psql.append(app.load())
        rnd.got.peak("psql -f", peaks.peaks_kib())

    def _restore(self, rnd: _Round) -> None:
        """`rollbot restore RUN`, then the approval that puts the tables back."""
        self.server.settle()
        began = time.perf_counter()
        timed = _rollbot(["restore", str(rnd.run_id), "--requested-by", REQUESTER], rnd.env)
        run = _run_json(timed, "restore", "awaiting_approval")
        rnd.got.restore_plan.append(timed.wall_s)
        rnd.got.peak("restore", timed.peaks)
        timed = _rollbot(["approve", str(run["id"]), "--as", APPROVER], rnd.env)
        done = _run_json(timed, "approve the restore", "succeeded")
        rnd.got.restore.append(time.perf_counter() - began)
        rnd.got.peak("restore", timed.peaks)
        rnd.got.outcomes.append(f"restore: {done['state']}")
        _check_restored(rnd.mine, self.rows)

    def _raw_restores(self, rnd: _Round) -> None:
        """The seed's backup put back into a rolled-back copy: by psql, then by pg_restore."""
        with self.server.clone(rnd.rolled_back, "bench_restore", file_copy=True) as copy:
            self.server.settle()
            rnd.got.restore_psql.append(_psql_restore(self.tools, copy, rnd.plain))
            _check_restored(copy, self.rows)
        with self.server.clone(rnd.rolled_back, "bench_restore", file_copy=True) as copy:
            self.server.settle()
            rnd.got.restore_pg_restore.append(_pg_restore(self.tools, copy, rnd.custom))
            _check_restored(copy, self.rows)

    def _environment(self, target: str, state: str, backups: Path) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": target,
            "ROLLBOT_STATE_URL": state,
            "ROLLBOT_RUNBOOKS_DIR": str(ROOT / "runbooks"),
            "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
            "ROLLBOT_BACKUP_DIR": str(backups),
            "ROLLBOT_APPROVERS": APPROVER,
        }
        for unset in ("ROLLBOT_TARGETS", "SLACK_BOT_TOKEN", "ROLLBOT_LOG_LEVEL"):
            env.pop(unset, None)
        if self.options.drop_mode is not None:
            env["ROLLBOT_DROP_MODE"] = self.options.drop_mode
        return env


def _in_order(first_is_a: bool, a: Callable[[], None], b: Callable[[], None]) -> None:
    """A then B, or B then A: alternating keeps a warm cache or a busy core from taking sides."""
    for step in (a, b) if first_is_a else (b, a):
        step()


def _rollbot_command() -> list[str]:
    script = Path(sys.executable).parent / "rollbot"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bot"]


def _timed(
    args: list[str],
    env: dict[str, str],
    stdout: int | TextIO = subprocess.PIPE,
    marker: str | None = None,
) -> _Timed:
    """Run a child to its end; `marker`: also when a stderr line starting with it came."""
    marked: list[float] = []
    said: list[str] = []
    with ChildPeaks(interval_s=PEAK_INTERVAL_S, tree=True) as peaks:
        started = time.perf_counter()
        child = subprocess.Popen(
            args, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )

        def listen() -> None:
            assert child.stderr is not None
            for line in child.stderr:
                if marker is not None and not marked and line.startswith(marker):
                    marked.append(time.perf_counter() - started)
                said.append(line)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        out = child.stdout.read() if child.stdout is not None else ""
        child.wait()
        wall_s = time.perf_counter() - started
        listener.join()
    return _Timed(
        wall_s,
        child.returncode,
        out,
        "".join(said),
        peaks.peaks_kib(),
        marked[0] if marked else None,
    )


# What `rollbot approve` says on stderr once the outcome is printed, before the final dump.
COMMITTED = "rollbot: committed; taking the final backup"


def _rollbot(args: list[str], env: dict[str, str], marker: str | None = None) -> _Timed:
    return _timed([*_rollbot_command(), *args, "--json"], env, marker=marker)


def _run_json(timed: _Timed, step: str, state: str) -> dict[str, Any]:
    """The run the CLI printed; RuntimeError unless it reached `state`."""
    try:
        run: dict[str, Any] = json.loads(timed.stdout)
    except json.JSONDecodeError:
        run = {}
    if run.get("state") != state:
        said = timed.stderr.strip().splitlines()[-5:]
        outcome = json.dumps(run.get("outcome") or run.get("reason") or "")[:500]
        msg = (
            f"rollbot {step} ended {run.get('state', 'without a run')} (exit {timed.returncode}),"
            f" not {state}: {outcome} {' | '.join(said)}"
        )
        raise RuntimeError(msg)
    return run


def _check_dropped(run: dict[str, Any]) -> None:
    tables = {t["table"] for t in run["outcome"]["dropped"]}
    if tables != {f"public.{t}" for t in MIGRATION_0023_TABLES}:
        raise RuntimeError(f"rollbot dropped {sorted(tables)}, not the six tables of 0023")


def _check_restored(conninfo: str, rows: dict[str, int]) -> None:
    """The six tables are back with at least their rows (the application may have added)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in MIGRATION_0023_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() in (None, (None,)):
                raise RuntimeError(f"{table} is not back after the restore")
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            found = conn.execute(query).fetchone()
            if found is None or int(found[0]) < rows[table]:
                raise RuntimeError(f"{table} has {found} rows after the restore, not {rows[table]}")


def _client(conninfo: str, name: str) -> tuple[str, dict[str, str]]:
    target = child_connection(conninfo, name, os.environ)
    return target.dbname_arg, target.env


def _pg_dump_plain(tools: Tools, conninfo: str, file: Path) -> _Timed:
    """The seed's backup step, `pg_dump > backup.sql`: plain SQL of the whole database."""
    dbname, env = _client(conninfo, "bench pg_dump")
    with file.open("w", encoding="utf-8") as out:
        timed = _timed([str(tools.pg.pg_dump), f"--dbname={dbname}"], env, stdout=out)
    _ok(timed, "pg_dump > backup.sql")
    return timed


def _pg_dump_custom(tools: Tools, conninfo: str, file: Path) -> _Timed:
    """`pg_dump -Fc`, then `pg_restore -f /dev/null`: a dump read back once, as rollbot does."""
    dbname, env = _client(conninfo, "bench pg_dump")
    dump = _timed([str(tools.pg.pg_dump), "-Fc", f"--file={file}", f"--dbname={dbname}"], env)
    _ok(dump, "pg_dump -Fc")
    read = _timed([str(tools.pg.pg_restore), "--file=/dev/null", str(file)], env)
    _ok(read, "pg_restore -f /dev/null")
    peaks = dict(dump.peaks)
    for program, kib in read.peaks.items():
        peaks[program] = max(peaks.get(program, 0), kib)
    return _Timed(dump.wall_s + read.wall_s, 0, "", "", peaks)


def _psql_restore(tools: Tools, conninfo: str, file: Path) -> float:
    """The guide's restore, `psql -d … < backup.sql`: objects that exist fail and are skipped."""
    dbname, env = _client(conninfo, "bench psql")
    with file.open(encoding="utf-8") as script:
        started = time.perf_counter()
        done = subprocess.run(
            [str(tools.psql), "-X", "-q", f"--dbname={dbname}"],
            stdin=script,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"psql < backup.sql failed (exit {done.returncode}): {done.stderr}")
    return wall_s


def _pg_restore(tools: Tools, conninfo: str, file: Path) -> float:
    """`pg_restore --dbname=… backup.dump`: as above, it reports the objects that exist."""
    dbname, env = _client(conninfo, "bench pg_restore")
    started = time.perf_counter()
    done = subprocess.run(
        [str(tools.pg.pg_restore), f"--dbname={dbname}", str(file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    # Exit 1 with "errors ignored on restore" is how pg_restore reports the existing objects.
    ignored = done.returncode == 1 and "errors ignored on restore" in done.stderr
    if done.returncode != 0 and not ignored:
        raise RuntimeError(f"pg_restore failed (exit {done.returncode}): {done.stderr[-500:]}")
    return wall_s


def _ok(timed: _Timed, what: str) -> None:
    if timed.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {timed.returncode}): {timed.stderr.strip()}")


# The application: statements it runs all day, each on its own connection.
_INSERT_DROPPED = (
    "INSERT INTO api_errors (endpoint, method, status_code, message)"
    " VALUES ('/api/generate', 'POST', 502, 'Meshy answered 502')"
)
_INSERT_KEPT = (
    "INSERT INTO assets (owner_id, name, type) VALUES (md5('users:1')::uuid, 'Crate', 'prop')"
)
_READ_KEPT = "SELECT id, name FROM assets WHERE owner_id = md5('users:' || %s)::uuid LIMIT 20"


class _Application:
    """Three connections running statements back to back while open, each one timed."""

    def __init__(self, conninfo: str, options: ScaleOptions) -> None:
        self._conninfo = conninfo
        self._options = options
        self._stop = threading.Event()
        self._samples: dict[str, list[tuple[float, bool]]] = {
            "insert_dropped": [],
            "insert_kept": [],
            "read_kept": [],
        }
        self._threads = [
            threading.Thread(target=self._loop, args=(name,), name=f"bench-app-{name}")
            for name in self._samples
        ]

    def __enter__(self) -> Self:
        self._ready = threading.Barrier(len(self._threads) + 1, timeout=30)
        for thread in self._threads:
            thread.start()
        self._ready.wait()
        time.sleep(self._options.warmup_s)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(self._options.tail_s)
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def load(self) -> AppLoad:
        """What each stream saw."""
        return AppLoad(**{name: Stream.of(s) for name, s in self._samples.items()})

    def _loop(self, name: str) -> None:
        samples = self._samples[name]
        with _connection(self._conninfo) as conn:
            self._ready.wait()
            n = 0
            while not self._stop.is_set():
                n += 1
                started = time.perf_counter()
                ok = True
                try:
                    if name == "read_kept":
                        conn.execute(_READ_KEPT, (n % 1000 + 1,)).fetchall()
                    else:
                        conn.execute(_INSERT_DROPPED if name == "insert_dropped" else _INSERT_KEPT)
                except psycopg.Error:
                    ok = False
                samples.append((time.perf_counter() - started, ok))
                self._stop.wait(self._options.pace_s)


@contextlib.contextmanager
def _connection(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(conninfo, autocommit=True, application_name="bench app") as conn:
        yield conn
