"""Shared pytest plugins: a real PostgreSQL for every test that needs one."""

pytest_plugins = ["tests.fix_db", "tests.fix_rollbot"]
