"""Shared pytest plugins: a real PostgreSQL, a rollbot wired to it, a stand-in for Slack.

Order matters: a plugin must be registered before another plugin imports it, or pytest cannot
rewrite its asserts.
"""

pytest_plugins = [
    "tests.fix_db",
    "tests.fix_rollbot",
    "tests.fix_drizzle",
    "tests.fix_slack",
    "tests.fix_slackbot",
]
