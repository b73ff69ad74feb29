"""Slack for the tests: the Web API stand-in on loopback, started and stopped per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from demo.standin import SlackStandIn

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A started Web API stand-in, stopped after the test."""
    with SlackStandIn() as running:
        yield running
