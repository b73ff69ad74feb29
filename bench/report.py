"""The benchmark report: one model for the JSON file, and the tables a person reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bench.ack_latency import AckLatency, AckPhase, AckSide
from bench.backup_overhead import BackupOverhead, BackupSide
from bench.lock_safety import LockCase, LockSafety
from bench.rollback_time import RollbackTime
from bench.scale import ScaleResult, Spread, Stream
from bench.stats import STALL_S

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class Machine(BaseModel):
    """Where the numbers were measured."""

    model_config = ConfigDict(frozen=True)

    cpus: int
    platform: str
    python: str
    server_version: str
    pg_dump_version: str


class Report(BaseModel):
    """Everything one `python -m bench` run measured."""

    model_config = ConfigDict(frozen=True)

    started_at: AwareDatetime
    command: str
    machine: Machine
    lock_safety: LockSafety | None = None
    backup_overhead: BackupOverhead | None = None
    rollback_time: RollbackTime | None = None
    ack_latency: AckLatency | None = None
    scale: ScaleResult | None = None


def write_report(report: Report, path: Path) -> None:
    """The report as indented JSON, for comparing runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")


def render(report: Report) -> str:
    """Every scenario that ran, as plain-text tables."""
    m = report.machine
    heading = (
        f"rollbot benchmarks — {m.cpus} CPUs, PostgreSQL {m.server_version}, "
        f"pg_dump {m.pg_dump_version}, Python {m.python}"
    )
    parts = [heading]
    if report.lock_safety is not None:
        parts.append(render_lock_safety(report.lock_safety))
    if report.backup_overhead is not None:
        parts.append(render_backup_overhead(report.backup_overhead))
    if report.rollback_time is not None:
        parts.append(render_rollback_time(report.rollback_time))
    if report.ack_latency is not None:
        parts.append(render_ack_latency(report.ack_latency))
    if report.scale is not None:
        parts.append(render_scale(report.scale))
    return "\n\n".join(parts) + "\n"


def render_lock_safety(result: LockSafety) -> str:
    """Reader latencies under each runner, and the ratio of the worst reads."""
    o = result.options
    title = (
        f"1. Lock safety (scale {result.scale}): a session holds a lock on assets for "
        f"{o.blocker_s:g} s; {o.readers} readers; rollbot lock_timeout {o.lock_timeout_s:g} s, "
        f"{o.attempts} attempts, backoff base {o.retry_delay_s:g} s"
    )
    headers = ["runner", "reads", "worst read", "p99", "p50", "stalled reads", "the rollback"]
    rows = [_lock_row(case) for case in (result.rollbot, result.psql)]
    footer = (
        f"psql's worst read / rollbot's worst read: {result.worst_ratio:.1f}x  "
        f"(stalled = slower than {duration(STALL_S)}; in brackets, the time they waited in all)"
    )
    return "\n".join([title, table(headers, rows), footer])


def _lock_row(case: LockCase) -> list[str]:
    lat = case.latencies
    return [
        case.runner,
        f"{lat.reads:,}",
        duration(lat.worst_s),
        duration(lat.p99_s),
        duration(lat.p50_s),
        f"{lat.stalled} ({duration(lat.stalled_s)})",
        case.summary,
    ]


def render_backup_overhead(result: BackupOverhead) -> str:
    """Median wall time, peak memory and CPU of both ways of backing up."""
    title = (
        f"2. Backup overhead (scale {result.scale}: {result.rows:,} rows, "
        f"{result.database_bytes / 2**20:.0f} MiB database), median of {result.repeat}"
    )
    headers = ["", "wall", "CPU pg_*", "peak pg_dump", "peak pg_restore", "peak python", "file"]
    rows = [
        _backup_row("rollbot backup_with_counts", result.rollbot),
        _backup_row("pg_dump -Fc", result.pg_dump),
    ]
    footer = (
        f"rollbot / pg_dump: {result.time_ratio:.2f}x wall time  "
        "(rollbot also counts in the dump's snapshot and reads the whole dump back)"
    )
    return "\n".join([title, table(headers, rows), footer])


