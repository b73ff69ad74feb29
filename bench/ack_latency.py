"""Ack latency: how fast rollbot answers Slack, next to a Bolt app that does nothing else.

Slack gives an app three seconds to answer a slash command and shows an error after that. The
question is what rollbot's own work costs in that answer, so it is measured side by side with
a bare Bolt app (the same waitress settings, signing secret and Web API stand-in, one listener
that only acks), each in a process of its own, on the same machine, alternating, in one run.
Signed `/rollback help` and `/rollback status` requests are sent by concurrent senders and the
HTTP response time of each is recorded, in two phases:

- idle: nothing else is going on;
- loaded: 2 x the worker pool's size of plan requests were sent at once, each for its own
  target, and on every target a session holds ACCESS EXCLUSIVE on a table the seed runbook
  drops; rollbot's lock timeout is long, so the plans that got a worker park in their backup
  for the whole phase, the next one waits in the queue, and the rest are told "busy".
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict

from bench.stats import percentile, ratio
from bot.core.states import ACTIVE, RunState
from bot.state.store import RunStore
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackSender, SlackStandIn
from demo.standin.payloads import slash_command

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from bench.server import Server

SIGNING_SECRET = "bench-ack-signing-secret-0023"  # noqa: S105 - a scratch value for loopback
REQUESTER, APPROVER, CHANNEL = "U0BENCHREQ", "U0BENCHAPP", "C0BENCHOPS"
COMMANDS = ("help", "status")
HELD_TABLE = "api_errors"  # dropped by the seed runbook; its backup must wait for it
SLACK_LIMIT_S = 3.0  # Slack shows the person an error when the answer takes longer
ROOT = Path(__file__).parents[1]
Side = Literal["rollbot", "bare"]


class AckOptions(BaseModel):
    """How many requests, how many at once, and the worker pool the loaded phase fills."""

    model_config = ConfigDict(frozen=True)

    requests: int = 400  # per side and phase
    concurrency: int = 8  # senders at once
    rounds: int = 8  # the sides alternate this many times per phase
    warmup: int = 40  # per side, untimed: first connections, Bolt's auth.test
    workers: int = 2  # rollbot's default pool
    queue_size: int = 1  # so that 2 x the pool overflows it and someone is told "busy"
    park_s: float = 300.0  # rollbot's lock and statement timeout: longer than the phase
    timeout_s: float = 10.0  # a sender gives up on an answer after this long
    scale: int = 1


class Percentiles(BaseModel):
    """Response times of one kind of request."""

    model_config = ConfigDict(frozen=True)

    requests: int
    p50_s: float
    p99_s: float
    max_s: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        """Summarise response times in seconds (of the requests that were answered)."""
        if not samples:
            return cls(requests=0, p50_s=math.inf, p99_s=math.inf, max_s=math.inf)
        return cls(
            requests=len(samples),
            p50_s=percentile(samples, 0.50),
            p99_s=percentile(samples, 0.99),
            max_s=max(samples),
        )


class AckSample(BaseModel):
    """One request: what was sent, how it was answered (None: no answer in time), how fast."""

    model_config = ConfigDict(frozen=True)

    command: str
    status: int | None
    seconds: float
    at_s: float  # when it was sent, from the start of its phase


class AckSide(BaseModel):
    """One server's answers in one phase."""

    model_config = ConfigDict(frozen=True)

    side: Side
    requests: int
    answered: int  # 200
    failed: int  # any other status
    timeouts: int  # no answer within the sender's timeout
    over_slack_limit: int  # answered 200, but after Slack's three seconds
    latency: Percentiles  # of every 200
    by_command: dict[str, Percentiles]
    samples: tuple[AckSample, ...]

    @classmethod
    def of(cls, side: Side, samples: Sequence[AckSample]) -> AckSide:
        """Count and summarise one side's samples."""
        ok = [s for s in samples if s.status == 200]
        return cls(
            side=side,
            requests=len(samples),
            answered=len(ok),
            failed=sum(1 for s in samples if s.status not in {None, 200}),
            timeouts=sum(1 for s in samples if s.status is None),
            over_slack_limit=sum(1 for s in ok if s.seconds > SLACK_LIMIT_S),
            latency=Percentiles.of([s.seconds for s in ok]),
            by_command={
                c: Percentiles.of([s.seconds for s in ok if s.command == c]) for c in COMMANDS
            },
            samples=tuple(samples),
        )


