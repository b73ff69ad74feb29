"""Which constraints a statement checks rows against, read from PostgreSQL's parse."""

from __future__ import annotations

from datetime import timedelta

from bot.core.facts import Facts, Target, ViolationCount
from bot.core.plan import build_plan
from bot.core.runbook import parse_runbook
from bot.core.sql import Statement, Validation, parse_statements
from bot.core.texts import violated_constraint
from bot.core.usercode import evaluation_problem

TARGET = Target(host="localhost", dbname="app")
TIMEOUT = timedelta(seconds=5)


def validates(text: str) -> list[tuple[Validation, ...]]:
    return [s.validates for s in parse_statements(text, file="r.md", first_line=1)]


def test_an_added_constraint_is_validated_unless_not_valid() -> None:
    """ADD CONSTRAINT checks the rows at once; NOT VALID defers that to its VALIDATE.

    A VALIDATE of a constraint the runbook did not add is known only by its name here.
    """
    found = validates(
        "ALTER TABLE public.orders ADD CONSTRAINT c CHECK (total >= 0) NOT VALID;\n"
        "ALTER TABLE public.orders ADD CONSTRAINT u UNIQUE (code);\n"
        "ALTER TABLE public.orders VALIDATE CONSTRAINT c;\n"
        "ALTER TABLE public.orders VALIDATE CONSTRAINT added_elsewhere"
    )
    assert [[v.name for v in f] for f in found] == [[], ["u"], ["c"], ["added_elsewhere"]]
    assert found[2][0].kind == "check"
    assert found[2][0].expression == "total >= 0"
    assert found[3][0].existing  # read from the catalog when its rows are counted


def test_the_expression_is_the_deparsed_parse_not_the_text() -> None:
    """Comments and layout in the runbook never reach the count; the parse does."""
    (found,) = validates(
        "ALTER TABLE t ADD CONSTRAINT c CHECK (\n  v /* ) OR true */ > 0 -- ; x\n  AND w <> ';')"
    )
    assert found[0].expression == "v > 0 AND w <> ';'"


def test_keys_and_their_options_are_read() -> None:
    """Referenced table and columns, MATCH FULL, NULLS NOT DISTINCT, PRIMARY KEY, ONLY."""
    (found,) = validates(
        "ALTER TABLE ONLY s.c ADD CONSTRAINT fk FOREIGN KEY (a, b) REFERENCES p.parent (x, y)"
        " MATCH FULL, ADD UNIQUE NULLS NOT DISTINCT (a), ADD CONSTRAINT pk PRIMARY KEY (id),"
        " ADD CONSTRAINT by_index UNIQUE USING INDEX c_idx"
    )
    fk, unique, pk = found
    assert (fk.kind, fk.namespace, fk.table, fk.only) == ("foreign key", "s", "c", True)
    assert (fk.columns, fk.parent_namespace, fk.parent, fk.referenced) == (
        ("a", "b"),
        "p",
        "parent",
        ("x", "y"),
    )
    assert fk.match_full
    assert (unique.kind, unique.name, unique.nulls_not_distinct) == ("unique", None, True)
    assert unique.label() == "the unnamed UNIQUE on s.c"
    assert (pk.kind, pk.columns) == ("primary key", ("id",))


def test_a_check_is_evaluated_only_when_the_plan_would_allow_its_calls() -> None:
    """PostgreSQL's own stable and harmless functions pass; volatile or unknown ones do not."""
    statement = Statement.model_validate(
        {
            "number": 1,
            "line": 1,
            "sql": "",
            "kind": "ALTER TABLE … ADD CONSTRAINT",
            "objects": (),
            "functions": ("lower", "random"),
        }
    )
    facts = Facts(target=TARGET, objects=(), functions={"lower": "immutable", "random": "volatile"})
    assert evaluation_problem(statement, facts) is None
    facts = Facts(target=TARGET, objects=(), functions={"lower": "volatile", "random": "volatile"})
    assert "lower() is VOLATILE" in str(evaluation_problem(statement, facts))
    facts = Facts(target=TARGET, objects=(), functions={"random": "volatile"})
    assert "lower() is not a function this database knows" in str(
        evaluation_problem(statement, facts)
    )


def test_counted_violations_block_and_uncounted_ones_are_said() -> None:
    """A count blocks naming file:line and rows; no count is a note, with why."""
    book = parse_runbook(
        "# R\n\n## Quick Rollback\n\n```sql\nBEGIN;\n"
        "ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\n"
        "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;\n"
        "ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);\n"
        "COMMIT;\n```\n",
        file="0042_x.md",
    )
    facts = Facts(
        target=TARGET,
        objects=(),
        violations=(
            ViolationCount(
                statement=2,
                constraint="orders_total_check",
                kind="check",
                table="public.orders",
                rows=3,
            ),
            ViolationCount(
                statement=3,
                constraint="orders_code_key",
                kind="unique",
                table="public.orders",
                rows=None,
                why="counting took longer than the count budget",
            ),
        ),
    )
    plan = build_plan(book, facts, lock_timeout=TIMEOUT, statement_timeout=TIMEOUT)
    blocker = (
        "0042_x.md:8: 3 rows of public.orders violate orders_total_check, so VALIDATE would "
        "fail; fix or delete them first (or leave the constraint out)"
    )
    assert plan.blockers == (blocker,)
    note = (
        "0042_x.md:9: rows violating orders_code_key on public.orders were not counted: "
        "counting took longer than the count budget"
    )
    assert plan.uncounted == (note,)


def test_a_violation_at_execution_names_the_constraint() -> None:
    """PostgreSQL names an index or a column for some kinds; the outcome names the constraint."""
    (statement,) = parse_statements(
        "ALTER TABLE public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id),"
        " ADD CONSTRAINT orders_code_key UNIQUE (code)",
        file="r.md",
        first_line=1,
    )
    assert violated_constraint(statement, "23505") == (
        "rows of public.orders violate PRIMARY KEY orders_pkey or UNIQUE orders_code_key "
        "(written since the plan, or not counted by it): fix or delete them, then ask for a "
        "new plan, which counts them"
    )
    assert "PRIMARY KEY orders_pkey (written" in str(violated_constraint(statement, "23502"))
    assert violated_constraint(statement, "23514") is None
    assert violated_constraint(statement, None) is None


def test_a_check_with_a_subquery_is_marked() -> None:
    """PostgreSQL refuses a subquery in a CHECK; the count must not run it first."""
    (found,) = validates(
        "ALTER TABLE t ADD CONSTRAINT c CHECK (v > 0),"
        " ADD CONSTRAINT s CHECK (v IN (SELECT id FROM other))"
    )
    assert [v.subquery for v in found] == [False, True]
