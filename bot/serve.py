"""`rollbot serve`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP; /healthz in both.

HTTP is served by waitress (a production WSGI server) on $PORT with Slack's Request URL at
/slack/events. In Socket Mode the same port serves only the health check, so orchestrators
probe both modes the same way. SIGTERM stops accepting work and drains the outbox courier.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import structlog
from waitress.server import create_server

from bot.app import build
from bot.core.errors import DatabaseUnavailableError
from bot.logs import configure_logging
from bot.slack.socket_mode import CheckedSocketModeHandler

if TYPE_CHECKING:
    from bot.app import Components
    from bot.config import Settings

log = structlog.get_logger()
# waitress's request threads: how many Slack requests can be read and answered at once.
HTTP_THREADS = 8


def serve(settings: Settings, *, host: str = "0.0.0.0") -> int:  # noqa: S104 - a server binds all
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    mode = settings.slack_mode()
    configure_logging(secrets=settings.secrets(), level=settings.log_level)
    components = _build_with_retries(settings)
    components.start()
    components.check_setup()  # `rollbot doctor`, logged line by line; never stops the start
    log.info("serve.started", mode=mode, port=settings.port)
    socket_handler: CheckedSocketModeHandler | None = None
    try:
        if mode == "socket":
            token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
            socket_handler = CheckedSocketModeHandler(components.bolt, app_token=token)
            socket_handler.connect()  # type: ignore[no-untyped-call]
            components.socket_connected = socket_handler.client.is_connected
            app = components.health_wsgi()
        else:
            app = components.wsgi()
        server = create_server(app, host=host, port=settings.port, threads=HTTP_THREADS)
        signal.signal(signal.SIGTERM, _stop)
        try:
            server.run()
        except (SystemExit, KeyboardInterrupt):
            server.close()
    finally:
        log.info("serve.stopping")
        if socket_handler is not None:
            socket_handler.close()  # type: ignore[no-untyped-call]
        components.stop()
    return 0


def _stop(signum: int, frame: object) -> None:  # noqa: ARG001 - signal handler signature
    raise SystemExit(0)


def _build_with_retries(settings: Settings) -> Components:
    """The state database may start after rollbot (compose, k8s): retry with backoff."""
    deadline = time.monotonic() + settings.startup_timeout.total_seconds()
    delay = 0.5
    attempt = 1
    while True:
        try:
            return build(settings)
        except DatabaseUnavailableError as exc:
            if exc.lasting or time.monotonic() + delay > deadline:
                raise  # a wrong setting does not fix itself: say so at once
            log.warning(
                "serve.state_db_unavailable", attempt=attempt, retry_in_s=delay, why=exc.why
            )
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
            attempt += 1
