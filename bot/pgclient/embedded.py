"""The embedded PostgreSQL used when no server is configured (demo, tests on bare machines).

pgserver ships a whole PostgreSQL with its own client tools, so a fresh machine can run the
demo and the suite without installing a server. It is imported lazily: production images do
not carry it.
"""

from __future__ import annotations

import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.errors import RollbotError

if TYPE_CHECKING:
    from collections.abc import Iterator


def embedded_bin_dir() -> Path | None:
    """Where the embedded server's own pg_dump lives, or None when pgserver is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH)


@contextmanager
def embedded_server(parent: Path | None = None) -> Iterator[str]:
    """Start a throw-away PostgreSQL in a temporary directory; yield its conninfo; delete it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver.postgres_server  # noqa: PLC0415
    except ImportError as exc:
        raise RollbotError(
            "No PostgreSQL to run against",
            why="DATABASE_URL is not set and the embedded server (pgserver) is not installed",
            todo="set DATABASE_URL, or install rollbot with the 'embedded' extra",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="rollbot-pg-", dir=parent) as tmp:
        pgdata = Path(tmp) / "pgdata"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.postgres_server.get_server(pgdata, cleanup_mode="delete")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
