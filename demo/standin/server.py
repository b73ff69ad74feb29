"""The HTTP side of the stand-in: a threaded server on 127.0.0.1 and what it does per request.

Each request is routed (Web API method, file upload, response URL), checked against the faults
a test asked for, answered, and recorded with its parsed arguments, so that a test can assert
on exactly what the bot sent. Nothing here knows what a method means; `methods.WebApi` does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from demo.standin.methods import Reply
from demo.standin.wire import bearer_token, encode, parse_params
from demo.standin.workspace import SlackError

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.standin.faults import Faults
    from demo.standin.methods import WebApi
    from demo.standin.model import JSON
    from demo.standin.recording import CallLog

log = logging.getLogger(__name__)

# How the endpoints that are not Web API methods appear in the call log.
UPLOAD = "upload"
RESPONSE_URL = "response_url"


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackHttpServer
    server_version = "SlackStandIn/1.0"

    def do_POST(self) -> None:
        self.server.handle(self)

    def do_GET(self) -> None:
        self.server.handle(self)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("standin http: " + format, *args)  # noqa: G003 - the base class's format string


class LoopbackHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free port of 127.0.0.1, served from a daemon thread."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.handle: Callable[[BaseHTTPRequestHandler], None] = _not_ready
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}/"
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slack-standin",
            daemon=True,
        )

    def start(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        """Begin answering requests with `handle`; the port is known before, for building URLs."""
        self.handle = handle
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and free the port."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def _not_ready(handler: BaseHTTPRequestHandler) -> None:
    handler.send_error(503, "the stand-in is starting")


class HttpFront:
    """Routes, applies faults, answers and records one request at a time (from many threads)."""

    def __init__(self, api: WebApi, faults: Faults, calls: CallLog) -> None:
        self.api = api
        self.faults = faults
        self.calls = calls

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request as Slack would, unless a fault says otherwise."""
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        url = urlsplit(handler.path)
        kind, name = route(url.path)
        label = name if kind == "api" else kind
        outage = self.faults.outage
        if outage is not None:
            self.calls.add(label, {}, headers, 503, None, fault="unavailable", raw=raw)
            if outage == "disconnect":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
            else:
                _answer(handler, Reply(503, {"ok": False, "error": "service_unavailable"}))
            return
        params: JSON = {}
        try:
            if kind != UPLOAD:
                params = parse_params(headers.get("content-type", ""), raw, url.query)
        except SlackError as error:
            reply, fault = Reply(200, {"ok": False, "error": error.code}), None
        else:
            reply, fault = self._answer(kind, name, params, headers, raw)
        self.calls.add(label, params, headers, reply.status, reply.body, fault=fault, raw=raw)
        _answer(handler, reply)

    def _answer(
        self, kind: str, name: str, params: JSON, headers: dict[str, str], raw: bytes
    ) -> tuple[Reply, str | None]:
        """The answer, and which fault (if any) shaped it."""
        label = name if kind == "api" else kind
        script = self.faults.take(label, params)
        if script is not None and script.kind in {"error", "garbage"}:
            return script.reply(as_json=kind == "api"), (
                "scripted" if script.kind == "error" else script.kind
            )
        refusal = self.faults.refusal(params) if kind == "api" else None
        if refusal is not None:
            return refusal, "refused_channel"
        if script is not None and script.kind == "slow":
            time.sleep(script.delay_s)
        reply = self._dispatch(kind, name, params, headers, raw)
        if script is not None and script.kind == "malformed":
            return script.spoil(reply), "malformed"
        return reply, script.kind if script is not None else None

    def _dispatch(
        self, kind: str, name: str, params: JSON, headers: dict[str, str], raw: bytes
    ) -> Reply:
        if kind == "api":
            return self.api.call(name, params, bearer_token(headers, params))
        if kind == UPLOAD:
            return self.api.upload(name, raw)
        if kind == RESPONSE_URL:
            return self.api.respond(name, params)
        return Reply(404, "not_found")


def _answer(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    payload, content_type = encode(reply.body)
    content_type = reply.content_type or content_type
    handler.send_response(reply.status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    for key, value in reply.headers:
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(payload)


def route(path: str) -> tuple[str, str]:
    """Which endpoint a path names, and the method or key in it."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "api":  # noqa: PLR2004 - /api/<method>
        return "api", parts[1]
    if len(parts) == 3 and parts[:2] == ["upload", "v1"]:  # noqa: PLR2004 - /upload/v1/<key>
        return UPLOAD, parts[2]
    if len(parts) == 3 and parts[0] == "commands":  # noqa: PLR2004 - /commands/<team>/<key>
        return RESPONSE_URL, parts[2]
    return "unknown", path
