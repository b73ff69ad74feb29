"""Named targets and rehearsal: staging first, then production with its own approvers."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.config import load_settings
from bot.core.errors import NotAllowedError, NotFoundError
from bot.core.results import Rehearsal
from bot.core.states import RunState
from bot.service.rollback import Rollbot
from bot.state.store import RunStore
from demo.sample import MIGRATIONS_DIR
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS, SECOND_APPROVER, counts_of

DBA_ONE, DBA_TWO = "U0DBA1", "U0DBA2"


@pytest.fixture
def make_fleet(
    make_database: Callable[..., str],
    asset_forge_0023_template: str,
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[Rollbot, str, str]]]:
    """Factory: staging and production (two 0023 clones) and a separate state database."""
    stores: list[RunStore] = []

    def make(runbooks_dir: Path = RUNBOOKS, **overrides: Any) -> tuple[Rollbot, str, str]:
        staging = make_database(template=asset_forge_0023_template, prefix="rollbot_staging")
        production = make_database(template=asset_forge_0023_template, prefix="rollbot_prod")
        state = make_database(prefix="rollbot_state")
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            f"staging: '{staging}'\n"
            f"production:\n  url: '{production}'\n  required_approvals: 2\n"
            f"  approvers: [{DBA_ONE}, {DBA_TWO}]\n"
        )
        values: dict[str, Any] = {
            "database_url": None,
            "state_url": state,
            "targets_spec": f"@{targets}",
            "runbooks_dir": runbooks_dir,
            "backup_dir": tmp_path / "backups",
            "approvers": (APPROVER, SECOND_APPROVER),
            "migrations_dir": MIGRATIONS_DIR,
        }
        settings = load_settings(**(values | overrides))
        store = RunStore(state)
        store.migrate()
        stores.append(store)
        return Rollbot(settings, store), staging, production

    yield make
    for store in stores:
        store.close()


def test_plan_on_staging_leaves_production_untouched(
    make_fleet: Callable[..., tuple[Rollbot, str, str]],
) -> None:
    """Rolling back staging changes staging only; the run names its target everywhere."""
    service, staging, production = make_fleet()
    run = service.request("0023", requested_by=REQUESTER, target="staging")
    assert run.target_name == "staging"
    assert run.target_label.startswith("staging: ")
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    with psycopg.connect(staging) as conn:
        assert conn.execute("SELECT to_regclass('api_errors')").fetchone() == (None,)
    assert counts_of(production, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}


def test_production_needs_its_own_two_approvers(
    make_fleet: Callable[..., tuple[Rollbot, str, str]],
) -> None:
    """Production's rules: its own approvers, two of them; the global approvers do not count."""
    service, _, production = make_fleet()
    run = service.request("0023", requested_by=REQUESTER, target="production")
    assert run.required_approvals == 2
    with pytest.raises(NotAllowedError, match="not an approver"):
        service.approve(run.id, APPROVER)
    assert service.approve(run.id, DBA_ONE).state is RunState.AWAITING_APPROVAL
    assert service.approve(run.id, DBA_TWO).state is RunState.SUCCEEDED
    with psycopg.connect(production) as conn:
        assert conn.execute("SELECT to_regclass('api_errors')").fetchone() == (None,)


def test_unknown_target_is_refused_with_the_known_ones(
    make_fleet: Callable[..., tuple[Rollbot, str, str]],
) -> None:
    """`--target prod` is refused, listing production and staging; nothing is planned."""
    service, _, _ = make_fleet()
    with pytest.raises(NotFoundError, match="Known targets: production, staging"):
        service.request("0023", requested_by=REQUESTER, target="prod")
    assert service.store.recent() == []


def test_rehearsal_runs_before_approval_and_the_scratch_database_is_dropped(
    make_fleet: Callable[..., tuple[Rollbot, str, str]], pg_server: str
) -> None:
    """A passing rehearsal is recorded on the run, and no scratch database is left behind."""
    service, staging, _ = make_fleet(rehearsal="schema")
    run = service.request("0023", requested_by=REQUESTER, target="staging")
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    rehearsal = Rehearsal.model_validate(run.rehearsal)
    assert rehearsal.ok
    assert rehearsal.summary().startswith("rehearsed: ok in")
    assert "ACCESS EXCLUSIVE on public.users" in rehearsal.locks
    assert counts_of(staging, ["api_errors"]) == {"api_errors": SAMPLE_COUNTS["api_errors"]}
    assert rehearsal.scratch is not None
    assert not exists(pg_server, rehearsal.scratch)


FAILS_ONLY_FOR_REAL = """---
journal: false  # not a Drizzle migration of this project
---
# Fails only against the real schema

**Migration File**: `0024_fails_for_real.sql`

## Quick Rollback

```sql
DROP INDEX IF EXISTS idx_errors_user;
DELETE FROM sessions WHERE user_id = 'not-a-uuid';
```
"""


def test_failed_rehearsal_blocks_approval_with_the_reason(
    make_fleet: Callable[..., tuple[Rollbot, str, str]], tmp_path: Path, pg_server: str
) -> None:
    """A statement that plans fine but fails to run blocks approval, naming line and error."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "0024_fails_for_real.md").write_text(FAILS_ONLY_FOR_REAL)
    service, _, _ = make_fleet(runbooks_dir=runbooks, rehearsal="schema")
    run = service.request("24", requested_by=REQUESTER, target="staging")
    assert run.state is RunState.BLOCKED
    assert "rehearsal failed at line 12" in (run.reason or "")
    assert 'invalid input syntax for type uuid: "not-a-uuid"' in (run.reason or "")
    with pytest.raises(NotAllowedError):
        service.approve(run.id, APPROVER)
    scratch = Rehearsal.model_validate(run.rehearsal).scratch
    assert scratch is not None
    assert not exists(pg_server, scratch)


def test_promotion_shows_the_staging_result(
    make_fleet: Callable[..., tuple[Rollbot, str, str]],
) -> None:
    """A production plan promoted from a staging run carries that run's result."""
    service, _, _ = make_fleet()
    staged = service.approve(
        service.request("0023", requested_by=REQUESTER, target="staging").id, APPROVER
    )
    assert staged.state is RunState.SUCCEEDED
    run = service.request("0023", requested_by=REQUESTER, target="production", after=staged.id)
    assert run.promoted_from is not None
    assert run.promoted_from.run == staged.id
    assert f"run {staged.id} succeeded on staging" in run.promoted_from.summary
    assert "public.api_errors 900" in run.promoted_from.summary
    with pytest.raises(NotAllowedError, match="ran on production itself"):
        service.request("0023", requested_by=REQUESTER, target="production", after=run.id)


def exists(pg_server: str, database: str) -> bool:
    """Whether a database is on the server (other tests' scratch copies come and go too)."""
    with psycopg.connect(pg_server) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        return row.fetchone() is not None