def _backup_row(label: str, side: BackupSide) -> list[str]:
    return [
        label,
        duration(side.median_s),
        duration(side.child_cpu_median_s),
        mebibytes(side.peak_rss_kib.get("pg_dump")),
        mebibytes(side.peak_rss_kib.get("pg_restore")),
        mebibytes(side.python_peak_rss_kib),
        f"{side.samples[0].size_bytes / 2**20:.1f} MiB",
    ]


def mebibytes(kib: int | None) -> str:
    """`12.3 MiB`, or `-` when nothing was measured."""
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def render_rollback_time(result: RollbackTime) -> str:
    """Median execution time of each runner, with and without rollbot's final backup."""
    title = f"3. Rollback execution (scale {result.scale}), median of {result.repeat}"
    headers = ["", "wall", "of which final backup"]
    rows = [
        [
            "rollbot execute_plan",
            duration(result.rollbot_median_s),
            duration(result.final_backup_median_s),
        ],
        ["psql -f (the guide's SQL)", duration(result.psql_median_s), "none taken"],
    ]
    footer = (
        f"rollbot / psql: {result.time_ratio:.1f}x; without the final backup: "
        f"{result.ratio_without_final_backup:.1f}x  "
        f"({result.samples[0].rows_dropped:,} rows dropped and backed up per rollback)"
    )
    return "\n".join([title, table(headers, rows), footer])


def render_ack_latency(result: AckLatency) -> str:
    """Both servers' response times in each phase, rollbot's over the bare app's, the plans."""
    o = result.options
    title = (
        f"4. Ack latency (scale {result.scale}): signed /rollback help and status, "
        f"{o.concurrency} senders at once, {o.requests} per server and phase, the servers "
        f"alternating {o.rounds} times; rollbot workers {o.workers}, queue {o.queue_size}"
    )
    headers = ["phase", "server", "answered", "failed", "timed out", "p50", "p99", "max"]
    rows: list[list[str]] = []
    for label, phase in (
        ("idle (N=0)", result.idle),
        (f"{result.loaded.in_flight} plans in flight", result.loaded),
    ):
        rows.append([label, *_ack_cells(phase.rollbot)])
        rows.append(["", *_ack_cells(phase.bare)])
    lines = [title, table(headers, rows)]
    for label, phase in (("idle", result.idle), ("loaded", result.loaded)):
        lines.append(f"rollbot / bare, {label}: {_ratios(phase)}")
    lines.append(_plans_line(result.loaded))
    return "\n".join(lines)


def _ack_cells(side: AckSide) -> list[str]:
    lat = side.latency
    return [
        side.side,
        f"{side.answered:,}/{side.requests:,}",
        str(side.failed),
        str(side.timeouts),
        duration(lat.p50_s),
        duration(lat.p99_s),
        duration(lat.max_s),
    ]


def _ratios(phase: AckPhase) -> str:
    return f"p50 {phase.p50_ratio:.2f}x, p99 {phase.p99_ratio:.2f}x, max {phase.max_ratio:.2f}x"


def _plans_line(phase: AckPhase) -> str:
    acks = [p.answer for p in phase.plans]
    said = ", ".join(f"{acks.count(k)} {k}" for k in ("queued", "busy", "silent", "other"))
    slowest = max((p.seconds for p in phase.plans), default=0.0)
    runs = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in phase.runs_after.items())
    return (
        f"the {len(acks)} plan requests were acked: {said} (slowest ack {duration(slowest)}); "
        f"plans waiting for the blockers' locks: {phase.parked_before} when timing began, "
        f"{phase.parked_after} when it ended; once the locks went: {runs or 'no runs'}"
    )


