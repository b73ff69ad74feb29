"""Serving an app under test on loopback, the way it runs in production (waitress).

The loop is driven here rather than by `server.run()`: closing waitress's sockets from another
thread races its `select` (EBADF), so the loop's own thread closes them.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from waitress import wasyncore
from waitress.server import create_server

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator

    from _typeshed.wsgi import WSGIApplication


@contextmanager
def serve_wsgi(app: WSGIApplication) -> Iterator[str]:
    """Serve a WSGI app with waitress on a free port of 127.0.0.1; yields its root URL.

    The loop is driven here rather than by `server.run()`: closing waitress's sockets from
    another thread races its `select` (EBADF), so the loop thread closes them itself.
    """
    sockets: dict[int, socket.socket] = {}
    server = create_server(app, map=sockets, host="127.0.0.1", port=0, threads=4)
    port = getattr(server, "effective_port", None)
    if port is None:
        raise RuntimeError("waitress bound more than one socket; expected exactly one")
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            wasyncore.poll(0.05, sockets)
        wasyncore.close_all(sockets)

    thread = threading.Thread(target=loop, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()
