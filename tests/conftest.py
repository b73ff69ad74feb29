"""Shared pytest plugins: a real PostgreSQL, a rollbot wired to it, a stand-in for Slack.

Order matters: a plugin must be registered before another plugin imports it, or pytest cannot
rewrite its asserts.
"""

import pytest

pytest_plugins = [
    "tests.fix_db",
    "tests.fix_rollbot",
    "tests.fix_drizzle",
    "tests.fix_slack",
    "tests.fix_slackbot",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow go first, so that no worker picks up a long one when the rest are done.

    The suite runs on every core; its wall time is set by the worker that finishes last, and a
    test of twenty seconds handed out near the end alone stretches it by that much. The sort is
    stable: within each group, the order pytest-randomly chose is kept.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
