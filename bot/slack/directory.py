"""Who may approve, asked of Slack: user groups expanded, bots and deactivated users known.

Group membership changes rarely and is asked often (every reaction), so it is cached briefly.
Failures fail closed: a group Slack cannot list grants nobody, a user Slack cannot describe
cannot approve until Slack answers.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import structlog
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.chatops import Person

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = structlog.get_logger()


class SlackDirectory:
    """Approvers (users and user groups, expanded) and users' bot/deactivated flags."""

    def __init__(self, client: WebClient, ttl_s: float = 60.0) -> None:
        self._client = client
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cached: dict[tuple[str, ...], tuple[float, frozenset[str]]] = {}

    def approvers(self, configured: tuple[str, ...]) -> frozenset[str]:
        """The configured user ids plus the current members of the configured user groups."""
        with self._lock:
            hit = self._cached.get(configured)
            if hit is not None and time.monotonic() - hit[0] < self._ttl:
                return hit[1]
        users = {i for i in configured if i[:1] in {"U", "W"}}
        for group in (i for i in configured if i.startswith("S")):
            try:
                answer = self._client.usergroups_users_list(usergroup=group)
                members: list[object] = answer.get("users") or []
                users.update(str(member) for member in members)
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.warning("slack.usergroup_unavailable", group=group, error=type(exc).__name__)
        result = frozenset(users)
        with self._lock:
            self._cached[configured] = (time.monotonic(), result)
        return result

    def reacted(self, channel: str, ts: str, name: str) -> tuple[str, ...]:
        """Who has reacted with `name` to a message; nobody when Slack does not answer."""
        try:
            answer = self._client.reactions_get(channel=channel, timestamp=ts, full=True)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("slack.reactions_unavailable", error=type(exc).__name__)
            return ()
        message = answer.get("message") or {}
        for reaction in message.get("reactions") or []:
            if reaction.get("name") == name:
                return tuple(str(user) for user in reaction.get("users") or [])
        return ()

    def person(self, user_id: str) -> Person:
        """Bot and deactivation flags; unknown (fail closed) when Slack does not answer."""
        try:
            answer = self._client.users_info(user=user_id)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("slack.user_unavailable", user=user_id, error=type(exc).__name__)
            return Person(id=user_id, known=False)
        info = answer.get("user") or {}
        return Person(
            id=user_id,
            is_bot=bool(info.get("is_bot")) or user_id == "USLACKBOT",
            deleted=bool(info.get("deleted")),
        )
