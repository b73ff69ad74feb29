"""Plans read the live catalog: no-ops, dependents that block, and a hash bound to both."""

from datetime import timedelta

import psycopg
import pytest

from bot.core.plan import Plan, StepStatus, build_plan
from bot.core.runbook import Runbook, parse_runbook
from bot.target.catalog import describe_target, read_facts

SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY);
CREATE TYPE job_status AS ENUM ('new', 'done');
CREATE TABLE jobs (id int PRIMARY KEY, user_id int, status job_status);
ALTER TABLE jobs ADD CONSTRAINT jobs_user_id_users_id_fk
    FOREIGN KEY (user_id) REFERENCES users (id);
CREATE INDEX idx_jobs_user ON jobs (user_id);
INSERT INTO users SELECT generate_series(1, 5);
INSERT INTO jobs SELECT g, 1 + g % 5, 'new' FROM generate_series(1, 42) g;
"""
ROLLBACK = """
DROP INDEX IF EXISTS idx_jobs_user;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_user_id_users_id_fk;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_never_created_fk;
DROP TABLE IF EXISTS jobs;
DROP TYPE IF EXISTS job_status;
"""


def runbook(sql: str, extra: str = "") -> Runbook:
    text = f"{extra}# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n{sql}COMMIT;\n```\n"
    return parse_runbook(text, file="0005_jobs.md")


def plan_for(conninfo: str, sql: str = ROLLBACK, extra: str = "") -> Plan:
    book = runbook(sql, extra)
    with psycopg.connect(conninfo) as conn:
        facts = read_facts(conn, book, describe_target(conn), count_budget=timedelta(seconds=2))
    return build_plan(
        book, facts, lock_timeout=timedelta(seconds=3), statement_timeout=timedelta(minutes=1)
    )


@pytest.fixture
def jobs_db(scratch_db: str) -> str:
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return scratch_db


def test_absent_object_is_a_no_op(jobs_db: str) -> None:
    """A constraint the migration never created makes its statement a no-op, and says so."""
    plan = plan_for(jobs_db)
    assert not plan.blocked, plan.blockers
    (no_op,) = plan.no_ops()
    assert no_op.statement.sql.endswith("jobs_never_created_fk")
    assert "does not exist: IF EXISTS makes this a no-op" in no_op.notes[0]
    assert [s.status for s in plan.steps].count(StepStatus.RUNS) == 4


def test_rows_locks_and_sql(jobs_db: str) -> None:
    """The plan counts the dropped table exactly, locks the FK parent, and renders the SQL."""
    plan = plan_for(jobs_db)
    assert [(r.table, r.rows, r.exact) for r in plan.drop_tables] == [("public.jobs", 42, True)]
    assert plan.locked == ("public.jobs", "public.users")
    assert plan.write_locked == ("public.jobs",)
    assert plan.neighbours == ("public.users",)
    assert "LOCK TABLE public.jobs, public.users IN ACCESS EXCLUSIVE MODE;" in plan.sql
    assert "LOCK TABLE public.jobs IN SHARE ROW EXCLUSIVE MODE;" in plan.sql
    assert "SET LOCAL lock_timeout = '3s';" in plan.sql
    assert "DROP TYPE IF EXISTS job_status;" in plan.sql


def test_a_delete_keeps_writers_out_and_lets_readers_in(jobs_db: str) -> None:
    """A DELETE takes the write lock only: its table's readers never queue behind it.

    ACCESS EXCLUSIVE on a table rollbot only deletes from would stall every reader for the
    whole DELETE and the counts around it; SHARE ROW EXCLUSIVE already keeps the counts exact.
    """
    plan = plan_for(jobs_db, "DELETE FROM jobs WHERE status = 'done';\n")
    assert plan.write_locked == ("public.jobs",)
    assert plan.locked == ()
    assert plan.script.exclusive_lock is None
    assert "ACCESS EXCLUSIVE" not in plan.sql
    with psycopg.connect(jobs_db) as rollback, psycopg.connect(jobs_db) as reader:
        rollback.execute(plan.script.write_lock or "")
        rollback.execute(plan.script.statements[0])
        reader.execute("SET lock_timeout = '100ms'")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (42,)  # not waiting
        with pytest.raises(psycopg.errors.LockNotAvailable):
            reader.execute("INSERT INTO jobs VALUES (999, 1, 'new')")  # writers wait


@pytest.mark.parametrize(
    ("ddl", "dependent"),
    [
        ("CREATE VIEW busy AS SELECT * FROM jobs", "view busy"),
        (
            "CREATE TABLE notes (job_id int REFERENCES jobs (id))",
            "constraint notes_job_id_fkey on table notes",
        ),
        ("CREATE TABLE audit (s job_status)", "column s of table audit"),
    ],
)
def test_dependents_outside_the_runbook_block(jobs_db: str, ddl: str, dependent: str) -> None:
    """A view, a foreign key from another table, or a column of the enum blocks the plan."""
    with psycopg.connect(jobs_db, autocommit=True) as conn:
        conn.execute(ddl)
    plan = plan_for(jobs_db)
    assert plan.blocked
    assert any(dependent in b and "the runbook does not drop it" in b for b in plan.blockers)


def test_wrong_order_blocks(jobs_db: str) -> None:
    """Dropping the enum before the table that uses it would fail: the plan says reorder."""
    plan = plan_for(jobs_db, "DROP TYPE job_status;\nDROP TABLE jobs;\n")
    assert any("reorder the runbook" in b for b in plan.blockers)


def test_missing_object_without_if_exists_blocks(jobs_db: str) -> None:
    """A DROP of something absent, without IF EXISTS, would fail: the plan is blocked."""
    plan = plan_for(jobs_db, "DROP INDEX idx_nope;\n")
    assert plan.blockers == ("line 7: index idx_nope does not exist and there is no IF EXISTS",)


def test_wrong_kind_blocks(jobs_db: str) -> None:
    """DROP INDEX on a table name is caught before it runs."""
    plan = plan_for(jobs_db, "DROP INDEX jobs;\n")
    assert plan.blockers == ("line 7: public.jobs is a table, not an index; fix the statement",)


def test_cascade_blocks(jobs_db: str) -> None:
    """CASCADE is refused: it would drop what nobody reviewed."""
    plan = plan_for(jobs_db, "DROP TABLE jobs CASCADE;\n")
    assert any("CASCADE" in b for b in plan.blockers)


def test_hash_is_stable_and_bound_to_schema_and_text(jobs_db: str) -> None:
    """Same runbook and schema give the same hash; a schema or runbook change alters it."""
    first = plan_for(jobs_db)
    assert plan_for(jobs_db).hash == first.hash
    with psycopg.connect(jobs_db, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs VALUES (100, 1, 'done')")
    assert plan_for(jobs_db).hash == first.hash, "row counts are not part of the binding"
    assert plan_for(jobs_db, extra="<!-- reviewed -->\n").hash != first.hash
    with psycopg.connect(jobs_db, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_jobs_user; CREATE INDEX idx_jobs_user ON jobs (status)")
    assert plan_for(jobs_db).hash != first.hash


def test_count_falls_back_to_an_estimate(jobs_db: str) -> None:
    """A count over the budget is replaced by the planner's estimate, labelled as such."""
    book = runbook(ROLLBACK)
    with psycopg.connect(jobs_db, autocommit=True) as conn:
        conn.execute("ANALYZE jobs")
    with psycopg.connect(jobs_db) as blocker, psycopg.connect(jobs_db) as conn:
        blocker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")  # the count must wait
        budget = timedelta(milliseconds=200)
        facts = read_facts(conn, book, describe_target(conn), count_budget=budget)
    (count,) = facts.rows
    assert (count.rows, count.exact) == (42, False)
    assert count.label() == "~42 rows (estimate)"


