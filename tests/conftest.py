"""Shared pytest plugins: a real PostgreSQL, a rollbot wired to it, a stand-in for Slack."""

pytest_plugins = [
    "tests.fix_db",
    "tests.fix_drizzle",
    "tests.fix_rollbot",
    "tests.fix_slack",
    "tests.fix_slackbot",
]
