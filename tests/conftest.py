"""Shared pytest plugins: a real PostgreSQL, and Slack on the loopback interface."""

pytest_plugins = ["tests.fix_db", "tests.fix_slack"]