def test_views_are_planned(jobs_db: str) -> None:
    """A view to drop resolves (it has no owning table) and is part of the plan."""
    with psycopg.connect(jobs_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW busy AS SELECT * FROM jobs")
    plan = plan_for(jobs_db, "DROP VIEW busy;\n" + ROLLBACK)
    assert not plan.blocked, plan.blockers
    assert "public.busy" in [f.name for f in plan.dropped]


def test_an_object_dropped_and_added_again_need_not_be_gone(jobs_db: str) -> None:
    """drizzle-kit changes a foreign key by dropping and adding it under the same name.

    Its undo does the same with N-1's definition: the constraint is put back, so the check
    before COMMIT must not ask for it to be gone. One a later statement only seems to add
    again (another table's constraint of that name) must still be gone.
    """
    fk = "jobs_user_id_users_id_fk"
    again = (
        f"ALTER TABLE jobs DROP CONSTRAINT {fk};\n"
        f"ALTER TABLE jobs ADD CONSTRAINT {fk} FOREIGN KEY (user_id) REFERENCES users (id)"
        " ON DELETE CASCADE NOT VALID;\n"
        f"ALTER TABLE jobs VALIDATE CONSTRAINT {fk};\n"
        "DROP INDEX idx_jobs_user;\n"
        "CREATE INDEX idx_jobs_user ON jobs (user_id, status);\n"
    )
    plan = plan_for(jobs_db, again)
    assert not plan.blocked, plan.blockers
    assert plan.dropped == ()
    assert plan.recreated == (f"{fk} on public.jobs", "public.idx_jobs_user")
    elsewhere = (
        f"ALTER TABLE jobs DROP CONSTRAINT {fk};\n"
        f"ALTER TABLE users ADD CONSTRAINT {fk} CHECK (id > 0);\n"
    )
    plan = plan_for(jobs_db, elsewhere)
    assert [f.name for f in plan.dropped] == [f"{fk} on public.jobs"]


BILLING = """
CREATE SCHEMA billing;
CREATE TYPE billing.status AS ENUM ('open', 'paid');
CREATE TABLE billing.invoices (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status billing.status, n serial);
CREATE INDEX ON billing.invoices (status);
CREATE VIEW billing.open_invoices AS SELECT id FROM billing.invoices WHERE status = 'open';
"""


def test_a_schema_is_dropped_once_everything_in_it_is(scratch_db: str) -> None:
    """What the schema holds, the runbook must drop before it, by name; each one forgotten blocks.

    Its identity and serial sequences and its index go with the table, so they need no line.
    """
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(BILLING)
    plan = plan_for(
        scratch_db,
        "DROP VIEW billing.open_invoices;\nDROP TABLE billing.invoices;\n"
        "DROP TYPE billing.status;\nDROP SCHEMA billing;\n",
    )
    assert not plan.blocked, plan.blockers
    assert [f.name for f in plan.dropped][-1] == "billing"
    forgot = plan_for(scratch_db, "DROP TABLE billing.invoices;\nDROP SCHEMA billing;\n")
    rule = "rule _RETURN on view billing.open_invoices depends on table billing.invoices"
    view = "view billing.open_invoices depends on schema billing"
    assert sorted(set(forgot.blockers)) == [
        f"line 7: {rule} and the runbook does not drop it",
        "line 8: type billing.status depends on schema billing and the runbook does not drop it",
        f"line 8: {view} and the runbook does not drop it",
    ]


def test_only_an_enum_is_cast_to_a_new_enum_through_text(scratch_db: str) -> None:
    """`col::text::e` from an enum runs only PostgreSQL's code; from another type, blocked.

    A text column, or one of a type with a cast to text of its own, would run that type's
    output function or its cast's function: the plan refuses to, naming the column.
    """
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TYPE tier AS ENUM ('free', 'pro', 'team');"
            "CREATE TABLE accounts (id int PRIMARY KEY, tier tier, note text);"
            "INSERT INTO accounts VALUES (1, 'free', 'free'), (2, 'team', 'pro')"
        )
    made = "CREATE TYPE public.tier_n1 AS ENUM ('free', 'pro');\n"
    cast = "ALTER TABLE accounts ALTER COLUMN {0} SET DATA TYPE public.tier_n1"
    cast += " USING {0}::text::public.tier_n1;\n"
    enum = plan_for(scratch_db, made + cast.format("tier"))
    held = "1 row of public.accounts.tier holds a value the enum does not have"
    fail = "so the cast to it would fail; change or delete it first"
    assert enum.blockers == (f"0005_jobs.md:8: {held} (it has 'free', 'pro'), {fail}",)
    text = plan_for(scratch_db, made + cast.format("note"))
    refused = "accounts.note cannot be cast to public.tier_n1 through text"
    why = "the column is not an enum now; only an enum is cast to another through text"
    assert text.blockers == (f"0005_jobs.md:8: {refused}: {why}",)


