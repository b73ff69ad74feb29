"""Slack's rendering of the approval decision: the buttons, the rejection form, the calls.

Pure, like `blocks`. The buttons are only an other way to say what the ✅ reaction says, so
they carry no authority of their own: their value is the run id for the logs, but a press is
matched to its run by the message it was on, as a reaction is. The people mentioned are
rollbot's own configuration (validated Slack ids), never text from a run, and everything a
run's view holds is escaped before markup is added.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bot.core import texts
from bot.core.policy import REASON_LIMIT
from bot.core.views import view_of
from bot.slack.mrkdwn import Block, escaped, people

if TYPE_CHECKING:
    from datetime import datetime

    from bot.core.run import Run
    from bot.core.views import RunView

APPROVE_ACTION = "rollbot_approve"
REJECT_ACTION = "rollbot_reject"
REJECT_VIEW = "rollbot_reject"  # the callback id of the rejection form
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
_CONFIRM_LIMIT = 300  # Slack's limit on a confirmation dialog's text
_TITLE_LIMIT = 100


def _plain(text: str, limit: int = 75) -> dict[str, object]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def approval_actions(view: RunView) -> Block:
    """Approve (after Slack's confirmation dialog) and Reject (which asks for a reason).

    `view` is already escaped; the dialog's text is mrkdwn, so it stays inert.
    """
    confirm = texts.confirm_approval(f"`{view.runbook_name}`", view.target_label)
    return {
        "type": "actions",
        "block_id": f"rollbot_approval_{view.id}",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": _plain(texts.APPROVE),
                "style": "primary",
                "value": str(view.id),
                "confirm": {
                    "title": _plain(texts.confirm_title(view.id), _TITLE_LIMIT),
                    "text": {"type": "mrkdwn", "text": confirm[:_CONFIRM_LIMIT]},
                    "confirm": _plain(texts.APPROVE, 30),
                    "deny": _plain(texts.NOT_YET, 30),
                    "style": "primary",
                },
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": _plain(texts.REJECT),
                "style": "danger",
                "value": str(view.id),
            },
        ],
    }


def reject_form(run: Run, *, channel: str, ts: str) -> dict[str, object]:
    """The modal asking why a plan is rejected; the reason is required and kept with the run.

    Plain text only: names from the run cannot become markup in a plain_text object, and the
    private metadata says which run and message the form is about.
    """
    view = view_of(run)
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": json.dumps({"run": run.id, "channel": channel, "ts": ts}),
        "title": _plain(texts.reject_title(run.id), 24),
        "submit": _plain(texts.REJECT.rstrip("…"), 24),
        "close": _plain(texts.KEEP_IT, 24),
        "blocks": [
            {
                "type": "section",
                "text": _plain(
                    texts.reject_intro(run.id, view.runbook_name, view.target_label), 3000
                ),
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": _plain(texts.REASON, 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": REASON_LIMIT,
                },
            },
        ],
    }


def form_target(metadata: str) -> tuple[int, str, str] | None:
    """(run id, channel, ts) from a rejection form's private metadata, or None if unreadable."""
    try:
        found = json.loads(metadata)
        return int(found["run"]), str(found["channel"]), str(found["ts"])
    except (ValueError, TypeError, KeyError):
        return None


def approvers_call(run: Run, approvers: tuple[str, ...], *, reminder: bool = False) -> str:
    """The thread reply that notifies the approvers (a new message: edits notify nobody).

    Those who need not act are left out: the requester, who cannot approve, and whoever has
    already approved. A user group is mentioned as the group.
    """
    view = escaped(view_of(run))
    waiting = tuple(a for a in approvers if a != run.requested_by and a not in run.approvers)
    who = people(waiting) if waiting else "Nobody can approve this (set ROLLBOT_APPROVERS)"
    if reminder:
        return f"{who}: {texts.reminder(view.id)}; the window closes {when(run.expires_at)}."
    what = texts.awaits_approval(view.kind, view.id, f"`{view.runbook_name}`", view.target_label)
    return (
        f"{who}: {what} until {when(run.expires_at)}: press *{texts.APPROVE}* or react on the "
        "message above."
    )


def when(moment: datetime | None) -> str:
    """A time each reader sees in their own time zone, with UTC for clients that cannot."""
    if moment is None:
        return "no limit"
    fallback = f"{moment:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def approval_sections(view: RunView) -> list[Block]:
    """The buttons while approval is open, nothing once the run has moved on."""
    return [approval_actions(view)] if view.approval.status == "open" else []
