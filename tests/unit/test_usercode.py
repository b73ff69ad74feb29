"""Only code PostgreSQL ships runs for a rollback: the decision, from hand-written facts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.errors import RunbookError
from bot.core.facts import Code, Facts, Found, Hook, HookKind, Relation, Table, Target, Via
from bot.core.plan import Plan, build_plan
from bot.core.runbook import parse_runbook
from bot.core.sql import ObjectKind, parse_statements
from bot.core.usercode import code_problem
from tests.unit.test_cascade import CHAIN, ORDERS, PROFILES, USERS, fk

EVIL = Code(function="public.evil()", builtin=False, volatility="stable")
LOWER = Code(function="pg_catalog.lower(text)", builtin=True, volatility="immutable")
RANDOM = Code(function="pg_catalog.random()", builtin=True, volatility="volatile")
NEXTVAL = Code(function="pg_catalog.nextval(regclass)", builtin=True, volatility="volatile")
FILE = "runbooks/0031_test_users.md"


def plan_for(sql: str, **more: object) -> Plan:
    text = (
        "---\njournal: false\n---\n# Remove the test users\n\n"
        f"**Migration File**: `0031_test_users.sql`\n\n## Quick Rollback\n\n```sql\n{sql}\n```\n"
    )
    rows = Found(
        statement=1,
        position=0,
        kind=ObjectKind.ROWS,
        name=USERS.name,
        exists=True,
        oid=USERS.oid,
        table=USERS,
    )
    values: dict[str, object] = {
        "target": Target(host="db", dbname="shop"),
        "objects": (rows,),
        "foreign_keys": CHAIN,
    }
    return build_plan(
        parse_runbook(text, file=FILE),
        Facts.model_validate(values | more),
        lock_timeout=timedelta(seconds=2),
        statement_timeout=timedelta(seconds=30),
    )


def hook(table: Table, kind: HookKind, *codes: Code, **more: object) -> Hook:
    return Hook.model_validate({"table": table, "kind": kind, "name": "x", "code": codes} | more)


@pytest.mark.parametrize(
    ("code", "allowed"),
    [(LOWER, True), (RANDOM, True), (NEXTVAL, False), (EVIL, False)],
)
def test_only_postgresqls_own_harmless_functions_may_run(code: Code, *, allowed: bool) -> None:
    """A user function fails whatever its label; a built-in passes the deny-list and volatility."""
    assert (code_problem(code) is None) is allowed


def test_a_user_function_blocks_whatever_its_label_says() -> None:
    """STABLE is its author's claim: the plan names the function, its line and what to do."""
    plan = plan_for(
        "DELETE FROM users WHERE id = safe_pick();",
        functions={"safe_pick": "stable"},
        user_functions={"safe_pick": (EVIL.model_copy(update={"function": "public.safe_pick()"}),)},
    )
    assert plan.blockers == (
        (
            f"{FILE}:11: public.safe_pick() is user-defined code: rollbot cannot know what it"
            " does (its STABLE label is its author's claim); compute the rows another way or run"
            " it by hand"
        ),
    )


def test_built_in_calls_plan_as_before() -> None:
    """lower() and now() resolve to PostgreSQL's own functions only: nothing blocks."""
    plan = plan_for(
        "DELETE FROM users WHERE lower(email) = 'x' AND created < now();",
        functions={"lower": "immutable", "now": "stable"},
    )
    assert not plan.blocked, plan.blockers


def _relation(written: str, kind: str | None, **more: object) -> Relation:
    values = {"statement": 1, "written": written, "kind": kind}
    if kind is not None:
        values |= {"oid": 99, "name": f"public.{written}"}
    return Relation.model_validate(values | more)


@pytest.mark.parametrize(
    ("relation", "blocked"),
    [
        (_relation("old_users", "r"), False),
        (_relation("old_users", "p"), False),
        (_relation("old_users", "m"), False),  # read as stored: its query ran at REFRESH
        (_relation("old_users", "v", code=(EVIL,)), True),
        (_relation("old_users", "v"), True),  # a view's query is not checked, even a harmless one
        (_relation("old_users", "f"), True),
        (_relation("old_users", "S"), True),
        (_relation("old_users", None), True),
        (_relation("old_users", "r", foreign=("public.remote_part",)), True),
    ],
)
def test_expressions_read_only_tables(relation: Relation, *, blocked: bool) -> None:
    """Tables and materialized views may be read; views, foreign tables and the unknown block."""
    plan = plan_for(
        "DELETE FROM users WHERE id IN (SELECT id FROM old_users);", relations=(relation,)
    )
    assert plan.blocked is blocked, plan.blockers
    if blocked:
        assert plan.blockers[0].startswith(f"{FILE}:11: ")
    if relation.kind == "v" and relation.code:
        assert "which calls public.evil()" in plan.blockers[0]


def test_a_with_query_is_the_statements_own_sql_but_never_hides_a_view() -> None:
    """A CTE name that is no relation passes; one that is also a view's name blocks."""
    sql = "DELETE FROM users WHERE id IN (WITH c AS (SELECT 1 AS id) SELECT id FROM c);"
    assert not plan_for(sql, relations=(_relation("c", None),)).blocked
    shadowed = plan_for(sql, relations=(_relation("c", "v"),))
    assert "a WITH query of that name does not hide it everywhere" in shadowed.blockers[0]


