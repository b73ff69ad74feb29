"""Backup compression and read-back: which -Z to default to, and what streaming saves.

For each compression pg_dump offers (lz4 and zstd only from pg_dump 16), on one clone of the
asset_forge sample at `--scale`:

- `pg_dump -Fc` alone, to a file: the floor;
- "written, then read": what rollbot did before: pg_dump to the file, then `pg_restore
  --list`, `pg_restore -f /dev/null` and a sha256 of the file, one after the other;
- "streamed": rollbot's backup now (`take_backup`): pg_dump's stdout written, hashed and fed
  to pg_restore at once.

Run: `.venv/bin/python -m bench.compression --scale 150 --repeat 3` (about four minutes here).
Each side's median wall time is printed, with the file size; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from bench.server import open_server
from bench.stats import median
from bot.core.compression import for_pg_dump, parse_compression
from bot.pgclient.conninfo import child_connection
from bot.target.backup import take_backup

if TYPE_CHECKING:
    from bench.server import Server
    from bot.pgclient.tools import PgTools

METHODS = ("none", "gzip:1", "gzip:6", "lz4", "zstd")
NEW_METHODS_SINCE = 16


def _pg_dump(pg_dump: Path, conninfo: str, file: Path, compress: list[str]) -> float:
    child = child_connection(conninfo, "bench pg_dump", os.environ)
    started = time.perf_counter()
    subprocess.run(
        [str(pg_dump), "-Fc", *compress, f"--file={file}", f"--dbname={child.dbname_arg}"],
        env=child.env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _written_then_read(
    pg_dump: Path, pg_restore: Path, conninfo: str, file: Path, compress: list[str]
) -> float:
    """The backup as rollbot took it before: dump, list, read back whole, hash; in turn."""
    started = time.perf_counter()
    _pg_dump(pg_dump, conninfo, file, compress)
    subprocess.run([str(pg_restore), "--list", str(file)], check=True, capture_output=True)
    subprocess.run(
        [str(pg_restore), f"--file={os.devnull}", str(file)], check=True, capture_output=True
    )
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return time.perf_counter() - started


def _measure(
    server: Server, tools: PgTools, conninfo: str, work: Path, *, method: str, repeat: int
) -> str:
    """One line of the table: the file size and each side's median wall time."""
    wanted = parse_compression(method)
    used, compress = for_pg_dump(wanted, tools.major)
    if used != wanted:
        return f"{method:12}  not supported by pg_dump {tools.major} (needs {NEW_METHODS_SINCE})"
    raw: list[float] = []
    before: list[float] = []
    after: list[float] = []
    file_size = 0
    file = work / "raw.dump"
    for i in range(repeat):
        server.settle()
        raw.append(_pg_dump(tools.pg_dump, conninfo, file, compress))
        file_size = file.stat().st_size
        file.unlink()
        server.settle()
        before.append(_written_then_read(tools.pg_dump, tools.pg_restore, conninfo, file, compress))
        file.unlink()
        server.settle()
        started = time.perf_counter()
        info = take_backup(tools, conninfo, work, name=f"streamed-{i}", compression=method)
        after.append(time.perf_counter() - started)
        info.path.unlink()
        print(f"  {method} sample {i + 1} done", file=sys.stderr, flush=True)
    return (
        f"{used.label():12}  {file_size / 2**20:>5.1f} MiB  {median(raw):>9.2f} s"
        f"  {median(before):>16.2f} s  {median(after):>6.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Print one line per compression: size and median wall time of each side."""
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__)
    parser.add_argument("--scale", type=int, default=150, help="x the sample rows (150: 303 MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="samples per side")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args(argv)
    with (
        open_server(os.environ.get("BENCH_DATABASE_URL")) as server,
        tempfile.TemporaryDirectory(prefix="rollbot-bench-") as tmp,
    ):
        tools = server.tools().pg
        print(f"building asset_forge at scale {args.scale}", file=sys.stderr, flush=True)
        with server.asset_forge(args.scale) as template, server.clone(template) as conninfo:
            with psycopg.connect(conninfo) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            mib = (int(row[0]) if row else 0) / 2**20
            print(f"pg_dump {tools.version}, database {mib:.0f} MiB, median of {args.repeat}")
            print(
                f"{'compression':12}  {'file':>9}  {'pg_dump -Fc':>11}"
                f"  {'written, then read':>18}  {'streamed':>8}"
            )
            for method in args.methods:
                line = _measure(
                    server, tools, conninfo, Path(tmp), method=method, repeat=args.repeat
                )
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