class PlanAck(BaseModel):
    """How rollbot acked one of the loaded phase's plan requests."""

    model_config = ConfigDict(frozen=True)

    target: str
    status: int | None
    seconds: float
    answer: Literal["queued", "busy", "silent", "other"]
    text: str


class AckPhase(BaseModel):
    """Both servers' answers with `in_flight` plan requests taken by rollbot meanwhile."""

    model_config = ConfigDict(frozen=True)

    in_flight: int
    rollbot: AckSide
    bare: AckSide
    p50_ratio: float  # rollbot / bare
    p99_ratio: float
    max_ratio: float
    plans: tuple[PlanAck, ...] = ()
    parked_before: int = 0  # plan sessions waiting for a blocker's lock when timing began
    parked_after: int = 0  # and when it ended: the plans were in flight throughout
    runs_after: dict[str, int] = {}  # the plans' runs by state, once the blockers had left

    @classmethod
    def of(cls, in_flight: int, samples: dict[Side, list[AckSample]]) -> AckPhase:
        """Both sides summarised, and rollbot's percentiles over the bare app's."""
        rollbot = AckSide.of("rollbot", samples["rollbot"])
        bare = AckSide.of("bare", samples["bare"])
        return cls(
            in_flight=in_flight,
            rollbot=rollbot,
            bare=bare,
            p50_ratio=ratio(rollbot.latency.p50_s, bare.latency.p50_s),
            p99_ratio=ratio(rollbot.latency.p99_s, bare.latency.p99_s),
            max_ratio=ratio(rollbot.latency.max_s, bare.latency.max_s),
        )


class AckLatency(BaseModel):
    """The idle phase and the loaded one."""

    model_config = ConfigDict(frozen=True)

    scale: int
    options: AckOptions
    idle: AckPhase
    loaded: AckPhase


def run_ack_latency(
    server: Server, template: str, workdir: Path, *, options: AckOptions
) -> AckLatency:
    """Start the stand-in and both servers, then time the idle phase and the loaded one."""
    plans = 2 * options.workers
    with ExitStack() as stack:
        targets = [stack.enter_context(server.clone(template)) for _ in range(plans)]
        state_name = server.create("rollbot_bench_state")  # rollbot's runs, apart from targets
        stack.callback(server.drop, state_name)
        state = server.database(state_name)
        standin = stack.enter_context(SlackStandIn())
        for user_id, name in ((REQUESTER, "alice"), (APPROVER, "bob")):
            standin.add_user(user_id, name)
        standin.add_channel(CHANNEL, "ops")
        env = _environment(standin, targets, state, workdir, options)
        senders: dict[Side, SlackSender] = {}
        for side in ("rollbot", "bare"):
            url = stack.enter_context(_served(side, env, workdir))
            senders[side] = SlackSender(
                f"{url}/slack/events", SIGNING_SECRET, standin, timeout=options.timeout_s
            )
        load = _Load(standin, senders, options)
        load.warm_up()
        idle = AckPhase.of(0, load.measure())
        with _blockers(targets):
            acks = _send_plans(senders["rollbot"], standin, plans)
            queued = sum(1 for a in acks if a.answer == "queued")
            expected = min(queued, options.workers)
            parked_before = _wait_parked(server, targets, expected)
            measured = load.measure()
            parked_after = _parked(server, targets)
        runs = _wait_runs(state, queued)
        loaded = AckPhase.of(plans, measured).model_copy(
            update={
                "plans": tuple(acks),
                "parked_before": parked_before,
                "parked_after": parked_after,
                "runs_after": runs,
            }
        )
    return AckLatency(scale=options.scale, options=options, idle=idle, loaded=loaded)


