"""Slack's Socket Mode endpoint on 127.0.0.1, for apps that connect out instead of serving HTTP.

The app asks `apps.connections.open` (on the Web API stand-in) for a URL, connects, gets a
`hello`, then receives envelopes and must acknowledge each by `envelope_id` within three
seconds. The server runs its own asyncio loop on a background thread; tests push envelopes
and wait for acknowledgements from their own thread. Slash commands and events carry the
same payloads as over HTTP, built by the same code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from demo.standin import interactive, payloads

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

    from websockets.http11 import Request, Response

    from demo.standin.model import JSON
    from demo.standin.webapi import SlackStandIn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    """The app's acknowledgement of one envelope, with the response payload if it sent one."""

    envelope_id: str
    payload: JSON | None
    at: float


class SocketModeServer:
    """A Socket Mode server attached to a stand-in, so `apps.connections.open` points here."""

    def __init__(self, standin: SlackStandIn, *, ping_interval: float | None = 20.0) -> None:
        self.standin = standin
        self.ping_interval = ping_interval
        self._changed = threading.Condition()
        self._tickets: set[str] = set()
        self._live: list[ServerConnection] = []
        self._opened = 0
        self._acks: dict[str, Ack] = {}
        self._commands: dict[str, str] = {}  # envelope id -> response URL of a slash command
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and attach to the stand-in."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="socket-mode-standin", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=5):
            raise RuntimeError("the Socket Mode stand-in did not start within 5 seconds")
        self.standin.attach_socket_mode(self.new_url)
        return self

    def stop(self) -> None:
        """Close every connection, stop listening and detach from the stand-in."""
        if self._thread is None:
            return
        self.standin.attach_socket_mode(None)
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def new_url(self) -> str:
        """A connection URL with a fresh ticket, as `apps.connections.open` hands out."""
        ticket = str(uuid.uuid4())
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={self.standin.identity.app_id}"

    # -- connections -------------------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """How many connections the app has opened so far (reconnects count)."""
        with self._changed:
            return self._opened

    def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` connections have been opened and one is live."""
        self._wait(
            lambda: self._opened >= count and bool(self._live), timeout, "a Socket Mode connection"
        )

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect, as Slack does before it recycles a connection."""
        self._send(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}, timeout=5.0
        )

    def close_connections(self) -> None:
        """Close every live connection from the server's side (the app should reconnect)."""
        with self._changed:
            live = list(self._live)
        for connection in live:
            self._submit(connection.close(1001, "server going away"), timeout=5.0)

    # -- envelopes ---------------------------------------------------------------------------

    def send_slash_command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        command: str = "/rollback",
        user_name: str | None = None,
        channel_name: str | None = None,
    ) -> str:
        """Run a slash command through the socket; returns the envelope id to wait on."""
        fields = payloads.slash_command(
            self.standin,
            text,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            user_name=user_name,
            channel_name=channel_name,
        )
        envelope_id = str(uuid.uuid4())
        with self._changed:
            self._commands[envelope_id] = fields["response_url"]
        return self.send_envelope(
            "slash_commands", fields, envelope_id=envelope_id, accepts_response_payload=True
        )

    def send_event(
        self,
        event: JSON,
        *,
        event_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Deliver an event through the socket; returns the envelope id to wait on."""
        envelope = payloads.event_callback(
            self.standin, event, event_id=event_id, retry=retry_attempt > 0
        )
        return self.send_envelope(
            "events_api", envelope, retry_attempt=retry_attempt, retry_reason=retry_reason
        )

    def reaction_added(
        self, user: str, reaction: str, channel: str, ts: str, item_user: str | None = None
    ) -> str:
        """`user` adds `reaction` to the message at `ts`, delivered through the socket."""
        return self.send_event(
            payloads.reaction_added(self.standin, user, reaction, channel, ts, item_user=item_user)
        )

    def press(self, user: str, channel: str, ts: str, action_id: str) -> str:
        """`user` presses a button on a message, delivered through the socket."""
        return self.send_interactive(
            interactive.block_actions(self.standin, user, channel, ts, action_id)
        )

    def send_interactive(self, payload: JSON) -> str:
        """Deliver an interaction payload (a press, a sent modal); returns the envelope id."""
        return self.send_envelope("interactive", payload, accepts_response_payload=True)

    def send_envelope(
        self,
        kind: str,
        payload: JSON,
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool = False,
        **extra: object,
    ) -> str:
        """Push one envelope to the newest live connection, waiting for one if needed."""
        envelope_id = envelope_id or str(uuid.uuid4())
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            **extra,
        }
        self._send(message, timeout=5.0)
        return envelope_id

    def send_raw(self, frame: str) -> None:
        """Push one frame exactly as given (a malformed one, to see the app survive it)."""
        self._wait(lambda: bool(self._live), 5.0, "live Socket Mode connection to send on")
        with self._changed:
            connection = self._live[-1]
        self._submit(connection.send(frame), timeout=5.0)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """The app's acknowledgement of an envelope, waiting for it to arrive."""
        self._wait(lambda: envelope_id in self._acks, timeout, f"the ack of envelope {envelope_id}")
        with self._changed:
            return self._acks[envelope_id]

    def acks(self) -> list[Ack]:
        """Every acknowledgement so far, oldest first."""
        with self._changed:
            return sorted(self._acks.values(), key=lambda ack: ack.at)

    # -- internals ---------------------------------------------------------------------------

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout:.1f}s")
                self._changed.wait(remaining)

    def _send(self, message: JSON, *, timeout: float) -> None:
        self._wait(lambda: bool(self._live), timeout, "live Socket Mode connection to send on")
        with self._changed:
            connection = self._live[-1]
        self._submit(connection.send(json.dumps(message)), timeout=timeout)

    def _submit(self, work: Coroutine[object, object, object], *, timeout: float) -> None:
        if self._loop is None:
            raise RuntimeError("the Socket Mode stand-in is not started")
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with serve(
            self._converse,
            "127.0.0.1",
            0,
            process_request=self._check_ticket,
            ping_interval=self.ping_interval,
            close_timeout=1,
        ) as server:
            self._port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stopping.wait()

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse URLs this server never handed out, as Slack refuses stale tickets."""
        ticket = parse_qs(urlsplit(request.path).query).get("ticket", [""])[0]
        with self._changed:
            known = ticket in self._tickets
        if known:
            return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "unknown ticket\n")

    async def _converse(self, connection: ServerConnection) -> None:
        with self._changed:
            self._live.append(connection)
            self._opened += 1
            count = len(self._live)
            self._changed.notify_all()
        try:
            await connection.send(json.dumps(self._hello(count)))
            async for raw in connection:
                self._receive(raw)
        except ConnectionClosed:
            log.debug("socket mode connection closed by the app")
        finally:
            with self._changed:
                self._live.remove(connection)
                self._changed.notify_all()

    def _hello(self, count: int) -> JSON:
        return {
            "type": "hello",
            "num_connections": count,
            "debug_info": {
                "host": "standin",
                "build_number": 1,
                "approximate_connection_time": 3600,
            },
            "connection_info": {"app_id": self.standin.identity.app_id},
        }

    def _receive(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("socket mode: ignoring a frame that is not JSON: %r", raw)
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            log.warning("socket mode: ignoring a message without envelope_id: %r", message)
            return
        payload = message.get("payload")
        ack = Ack(envelope_id, payload if isinstance(payload, dict) else None, time.time())
        with self._changed:
            self._acks[envelope_id] = ack
            response_url = self._commands.pop(envelope_id, None)
            self._changed.notify_all()
        if response_url is not None and ack.payload is not None:
            self.standin.command_answered(response_url, ack.payload)
