"""The seed runbook, end to end on a real PostgreSQL: plan, backup, approval, one transaction."""

import json
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import NotAllowedError
from bot.core.plan import Plan
from bot.core.results import Outcome
from bot.core.run import backup_of, outcome_of
from bot.core.states import RunState
from bot.pgclient.tools import find_pg_tools
from bot.service.rollback import Rollbot
from bot.target.execute import execute_plan
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, DROP_MODE, REQUESTER, counts_of, runbooks_with, schema_of


def journal_of(conninfo: str) -> list[tuple[str, int]]:
    """Drizzle's journal as Drizzle reads it: (hash, created_at), oldest first."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY created_at"
        ).fetchall()
    return [(h, int(c)) for h, c in rows]


DROPPED = [
    "api_errors",
    "asset_variants",
    "error_aggregations",
    "generation_pipelines",
    "pipeline_stages",
    "variant_statistics",
]


def test_seed_rollback_leaves_exactly_the_0022_schema(
    db_0023: str, readonly_db_0022: str, make_service: Callable[..., Rollbot]
) -> None:
    """After the rollback the schema equals the fixture built only up to 0022, counts match."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    backup, rows = backup_of(run)
    assert backup is not None
    assert backup.verified
    expected = {f"public.{t}": SAMPLE_COUNTS[t] for t in DROPPED}
    # Quarantine mode moves these rows aside without changing them: the backup leaves them out.
    assert rows == (expected if DROP_MODE == "drop" else {})

    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    outcome = outcome_of(run)
    assert outcome is not None
    assert {t.table: t.rows for t in outcome.dropped} == expected
    if DROP_MODE == "drop":
        assert all(t.rows == t.backup_rows for t in outcome.dropped)
    assert (outcome.objects_gone, outcome.objects_expected) == (53, 53)
    assert {n.table for n in outcome.neighbours} == {"public.assets", "public.users"}
    assert all(n.before == n.after for n in outcome.neighbours)
    assert schema_of(db_0023) == schema_of(readonly_db_0022)
    assert journal_of(db_0023) == journal_of(readonly_db_0022)
    baseline = ["users", "projects", "sessions", "assets"]
    assert counts_of(db_0023, baseline) == {t: SAMPLE_COUNTS[t] for t in baseline}