def _environment(
    standin: SlackStandIn, targets: list[str], state: str, workdir: Path, options: AckOptions
) -> dict[str, str]:
    """`rollbot serve`'s variables, read by both servers (the bare app needs only Slack's)."""
    spec = workdir / "ack-targets.yaml"
    spec.write_text(
        "".join(f"t{i}:\n  url: {_yaml(conninfo)}\n" for i, conninfo in enumerate(targets, 1)),
        encoding="utf-8",
    )
    park = f"{options.park_s:g}s"
    return {
        **os.environ,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": standin.bot_token,
        "SLACK_API_URL": standin.api_url,
        "ROLLBOT_TARGETS": f"@{spec}",
        "ROLLBOT_STATE_URL": state,
        "ROLLBOT_RUNBOOKS_DIR": str(ROOT / "runbooks"),
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
        "ROLLBOT_BACKUP_DIR": str(workdir / "ack-backups"),
        "ROLLBOT_APPROVERS": APPROVER,
        "ROLLBOT_WORKERS": str(options.workers),
        "ROLLBOT_QUEUE_SIZE": str(options.queue_size),
        "ROLLBOT_LOCK_TIMEOUT": park,
        "ROLLBOT_STATEMENT_TIMEOUT": park,
        "ROLLBOT_REHEARSAL": "off",  # after the phase; it would only make the run longer
        "ROLLBOT_LOG_LEVEL": "warning",
    }


