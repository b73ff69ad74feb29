"""Reminding approvers before a plan's approval window closes: once, whoever decides it.

A reminder is worth something only if it arrives once. Every replica's sweep asks the same
pure question (`reminder_due`), and the store records the reminder with its messages only
if none was recorded for the run before and the run still awaits approval, so neither two
replicas nor a restart can send it twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.policy import reminder_due
from bot.core.states import RunState

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.run import Run
    from bot.service.lifecycle import Lifecycle

REMINDED = "approval_reminded"


class Reminders:
    """The reminder before expiry, sent from the periodic sweep."""

    def __init__(self, runs: Lifecycle, settings: Settings) -> None:
        self._runs = runs
        self._settings = settings

    def remind_due(self) -> list[Run]:
        """Remind the approvers of every run whose window closes soon; the runs reminded now."""
        lead = self._settings.reminder_lead()
        if lead is None:
            return []
        now = self._runs.now()
        reminded: list[Run] = []
        for run in self._runs.store.recent(limit=200, states=[RunState.AWAITING_APPROVAL]):
            if not reminder_due(run, before=lead, now=now):
                continue
            with structlog.contextvars.bound_contextvars(run_id=run.id):
                if self._runs.note_once(run, REMINDED):
                    reminded.append(run)
        return reminded
