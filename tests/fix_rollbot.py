"""A rollbot service wired to a test database, and ways to look at a database's schema."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from bot.config import load_settings
from bot.pgclient.tools import find_pg_tools
from bot.service.rollback import Rollbot
from bot.state.store import RunStore
from demo.sample import MIGRATIONS_DIR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bot.core.quarantine import DropMode

RUNBOOKS = Path(__file__).parents[1] / "runbooks"
# The suite runs in quarantine mode, rollbot's default; `make test-drop-mode` runs the safety
# tests again with ROLLBOT_TEST_DROP_MODE=drop.
DROP_MODE: DropMode = "drop" if os.environ.get("ROLLBOT_TEST_DROP_MODE") == "drop" else "quarantine"
REQUESTER = "U0ALICE"
APPROVER = "U0BOB"
SECOND_APPROVER = "U0CAROL"


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Rollbot]]:
    """Factory: `make_service(conninfo, runbooks_dir=None, **settings)` -> Rollbot."""
    stores: list[RunStore] = []

    def make(conninfo: str, runbooks_dir: Path | None = None, **overrides: Any) -> Rollbot:
        defaults: dict[str, Any] = {
            "database_url": conninfo,
            "runbooks_dir": runbooks_dir or RUNBOOKS,
            "backup_dir": tmp_path / "backups",
            "approvers": (APPROVER, SECOND_APPROVER),
            "rehearsal": "off",  # rehearsal has its own tests; the others need not pay for it
            "migrations_dir": MIGRATIONS_DIR,
            "drop_mode": DROP_MODE,
        }
        settings = load_settings(**(defaults | overrides))
        store = RunStore(conninfo)
        store.migrate()
        stores.append(store)
        return Rollbot(settings, store)

    yield make
    for store in stores:
        store.close()


def runbooks_with(tmp_path: Path, name: str, text: str) -> Path:
    """A runbooks directory holding the seed plus one extra runbook."""
    directory = tmp_path / "runbooks"
    directory.mkdir(exist_ok=True)
    shutil.copy(RUNBOOKS / "0023_loud_shen.md", directory)
    (directory / name).write_text(text)
    return directory


def schema_of(conninfo: str, exclude: tuple[str, ...] = ("rollbot",)) -> str:
    """The schema as pg_dump prints it, without rollbot's state (or other schemas named).

    Quarantines are left out too: the application's schema is what a rollback is judged
    on, and what a quarantine holds is checked by the tests of quarantines.
    """
    with psycopg.connect(conninfo) as conn:
        major = conn.info.server_version // 10000
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    dump = subprocess.run(
        [
            str(_pg_dump(major)),
            "--schema-only",
            "--no-owner",
            *(f"--exclude-schema={schema}" for schema in exclude),
            "--exclude-schema=rollbot_quarantine_*",
            f"--dbname={psycopg.conninfo.make_conninfo(**params)}",  # type: ignore[arg-type]
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # \restrict / \unrestrict carry a random key per dump (pg_dump 15.14+): not schema.
    return "\n".join(
        line
        for line in dump.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    )


@functools.cache
def _pg_dump(server_major: int) -> Path:
    """Finding pg_dump runs every candidate's `--version`: once per session is enough."""
    return find_pg_tools(server_major).pg_dump


def counts_of(conninfo: str, tables: list[str]) -> dict[str, int]:
    """Exact rows per table."""
    with psycopg.connect(conninfo) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in tables
        }
