"""Real `rollbot serve` processes: kill -9, restarts, two replicas, start-up errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bot.core.run import Run
from bot.core.states import RunState
from bot.state.deliveries import Deliveries
from bot.state.store import RunStore
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackSender, SlackStandIn
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS, SECOND_APPROVER
from tests.fix_slackbot import BYSTANDER, REQUEST_CHANNEL, SIGNING_SECRET

pytestmark = pytest.mark.slow


class Served:
    """One `rollbot serve` process and a signed sender pointed at it."""

    def __init__(
        self, env: dict[str, str], standin: SlackStandIn, signing_secret: str = SIGNING_SECRET
    ) -> None:
        self.port = _free_port()
        # A file, not a pipe: a pipe nobody reads fills up and stalls a chatty server.
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env={**env, "PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
        )
        self.sender = SlackSender(
            f"http://127.0.0.1:{self.port}/slack/events", signing_secret, standin
        )
        _wait_healthy(self.port, self.process, self.logged)

    def kill(self) -> None:
        """Kill -9: no cleanup of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> str:
        """SIGTERM; returns what it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.logged()

    def logged(self) -> str:
        """Everything the process has written to stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()


def serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`rollbot serve` that is expected to stop on its own (a start-up error)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(
    port: int, process: subprocess.Popen[str], logged: Callable[[], str], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"rollbot serve exited: {logged()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, "rollbot serve never became healthy"
            time.sleep(0.1)


@pytest.fixture
def serve_env(db_0023: str, slack_workspace: SlackStandIn, tmp_path: Path) -> dict[str, str]:
    """The environment `rollbot serve` is started with in these tests."""
    env = {
        **os.environ,
        "DATABASE_URL": db_0023,
        "SLACK_BOT_TOKEN": slack_workspace.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_workspace.api_url,
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "ROLLBOT_APPROVERS": f"{APPROVER},{SECOND_APPROVER}",
        "ROLLBOT_LOG_LEVEL": "info",
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
    }
    env.pop("SLACK_APP_TOKEN", None)
    return env


@pytest.fixture
def state(db_0023: str) -> Iterator[tuple[RunStore, Deliveries]]:
    store = RunStore(db_0023)
    yield store, Deliveries(store)
    store.close()


def plan_via(served: Served, standin: SlackStandIn, store: RunStore) -> Run:
    mark = standin.mark()
    served.sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    standin.wait_for("response_url", since=mark, timeout=60)
    return store.recent()[0]


def plan_message(deliveries: Deliveries, run_id: int) -> tuple[str, str]:
    deadline = time.monotonic() + 20
    while (where := deliveries.slack_message(run_id, "plan")) is None:
        assert time.monotonic() < deadline, "the plan message was never posted"
        time.sleep(0.05)
    return where


def wait_state(store: RunStore, run_id: int, state: RunState, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while (run := store.get(run_id)).state is not state:
        assert time.monotonic() < deadline, f"run is {run.state}, wanted {state}"
        time.sleep(0.1)
    return run


def test_kill_during_approval_wait_then_restart_approves(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
) -> None:
    """Kill -9 while a run awaits approval: after a restart the reaction still approves it."""
    store, deliveries = state
    first = Served(serve_env, slack_workspace)
    run = plan_via(first, slack_workspace, store)
    where = plan_message(deliveries, run.id)
    first.kill()
    second = Served(serve_env, slack_workspace)
    try:
        second.sender.reaction_added(APPROVER, "white_check_mark", *where)
        wait_state(store, run.id, RunState.SUCCEEDED)
    finally:
        second.stop()


def test_kill_during_execution_is_reconciled_and_announced(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
    db_0023: str,
) -> None:
    """Kill -9 mid-execution: on restart the run is marked failed, Slack is told, no re-run."""
    store, deliveries = state
    env = {**serve_env, "ROLLBOT_LOCK_TIMEOUT": "20s"}
    first = Served(env, slack_workspace)
    run = plan_via(first, slack_workspace, store)
    where = plan_message(deliveries, run.id)
    with psycopg.connect(db_0023) as blocker:
        blocker.execute("SELECT count(*) FROM assets")  # execution waits here
        first.sender.reaction_added(APPROVER, "white_check_mark", *where)
        wait_state(store, run.id, RunState.EXECUTING)
        first.kill()
    second = Served(env, slack_workspace)
    try:
        failed = wait_state(store, run.id, RunState.FAILED)
        assert "before COMMIT" in (failed.reason or "")
        slack_workspace.wait_for(
            "chat.postMessage",
            lambda c: "before COMMIT" in str(c.params.get("text")),
            timeout=20,
        )
        with psycopg.connect(db_0023) as conn:
            row = conn.execute("SELECT count(*) FROM api_errors").fetchone()
        assert row is not None
        assert row[0] > 0
        kinds = [e["kind"] for e in store.events(run.id)]
        assert kinds.count("execution_started") == 1
    finally:
        second.stop()


def test_an_approval_made_while_rollbot_was_down_is_acted_on_once_after_restart(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
) -> None:
    """A ✅ that never reached rollbot (down, or killed after the ack) is read back at start-up."""
    store, deliveries = state
    first = Served(serve_env, slack_workspace)
    run = plan_via(first, slack_workspace, store)
    channel, ts = plan_message(deliveries, run.id)
    first.kill()
    # The reaction is on the message in Slack, but no event for it ever reached rollbot.
    slack_workspace.workspace.react(channel, ts, APPROVER, "white_check_mark")
    slack_workspace.workspace.react(channel, ts, BYSTANDER, "white_check_mark")
    second = Served(serve_env, slack_workspace)
    try:
        wait_state(store, run.id, RunState.SUCCEEDED)
        second.stop()
        third = Served(serve_env, slack_workspace)  # a further restart acts on nothing again
        time.sleep(3)
        third.stop()
    finally:
        second.stop()
    kinds = [e["kind"] for e in store.events(run.id)]
    assert kinds.count("execution_started") == 1
    assert store.get(run.id).approvers == (APPROVER,)


def test_a_surviving_replica_settles_a_killed_replicas_run_without_a_restart(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
    db_0023: str,
) -> None:
    """Two replicas; the executing one gets kill -9: the other settles and announces the run."""
    store, deliveries = state
    env = {**serve_env, "ROLLBOT_LOCK_TIMEOUT": "20s"}
    first, survivor = Served(env, slack_workspace), Served(env, slack_workspace)
    try:
        run = plan_via(first, slack_workspace, store)
        where = plan_message(deliveries, run.id)
        with psycopg.connect(db_0023) as blocker:
            blocker.execute("SELECT count(*) FROM assets")  # execution waits here
            first.sender.reaction_added(APPROVER, "white_check_mark", *where)
            wait_state(store, run.id, RunState.EXECUTING)
            first.kill()
            killed_at = time.monotonic()
            # Nobody restarts anything: the survivor's sweep finds the orphan.
            failed = wait_state(store, run.id, RunState.FAILED, timeout=30)
        assert time.monotonic() - killed_at < 20
        assert "before COMMIT" in (failed.reason or "")
        slack_workspace.wait_for(
            "chat.postMessage",
            lambda c: "before COMMIT" in str(c.params.get("text")),
            timeout=20,
        )
        kinds = [e["kind"] for e in store.events(run.id)]
        assert kinds.count("execution_started") == 1
    finally:
        survivor.stop()


def test_two_replicas_execute_a_run_once(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
) -> None:
    """Two serve processes each get an approval for the same run: one execution, one result."""
    store, deliveries = state
    one, two = Served(serve_env, slack_workspace), Served(serve_env, slack_workspace)
    try:
        run = plan_via(one, slack_workspace, store)
        channel, ts = plan_message(deliveries, run.id)
        one.sender.reaction_added(APPROVER, "white_check_mark", channel, ts)
        two.sender.reaction_added(SECOND_APPROVER, "white_check_mark", channel, ts)
        wait_state(store, run.id, RunState.SUCCEEDED)
        time.sleep(2.5)  # both couriers get a round
        kinds = [e["kind"] for e in store.events(run.id)]
        assert kinds.count("execution_started") == 1
        # The result's headline; an approval that lands after it is answered "has succeeded".
        headline = f"Run {run.id} succeeded:"
        thread = [m.text for m in slack_workspace.thread(channel, ts) if m.ts != ts]
        results = [text for text in thread if text.startswith(headline)]
        assert len(results) == 1, thread
    finally:
        logs = one.stop() + two.stop()
    assert all("run_id" in json.loads(line) for line in logs.splitlines() if line.startswith("{"))


def test_run_that_expired_while_down_is_expired_on_start(
    serve_env: dict[str, str],
    slack_workspace: SlackStandIn,
    state: tuple[RunStore, Deliveries],
) -> None:
    """The approval window closes while rollbot is down: expired at start-up, and announced."""
    store, deliveries = state
    env = {**serve_env, "ROLLBOT_APPROVAL_TTL": "2s"}
    first = Served(env, slack_workspace)
    run = plan_via(first, slack_workspace, store)
    plan_message(deliveries, run.id)
    first.kill()
    time.sleep(2.5)
    second = Served(env, slack_workspace)
    try:
        expired = store.get(run.id)
        assert expired.state is RunState.EXPIRED
        slack_workspace.wait_for(
            "chat.postMessage", lambda c: "has expired" in str(c.params.get("text")), timeout=20
        )
    finally:
        second.stop()


def test_unreachable_state_database_fails_start_naming_the_variable(
    serve_env: dict[str, str],
) -> None:
    """No database at start: retries with backoff, then one clear error naming DATABASE_URL."""
    env = {
        **serve_env,
        "DATABASE_URL": "postgresql://rollbot:hunter2@127.0.0.1:1/app",
        "ROLLBOT_CONNECT_TIMEOUT": "1s",
        "ROLLBOT_STARTUP_TIMEOUT": "3s",
        "PORT": str(_free_port()),
    }
    done = serve_once(env)
    assert done.returncode == 2
    assert "The state database (DATABASE_URL) cannot be reached" in done.stderr
    assert "serve.state_db_unavailable" in done.stderr
    assert "hunter2" not in done.stderr


def test_missing_bot_token_fails_start_naming_the_variable(serve_env: dict[str, str]) -> None:
    """Rollbot serve without SLACK_BOT_TOKEN stops at once, saying which variable to set."""
    env = {k: v for k, v in serve_env.items() if k != "SLACK_BOT_TOKEN"}
    done = serve_once(env)
    assert done.returncode == 2
    assert "SLACK_BOT_TOKEN: is not set" in done.stderr