def test_requester_cannot_approve_and_nothing_runs(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """The requester's own approval is refused with the reason, and the run still waits."""
    service = make_service(db_0023)
    run = service.request("23", requested_by=REQUESTER)
    with pytest.raises(NotAllowedError, match="you cannot approve it"):
        service.approve(run.id, REQUESTER)
    assert service.run(run.id).state is RunState.AWAITING_APPROVAL
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


FAILING_FIFTH = """---
journal: false  # not a Drizzle migration of this project
---
# Failing rollback

**Migration File**: `0024_fails_fifth.sql`

## Quick Rollback

```sql
BEGIN;
DROP INDEX IF EXISTS idx_errors_user;
DROP INDEX IF EXISTS idx_errors_endpoint;
ALTER TABLE api_errors DROP CONSTRAINT IF EXISTS api_errors_user_id_users_id_fk;
DROP TABLE IF EXISTS variant_statistics;
DELETE FROM sessions WHERE user_id = 'not-a-uuid';
DROP TABLE IF EXISTS api_errors;
COMMIT;
```
"""


def test_failing_fifth_statement_leaves_the_database_untouched(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """Statement 5 fails: ROLLBACK, the report names it, its line and PostgreSQL's message."""
    before = schema_of(db_0023)
    runbooks = runbooks_with(tmp_path, "0024_fails_fifth.md", FAILING_FIFTH)
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="off")
    run = service.request("0024", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.FAILED
    outcome = outcome_of(run)
    assert outcome is not None
    assert outcome.failed_line == 16
    assert outcome.failed_statement == "DELETE FROM sessions WHERE user_id = 'not-a-uuid'"
    assert 'invalid input syntax for type uuid: "not-a-uuid"' in (outcome.error or "")
    assert "nothing was changed" in (outcome.error or "")
    assert schema_of(db_0023) == before
    assert counts_of(db_0023, ["variant_statistics", "sessions"]) == {
        "variant_statistics": SAMPLE_COUNTS["variant_statistics"],
        "sessions": SAMPLE_COUNTS["sessions"],
    }
    assert outcome.final_backup is None or not outcome.final_backup.path.exists()


def test_lock_timeout_reports_the_blocking_session(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A session holding a lock on assets makes rollbot give up and name it; nothing changes."""
    service = make_service(db_0023, lock_timeout="200ms", lock_retries=2, lock_retry_delay="50ms")
    run = service.request("0023", requested_by=REQUESTER)
    with psycopg.connect(db_0023, application_name="report-job") as blocker:
        blocker.execute("SELECT count(*) FROM assets")  # holds ACCESS SHARE until rollback
        run = service.approve(run.id, APPROVER)
        blocker_pid = blocker.info.backend_pid
    assert run.state is RunState.FAILED
    outcome = outcome_of(run)
    assert outcome is not None
    assert outcome.sqlstate == "55P03"
    assert outcome.attempts == 2
    assert [b.pid for b in outcome.blockers] == [blocker_pid]
    assert outcome.blockers[0].application == "report-job"
    assert "SELECT count(*) FROM assets" in outcome.blockers[0].query
    assert counts_of(db_0023, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_a_blocking_query_with_a_secret_is_stored_and_shown_masked(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A blocker whose query holds a password literal: it is in no outcome, event or store."""
    secret = "Tr0ub4dor-77x"
    service = make_service(db_0023, lock_timeout="200ms", lock_retries=1)
    run = service.request("0023", requested_by=REQUESTER)
    with psycopg.connect(db_0023, application_name="admin-shell") as blocker:
        # Holds ACCESS SHARE on assets; pg_stat_activity shows this query for the session.
        blocker.execute(f"SELECT count(*), 'ALTER ROLE app PASSWORD E''{secret}''' FROM assets")
        run = service.approve(run.id, APPROVER)
    assert run.state is RunState.FAILED
    outcome = outcome_of(run)
    assert outcome is not None
    assert outcome.blockers
    assert outcome.blockers[0].query == "SELECT count(*), $1 FROM assets"
    stored = service.store.get(run.id).model_dump_json()
    events = json.dumps(service.store.events(run.id), default=str)
    assert secret not in stored
    assert secret not in events


def test_concurrent_execution_is_told_who_holds_the_lock(
    db_0023: str, make_service: Callable[..., Rollbot], tmp_path: Path
) -> None:
    """While one execution holds the per-database lock, a second is refused naming the run."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    plan = Plan.model_validate(run.plan)
    runbook = service.library().find("0023")
    tools = find_pg_tools(plan.target.server_major)
    target = service.planner.database()
    second: list[Outcome] = []

    def execute(run_id: int, pending: Callable[[Outcome], None]) -> Outcome:
        return execute_plan(
            plan,
            runbook,
            target=target,
            tools=tools,
            backup_dir=tmp_path / "b",
            run_id=run_id,
            on_commit_pending=pending,
        )

    def while_first_holds_the_lock(_pending: Outcome) -> None:
        thread = threading.Thread(target=lambda: second.append(execute(2, lambda _: None)))
        thread.start()
        thread.join()

    first = execute(1, while_first_holds_the_lock)
    assert first.succeeded
    (refused,) = second
    assert not refused.succeeded
    assert refused.holder is not None
    assert "rollbot run 1" in refused.holder
    assert "another rollback is running" in (refused.error or "")


DELETES_ROWS = """---
journal: false  # not a Drizzle migration of this project
---
# Remove sessions of a bad client

**Migration File**: `0025_curl_sessions.sql`

## Quick Rollback

```sql
DELETE FROM sessions WHERE user_agent = 'curl/8.5';
DROP INDEX IF EXISTS idx_sessions_expires;
```
"""


def test_delete_reports_rows_deleted_and_keeps_neighbours_checked(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """A DELETE changes its table by design: reported as rows deleted, not as a failure."""
    with psycopg.connect(db_0023) as conn:
        row = conn.execute("SELECT count(*) FROM sessions WHERE user_agent = 'curl/8.5'")
        doomed = row.fetchone()[0]  # type: ignore[index]
    assert doomed > 0
    runbooks = runbooks_with(tmp_path, "0025_curl_sessions.md", DELETES_ROWS)
    service = make_service(db_0023, runbooks_dir=runbooks)
    run = service.approve(service.request("25", requested_by=REQUESTER).id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    outcome = outcome_of(run)
    assert outcome is not None
    (deleted,) = outcome.deleted
    total = SAMPLE_COUNTS["sessions"]
    assert (deleted.table, deleted.before, deleted.after) == (
        "public.sessions",
        total,
        total - doomed,
    )
    assert counts_of(db_0023, ["sessions"]) == {"sessions": total - doomed}
