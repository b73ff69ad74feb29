"""Drizzle-aware rollbot on a real chain: derived rollbacks, latest only, history, round trips."""

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core.errors import IrreversibleError, NotAllowedError
from bot.core.plan import Plan
from bot.core.run import outcome_of
from bot.core.states import RunState
from bot.service.rollback import Rollbot
from tests.db.test_rollback import journal_of
from tests.fix_drizzle import CHAIN_DIR, REVERSIBLE, TOP
from tests.fix_rollbot import APPROVER, REQUESTER, schema_of

PREVIOUS = {"0000": None, "0001": "0000", "0002": "0001", "0003": "0002", "0006": "0005"}
PREVIOUS |= {"0007": "0006", "0008": "0007"}
# From the top of the chain down to the first migration that loses data (0009).
WALK = (
    *("0021", "0020", "0019", "0018", "0017", "0016", "0015", "0014", "0013", "0012", "0011"),
    "0010",
)


@pytest.fixture
def chain_service(make_service: Callable[..., Rollbot], tmp_path: Path) -> Callable[[str], Rollbot]:
    """A rollbot on a chain database with no runbooks: every rollback must be derived."""
    empty = tmp_path / "no-runbooks"
    empty.mkdir()

    def make(conninfo: str, **settings: str) -> Rollbot:
        return make_service(conninfo, runbooks_dir=empty, migrations_dir=CHAIN_DIR, **settings)

    return make


@pytest.mark.parametrize("migration", [*REVERSIBLE, "0008"])
def test_derived_rollback_returns_to_the_previous_migration(
    migration: str,
    drizzle_db: Callable[[str | None], str],
    chain_service: Callable[..., Rollbot],
) -> None:
    """Each reversible migration's derived rollback is proved equal to N-1, then lands there."""
    database, expected = drizzle_db(migration), drizzle_db(PREVIOUS[migration])
    service = chain_service(database, rehearsal="schema")
    run = service.request(migration, requested_by=REQUESTER)
    plan = Plan.model_validate(run.plan)
    assert plan.derived
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert run.rehearsal is not None
    assert run.rehearsal.proof is not None
    assert run.rehearsal.proof.summary() == (
        f"proved equal to {PREVIOUS[migration] or 'an empty database'}"
    )
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason
    assert schema_of(database) == schema_of(expected)
    assert journal_of(database) == journal_of(expected)


@pytest.mark.parametrize(("migration", "line"), [("0004", 2), ("0005", 3)])
def test_irreversible_migration_is_refused_naming_its_statement(
    migration: str,
    line: int,
    drizzle_db: Callable[[str | None], str],
    chain_service: Callable[[str], Rollbot],
) -> None:
    """A migration that drops or rewrites data cannot be derived: refused, that statement named."""
    service = chain_service(drizzle_db(migration))
    with pytest.raises(IrreversibleError) as caught:
        service.request(migration, requested_by=REQUESTER)
    assert f".sql:{line}" in caught.value.render()
    assert service.store.recent() == []