def test_an_operator_or_cast_that_may_run_user_code_blocks() -> None:
    """Conservatively by name: any user operator of that name, any user cast into the type."""
    plan = plan_for(
        "DELETE FROM users WHERE id === 9 AND id::mood = 'calm';",
        operators={
            "===": (
                Via(what="operator public.===(integer, integer)", code=EVIL),
                Via(what="operator public.===(text, text)", code=LOWER),  # built-in code: fine
            )
        },
        casts={"mood": (Via(what="the cast (integer AS mood)", code=EVIL),)},
    )
    assert len(plan.blockers) == 2, plan.blockers
    assert (
        "`===` may resolve to operator public.===(integer, integer): public.evil()"
        in (plan.blockers[0])
    )
    assert "the cast to mood may run the cast (integer AS mood): public.evil()" in plan.blockers[1]


def test_an_implicit_user_cast_blocks_any_statement_with_expressions() -> None:
    """The server applies an implicit cast unasked: a comparison may run it."""
    cast = Via(what="the implicit cast (integer AS text)", code=EVIL)
    plan = plan_for("DELETE FROM users WHERE name = 5;", implicit_casts=(cast,))
    assert "the server may apply the implicit cast (integer AS text)" in plan.blockers[0]


SET_DEFAULT = (*CHAIN[:3], fk(PROFILES, USERS, "d", columns=("user_id",)))


@pytest.mark.parametrize(
    ("hooks", "keys", "blocked"),
    [
        # profiles is rewritten by ON DELETE SET NULL: its CHECKs, indexes, generated columns run
        ((hook(PROFILES, "CHECK constraint", EVIL),), CHAIN, True),
        ((hook(PROFILES, "index", EVIL),), CHAIN, True),
        ((hook(PROFILES, "generated column", EVIL, column="g"),), CHAIN, True),
        ((hook(PROFILES, "CHECK constraint", RANDOM),), CHAIN, False),
        # orders is only deleted from: no constraint or index code runs on a deleted row
        ((hook(ORDERS, "CHECK constraint", EVIL),), CHAIN, False),
        # a default runs only where SET DEFAULT writes it, a domain only on a written column
        ((hook(PROFILES, "column default", EVIL, column="user_id"),), CHAIN, False),
        ((hook(PROFILES, "column default", EVIL, column="user_id"),), SET_DEFAULT, True),
        ((hook(PROFILES, "column default", NEXTVAL, column="user_id"),), SET_DEFAULT, True),
        ((hook(PROFILES, "column default", EVIL, column="id"),), SET_DEFAULT, False),
        ((hook(PROFILES, "domain constraint", EVIL, column="user_id"),), CHAIN, True),
        ((hook(PROFILES, "domain constraint", EVIL, column="nickname"),), CHAIN, False),
        # a policy blocks where row-level security applies to rollbot, whatever the change
        ((hook(USERS, "policy", EVIL),), CHAIN, True),
        ((hook(USERS, "policy", EVIL, applies=False),), CHAIN, False),
        ((hook(ORDERS, "foreign table"),), CHAIN, True),
    ],
)
def test_code_on_the_changed_rows_blocks_where_postgresql_runs_it(
    hooks: tuple[Hook, ...], keys: object, *, blocked: bool
) -> None:
    """Each hook blocks for the change that runs it, naming the object, the table and the code."""
    plan = plan_for("DELETE FROM users WHERE id = 1;", hooks=hooks, foreign_keys=keys)
    assert plan.blocked is blocked, plan.blockers
    if blocked:
        assert plan.blockers[0].startswith(f"{FILE}:11: ")
        assert hooks[0].table.name in plan.blockers[0]


def test_the_hash_covers_the_code_facts() -> None:
    """A view, operator, cast or hook added after the plan changes its hash, voiding approvals."""
    sql = "DELETE FROM users WHERE id IN (SELECT id FROM old_users);"
    base = plan_for(sql, relations=(_relation("old_users", "r"),)).hash
    changed = [
        plan_for(sql, relations=(_relation("old_users", "m"),)),
        plan_for(
            sql, relations=(_relation("old_users", "r"),), hooks=(hook(USERS, "index", RANDOM),)
        ),
        plan_for(
            sql,
            relations=(_relation("old_users", "r"),),
            operators={"=": (Via(what="operator public.=(int, int)", code=EVIL),)},
        ),
    ]
    assert all(plan.hash != base for plan in changed)


def test_the_parser_records_what_expressions_read_compare_and_cast() -> None:
    """Relations (not the DELETE's own table), implied operators, cast types and WITH names."""
    (delete,) = parse_statements(
        "DELETE FROM t USING u WHERE t.a IN (1, 2) AND t.b BETWEEN 1 AND 2 AND t.c === 3"
        " AND t.d OPERATOR(public.===) 4 AND t.e IN (WITH w AS (SELECT 1 AS id) SELECT id FROM w)"
        " AND t.f::public.mood IS NULL AND CASE t.g WHEN 1 THEN true END",
        file="x.md",
        first_line=1,
    )
    assert delete.relations == ("u", "w")
    assert set(delete.operators) == {"=", ">=", "<=", "===", "public.==="}
    assert delete.types == ("public.mood",)
    assert delete.ctes == ("w",)
    (alter,) = parse_statements("ALTER TABLE t DROP COLUMN c", file="x.md", first_line=1)
    assert alter.relations == ()


def test_tablesample_is_refused_with_its_line() -> None:
    """A sample picks different rows each run, through a sampling method's own code."""
    with pytest.raises(RunbookError) as caught:
        parse_statements(
            "DROP INDEX i;\nDELETE FROM t WHERE id IN (SELECT id FROM u TABLESAMPLE bernoulli(5))",
            file="x.md",
            first_line=10,
        )
    assert "x.md:11" in caught.value.render()
    assert "TABLESAMPLE" in caught.value.render()
