"""What a person would do without rollbot: the guide's SQL through psql, a plain pg_dump.

The rollback SQL is the guide's ```sql block under "Quick Rollback" exactly as written,
BEGIN and COMMIT included, run with `psql -v ON_ERROR_STOP=1 -f`: no lock_timeout, no backup,
no verification. That is the baseline every rollbot figure is compared with.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

from bot.pgclient.conninfo import child_connection

SEED_RUNBOOK = Path(__file__).parents[1] / "runbooks" / "0023_loud_shen.md"


def seed_sql(runbook: Path = SEED_RUNBOOK) -> str:
    """The ```sql block under the "Quick Rollback" heading, verbatim."""
    heading = ""
    tokens = MarkdownIt("commonmark").parse(runbook.read_text(encoding="utf-8"))
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            heading = tokens[index + 1].content.strip().lower()
        elif token.type == "fence" and token.info.strip() == "sql" and heading == "quick rollback":
            return token.content
    msg = f'{runbook}: no ```sql block under "Quick Rollback"'
    raise ValueError(msg)


@dataclass(frozen=True)
class Finished:
    """How a client program ended and how long it took."""

    returncode: int
    wall_s: float
    stderr: str


def run_psql_file(psql: Path, conninfo: str, script: Path) -> Finished:
    """`psql -X -q -v ON_ERROR_STOP=1 -f script`, the password in the environment only."""
    target = child_connection(conninfo, "bench psql", os.environ)
    args = [
        str(psql),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        str(script),
        f"--dbname={target.dbname_arg}",
    ]
    return _timed(args, target.env)


def run_pg_dump(pg_dump: Path, conninfo: str, file: Path) -> Finished:
    """`pg_dump -Fc -f file`: the whole database in the default custom format."""
    target = child_connection(conninfo, "bench pg_dump", os.environ)
    args = [str(pg_dump), "-Fc", f"--file={file}", f"--dbname={target.dbname_arg}"]
    return _timed(args, target.env)


def _timed(args: list[str], env: dict[str, str]) -> Finished:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    return Finished(done.returncode, time.perf_counter() - started, done.stderr)
