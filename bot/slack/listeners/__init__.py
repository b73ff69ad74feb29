"""Slack listeners: they translate Slack payloads into calls on the core and nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.slack.listeners import commands, errors, events, interactions

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.slack.chatops import ChatOps


def register(app: App, chatops: ChatOps) -> None:
    """Wire every listener to the app; the one place that says what rollbot listens to."""
    commands.register(app, chatops)
    events.register(app, chatops)
    interactions.register(app, chatops)
    errors.register(app)
