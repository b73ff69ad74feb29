"""The target adapter: bounded connects, no password in any message, tools probed once."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core.library import load_library
from bot.core.plan import Plan
from bot.pgclient.tools import PgTools
from bot.target import database as database_module
from bot.target.database import TargetDatabase, TargetUnreachableError
from bot.target.execute import execute_plan
from bot.target.restore import run_verify_queries
from tests.fix_rollbot import REQUESTER, RUNBOOKS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bot.service.rollback import Rollbot

PASSWORD = "s3cret-never-shown"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes the TCP handshake but never answers: a hung server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections queue in the backlog; nobody ever accepts them
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable(port: int, timeout_s: float = 1.0) -> TargetDatabase:
    conninfo = f"host=127.0.0.1 port={port} dbname=app user=rollbot password={PASSWORD}"
    return TargetDatabase.at(
        conninfo, name="production", connect_timeout=timedelta(seconds=timeout_s)
    )


def test_a_server_that_does_not_answer_fails_within_the_connect_timeout(silent_port: int) -> None:
    """A hung server costs the configured connect timeout, not the kernel's minutes."""
    target = unreachable(silent_port, timeout_s=1)
    started = time.monotonic()
    with pytest.raises(TargetUnreachableError) as caught, target.connect("plan"):
        pass
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5
    assert caught.value.what == "Target production cannot be reached"


@pytest.mark.parametrize("port_fixture", ["silent_port", "closed_port"])
def test_the_password_is_in_no_message_about_the_target(
    port_fixture: str, request: pytest.FixtureRequest
) -> None:
    """Rendered, repr'd or chained: the error names the target, never its password."""
    target = unreachable(request.getfixturevalue(port_fixture))
    with pytest.raises(TargetUnreachableError) as caught, target.connect("plan"):
        pass
    error = caught.value
    assert error.__cause__ is None
    assert error.__suppress_context__
    texts = [error.render(), str(error), repr(error), error.message, error.primary, error.why]
    assert all(PASSWORD not in text for text in texts)
    assert "production" in error.render()


def test_an_unreachable_target_fails_the_execution_without_the_password(
    closed_port: int, make_service: Callable[..., Rollbot], db_0023: str, tmp_path: Path
) -> None:
    """execute_plan reports a lost target as a failed connection: nothing changed, no secret."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    plan = Plan.model_validate(run.plan)
    outcome = execute_plan(
        plan,
        load_library(RUNBOOKS).find("0023"),
        target=unreachable(closed_port),
        tools=service.planner.database().tools(plan.target.server_major),
        backup_dir=tmp_path / "b",
        run_id=run.id,
        on_commit_pending=lambda _: None,
    )
    assert not outcome.succeeded
    assert outcome.error == (
        "the database connection failed (OperationalError); the transaction did not commit, "
        "nothing was changed"
    )
    assert PASSWORD not in outcome.model_dump_json()


def test_transaction_status_of_an_unreachable_target_is_unknown_in_time(silent_port: int) -> None:
    """Recovery asks within the connect timeout and hears "unknown", not an exception."""
    started = time.monotonic()
    assert unreachable(silent_port, timeout_s=1).xact_status(1234) is None
    assert time.monotonic() - started < 5


def test_connections_say_what_rollbot_is_doing(db_0023: str) -> None:
    """pg_stat_activity shows `rollbot <purpose>`, for the target and for a sibling database."""
    target = TargetDatabase.at(db_0023)
    with target.connect("plan", read_only=True) as conn:
        row = conn.execute("SELECT current_setting('application_name')").fetchone()
        assert row == ("rollbot plan",)
        assert conn.read_only
    sibling = target.sibling("postgres")
    with sibling.connect("scratch", autocommit=True) as conn:
        row = conn.execute("SELECT current_database(), current_setting('application_name')")
        assert row.fetchone() == ("postgres", "rollbot scratch")
    assert sibling._timeout == target._timeout


def test_client_tools_are_probed_once_per_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated runs, and the target's scratch databases, reuse the first probe."""
    probes: list[tuple[int, Path | None]] = []
    found = PgTools(
        pg_dump=Path("/x/pg_dump"), pg_restore=Path("/x/pg_restore"), version="15.4", major=15
    )

    def probe(server_major: int, *, pg_bin: Path | None = None) -> PgTools:
        probes.append((server_major, pg_bin))
        return found

    monkeypatch.setattr(database_module, "find_pg_tools", probe)
    target = TargetDatabase(
        TargetDatabase.at("host=127.0.0.1 dbname=app").config,
        connect_timeout=timedelta(seconds=1),
        pg_bin=Path("/x"),
    )
    other = TargetDatabase.at("host=127.0.0.1 dbname=other")
    assert target.tools(15) is found
    assert target.tools(15) is found
    assert target.sibling("rollbot_rehearsal_x").tools(15) is found
    assert probes == [(15, Path("/x"))]
    other.tools(15)
    assert probes == [(15, Path("/x")), (15, None)]


def test_the_service_builds_one_adapter_per_target_once(
    make_service: Callable[..., Rollbot], db_0023: str
) -> None:
    """Every use of a target gets the adapter made at start-up, with the configured timeout."""
    service = make_service(db_0023, connect_timeout="4s")
    first = service.planner.database()
    assert service.planner.database("default") is first
    assert first._timeout == 4
    assert service.planner.rehearsal_server(first) is first


def test_verify_queries_run_read_only_and_are_cut_off_at_the_timeout(db_0023: str) -> None:
    """A "Verify data" query that would write fails, and one that runs on is stopped in time."""
    target = TargetDatabase.at(db_0023)
    started = time.monotonic()
    notes = run_verify_queries(
        target,
        (
            (10, "SELECT count(*) FROM users"),
            (11, "SELECT count(*) FROM generate_series(1, 100000000000)"),
            (12, "SELECT id FROM users LIMIT 1 FOR UPDATE"),
        ),
        timeout=timedelta(milliseconds=500),
    )
    assert time.monotonic() - started < 10
    assert notes[0].endswith("→ 200")
    assert "canceling statement due to statement timeout" in notes[1]
    assert "failed" in notes[2]
