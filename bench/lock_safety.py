"""Lock safety: how long the application's reads stall while a rollback waits for a lock.

A session holds a lock on `assets` (a report that opened a transaction and read the table)
for `blocker_s` seconds. Meanwhile reader threads, each on its own connection, keep running a
short indexed count on `assets` and record every read's latency. The rollback starts while
the blocker holds its lock:

- rollbot asks for ACCESS EXCLUSIVE under `lock_timeout` and gives up (retrying with jittered
  backoff) when it does not get it, so a read queued behind its request waits at most that long;
- the guide's SQL through psql asks with no timeout and waits until the blocker leaves, and
  every read queued behind it waits just as long.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Literal, TypeVar

import psycopg
from pydantic import BaseModel, ConfigDict

from bench.plans import plan_for, seed_runbook, tables_left
from bench.raw import run_psql_file, seed_sql
from bench.stats import Latencies, ratio
from bot.target.database import TargetDatabase
from bot.target.execute import RetryPolicy, execute_plan
from demo.sample import MIGRATION_0023_TABLES, ROWS_AT_SCALE_1

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bench.raw import Finished
    from bench.server import Server, Tools
    from bot.core.results import Outcome

T = TypeVar("T")
READ = "SELECT count(*) FROM assets WHERE owner_id = md5('users:' || %s)::uuid"
HOLD = "SELECT count(*) FROM assets WHERE status = 'ready'"  # in a transaction left open
READ_PAUSE_S = 0.02  # between one reader's reads: a busy app, not a load test


class LockOptions(BaseModel):
    """The timeline: how long the blocker stays, and how rollbot is told to behave."""

    model_config = ConfigDict(frozen=True)

    blocker_s: float = 8.0
    lock_timeout_s: float = 1.0
    attempts: int = 3
    retry_delay_s: float = 1.0  # base of the jittered exponential backoff
    readers: int = 4
    warmup_s: float = 1.0  # reads before the blocker arrives: the undisturbed baseline
    tail_s: float = 0.5  # reads after the rollback has finished
    seed: int = 23  # of the backoff jitter, so a run can be repeated


class LockCase(BaseModel):
    """One runner's rollback under the blocker, and what the readers saw meanwhile."""

    model_config = ConfigDict(frozen=True)

    runner: Literal["rollbot", "psql"]
    latencies: Latencies
    rollback_s: float
    blocker_left_s: float  # when the blocker let go, from the start of the rollback
    succeeded: bool
    attempts: int | None  # rollbot only
    blocker_pid: int
    named_pids: tuple[int, ...]  # the sessions rollbot named when it gave up
    summary: str


class LockSafety(BaseModel):
    """Both runners on identical clones, and how much longer psql made the worst read."""

    model_config = ConfigDict(frozen=True)

    scale: int
    options: LockOptions
    rollbot: LockCase
    psql: LockCase
    worst_ratio: float  # psql's worst read / rollbot's worst read


def run_lock_safety(
    server: Server, template: str, tools: Tools, workdir: Path, *, scale: int, options: LockOptions
) -> LockSafety:
    """Run the rollbot case, then the psql case, each on its own clone of `template`."""
    with server.clone(template) as conninfo:
        rollbot = _rollbot_case(conninfo, tools, workdir, scale, options)
    with server.clone(template) as conninfo:
        psql = _psql_case(conninfo, tools, workdir, scale, options)
    return LockSafety(
        scale=scale,
        options=options,
        rollbot=rollbot,
        psql=psql,
        worst_ratio=ratio(psql.latencies.worst_s, rollbot.latencies.worst_s),
    )


def _rollbot_case(
    conninfo: str, tools: Tools, workdir: Path, scale: int, options: LockOptions
) -> LockCase:
    runbook = seed_runbook()
    plan = plan_for(conninfo, runbook, lock_timeout_s=options.lock_timeout_s)
    jitter = random.Random(options.seed).uniform  # noqa: S311 - backoff, not cryptography
    retry = RetryPolicy(attempts=options.attempts, base_delay_s=options.retry_delay_s)

    def rollback() -> Outcome:
        return execute_plan(
            plan,
            runbook,
            target=TargetDatabase.at(conninfo),
            tools=tools.pg,
            backup_dir=workdir / "lock-safety-backups",
            run_id=1,
            on_commit_pending=lambda _xid: None,
            retry=retry,
            jitter=jitter,
        )

    timeline = _Timeline(conninfo, scale, options)
    outcome = timeline.run(rollback)
    named = tuple(b.pid for b in outcome.blockers)
    if outcome.succeeded:
        when = "after" if timeline.rollback_s > timeline.blocker_left_s else "before"
        summary = (
            f"succeeded on attempt {outcome.attempts}, {when} the blocker left "
            f"({timeline.rollback_s:.1f} s)"
        )
    elif outcome.sqlstate == "55P03":
        who = "the blocker" if timeline.blocker_pid in named else "NOT the blocker"
        pids = ", ".join(str(p) for p in named) or "nobody"
        summary = (
            f"gave up after {outcome.attempts} attempts ({timeline.rollback_s:.1f} s) naming "
            f"pid {pids} ({who}); nothing changed"
        )
    else:
        summary = f"failed: {outcome.error}"
    return LockCase(
        runner="rollbot",
        latencies=timeline.latencies(),
        rollback_s=timeline.rollback_s,
        blocker_left_s=timeline.blocker_left_s,
        succeeded=outcome.succeeded,
        attempts=outcome.attempts,
        blocker_pid=timeline.blocker_pid,
        named_pids=named,
        summary=summary,
    )


