"""`rollbot serve` as deployed: a real process in HTTP mode, and Socket Mode over a websocket."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.app import build
from bot.core.states import RunState
from bot.logs import configure_logging
from bot.slack.socket_mode import CheckedSocketModeHandler
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackSender, SlackStandIn, serve_wsgi
from demo.standin.socket import SocketModeServer
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS, SECOND_APPROVER
from tests.fix_slackbot import REQUEST_CHANNEL, SIGNING_SECRET, SlackBot, socket_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                return dict(json.loads(answer.read()))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_http_mode_process_answers_health_commands_and_sigterm(
    db_0023: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    """The real server: /healthz 200, the doctor logged, help answered, SIGTERM exits 0."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_0023,
        "SLACK_BOT_TOKEN": standin.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": standin.api_url,
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "PORT": str(port),
    }
    env.pop("SLACK_APP_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 20
        while "doctor" not in health:  # the start-up doctor runs beside the server
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
            health = wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert health == {
            "ok": True,
            "state_db": "ok",
            "courier": "ok",
            "sweeper": "ok",
            "doctor": "ok",  # warnings only: no migrations folder, a superuser role
        }
        sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, standin)
        mark = standin.mark()
        assert (
            sender.slash_command("help", user_id=REQUESTER, channel_id=REQUEST_CHANNEL).status
            == 200
        )
        answer = standin.wait_for("response_url", since=mark, timeout=10)
        assert "/rollback cancel RUN" in answer.params["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["event"] == "serve.stopping" for line in lines)
    assert all("run_id" in line for line in lines)
    checks = [line for line in lines if line["event"] == "doctor.check"]
    assert {(c["subject"], c["check"], c["result"]) for c in checks} >= {
        ("target default", "reachable", "ok"),
        ("target default", "migrations folder", "warning"),
        ("slack", "scopes", "ok"),
    }
    assert all(c["level"] == {"ok": "info"}.get(c["result"], c["result"]) for c in checks)
    assert standin.bot_token not in stderr
    assert SIGNING_SECRET not in stderr


@pytest.mark.slow
def test_socket_mode_process_needs_no_signing_secret_and_reports_its_websocket(
    db_0023: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    """`rollbot serve` in Socket Mode, as deployed: no signing secret, /healthz sees the socket."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_0023,
        "SLACK_BOT_TOKEN": standin.bot_token,
        "SLACK_APP_TOKEN": standin.app_token,
        "SLACK_API_URL": standin.api_url,
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "PORT": str(port),
    }
    env.pop("SLACK_SIGNING_SECRET", None)
    with SocketModeServer(standin) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            server.wait_for_connection(timeout=30)
            health = wait_healthy(f"http://127.0.0.1:{port}/healthz")
            assert health["socket_mode"] == "ok", health
            assert health["ok"] is True
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr


def test_socket_mode_runs_the_whole_flow(
    db_0023: str, slack_workspace: SlackStandIn, tmp_path: Path
) -> None:
    """Over the websocket: the command is acked, the plan posted, the reaction approves."""
    standin = slack_workspace
    settings = socket_settings(
        db_0023,
        standin,
        tmp_path,
        approvers=(APPROVER, SECOND_APPROVER),
        migrations_dir=MIGRATIONS_DIR,
    )
    assert settings.slack_mode() == "socket"
    components = build(settings)
    components.start()
    with SocketModeServer(standin) as server:
        handler = SocketModeHandler(components.bolt, app_token=standin.app_token)
        handler.connect()  # type: ignore[no-untyped-call]
        try:
            server.wait_for_connection()
            envelope = server.send_slash_command(
                "0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL
            )
            server.wait_for_ack(envelope)
            standin.wait_for("response_url", timeout=30)
            (run,) = components.store.recent()
            components.courier.deliver_pending()
            where = components.deliveries.slack_message(run.id, "plan")
            assert where is not None
            server.wait_for_ack(server.reaction_added(APPROVER, "white_check_mark", *where))
            deadline = time.monotonic() + 30
            while components.store.get(run.id).state is not RunState.SUCCEEDED:
                assert time.monotonic() < deadline, components.store.get(run.id)
                time.sleep(0.1)
        finally:
            server.stop()
            handler.close()  # type: ignore[no-untyped-call]
            components.stop()


def test_health_is_503_while_the_websocket_is_down(
    db_0023: str, slack_workspace: SlackStandIn, tmp_path: Path
) -> None:
    """A Socket Mode rollbot whose websocket is down hears nobody: /healthz must say so."""
    standin = slack_workspace
    settings = socket_settings(db_0023, standin, tmp_path)
    components = build(settings)
    components.start()
    handler = SocketModeHandler(components.bolt, app_token=standin.app_token)
    try:
        with serve_wsgi(components.health_wsgi()) as url:
            server = SocketModeServer(standin)
            server.__enter__()
            handler.connect()  # type: ignore[no-untyped-call]
            server.wait_for_connection()
            components.socket_connected = handler.client.is_connected
            assert wait_healthy(f"{url}/healthz")["socket_mode"] == "ok"
            server.__exit__(None, None, None)  # Slack's end goes away
            deadline = time.monotonic() + 20
            while (status := _status(f"{url}/healthz"))[0] != 503:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            assert status[1]["socket_mode"] == "disconnected"
            assert status[1]["ok"] is False
    finally:
        handler.close()  # type: ignore[no-untyped-call]
        components.stop()


def test_health_is_503_when_the_courier_stops_delivering(
    db_0023: str, make_slackbot: Callable[..., SlackBot]
) -> None:
    """A message due for a minute and not delivered: the courier is wedged, not healthy."""
    bot = make_slackbot(db_0023)
    assert _status(f"{bot.url}/healthz") == (
        200,
        {"ok": True, "state_db": "ok", "courier": "ok", "sweeper": "ok"},
    )
    bot.components.courier.stop()
    bot.components.service.request("0023", requested_by=REQUESTER)  # its messages wait
    with psycopg.connect(db_0023, autocommit=True) as conn:  # ... as if for two minutes
        conn.execute("UPDATE rollbot.outbox SET next_attempt_at = now() - interval '2 minutes'")
    status, body = _status(f"{bot.url}/healthz")
    assert status == 503
    assert body["courier"].startswith("a message has waited 1")
    assert body["state_db"] == "ok"


def _status(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
            return answer.status, dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        return error.code, dict(json.loads(error.read()))


def test_socket_mode_survives_malformed_envelopes(
    db_0023: str, slack_workspace: SlackStandIn, tmp_path: Path
) -> None:
    """Malformed frames and envelopes are acked and logged by reason; the connection lives on."""
    standin = slack_workspace
    logs = io.StringIO()
    configure_logging(secrets=[], stream=logs, json=True, level="info")
    marker = "marker-5be2d0"  # the stand-in's own debug lines would show its frames
    settings = socket_settings(db_0023, standin, tmp_path)
    components = build(settings)
    components.start()
    with SocketModeServer(standin) as server:
        handler = CheckedSocketModeHandler(components.bolt, app_token=standin.app_token)
        handler.connect()  # type: ignore[no-untyped-call]
        try:
            server.wait_for_connection()
            server.send_raw("{" + marker)
            server.send_raw(json.dumps([marker]))
            malformed: list[tuple[str, object]] = [
                ("events_api", [marker]),
                ("events_api", marker),
                ("events_api", {"type": "event_callback", "event": marker}),
                ("events_api", {"type": "event_callback", "event": None, "m": marker}),
                ("slash_commands", {"text": marker}),
                ("slash_commands", {"command": "/rollback", "text": marker, "user_id": "U1"}),
                ("interactive", [marker]),
                ("interactive", {"type": "block_actions", "user": {"id": "U1"}, "m": marker}),
                ("nonsense", {"m": marker}),
            ]
            envelopes = []
            for kind, payload in malformed:
                envelope_id = str(uuid.uuid4())
                envelopes.append(envelope_id)
                server.send_raw(
                    json.dumps({"envelope_id": envelope_id, "type": kind, "payload": payload})
                )
            server.send_raw(json.dumps({"type": "events_api", "payload": {"m": marker}}))
            for envelope_id in envelopes:
                server.wait_for_ack(envelope_id)
            mark = standin.mark()
            envelope = server.send_slash_command(
                "help", user_id=REQUESTER, channel_id=REQUEST_CHANNEL
            )
            server.wait_for_ack(envelope)
            answer = standin.wait_for("response_url", since=mark, timeout=10)
            assert "/rollback cancel RUN" in answer.params["text"]
            assert server.connections_opened == 1
            assert components.store.recent() == []
        finally:
            server.stop()
            handler.close()  # type: ignore[no-untyped-call]
            components.stop()
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("event") == "slack.envelope_refused"]
    assert len(refused) == len(malformed) + 2
    assert not [line for line in lines if line.get("level") == "error"]
    assert marker not in logs.getvalue()
