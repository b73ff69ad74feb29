"""The test plugin itself: every test gets a database of its own on a real server."""

from collections.abc import Callable

import psycopg


def test_scratch_databases_are_separate(make_database: Callable[..., str]) -> None:
    """Two scratch databases do not share tables."""
    first, second = make_database(), make_database()
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_here (id int)")
    with psycopg.connect(second) as conn:
        found = conn.execute("SELECT to_regclass('only_here')").fetchone()
    assert found == (None,)
