"""Restore (the guide's "Data Recovery"): a rollback and its restore give back what was there."""

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import NotAllowedError
from bot.core.run import outcome_of
from bot.core.states import RunState
from bot.service.rollback import Rollbot
from tests.db.test_rollback import journal_of
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, DROP_MODE, REQUESTER, RUNBOOKS, counts_of, schema_of

TABLES = [
    "api_errors",
    "asset_variants",
    "error_aggregations",
    "generation_pipelines",
    "pipeline_stages",
    "variant_statistics",
]


def content_checksums(conninfo: str) -> dict[str, str]:
    """md5 of every row of each table, in primary-key order: equal content, equal sums."""
    with psycopg.connect(conninfo) as conn:
        return {
            table: str(
                conn.execute(
                    f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t"
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in TABLES
        }


def test_rollback_then_restore_gives_back_schema_journal_rows_and_content(
    db_0023: str, readonly_db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """After rollback + restore the database equals 0023 again: schema, journal, counts, rows."""
    before = content_checksums(db_0023)
    service = make_service(db_0023)
    rolled = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    assert rolled.state is RunState.SUCCEEDED, rolled.reason

    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    assert restore.kind == "restore"
    assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
    plan = restore.restore_plan()
    if DROP_MODE == "drop":
        assert "COPY public.api_errors: 900 rows" in plan.sql
    else:
        # A quarantined rollback's restore is a move back, not a pg_restore of its dump.
        quarantine = outcome_of(rolled).quarantine  # type: ignore[union-attr]
        assert quarantine is not None
        assert plan.quarantine == quarantine.schema_name
        assert f"ALTER TABLE {quarantine.schema_name}.api_errors SET SCHEMA public" in plan.sql
        assert "COPY" not in plan.sql
    with pytest.raises(NotAllowedError, match="you cannot approve it"):
        service.approve(restore.id, REQUESTER)
    done = service.approve(restore.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    outcome = outcome_of(done)
    assert outcome is not None
    assert {t.table: t.rows for t in outcome.restored} == {
        f"public.{t}": SAMPLE_COUNTS[t] for t in TABLES
    }
    assert schema_of(db_0023) == schema_of(readonly_db_0023)
    assert journal_of(db_0023) == journal_of(readonly_db_0023)
    assert counts_of(db_0023, TABLES) == {t: SAMPLE_COUNTS[t] for t in TABLES}
    assert content_checksums(db_0023) == before
    if DROP_MODE != "drop":
        assert quarantine is not None
        with psycopg.connect(db_0023) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (quarantine.schema_name,)
            ).fetchone()
        assert left == (0,)
    assert "verify data (runbook line 152): SELECT COUNT(*) FROM generation_pipelines → 500" in (
        outcome.notes
    )


def test_restore_over_objects_that_exist_again_is_refused(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """If a dropped table or type was recreated meanwhile, the restore is blocked, saying which."""
    service = make_service(db_0023)
    rolled = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute("CREATE TABLE api_errors (id int)")
        conn.execute("CREATE TYPE error_severity AS ENUM ('low')")
    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    assert restore.state is RunState.BLOCKED
    assert "public.api_errors exists again" in (restore.reason or "")
    assert "type public.error_severity exists again" in (restore.reason or "")
    assert "asset_variants exists again" not in (restore.reason or "")


def test_only_succeeded_rollbacks_can_be_restored(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A run that did not roll anything back has nothing to restore."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    with pytest.raises(NotAllowedError, match="only a succeeded rollback"):
        service.request_restore(run.id, requested_by=REQUESTER)


def test_the_verify_queries_that_run_are_the_ones_approved(
    db_0023: str, tmp_path: Path, make_service: Callable[..., Rollbot]
) -> None:
    """The restore plan shows its "Verify data" queries; editing them after the plan voids it.

    A runbook author who swaps the query once the restore awaits approval must not get a
    query run that nobody saw: the queries are part of the approved plan and of its hash.
    """
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    seed = (RUNBOOKS / "0023_loud_shen.md").read_text()
    (runbooks / "0023_loud_shen.md").write_text(seed)
    service = make_service(db_0023, runbooks_dir=runbooks)
    rolled = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    shown = restore.restore_plan().sql
    assert "in a READ ONLY session, each cut off at the statement timeout" in shown
    assert 'SELECT COUNT(*) FROM generation_pipelines;  -- "Verify data", runbook line 152' in shown
    swapped = "SELECT COUNT(*) FROM generation_pipelines WHERE id IS NOT NULL"
    (runbooks / "0023_loud_shen.md").write_text(
        seed.replace("SELECT COUNT(*) FROM generation_pipelines;", f"{swapped};")
    )
    done = service.approve(restore.id, APPROVER)
    assert done.state is RunState.FAILED
    assert "verify queries changed after the restore was approved" in (done.reason or "")
    with psycopg.connect(db_0023) as conn:
        assert conn.execute("SELECT to_regclass('public.api_errors')").fetchone() == (None,)