def _rolled_back(service: Rollbot, migration: str, previous: str) -> None:
    run = service.request(migration, requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    assert Plan.model_validate(run.plan).derived
    assert run.rehearsal is not None
    assert run.rehearsal.proof is not None
    assert run.rehearsal.proof.summary() == f"proved equal to {previous}"
    run = service.approve(run.id, APPROVER)
    assert run.state is RunState.SUCCEEDED, run.reason


def _names_too_long_stop_the_cast_back(service: Rollbot, database: str) -> None:
    """Tags too long for varchar(50) block 0019's plan; one written after it fails the run."""
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO tags (name) SELECT repeat('x', n) FROM generate_series(50, 52) n")
    schema, journal = schema_of(database), journal_of(database)
    blocked = service.request("0019", requested_by=REQUESTER)
    assert blocked.state is RunState.BLOCKED
    assert "2 rows of public.tags.name do not fit character varying(50)" in str(blocked.reason)
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM tags WHERE length(name) > 50")
    run = service.request("0019", requested_by=REQUESTER)
    assert run.state is RunState.AWAITING_APPROVAL, run.reason
    with psycopg.connect(database) as conn:  # trailing spaces the cast would cut
        conn.execute("INSERT INTO tags (name) VALUES (repeat('y', 50) || '  ')")
    failed = service.approve(run.id, APPROVER)
    assert failed.state is RunState.FAILED
    assert "1 row of tags.name written since the plan does not fit" in str(failed.reason)
    assert (schema_of(database), journal_of(database)) == (schema, journal)
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM tags WHERE length(name) > 50")


def test_derived_rollbacks_walk_the_chain_back_from_its_top(
    drizzle_db: Callable[[str | None], str], chain_service: Callable[..., Rollbot]
) -> None:
    """From 0021 to 0009 each rollback is derived from N-1, proved and run; bad rows stop it.

    0021 enabled row-level security on invoices with a policy: the policy is dropped and
    row-level security disabled again, as at N-1.

    0020 renamed an enum value a task holds and a sequence, and changed the sequence's
    options: the options go back to N-1's, both are renamed back, and the task reads the old
    label again.

    0019 widened three columns: they are cast back, and names written since that are too
    long for the old varchar block the plan with their count, nothing changed; one written
    after the plan, whose trailing spaces the cast would cut, fails the run before the cast.

    0018 dropped two views (one reading the other), a populated materialized view and an
    enum: they come back from their N-1 definitions, the view the other reads first, and the
    materialized view filled again.

    NULLs in a column to make NOT NULL, and a row violating a CHECK put back, block the plan
    with their count; a violating row written after the plan fails the run before COMMIT,
    naming the constraint, with nothing changed; fixed rows let both through.

    0010 added the enum value 'blocked' (the held task, which read it, is gone by then): the
    enum is made again with N-1's labels.
    """
    database = drizzle_db(TOP)
    service = chain_service(database, rehearsal="schema")
    for migration, previous in zip(WALK, (*WALK[1:], "0009"), strict=True):
        if migration == "0020":
            with psycopg.connect(database) as conn:
                conn.execute(
                    "WITH u AS (INSERT INTO users (email) VALUES ('h@example.com') RETURNING id),"
                    " p AS (INSERT INTO projects (owner_id, name) SELECT id, 'h' FROM u"
                    " RETURNING id)"
                    " INSERT INTO tasks (project_id, title, due_at, status)"
                    " SELECT id, 'held', now(), 'on_hold' FROM p"
                )
        if migration == "0019":
            _names_too_long_stop_the_cast_back(service, database)
        if migration == "0013":
            with psycopg.connect(database) as conn:
                conn.execute(
                    "WITH u AS (INSERT INTO users (email) VALUES ('a@example.com') RETURNING id),"
                    " p AS (INSERT INTO projects (owner_id, name) SELECT id, 'p' FROM u"
                    " RETURNING id),"
                    " t AS (INSERT INTO tasks (project_id, title, due_at, status)"
                    " SELECT id, 't', now(), 'todo' FROM p RETURNING id)"
                    " INSERT INTO comments (task_id, body) SELECT id, NULL FROM t"
                )
            blocked = service.request(migration, requested_by=REQUESTER)
            assert blocked.state is RunState.BLOCKED
            assert "public.comments.body has 1 NULL row, so SET NOT NULL would fail" in str(
                blocked.reason
            )
            with psycopg.connect(database) as conn:
                conn.execute("UPDATE comments SET body = 'fixed'")
        if migration == "0012":
            bad = "INSERT INTO invoices (project_id, amount_cents) SELECT id, 0 FROM projects"
            with psycopg.connect(database) as conn:
                conn.execute(bad)
            blocked = service.request(migration, requested_by=REQUESTER)
            assert blocked.state is RunState.BLOCKED
            assert "1 row of public.invoices violates invoices_amount_positive" in str(
                blocked.reason
            )
            with psycopg.connect(database) as conn:
                conn.execute("DELETE FROM invoices")
            schema, journal = schema_of(database), journal_of(database)
            run = service.request(migration, requested_by=REQUESTER)
            assert run.state is RunState.AWAITING_APPROVAL, run.reason
            with psycopg.connect(database) as conn:  # written after the plan counted none
                conn.execute(bad)
            failed = service.approve(run.id, APPROVER)
            assert failed.state is RunState.FAILED
            assert "violate CHECK invoices_amount_positive (written since the plan" in str(
                failed.reason
            )
            assert (schema_of(database), journal_of(database)) == (schema, journal)
            with psycopg.connect(database) as conn:
                conn.execute("DELETE FROM invoices")
        _rolled_back(service, migration, previous)
        if migration == "0020":
            with psycopg.connect(database) as conn:
                held = "SELECT status::text FROM tasks WHERE title = 'held'"
                assert conn.execute(held).fetchone() == ("blocked",)
                conn.execute("DELETE FROM tasks WHERE title = 'held'")
                conn.execute("DELETE FROM projects WHERE name = 'h'")
                conn.execute("DELETE FROM users WHERE email = 'h@example.com'")
        if migration == "0018":
            with psycopg.connect(database) as conn:  # populated at N-1, so readable again
                assert conn.execute("SELECT count(*) FROM project_task_counts").fetchone()
    expected = drizzle_db("0009")
    assert schema_of(database) == schema_of(expected)
    assert journal_of(database) == journal_of(expected)


def test_only_the_newest_applied_migration_can_be_rolled_back(
    drizzle_db: Callable[[str | None], str], chain_service: Callable[[str], Rollbot]
) -> None:
    """Asking for 0001 while 0002 is applied is refused, naming 0002; nothing is planned."""
    service = chain_service(drizzle_db("0002"))
    with pytest.raises(NotAllowedError, match="that is 0002_amber_hulk"):
        service.request("0001", requested_by=REQUESTER)
    assert service.store.recent() == []


def test_history_and_the_migration_file_note(
    db_0023: str, make_service: Callable[..., Rollbot]
) -> None:
    """After a rollback the history says who rolled 0023 back, and the reply warns of the file."""
    service = make_service(db_0023)
    before = {e.migration: e.status for e in service.history()}
    assert before == {"0023_loud_shen.sql": "current", "0022_confused_captain_cross.sql": "applied"}
    run = service.approve(service.request("0023", requested_by=REQUESTER).id, APPROVER)
    entries = {e.migration: e for e in service.history()}
    rolled = entries["0023_loud_shen.sql"]
    assert rolled.status.startswith(f"rolled back by run {run.id} (requested by {REQUESTER}")
    assert f"approved by {APPROVER}" in rolled.status
    assert rolled.description == "Add generation pipelines, asset variants, and API errors schemas"
    assert entries["0022_confused_captain_cross.sql"].status == "current"
    outcome = outcome_of(run)
    assert outcome is not None
    assert any("0023_loud_shen.sql is still in" in note for note in outcome.notes)


def test_chain_round_trip_with_a_view_and_rows(
    drizzle_db: Callable[[str | None], str], chain_service: Callable[[str], Rollbot]
) -> None:
    """Rollback then restore of 0006 (a table with FKs, an index, a view) gives 0006 back."""
    database, reference = drizzle_db("0006"), drizzle_db("0006")
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO comments (task_id, body)"
            " SELECT id, 'looks good' FROM tasks CROSS JOIN generate_series(1, 3)"
        )
        conn.execute("INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'x@example.com')")
        rows = conn.execute("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM comments")
        before = rows.fetchone()
    service = chain_service(database)
    rolled = service.approve(service.request("0006", requested_by=REQUESTER).id, APPROVER)
    assert rolled.state is RunState.SUCCEEDED, rolled.reason
    restore = service.request_restore(rolled.id, requested_by=REQUESTER)
    assert restore.state is RunState.AWAITING_APPROVAL, restore.reason
    done = service.approve(restore.id, APPROVER)
    assert done.state is RunState.SUCCEEDED, done.reason
    assert schema_of(database) == schema_of(reference)
    assert journal_of(database) == journal_of(reference)
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM comments")
        assert rows.fetchone() == before
