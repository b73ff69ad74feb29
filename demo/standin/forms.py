"""Modals, as Slack opens them: only from a fresh trigger id, only if they are valid Block Kit.

Slack hands an app a trigger id with each button press and lets it open one modal with it,
within three seconds. The stand-in keeps the same rules (`expired_trigger_id`,
`exchanged_trigger_id`, `invalid_trigger_id`), and checks each view with slack_sdk's own models
(`slack_sdk.models.views.View`), so a modal that Slack would refuse is refused here too, and a
key slack_sdk does not know (a typo Slack would reject) is refused rather than dropped.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

from demo.standin.workspace import SlackError

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.standin.model import JSON

TRIGGER_TTL_S = 3.0  # Slack's: a trigger id opens a modal within three seconds, once


@dataclass(frozen=True)
class Press:
    """A button press: who, on which message, and when its trigger id was handed out."""

    trigger_id: str
    user: str
    channel: str
    ts: str
    at: float
    label: str


@dataclass(frozen=True)
class OpenForm:
    """A modal open in front of one person, opened from a press on a message."""

    id: str
    hash: str
    user: str
    view: JSON
    channel: str
    ts: str
    closed: bool = False

    def to_api(self, team_id: str, app_id: str, bot_id: str) -> JSON:
        """The `view` object Slack returns from views.open and sends in view_submission."""
        return {
            **self.view,
            "id": self.id,
            "team_id": team_id,
            "app_id": app_id,
            "bot_id": bot_id,
            "app_installed_team_id": team_id,
            "hash": self.hash,
            "root_view_id": self.id,
            "previous_view_id": None,
            "external_id": self.view.get("external_id", ""),
            "clear_on_close": bool(self.view.get("clear_on_close", False)),
            "notify_on_close": bool(self.view.get("notify_on_close", False)),
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "state": {"values": {}},
        }


class Forms:
    """Trigger ids handed out with presses, and the modals opened with them."""

    def __init__(
        self, new_id: Callable[[str], str], clock: Callable[[], float] = time.time
    ) -> None:
        self._new_id = new_id
        self._clock = clock
        self._lock = threading.Lock()
        self._presses: dict[str, Press] = {}
        self._used: set[str] = set()
        self._forms: dict[str, OpenForm] = {}

    def press(self, user: str, channel: str, ts: str, label: str) -> Press:
        """A press of a button on a message: a fresh trigger id, valid for three seconds."""
        trigger = f"{int(self._clock())}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        press = Press(trigger, user, channel, ts, self._clock(), label)
        with self._lock:
            self._presses[trigger] = press
        return press

    def open(self, params: JSON) -> OpenForm:
        """views.open: a valid view, opened with a fresh, unused trigger id."""
        trigger = str(params.get("trigger_id") or "")
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError as exc:
                raise SlackError("invalid_arguments") from exc
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments")
        check_view(view)
        with self._lock:
            press = self._presses.get(trigger)
            if press is None:
                raise SlackError("invalid_trigger_id")
            if trigger in self._used:
                raise SlackError("exchanged_trigger_id")
            if self._clock() - press.at > TRIGGER_TTL_S:
                raise SlackError("expired_trigger_id")
            self._used.add(trigger)
            form = OpenForm(
                id=self._new_id("V"),
                hash=hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16],
                user=press.user,
                view=view,
                channel=press.channel,
                ts=press.ts,
            )
            self._forms[form.id] = form
        return form

    def form(self, view_id: str) -> OpenForm:
        """An open modal, or `view_not_found`."""
        with self._lock:
            found = self._forms.get(view_id)
        if found is None or found.closed:
            raise SlackError("view_not_found")
        return found

    def close(self, view_id: str) -> None:
        """The modal was submitted (and the app let it close) or dismissed."""
        with self._lock:
            if view_id in self._forms:
                self._forms[view_id] = replace(self._forms[view_id], closed=True)

    def opened(self) -> list[OpenForm]:
        """Every modal opened so far, oldest first, closed ones included."""
        with self._lock:
            return list(self._forms.values())


def check_view(view: JSON) -> None:
    """Refuse a view slack_sdk's models reject, or one holding keys they do not know."""
    try:
        modelled = View(**view).to_dict()
    except (SlackObjectFormationError, TypeError, ValueError) as exc:
        raise SlackError("invalid_arguments") from exc
    if _normal(modelled) != _normal(view):
        raise SlackError("invalid_arguments")


def _normal(value: object) -> object:
    return json.loads(json.dumps(value, sort_keys=True))
