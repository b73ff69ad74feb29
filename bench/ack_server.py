"""The two servers the ack scenario compares, each in a process of its own, as in production.

`python -m bench.ack_server rollbot` is `rollbot serve` itself (settings from the environment,
HTTP mode), bound to 127.0.0.1. `python -m bench.ack_server bare` is the least a Bolt app can
be: the same signing secret, bot token and Web API, one `/rollback` listener that only acks,
served by the same waitress settings. Whatever the first costs more than the second is
rollbot's own doing: its request gate, its listener, and the work it does after each ack.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress.server import create_server

from bot.app import EVENTS_PATH
from bot.config import load_settings
from bot.logs import configure_logging
from bot.serve import HTTP_THREADS, serve

HOST = "127.0.0.1"


def bare_app() -> SlackRequestHandler:
    """A Bolt app configured as rollbot's is, whose one listener does nothing but ack."""
    client = WebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"], timeout=15
    )
    app = App(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=False,
        logger=logging.getLogger("slack_bolt"),
    )

    @app.command("/rollback")
    def rollback(ack: Ack) -> None:
        ack()

    return SlackRequestHandler(app, path=EVENTS_PATH)


def serve_bare() -> int:
    """Serve the bare app on $PORT until SIGTERM."""
    configure_logging(level=os.environ.get("ROLLBOT_LOG_LEVEL", "info"))
    server = create_server(
        bare_app(), host=HOST, port=int(os.environ["PORT"]), threads=HTTP_THREADS
    )
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        server.close()
    return 0


def _stop(signum: int, frame: object) -> None:  # noqa: ARG001 - signal handler signature
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """`rollbot` or `bare`."""
    if argv == ["rollbot"]:
        return serve(load_settings(), host=HOST)
    if argv == ["bare"]:
        return serve_bare()
    print("usage: python -m bench.ack_server rollbot|bare", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
