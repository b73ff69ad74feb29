"""What `rollbot doctor` asks Slack: the token, its scopes, and the channels rollbot must be in.

`auth.test` says whose token it is, and Slack sends the token's scopes with every Web API
answer (the `x-oauth-scopes` header), so one call checks both against the scopes the app
manifest asks for. `conversations.info` says whether rollbot is a member of each channel it
takes requests in or posts steps to: a plan posted where rollbot is not a member is refused.
Nothing is posted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.doctor import Check, error, ok, scope_checks
from bot.slack.client import RedactingWebClient

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.web import SlackResponse

    from bot.config import Settings

# The bot scopes slack/manifest.yml asks for (a test keeps the two equal): what the token
# must hold for every call rollbot makes.
MANIFEST_SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "reactions:read",
        "files:write",
        "users:read",
        "usergroups:read",
        "channels:read",
        "groups:read",
    }
)
SUBJECT = "slack"
_BAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
_REINSTALL = (
    "add it under OAuth & Permissions (or update the app from slack/manifest.yml) and "
    "reinstall the app to the workspace"
)


def token_checks(settings: Settings) -> list[Check]:
    """`slack_checks` with a client of its own (the CLI has no wired rollbot)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    client = RedactingWebClient(
        settings.redactor(), token=token, base_url=settings.slack_api_url, timeout=15
    )
    return slack_checks(client, settings)


def slack_checks(client: WebClient, settings: Settings) -> list[Check]:
    """The token, its scopes and rollbot's channels; one error when Slack cannot be asked."""
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown"))
        todo = (
            "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page "
            "into SLACK_BOT_TOKEN"
            if code in _BAD_TOKEN
            else "check SLACK_BOT_TOKEN and SLACK_API_URL"
        )
        return [error(SUBJECT, "auth.test", f"Slack refused the bot token: {code}", todo)]
    except (SlackClientError, OSError) as exc:
        return [
            error(
                SUBJECT,
                "auth.test",
                f"Slack cannot be reached at {settings.slack_api_url}: {type(exc).__name__}",
                "check SLACK_API_URL and this machine's access to Slack",
            )
        ]
    checks = [
        ok(
            SUBJECT,
            "auth.test",
            f"bot {answer.get('user', '?')} ({answer.get('user_id', '?')}) in workspace "
            f"{answer.get('team', '?')} ({answer.get('team_id', '?')})",
        )
    ]
    checks += scope_checks(granted_scopes(answer), MANIFEST_SCOPES)
    roles: dict[str, list[str]] = {c: ["request channel"] for c in settings.allowed_channels}
    if settings.incident_channel:
        roles.setdefault(settings.incident_channel, []).append("incident channel")
    checks += [membership(client, c, " and ".join(r)) for c, r in roles.items()]
    return checks


def granted_scopes(answer: SlackResponse) -> frozenset[str] | None:
    """The token's scopes from Slack's `x-oauth-scopes` header; None when it is absent."""
    for name, value in (answer.headers or {}).items():
        if name.lower() == "x-oauth-scopes":
            text = value if isinstance(value, str) else ",".join(value)
            return frozenset(s.strip() for s in text.split(",") if s.strip())
    return None


def membership(client: WebClient, channel: str, role: str) -> Check:
    """Whether rollbot is in `channel` (`is_member` of `conversations.info`)."""
    name = f"{role} {channel}"
    try:
        answer = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        return _refused(name, channel, exc)
    except (SlackClientError, OSError) as exc:
        return error(
            SUBJECT, name, f"Slack cannot be reached: {type(exc).__name__}", "try again shortly"
        )
    info = answer.get("channel") or {}
    label = f"#{info.get('name')}" if info.get("name") else channel
    if info.get("is_archived"):
        return error(
            SUBJECT,
            name,
            f"{label} is archived: nothing can be posted there",
            "unarchive it or choose another channel",
        )
    if not info.get("is_member"):
        return error(
            SUBJECT,
            name,
            f"rollbot is not a member of {label}: Slack refuses its messages there",
            f"invite it: `/invite @rollbot` in {label}",
        )
    return ok(SUBJECT, name, f"rollbot is a member of {label}")


def _refused(name: str, channel: str, exc: SlackApiError) -> Check:
    """Slack's error for `conversations.info`, as the fix it calls for."""
    code = str(exc.response.get("error", "unknown"))
    if code == "missing_scope":
        needed = exc.response.get("needed") or "channels:read"
        return error(
            SUBJECT,
            name,
            f"the bot token lacks the scope {needed}, so rollbot cannot tell whether it is in "
            "the channel",
            _REINSTALL,
        )
    if code in {"channel_not_found", "not_in_channel"}:
        return error(
            SUBJECT,
            name,
            f"Slack shows rollbot no channel {channel} ({code}): a wrong ID, or a private "
            "channel rollbot was never invited to",
            "check the ID, then invite rollbot: `/invite @rollbot` in that channel",
        )
    return error(SUBJECT, name, f"conversations.info failed: {code}", "try again shortly")
