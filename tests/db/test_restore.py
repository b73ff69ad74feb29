"""Restore (the guide's "Data Recovery"): a rollback and its restore give back what was there."""

from collections.abc import Callable

import psycopg
import pytest

from bot.core.errors import NotAllowedError
from bot.core.run import RunState, outcome_of
from bot.service.rollback import Rollbot
from tests.db.test_rollback import journal_of
from tests.fix_db import SAMPLE_COUNTS
from tests.fix_rollbot import APPROVER, REQUESTER, counts_of, schema_of

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
    assert "COPY public.api_errors: 900 rows" in restore.restore_plan().sql
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
    assert "verify data (runbook line 152): SELECT COUNT(*) FROM generation_pipelines → 500" in (
        outcome.notes
    )


def test_restore_over_objects_that_exist_again_is_refused(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """If a dropped table was recreated meanwhile, the restore is blocked, saying which."""
    service = make_service(db_0023)
    rolled = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute("CREATE TABLE api_errors (id int)")
    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    assert restore.state is RunState.BLOCKED
    assert "public.api_errors exists again" in (restore.reason or "")


def test_only_succeeded_rollbacks_can_be_restored(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """A run that did not roll anything back has nothing to restore."""
    service = make_service(db_0023)
    run = service.request("0023", requested_by=REQUESTER)
    with pytest.raises(NotAllowedError, match="only a succeeded rollback"):
        service.request_restore(run.id, requested_by=REQUESTER)