def _psql_case(
    conninfo: str, tools: Tools, workdir: Path, scale: int, options: LockOptions
) -> LockCase:
    script = workdir / "seed_0023_rollback.sql"
    script.write_text(seed_sql(), encoding="utf-8")
    timeline = _Timeline(conninfo, scale, options)
    finished: Finished = timeline.run(lambda: run_psql_file(tools.psql, conninfo, script))
    returncode = finished.returncode
    left = tables_left(conninfo, MIGRATION_0023_TABLES)
    succeeded = returncode == 0 and not left
    if succeeded and timeline.rollback_s > timeline.blocker_left_s:
        summary = (
            f"waited {timeline.blocker_left_s:.1f} s for the blocker, then succeeded "
            f"({timeline.rollback_s:.1f} s)"
        )
    elif succeeded:
        summary = f"succeeded before the blocker left ({timeline.rollback_s:.1f} s)"
    else:
        error = finished.stderr.strip().splitlines()[:1]
        summary = f"failed (exit {returncode}): {' '.join(error) or f'{left} still there'}"
    return LockCase(
        runner="psql",
        latencies=timeline.latencies(),
        rollback_s=timeline.rollback_s,
        blocker_left_s=timeline.blocker_left_s,
        succeeded=succeeded,
        attempts=None,
        blocker_pid=timeline.blocker_pid,
        named_pids=(),
        summary=summary,
    )


class _Timeline:
    """Readers, then the blocker, then the rollback; readers go on until it is all over."""

    def __init__(self, conninfo: str, scale: int, options: LockOptions) -> None:
        self._conninfo = conninfo
        self._owners = ROWS_AT_SCALE_1["users"] * scale
        self._options = options
        self._stop = threading.Event()
        self._samples: list[list[float]] = [[] for _ in range(options.readers)]
        self._errors: list[BaseException] = []
        self.blocker_pid = 0
        self.rollback_s = 0.0
        self.blocker_left_s = 0.0
        self._started = 0.0

    def run(self, rollback: Callable[[], T]) -> T:
        """Run `rollback` while the blocker holds its lock; return what it returned."""
        readers = [
            threading.Thread(target=self._read, args=(i,), name=f"bench-reader-{i}", daemon=True)
            for i in range(self._options.readers)
        ]
        holding, release = threading.Event(), threading.Event()
        blocker = threading.Thread(
            target=self._block, args=(holding, release), name="bench-blocker", daemon=True
        )
        for reader in readers:
            reader.start()
        try:
            time.sleep(self._options.warmup_s)
            blocker.start()
            if not holding.wait(timeout=10) or self._errors:
                raise RuntimeError("the blocker never got its lock")
            self._started = time.perf_counter()
            result = rollback()
            self.rollback_s = time.perf_counter() - self._started
            blocker.join()
            time.sleep(self._options.tail_s)
        finally:
            release.set()
            self._stop.set()
            for thread in (*readers, blocker):
                if thread.ident is not None:  # started
                    thread.join(timeout=30)
        if self._errors:
            raise self._errors[0]
        return result

    def latencies(self) -> Latencies:
        """Every read of every reader, summarised."""
        return Latencies.of([s for samples in self._samples for s in samples])

    def _read(self, index: int) -> None:
        samples = self._samples[index]
        try:
            with psycopg.connect(
                self._conninfo, autocommit=True, application_name=f"bench reader {index}"
            ) as conn:
                n = index
                while not self._stop.is_set():
                    n += self._options.readers
                    started = time.perf_counter()
                    conn.execute(READ, (n % self._owners + 1,)).fetchone()
                    samples.append(time.perf_counter() - started)
                    self._stop.wait(READ_PAUSE_S)
        except psycopg.Error as exc:
            self._errors.append(exc)

    def _block(self, holding: threading.Event, release: threading.Event) -> None:
        try:
            with psycopg.connect(self._conninfo, application_name="report-job") as conn:
                conn.execute(HOLD).fetchone()  # ACCESS SHARE on assets until the rollback
                self.blocker_pid = conn.info.backend_pid
                holding.set()
                release.wait(self._options.blocker_s)
                conn.rollback()
                self.blocker_left_s = time.perf_counter() - self._started
        except psycopg.Error as exc:
            self._errors.append(exc)
            holding.set()
