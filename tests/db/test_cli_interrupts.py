"""Ctrl-C and SIGTERM during `rollbot approve`: one line, 128 + the signal, nothing changed.

Each signal is sent once the execution is seen waiting for its lock in pg_stat_activity, not
after a sleep: the moment is the same on a loaded machine as on an idle one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests.db.test_cli import _state, env_for, rollbot
from tests.fix_rollbot import APPROVER, REQUESTER

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.slow  # a plan and a real `rollbot approve` process, seconds each


def _waiting(conninfo: str, run_id: int) -> bool:
    """The run's own session, in this database (other tests' runs share the server), queued."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database() AND wait_event_type = 'Lock'",
            (f"rollbot run {run_id}",),
        ).fetchone()
    return bool(row and row[0])


def _session(conninfo: str, run_id: int) -> bool:
    """Whether the run's execution still has a session in this database."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (f"rollbot run {run_id}",),
        ).fetchone()
    return bool(row and row[0])


def _ignore_sigint() -> None:
    """What a shell without job control does to a command it starts with `&`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _approve_waiting_for_a_lock(
    db: str, tmp_path: Path, preexec: Callable[[], None] | None = None
) -> tuple[int, subprocess.Popen[str], psycopg.Connection[tuple[object, ...]]]:
    """A planned run whose `approve` process is queued behind a reader of `assets`."""
    env = {**env_for(db, tmp_path), "ROLLBOT_LOCK_TIMEOUT": "20s"}
    planned = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    run_id = json.loads(planned.stdout)["id"]
    blocker = psycopg.connect(db)
    blocker.execute("SELECT count(*) FROM assets")  # the exclusive lock waits for this
    approving = subprocess.Popen(
        [sys.executable, "-m", "bot", "approve", str(run_id), "--as", APPROVER],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # noqa: PLW1509 - only sets a signal disposition, before exec
    )
    deadline = time.monotonic() + 60
    while not _waiting(db, run_id):
        assert approving.poll() is None, approving.communicate()
        assert time.monotonic() < deadline, "the execution never waited for its lock"
        time.sleep(0.05)
    return run_id, approving, blocker


def _nothing_changed(db: str, run_id: int) -> None:
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM api_errors").fetchone() == (900,)
    assert _state(db, run_id) == "failed"


@pytest.mark.parametrize(
    ("signum", "preexec", "status"),
    [
        (signal.SIGINT, _ignore_sigint, 130),
        (signal.SIGTERM, None, 143),
    ],
    ids=["sigint-inherited-ignored", "sigterm"],
)
def test_a_signal_in_the_lock_wait_ends_approve_with_one_line(
    db_0023: str,
    tmp_path: Path,
    signum: signal.Signals,
    preexec: Callable[[], None] | None,
    status: int,
) -> None:
    """Started with SIGINT ignored, or sent SIGTERM: still one line, 128 + signal, settled."""
    run_id, approving, blocker = _approve_waiting_for_a_lock(db_0023, tmp_path, preexec)
    with blocker:
        sent = time.monotonic()
        approving.send_signal(signum)
        _, stderr = approving.communicate(timeout=15)
        took = time.monotonic() - sent
    assert approving.returncode == status, stderr
    assert took < 5, f"{took:.1f} s after the signal"
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"rollbot: interrupted; run {run_id} ended failed: "), stderr
    assert "nothing changed" in last
    _nothing_changed(db_0023, run_id)


def test_an_impatient_second_ctrl_c_still_ends_with_one_line(db_0023: str, tmp_path: Path) -> None:
    """Ctrl-C again as the first one's settle begins: no traceback, 130, the run settled."""
    run_id, approving, blocker = _approve_waiting_for_a_lock(db_0023, tmp_path)
    with blocker:
        approving.send_signal(signal.SIGINT)
        # The execution's session is gone once its transaction rolled back: the settle is next.
        while _session(db_0023, run_id) and approving.poll() is None:
            time.sleep(0.01)
        approving.send_signal(signal.SIGINT)
        _, stderr = approving.communicate(timeout=15)
    assert approving.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"rollbot: interrupted; run {run_id} ended")
    _nothing_changed(db_0023, run_id)


def test_ctrl_c_during_the_quarantines_final_backup_says_the_run_succeeded(
    db_0023: str, tmp_path: Path
) -> None:
    """Ctrl-C once the dump of the quarantine is announced: recorded succeeded, said so, no redo."""
    env = env_for(db_0023, tmp_path)
    planned = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    run_id = json.loads(planned.stdout)["id"]
    approving = subprocess.Popen(
        [sys.executable, "-m", "bot", "approve", str(run_id), "--as", APPROVER],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert approving.stderr is not None
    said: list[str] = []
    for line in approving.stderr:  # the line is printed just before pg_dump starts
        said.append(line)
        if line.startswith("rollbot: committed; taking the final backup of "):
            break
    sent = time.monotonic()
    approving.send_signal(signal.SIGINT)
    said += approving.stderr.readlines()
    approving.wait(timeout=15)
    took = time.monotonic() - sent
    stderr = "".join(said)
    assert approving.returncode == 130, stderr
    assert took < 5, f"{took:.1f} s after the signal"
    assert "Traceback" not in stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"rollbot: interrupted after run {run_id} committed: it is recorded succeeded; "
            "its final backup is pending"
        )
    ), stderr
    assert f"run {run_id}: final backup taken" not in stderr  # not started over on the way out
    assert _state(db_0023, run_id) == "succeeded"
    with psycopg.connect(db_0023) as conn:
        gone = conn.execute("SELECT to_regclass('public.api_errors') IS NULL").fetchone()
    assert gone == (True,)