def duration(seconds: float) -> str:
    """`0.24 ms`, `5.2 ms`, `1.00 s`, `12.3 s`: three significant figures or so."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column may run long."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    widths[-1] = 0

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * max(w, len(h)) for w, h in zip(widths, headers, strict=True))
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def render_scale(result: ScaleResult) -> str:
    """Per scale: each step's median (spread), the raw tool's, the ratio; the app; memory."""
    mode = result.drop_mode or "quarantine, rollbot's default"
    title = (
        f"5. At scale (drop mode: {mode}): median of {result.repeat} (min-max), "
        "rollbot's CLI against the raw tools, alternating"
    )
    headers = ["scale", "step", "rollbot", "raw tool", "raw", "ratio"]
    rows: list[list[str]] = []
    for p in result.points:
        label = (
            f"{p.scale:g} ({p.rows:,} rows, {p.dropped_rows:,} dropped, "
            f"{p.database_bytes / 2**20:,.0f} MiB, built in {p.build_s:.0f} s)"
        )
        rows.append([label, "", "", "", "", ""])
        for step, mine, tool, theirs, factor in (
            (
                "ready for approval",
                p.plan,
                "pg_dump > backup.sql",
                p.pg_dump_plain,
                p.plan_vs_plain,
            ),
            (
                "",
                p.plan,
                "pg_dump -Fc + pg_restore -f /dev/null",
                p.pg_dump_custom,
                p.plan_vs_custom,
            ),
            ("execution", p.execute, "psql -f (the seed's SQL)", p.psql, p.execute_vs_psql),
            ("restore", p.restore, "psql < backup.sql", p.restore_psql, p.restore_vs_psql),
            (
                "",
                p.restore,
                "pg_restore of backup.dump",
                p.restore_pg_restore,
                p.restore_vs_pg_restore,
            ),
        ):
            rows.append(["", step, _spread(mine), tool, _spread(theirs), f"{factor:.1f}x"])
            if step == "execution" and p.final_dump is not None:
                rows.append(
                    ["", "then: final dump", _spread(p.final_dump), "(after COMMIT)", "", ""]
                )
    lines = [title, table(headers, rows), "", _app_table(result), "", _memory_table(result)]
    lines.append(
        "rollbot's steps are whole CLI commands (start-up included): plan = `rollbot plan 0023` "
        "to awaiting approval; execution = `rollbot approve RUN` up to the committed, stored "
        "outcome it prints, "
        "then: final dump = the rest of it, the dump of the quarantine, which locks nothing "
        "the application uses; restore = `rollbot restore "
        "RUN` + `rollbot approve` of the restore run."
    )
    return "\n".join(lines)


def _spread(side: Spread) -> str:
    if len(side.samples) == 1:
        return duration(side.median_s)
    return f"{duration(side.median_s)} ({duration(side.min_s)}-{duration(side.max_s)})"


def _app_table(result: ScaleResult) -> str:
    """The application's slowest statements during each execution, worst sample shown."""
    headers = ["scale", "runner", "insert, dropped table", "insert, kept table", "read, kept table"]
    rows: list[list[str]] = []
    for p in result.points:
        for runner, loads in (("rollbot", p.load_rollbot), ("psql", p.load_psql)):
            rows.append(
                [
                    f"{p.scale:g}" if runner == "rollbot" else "",
                    runner,
                    *(
                        _stream([getattr(load, name) for load in loads])
                        for name in ("insert_dropped", "insert_kept", "read_kept")
                    ),
                ]
            )
    title = (
        "The application during execution: max / p99 of each stream's statements "
        "(the worst sample), failed ones included"
    )
    return "\n".join([title, table(headers, rows)])


def _stream(streams: Sequence[Stream]) -> str:
    worst = max(streams, key=lambda s: s.max_s)
    failed = sum(s.failed for s in streams)
    total = sum(s.statements for s in streams)
    return f"{duration(worst.max_s)} / {duration(worst.p99_s)} ({failed:,} of {total:,} failed)"


def _memory_table(result: ScaleResult) -> str:
    """Peak resident memory per step and program, the largest over the samples."""
    programs = ("rollbot", "pg_dump", "pg_restore", "psql")
    headers = ["scale", "step", *programs]
    rows: list[list[str]] = []
    for p in result.points:
        for index, (step, peaks) in enumerate(p.peak_kib.items()):
            rows.append(
                [
                    f"{p.scale:g}" if index == 0 else "",
                    step,
                    *(mebibytes(peaks.get(name)) for name in programs),
                ]
            )
    return "\n".join(["Peak memory (VmHWM of each process, from /proc)", table(headers, rows)])