def _yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def _served(side: Side, env: dict[str, str], workdir: Path) -> Iterator[str]:
    """`python -m bench.ack_server side` on a free loopback port; yields its root URL."""
    port = _free_port()
    log = workdir / f"ack-{side}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.ack_server", side],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(side, process, url, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(side: Side, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until the server answers an HTTP request at all (rollbot: once it has started)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            msg = f"{side} server exited with {process.returncode}:\n{tail}"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # an answer, if not a 200: it is listening
        except OSError:
            time.sleep(0.1)
    msg = f"{side} server did not answer at {url} within 60 s"
    raise RuntimeError(msg)


class _Load:
    """Signed help and status requests, `concurrency` at a time, the sides taking turns."""

    def __init__(
        self, standin: SlackStandIn, senders: dict[Side, SlackSender], options: AckOptions
    ) -> None:
        self._standin = standin
        self._senders = senders
        self._options = options
        self._lock = threading.Lock()
        self._began = time.perf_counter()

    def warm_up(self) -> None:
        """Untimed requests to each side, so no phase pays for first connections."""
        for side in self._senders:
            self._burst(side, self._options.warmup)

    def measure(self) -> dict[Side, list[AckSample]]:
        """`requests` per side in `rounds` bursts; who goes first alternates every round."""
        o = self._options
        per_round = max(1, math.ceil(o.requests / o.rounds))
        samples: dict[Side, list[AckSample]] = {"rollbot": [], "bare": []}
        self._began = time.perf_counter()
        for number in range(o.rounds):
            order: tuple[Side, Side] = ("bare", "rollbot") if number % 2 else ("rollbot", "bare")
            for side in order:
                left = o.requests - len(samples[side])
                samples[side].extend(self._burst(side, min(per_round, left)))
        return samples

    def _burst(self, side: Side, count: int) -> list[AckSample]:
        if count <= 0:
            return []
        sender = self._senders[side]
        with ThreadPoolExecutor(self._options.concurrency, thread_name_prefix="bench-ack") as pool:
            return list(pool.map(lambda n: self._one(sender, COMMANDS[n % 2]), range(count)))

    def _one(self, sender: SlackSender, command: str) -> AckSample:
        with self._lock:  # the stand-in's transcript is shared; building it is not timed
            fields = slash_command(self._standin, command, user_id=REQUESTER, channel_id=CHANNEL)
        body = urlencode(fields).encode()
        started = time.perf_counter()
        try:
            status: int | None = sender.deliver(body, "application/x-www-form-urlencoded").status
        except OSError:  # TimeoutError included: no answer in time
            status = None
        return AckSample(
            command=command,
            status=status,
            seconds=time.perf_counter() - started,
            at_s=started - self._began,
        )


def _send_plans(sender: SlackSender, standin: SlackStandIn, count: int) -> list[PlanAck]:
    """`/rollback 0023 --target tN` for every target at once; how each was acked."""
    lock = threading.Lock()

    def one(number: int) -> PlanAck:
        target = f"t{number}"
        with lock:
            fields = slash_command(
                standin, f"0023 --target {target}", user_id=REQUESTER, channel_id=CHANNEL
            )
        started = time.perf_counter()
        try:
            delivery = sender.deliver(
                urlencode(fields).encode(), "application/x-www-form-urlencoded"
            )
        except OSError:
            return PlanAck(
                target=target,
                status=None,
                seconds=time.perf_counter() - started,
                answer="silent",
                text="",
            )
        seconds = time.perf_counter() - started
        text = delivery.body
        if delivery.headers.get("content-type", "").startswith("application/json"):
            text = str(delivery.json().get("text", ""))
        return PlanAck(
            target=target,
            status=delivery.status,
            seconds=seconds,
            answer=_kind(delivery.status, text),
            text=text,
        )

    with ThreadPoolExecutor(count, thread_name_prefix="bench-plan") as pool:
        return list(pool.map(one, range(1, count + 1)))


def _kind(status: int, text: str) -> Literal["queued", "busy", "silent", "other"]:
    if status != 200 or not text:
        return "silent" if not text else "other"
    if text.startswith("rollbot is busy"):
        return "busy"
    if text.startswith("Planning the rollback"):
        return "queued"
    return "other"


@contextmanager
def _blockers(targets: list[str]) -> Iterator[None]:
    """On every target, a session holding ACCESS EXCLUSIVE on HELD_TABLE until the end."""
    with ExitStack() as stack:
        for conninfo in targets:
            conn = stack.enter_context(psycopg.connect(conninfo, application_name="migration-job"))
            conn.execute(f"LOCK TABLE {HELD_TABLE} IN ACCESS EXCLUSIVE MODE")
            stack.callback(conn.rollback)
        yield


def _parked(server: Server, targets: list[str]) -> int:
    """How many of rollbot's sessions on the targets are waiting for a lock."""
    names = [str(conninfo_to_dict(c)["dbname"]) for c in targets]
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)"
            " AND wait_event_type = 'Lock' AND application_name LIKE 'rollbot run %% backup'",
            (names,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_parked(server: Server, targets: list[str], expected: int) -> int:
    """Until `expected` plans wait for a blocker (at most 60 s); how many do."""
    deadline = time.monotonic() + 60
    while (parked := _parked(server, targets)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return parked


def _wait_runs(state: str, expected: int) -> dict[str, int]:
    """Until `expected` runs exist and none is still in flight (at most 120 s); by state."""
    store = RunStore(state, variable="ROLLBOT_STATE_URL", timeout=10)
    try:
        deadline = time.monotonic() + 120
        while True:
            runs = store.recent(limit=100)
            settled = len(runs) >= expected and not any(
                r.state in ACTIVE and r.state is not RunState.AWAITING_APPROVAL for r in runs
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        with contextlib.suppress(Exception):
            store.close()
    counts: dict[str, int] = {}
    for run in runs:
        counts[str(run.state)] = counts.get(str(run.state), 0) + 1
    return counts
