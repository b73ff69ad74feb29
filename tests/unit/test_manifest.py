"""The Slack app manifest asks for what rollbot uses: a command, an event, buttons, 7 scopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFEST = Path(__file__).parents[2] / "slack" / "manifest.yml"
BOT_SCOPES = {
    "commands",
    "chat:write",
    "reactions:read",
    "reactions:write",
    "files:write",
    "users:read",
    "usergroups:read",
}
EVENTS_URL = "https://rollbot.example.com/slack/events"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_asks_for_exactly_the_bot_scopes_rollbot_uses(manifest: dict[str, Any]) -> None:
    """The app requests the seven bot scopes, no user scopes, and nothing twice."""
    bot_scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert set(bot_scopes) == BOT_SCOPES
    assert len(bot_scopes) == len(BOT_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_manifest_declares_the_rollback_command(manifest: dict[str, Any]) -> None:
    """One slash command, /rollback, unescaped, whose hint names every subcommand."""
    assert manifest["_metadata"]["major_version"] == 1
    assert manifest["display_information"]["name"] == "rollbot"
    assert manifest["features"]["bot_user"] == {"display_name": "rollbot", "always_online": True}
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/rollback"
    assert command["should_escape"] is False
    assert command["url"] == EVENTS_URL
    assert command["description"]
    hint = command["usage_hint"]
    for word in ("0023", "help", "list", "status [RUN]", "cancel RUN", "history"):
        assert word in hint


def test_manifest_subscribes_to_reactions_over_socket_mode(manifest: dict[str, Any]) -> None:
    """Approvals arrive as reaction_added or button presses; Socket Mode is on, nothing else."""
    settings = manifest["settings"]
    assert settings["event_subscriptions"] == {
        "request_url": EVENTS_URL,
        "bot_events": ["reaction_added"],
    }
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