def test_counting_an_enums_rows_runs_no_cast_of_its_own(scratch_db: str) -> None:
    """A cast (enum AS text) someone created would run per row if the count cast to text.

    Its function ends a session named `victim`: after planning, that session is still there,
    and the plan is blocked because the statement itself would run the cast.
    """
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TYPE tier AS ENUM ('free', 'pro', 'team');"
            "CREATE TABLE accounts (id int PRIMARY KEY, tier tier);"
            "INSERT INTO accounts VALUES (1, 'free'), (2, 'team');"
            "CREATE FUNCTION noisy(t tier) RETURNS text LANGUAGE plpgsql VOLATILE AS $$"
            " BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'victim' AND datname = current_database();"
            " RETURN t::oid::text; END $$;"
            "CREATE CAST (tier AS text) WITH FUNCTION noisy(tier)"
        )
    made = "CREATE TYPE public.tier_n1 AS ENUM ('free', 'pro');\n"
    cast = "ALTER TABLE accounts ALTER COLUMN tier SET DATA TYPE public.tier_n1"
    cast += " USING tier::text::public.tier_n1;\n"
    with psycopg.connect(scratch_db, application_name="victim", autocommit=True) as victim:
        plan = plan_for(scratch_db, made + cast)
        assert victim.execute("SELECT 1").fetchone() == (1,)
    assert any("public.noisy(t tier) is user-defined code" in b for b in plan.blockers), plan
    assert any("1 row of public.accounts.tier holds a value" in b for b in plan.blockers)
