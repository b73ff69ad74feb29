"""`python -m bench` (or `make bench`): run the scenarios, print the tables, write the JSON.

The server is `BENCH_DATABASE_URL` (its maintenance database; rollbot creates and drops its
scratch databases there), else the local server at 127.0.0.1:5432 if it answers, else an
embedded one started for the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.ack_latency import AckOptions, run_ack_latency
from bench.backup_overhead import run_backup_overhead
from bench.lock_safety import LockOptions, run_lock_safety
from bench.report import Machine, Report, render, write_report
from bench.rollback_time import run_rollback_time
from bench.scale import DROP_MODES, ScaleOptions, run_scale
from bench.server import Server, Tools, open_server
from bot.logs import configure_logging

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("lock", "backup", "rollback", "ack", "scale")
# `scale` builds databases of up to a few GiB and takes many minutes: only when asked for.
DEFAULT_SCENARIOS = ("lock", "backup", "rollback", "ack")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every default is the one the README's table was measured with."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); default: all but scale",
    )
    parser.add_argument(
        "--sample-scale",
        type=int,
        default=50,
        help="data for backup and rollback (x sample rows)",
    )
    parser.add_argument(
        "--scale",
        type=_positive,
        action="append",
        help="data for the scale scenario: 1 = 1.8M rows, ~600 MiB (repeatable; "
        "default 0.25, 1 and 4)",
    )
    parser.add_argument(
        "--drop-mode",
        choices=DROP_MODES,
        help="ROLLBOT_DROP_MODE for the scale scenario's rollbot (default: rollbot's own)",
    )
    parser.add_argument(
        "--lock-scale", type=int, default=1, help="data for the lock and ack scenarios"
    )
    parser.add_argument("--repeat", type=int, default=3, help="samples per timed side")
    defaults = LockOptions()
    parser.add_argument("--blocker-seconds", type=float, default=defaults.blocker_s)
    parser.add_argument("--lock-timeout", type=float, default=defaults.lock_timeout_s)
    parser.add_argument("--attempts", type=int, default=defaults.attempts)
    parser.add_argument("--retry-delay", type=float, default=defaults.retry_delay_s)
    parser.add_argument("--readers", type=int, default=defaults.readers)
    ack = AckOptions()
    parser.add_argument(
        "--ack-requests", type=int, default=ack.requests, help="per side and phase (ack)"
    )
    parser.add_argument("--concurrency", type=int, default=ack.concurrency, help="senders (ack)")
    parser.add_argument("--workers", type=int, default=ack.workers, help="rollbot's pool (ack)")
    parser.add_argument(
        "--queue-size", type=int, default=ack.queue_size, help="rollbot's queue (ack)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "latest.json", help="where to write the JSON"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report instead of the tables"
    )
    return parser.parse_args(argv)


def _positive(text: str) -> float:
    """A scale: a positive number such as 0.25, 1 or 4."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"a scale is a positive number like 0.25 or 4, not {text!r}"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; 0 when all of them ran."""
    args = parse_args(argv)
    configure_logging(level="warning")
    started = datetime.now(UTC)
    with (
        open_server(os.environ.get("BENCH_DATABASE_URL")) as server,
        tempfile.TemporaryDirectory(prefix="rollbot-bench-") as tmp,
        ExitStack() as stack,
    ):
        bench = _Bench(server, server.tools(), Path(tmp), stack)
        machine = Machine(
            cpus=os.cpu_count() or 0,
            platform=platform.platform(),
            python=platform.python_version(),
            server_version=server.version(),
            pg_dump_version=bench.tools.pg.version,
        )
        report = Report(
            started_at=started,
            command=shlex.join(
                ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]
            ),
            machine=machine,
        )
        report = bench.run(args, report)
    print(report.model_dump_json(indent=2) if args.json else render(report))
    write_report(report, args.output)
    stamped = args.output.parent / f"{started.strftime('%Y%m%d-%H%M%S')}.json"
    write_report(report, stamped)
    print(
        f"results written to {args.output} and {stamped}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0


@dataclass
class _Bench:
    """The server, its tools, a work directory, and the templates built so far."""

    server: Server
    tools: Tools
    workdir: Path
    stack: ExitStack
    templates: dict[int, str] = field(default_factory=dict)

    def template(self, scale: int) -> str:
        """The asset_forge template at `scale`, built on first use, dropped at the end."""
        if scale not in self.templates:
            _progress(f"building asset_forge at 0023, scale {scale}")
            began = time.monotonic()
            self.templates[scale] = self.stack.enter_context(self.server.asset_forge(scale))
            _progress(f"  built in {time.monotonic() - began:.1f} s")
        return self.templates[scale]

    def run(self, args: argparse.Namespace, report: Report) -> Report:
        """Run the scenarios `--only` names (all by default), each into its report field."""
        only = set(args.only or DEFAULT_SCENARIOS)
        if "lock" in only:
            _progress(f"lock safety: two timelines of about {args.blocker_seconds + 2:g} s")
            options = LockOptions(
                blocker_s=args.blocker_seconds,
                lock_timeout_s=args.lock_timeout,
                attempts=args.attempts,
                retry_delay_s=args.retry_delay,
                readers=args.readers,
            )
            template = self.template(args.lock_scale)
            lock = run_lock_safety(
                self.server,
                template,
                self.tools,
                self.workdir,
                scale=args.lock_scale,
                options=options,
            )
            report = report.model_copy(update={"lock_safety": lock})
        if "backup" in only:
            _progress(f"backup overhead: {args.repeat} x (backup_with_counts, pg_dump -Fc)")
            template = self.template(args.sample_scale)
            backup = run_backup_overhead(
                self.server,
                template,
                self.tools,
                self.workdir,
                scale=args.sample_scale,
                repeat=args.repeat,
            )
            report = report.model_copy(update={"backup_overhead": backup})
        if "rollback" in only:
            _progress(f"rollback execution: {args.repeat} x (execute_plan, psql -f)")
            template = self.template(args.sample_scale)
            rollback = run_rollback_time(
                self.server,
                template,
                self.tools,
                self.workdir,
                scale=args.sample_scale,
                repeat=args.repeat,
            )
            report = report.model_copy(update={"rollback_time": rollback})
        if "ack" in only:
            ack = AckOptions(
                requests=args.ack_requests,
                concurrency=args.concurrency,
                workers=args.workers,
                queue_size=args.queue_size,
                scale=args.lock_scale,
            )
            _progress(
                f"ack latency: {ack.requests} requests per side, idle and with "
                f"{2 * ack.workers} plans in flight"
            )
            template = self.template(ack.scale)
            latency = run_ack_latency(self.server, template, self.workdir, options=ack)
            report = report.model_copy(update={"ack_latency": latency})
        if "scale" in only:
            scaled_options = ScaleOptions(repeat=args.repeat, drop_mode=args.drop_mode)
            if args.scale:
                scaled_options = dataclasses.replace(scaled_options, scales=tuple(args.scale))
            _progress(
                f"at scale: {', '.join(f'{s:g}' for s in scaled_options.scales)}, "
                f"{scaled_options.repeat} x (plan, execute, restore) against the raw tools"
            )
            scaled = run_scale(self.server, self.tools, self.workdir, scaled_options, _progress)
            report = report.model_copy(update={"scale": scaled})
        return report


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
