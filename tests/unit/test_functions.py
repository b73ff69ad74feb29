"""Runbook expressions that would act outside the transaction are refused with file:line."""

import pytest

from bot.core.errors import RunbookError
from bot.core.functions import call_problem
from bot.core.sql import parse_queries, parse_statements


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        (
            "DELETE FROM users WHERE (SELECT pg_terminate_backend(pid) FROM pg_stat_activity)",
            "pg_terminate_backend",
        ),
        ("DELETE FROM users WHERE id IN (SELECT lo_export(1, '/tmp/x'))", "lo_export"),
        ("DELETE FROM users WHERE PG_CATALOG.PG_CANCEL_BACKEND(1)", "pg_catalog.pg_cancel_backend"),
        ('DELETE FROM users WHERE "pg_sleep"(60) IS NULL', "pg_sleep"),
        ("DELETE FROM users u USING generate_series(1, nextval('s')) g WHERE u.id = g", "nextval"),
        ("DELETE FROM users WHERE id = 1 RETURNING pg_advisory_lock(1)", "pg_advisory_lock"),
        ("DELETE FROM users WHERE dblink_exec('host=x', 'DROP TABLE y') = 'ok'", "dblink_exec"),
        ("DELETE FROM users WHERE pg_read_file('/etc/passwd') <> ''", "pg_read_file"),
        ("DELETE FROM users WHERE set_config('role', 'postgres', false) = ''", "set_config"),
    ],
)
def test_calls_that_reach_outside_the_transaction_are_refused_at_parse_time(
    sql: str, name: str
) -> None:
    """Wherever the call hides (subquery, USING, RETURNING, any case), it is named with its line."""
    with pytest.raises(RunbookError) as caught:
        parse_statements(f"BEGIN;\nDROP INDEX i;\n{sql};\nCOMMIT;", file="x.md", first_line=10)
    text = caught.value.render()
    assert "x.md:12" in text
    assert f"{name}()" in text


def test_the_calls_of_a_statement_are_recorded_for_the_catalog_check() -> None:
    """Allowed-looking calls are kept on the statement, so the plan can ask the catalog."""
    (delete,) = parse_statements(
        "DELETE FROM t WHERE created < now() - interval '1 day' AND audit.mark(id)",
        file="x.md",
        first_line=1,
    )
    assert set(delete.functions) == {"now", "audit.mark"}


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT count(*) INTO copy_of_users FROM users",
        "SELECT * FROM users FOR UPDATE",
        "SELECT lo_export(1, '/tmp/x')",
    ],
)
def test_verify_queries_that_write_lock_or_signal_are_refused(query: str) -> None:
    """Verify queries only read: INTO, FOR UPDATE and denied calls are refused with their line."""
    with pytest.raises(RunbookError) as caught:
        parse_queries(f"SELECT 1;\n{query};", file="v.md", first_line=40)
    assert "v.md:41" in caught.value.render()


@pytest.mark.parametrize(
    ("name", "volatility", "allowed"),
    [
        ("lower", "immutable", True),
        ("now", "stable", True),
        ("random", "volatile", True),
        ("audit.mark", "volatile", False),
        ("missing_fn", None, False),
        ("nextval", "volatile", False),
    ],
)
def test_the_catalog_decides_the_rest(name: str, volatility: str | None, allowed: bool) -> None:
    """IMMUTABLE and STABLE may run; VOLATILE only for a few pure built-ins; unknown never."""
    problem = call_problem(name, volatility)  # type: ignore[arg-type]
    assert (problem is None) is allowed
    if problem is not None:
        assert f"{name}()" in problem
