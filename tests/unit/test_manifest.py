"""The Slack app manifest asks for what rollbot uses: a command, an event, buttons, 8 scopes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.commands import SUBCOMMANDS, USAGE
from bot.slack.doctor import MANIFEST_SCOPES

MANIFEST = Path(__file__).parents[2] / "slack" / "manifest.yml"
BOT_SCOPES = {
    "commands",
    "chat:write",
    "reactions:read",
    "files:write",
    "users:read",
    "usergroups:read",
    "channels:read",
    "groups:read",
}
EVENTS_URL = "https://rollbot.example.com/slack/events"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_asks_for_exactly_the_bot_scopes_rollbot_uses(manifest: dict[str, Any]) -> None:
    """The app requests the eight bot scopes, no user scopes, and nothing twice."""
    bot_scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert set(bot_scopes) == BOT_SCOPES
    assert len(bot_scopes) == len(BOT_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_doctor_checks_the_token_against_the_manifests_scopes() -> None:
    """`rollbot doctor` (which cannot read the manifest in an installed wheel) knows them all."""
    assert MANIFEST_SCOPES == BOT_SCOPES


# The scopes each Web API method rollbot calls needs (None: no scope; a tuple: public and
# private channels each need their own). A method missing here
# fails the test below: a new call must say which scope it needs, and the manifest ask for it.
METHOD_SCOPES: dict[str, str | tuple[str, ...] | None] = {
    "auth_test": None,
    "conversations_info": ("channels:read", "groups:read"),
    "chat_postMessage": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_update": "chat:write",
    "chat_getPermalink": None,
    "files_upload_v2": "files:write",
    "reactions_get": "reactions:read",
    "users_info": "users:read",
    "usergroups_users_list": "usergroups:read",
    "views_open": None,
    "send_socket_mode_response": None,  # an ack over the websocket, not a Web API method
}
CALL = re.compile(r"client\.([a-z]+_[A-Za-z0-9_]+)\(")


def test_the_scopes_are_those_of_the_methods_rollbot_calls() -> None:
    """Read from the code: every Web API call's scope is asked for, and no other scope.

    `commands` comes with the slash command and `reactions:read` also lets Slack deliver
    the reaction_added event; every other scope must be earned by a call in bot/.
    """
    called = {
        name
        for path in (Path(__file__).parents[2] / "bot").rglob("*.py")
        for name in CALL.findall(path.read_text(encoding="utf-8"))
    }
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add the scopes of {sorted(unknown)} to METHOD_SCOPES"
    needed: set[str] = set()
    for method in called:
        scopes = METHOD_SCOPES[method]
        needed |= {scopes} if isinstance(scopes, str) else set(scopes or ())
    assert needed | {"commands"} == BOT_SCOPES


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
    for word in (
        "0023",
        "--target NAME",
        "help",
        "list",
        "status [RUN]",
        "cancel RUN",
        "restore RUN",
        "history",
    ):
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


def test_help_the_manifest_and_the_readme_agree_on_every_subcommand(
    manifest: dict[str, Any],
) -> None:
    """Someone reads one of the three: each names every subcommand and option rollbot takes."""
    (command,) = manifest["features"]["slash_commands"]
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for word in (*SUBCOMMANDS, "--target", "--after", "--dry-run"):
        assert word in USAGE, word
        assert f"/rollback {word}" in readme or f" {word} " in readme, word
        if word != "--after":  # promotion is rare: the hint keeps to one line
            assert word in command["usage_hint"], word


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    """A setting nobody can find is a setting nobody sets right at 3 a.m."""
    from bot.config import Settings  # noqa: PLC0415

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    names = [f.validation_alias for f in Settings.model_fields.values() if f.validation_alias]
    assert names
    assert [n for n in names if f"| `{n}` |" not in readme] == []
