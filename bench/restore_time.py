"""The restore of a quarantined run, repeated: `rollbot restore` + `rollbot approve`, timed.

The scale scenario times one restore per repeat, after a plan, an execution and a final dump
of its own, on a machine whose load changes under it; a single wall time says little there.
This times only the restore, as often as asked, each time from the same starting point: one
rollback at the given scale, its target and state databases copied once, and every repeat
restoring from fresh copies of both (same names: a run is bound to its database's name). The
two commands' CPU time, from the children's rusage, is reported beside their wall time: it is
what a busy machine changes least.

    .venv/bin/python -m bench.restore_time --scale 1 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.dataset import build_scaled
from bench.scale import APPROVER, REQUESTER
from bench.server import Server, open_server
from demo.sample import MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Build, roll back once, then time `--repeat` restores; print each and the medians."""
    parser = argparse.ArgumentParser(prog="python -m bench.restore_time")
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 1.8M rows, ~600 MiB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server", help="a maintenance database's conninfo (default: local)")
    args = parser.parse_args(argv)
    with open_server(args.server) as server, tempfile.TemporaryDirectory() as work:
        names = {
            "target": f"bench_rt_target_{os.getpid()}",
            "state": f"bench_rt_state_{os.getpid()}",
        }
        env = _environment(server, names, Path(work))
        try:
            run_id = _rolled_back(server, names, env, args.scale)
            samples = [_restore(server, names, env, run_id) for _ in range(args.repeat)]
        finally:
            for name in names.values():
                _drop(server, name)
                _drop(server, f"{name}_snap")
    for label, index in (("wall", 0), ("CPU", 1)):
        values = [s[index] for s in samples]
        print(
            f"restore + approve, {label}: median {statistics.median(values):.2f} s "
            f"({min(values):.2f}-{max(values):.2f}) over {len(values)}"
        )
    return 0


def _rolled_back(server: Server, names: dict[str, str], env: dict[str, str], scale: float) -> int:
    """A rollback of 0023 in quarantine mode, its final backup taken; both databases copied."""
    for name in names.values():
        _recreate(server, name)
    build_scaled(server.database(names["target"]), scale)
    plan = _run(["plan", "0023", "--requested-by", REQUESTER], env, "awaiting_approval")
    _run(["approve", str(plan["id"]), "--as", APPROVER], env, "succeeded")
    for name in names.values():
        _recreate(server, f"{name}_snap", template=name)
    return int(plan["id"])


def _restore(
    server: Server, names: dict[str, str], env: dict[str, str], run_id: int
) -> tuple[float, float]:
    """One restore from fresh copies: wall and CPU seconds of the two commands together."""
    for name in names.values():
        _recreate(server, name, template=f"{name}_snap")
    server.settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    restore = _run(["restore", str(run_id), "--requested-by", REQUESTER], env, "awaiting_approval")
    _run(["approve", str(restore["id"]), "--as", APPROVER], env, "succeeded")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"restore + approve: {wall:.2f} s wall, {cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}")
    return wall, cpu


def _run(args: list[str], env: dict[str, str], state: str) -> dict[str, Any]:
    """`python -m bot ARGS --json` from this checkout; RuntimeError unless the run is in `state`."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        run: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        run = {}
    if run.get("state") != state:
        msg = f"rollbot {args[0]} ended {run.get('state')}, not {state}: {done.stderr[-500:]}"
        raise RuntimeError(msg)
    return run


def _environment(server: Server, names: dict[str, str], work: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": server.database(names["target"]),
        "ROLLBOT_STATE_URL": server.database(names["state"]),
        "ROLLBOT_RUNBOOKS_DIR": str(ROOT / "runbooks"),
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
        "ROLLBOT_BACKUP_DIR": str(work / "backups"),
        "ROLLBOT_APPROVERS": APPROVER,
        "ROLLBOT_DROP_MODE": "quarantine",
    }
    for unset in ("ROLLBOT_TARGETS", "SLACK_BOT_TOKEN", "ROLLBOT_LOG_LEVEL"):
        env.pop(unset, None)
    return env


def _recreate(server: Server, name: str, template: str | None = None) -> None:
    _drop(server, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {} STRATEGY FILE_COPY").format(
            statement, sql.Identifier(template)
        )
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(statement)


def _drop(server: Server, name: str) -> None:
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


if __name__ == "__main__":
    sys.exit(main())
