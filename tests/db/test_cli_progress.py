"""`rollbot plan` draws its backup's progress bar on a terminal, and only there.

The bar is for a person watching a long dump; a script reading stderr through a pipe must get
the plain `run N: …` lines alone, without a cursor movement or a colour in them. So the CLI is
run twice on the sample: once under a pseudo-terminal, as a person's shell runs it, and once
with pipes, as a script does.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from demo.sample import MIGRATIONS_DIR
from tests.fix_rollbot import REQUESTER, RUNBOOKS

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow  # each test starts a `rollbot plan`, about a second

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# rich's DownloadColumn and the text around it: `167.0/475.1 kB written, of at most …`.
_BAR = re.compile(
    r"run 1: backup \S* (\d+(?:\.\d+)?)/(\d+(?:\.\d+)?) (bytes|kB|MB|GB) "
    r"written, of at most the tables' size;"
)
_UNITS = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_DEADLINE_S = 60


def _env(conninfo: str, tmp_path: Path) -> dict[str, str]:
    """The sample's settings; none of the variables that make rich colour a pipe or not."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROLLBOT_", "SLACK_", "PG", "DATABASE_URL"))
        and k not in {"FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"}
    }
    env.update(
        DATABASE_URL=conninfo,
        ROLLBOT_RUNBOOKS_DIR=str(RUNBOOKS),
        ROLLBOT_BACKUP_DIR=str(tmp_path / "backups"),
        ROLLBOT_MIGRATIONS_DIR=str(MIGRATIONS_DIR),
        TERM="xterm-256color",
    )
    return env


def _plan() -> list[str]:
    return [sys.executable, "-m", "bot", "plan", "0023", "--requested-by", REQUESTER]


def _on_a_terminal(env: dict[str, str]) -> tuple[int, str]:
    """Exit status and everything written to the terminal, stdout and stderr, until exit."""
    master, slave = pty.openpty()
    termios.tcsetwinsize(slave, (40, 160))
    with subprocess.Popen(_plan(), stdin=slave, stdout=slave, stderr=slave, env=env) as process:
        os.close(slave)
        written = bytearray()
        deadline = time.monotonic() + _DEADLINE_S
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1.0)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every copy of the slave is closed, the process is gone
                    break
                if not chunk:
                    break
                written += chunk
        finally:
            os.close(master)
            if process.poll() is None:
                process.kill()
        status = process.wait(timeout=10)
    return status, written.decode("utf-8", errors="replace")


def _bytes(figure: str, unit: str) -> float:
    return float(figure) * _UNITS[unit]


def _tables_size(conninfo: str) -> int:
    """All the sample's tables on disk: the bar's far end is the size of some of them."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT sum(pg_table_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname IN ('public', 'drizzle')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_on_a_terminal_the_backup_draws_bytes_written_against_the_tables_size(
    db_0023: str, tmp_path: Path
) -> None:
    """Under a pty the bar shows bytes written of the catalog's size, then the file's size."""
    status, written = _on_a_terminal(_env(db_0023, tmp_path))
    assert status == 0, written
    assert "\x1b[" in written  # rich drew on the terminal: colours and cursor movements
    frames = [
        (_bytes(done, unit), _bytes(total, unit))
        for done, total, unit in _BAR.findall(_ESCAPE.sub("", written))
    ]
    assert frames, written
    dumps = list((tmp_path / "backups").glob("*.dump"))
    assert len(dumps) == 1
    dumped = dumps[0].stat().st_size
    # The last frame: the backup has ended, the bar is full at what was written.
    done, total = frames[-1]
    assert done == total
    assert abs(done - dumped) <= _UNITS["kB"] / 20  # rich shows tenths of a kB, the dump ~170 kB
    # Before that, the far end is the catalog's size of the dumped tables: an upper bound of
    # the compressed file, and no more than all the tables together.
    running = {total for done, total in frames[:-1]}
    assert len(running) == 1, frames
    (expected,) = running
    assert dumped <= expected <= _tables_size(db_0023) * 1.001
    assert all(done <= expected for done, _ in frames[:-1])
    plain = _ESCAPE.sub("", written)
    assert plain.index("run 1: backup started") < plain.index("run 1: backup verified")


def test_through_a_pipe_there_is_no_bar_and_no_escape_code(db_0023: str, tmp_path: Path) -> None:
    """A script gets the plan on stdout and one plain line per step on stderr, nothing else."""
    result = subprocess.run(
        _plan(),
        env=_env(db_0023, tmp_path),
        capture_output=True,
        text=True,
        timeout=_DEADLINE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Run 1: roll back 0023_loud_shen — awaiting approval" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr
    assert "written, of at most" not in result.stderr
    assert result.stderr.splitlines() == [
        "run 1: requested",
        "run 1: backup started",
        "run 1: backup verified",
    ]
