"""A runbook cannot smuggle side effects into planning, the rehearsal or the rollback."""

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import RollbotError
from bot.core.states import RunState
from bot.service.rollback import Rollbot
from tests.fix_rollbot import REQUESTER, counts_of, runbooks_with

RUNBOOK = """---
journal: false  # not a Drizzle migration of this project
---
# Remove sessions of a bad client

**Migration File**: `0025_curl_sessions.sql`

## Quick Rollback

```sql
DELETE FROM sessions WHERE {where};
```
"""


def _runbook(tmp_path: Path, where: str) -> Path:
    return runbooks_with(tmp_path, "0025_curl_sessions.md", RUNBOOK.format(where=where))


def test_a_volatile_function_blocks_the_plan_and_never_runs(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """A user function that writes elsewhere blocks the plan by file:line; it never ran at all."""
    with psycopg.connect(db_0023) as conn:
        conn.execute("CREATE TABLE side_effects (at timestamptz DEFAULT now())")
        conn.execute(
            "CREATE FUNCTION public.note_it() RETURNS boolean VOLATILE LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO side_effects DEFAULT VALUES; RETURN true; END $$"
        )
    before = counts_of(db_0023, ["sessions"])
    runbooks = _runbook(tmp_path, "public.note_it() AND user_agent = 'curl/8.5'")
    service = make_service(db_0023, runbooks_dir=runbooks, rehearsal="schema")
    run = service.request("25", requested_by=REQUESTER)
    assert run.state is RunState.BLOCKED
    assert "0025_curl_sessions.md:11: public.note_it() is user-defined code" in (run.reason or "")
    assert counts_of(db_0023, ["side_effects", "sessions"]) == {"side_effects": 0, **before}


def test_a_call_that_would_kill_an_application_session_is_refused_before_anything_runs(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """pg_terminate_backend in a subquery: refused with its line; the live session survives."""
    with psycopg.connect(db_0023, application_name="asset-forge-api", autocommit=True) as app:
        where = (
            "(SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'asset-forge-api')"
        )
        service = make_service(db_0023, runbooks_dir=_runbook(tmp_path, where), rehearsal="schema")
        with pytest.raises(RollbotError) as caught:
            service.request("25", requested_by=REQUESTER)
        assert ":11: `DELETE FROM sessions" in caught.value.render()
        assert "pg_terminate_backend()" in caught.value.render()
        assert app.execute("SELECT 1").fetchone() == (1,)
    assert service.store.recent() == []


def test_immutable_and_stable_functions_plan_as_before(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """lower() and now() change nothing outside the expression: the plan awaits approval."""
    where = "user_agent = lower('CURL/8.5') AND expires_at < now() + interval '100 years'"
    service = make_service(db_0023, runbooks_dir=_runbook(tmp_path, where))
    run = service.request("25", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
