"""rollbot served over real HTTP, wired to a test database and to the Slack stand-in."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from bot.app import Components, build
from bot.config import load_settings
from demo.sample import MIGRATIONS_DIR
from demo.standin import SlackSender, SlackStandIn, serve_wsgi
from tests.fix_rollbot import APPROVER, DROP_MODE, REQUESTER, RUNBOOKS, SECOND_APPROVER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bot.config import Settings

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
REQUEST_CHANNEL = "C0OPS"
INCIDENT_CHANNEL = "C0INCIDENT"
BYSTANDER = "U0MALLORY"


@dataclass
class SlackBot:
    """A running rollbot and the means to talk to it as Slack does."""

    components: Components
    standin: SlackStandIn
    sender: SlackSender
    url: str

    def plan_message(self, run_id: int) -> tuple[str, str]:
        """(channel, ts) of a run's plan message, once everything pending is delivered."""
        self.deliver()
        where = self.components.deliveries.slack_message(run_id, "plan")
        assert where is not None, "the plan message was not posted"
        return where

    def deliver(self, timeout: float = 10.0) -> None:
        """Wait until the outbox holds nothing due (the courier delivers in the background)."""
        deadline = time.monotonic() + timeout
        while any(p.due for p in self.components.deliveries.pending()):
            if time.monotonic() > deadline:
                pending = self.components.deliveries.pending()
                raise AssertionError(f"outbox not drained: {pending}")
            self.components.courier.wake()
            time.sleep(0.05)


@pytest.fixture
def slack_workspace(standin: SlackStandIn) -> SlackStandIn:
    """The stand-in with the people and channels the scenarios use."""
    return populated(standin)


def populated(standin: SlackStandIn) -> SlackStandIn:
    """Add the people and channels the scenarios use to a stand-in."""
    for user_id, name in (
        (REQUESTER, "alice"),
        (APPROVER, "bob"),
        (SECOND_APPROVER, "carol"),
        (BYSTANDER, "mallory"),
    ):
        standin.add_user(user_id, name)
    standin.add_channel(REQUEST_CHANNEL, "ops")
    standin.add_channel(INCIDENT_CHANNEL, "incident")
    return standin


@pytest.fixture
def make_slackbot(
    slack_workspace: SlackStandIn, tmp_path: Path
) -> Iterator[Callable[..., SlackBot]]:
    """Factory: `make_slackbot(conninfo, **settings)` -> a served rollbot and a sender."""
    standin = slack_workspace
    running: list[tuple[Components, Any]] = []

    def make(conninfo: str, runbooks_dir: Path | None = None, **overrides: Any) -> SlackBot:
        values: dict[str, Any] = {
            "database_url": conninfo,
            "runbooks_dir": runbooks_dir or RUNBOOKS,
            "backup_dir": tmp_path / "backups",
            "approvers": (APPROVER, SECOND_APPROVER),
            "slack_bot_token": standin.bot_token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": standin.api_url,
            "incident_channel": INCIDENT_CHANNEL,
            "rehearsal": "off",  # rehearsal has its own tests; the others need not pay for it
            "migrations_dir": MIGRATIONS_DIR,
            "drop_mode": DROP_MODE,
        }
        settings = load_settings(**(values | overrides))
        components = build(settings)
        components.start()
        server = serve_wsgi(components.wsgi())
        url = server.__enter__()
        running.append((components, server))
        sender = SlackSender(f"{url}/slack/events", SIGNING_SECRET, standin)
        return SlackBot(components=components, standin=standin, sender=sender, url=url)

    yield make
    for components, server in running:
        server.__exit__(None, None, None)
        components.stop()


def socket_settings(conninfo: str, standin: SlackStandIn, tmp_path: Path, **more: Any) -> Settings:
    """Settings for an in-process rollbot in Socket Mode against the stand-in."""
    values: dict[str, Any] = {
        "database_url": conninfo,
        "runbooks_dir": RUNBOOKS,
        "backup_dir": tmp_path / "backups",
        "slack_bot_token": standin.bot_token,
        "slack_app_token": standin.app_token,
        "slack_api_url": standin.api_url,
        "drop_mode": DROP_MODE,
    }
    return load_settings(**(values | more))
