"""What Slack is told for each change of a run: pure, rendered into outbox messages.

The request channel gets one plan message, edited in place as the run moves, with the thread
holding the SQL snippet (when too long for the message), refusals and the outcome. The incident
channel gets one message per run, linked to the request thread, with every transition added to
its thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core import texts
from bot.core.outbox import Message
from bot.core.results import FINAL_BACKUP_TAKEN
from bot.core.states import RunState
from bot.service.reminders import REMINDED
from bot.slack.blocks import (
    details_snippet,
    incident_text,
    outcome_message,
    plan_message,
    sql_snippet,
)
from bot.slack.buttons import approvers_call
from bot.slack.mrkdwn import escape, user

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.progress import Progress
    from bot.core.run import Run

# Transitions that get a reply in the request thread besides the message edit.
_THREAD_EVENTS = {
    "blocked",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
    "approval_added",
    FINAL_BACKUP_TAKEN,
}
_INCIDENT_EVENTS = {
    "backup_verified",
    "blocked",
    "approval_added",
    "approved",
    "execution_started",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
    FINAL_BACKUP_TAKEN,
}


class SlackNotifier:
    """Renders runs into Slack messages; `wake` tells the courier there is mail."""

    def __init__(
        self,
        *,
        reaction: str,
        approvers: Callable[[str], tuple[str, ...]],
        incident_channel: str | None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.reaction = reaction
        self.approvers = approvers
        self.incident_channel = incident_channel
        self._wake = wake

    def messages(self, run: Run, event: str) -> list[Message]:
        """The posts, edits and replies that announce `event`."""
        if run.channel is None:
            return self._incident(run, event)
        if event == REMINDED:
            text = approvers_call(run, self.approvers(run.target_name), reminder=True)
            return [Message(action="reply", role="plan", text=text)]
        text, blocks = plan_message(
            run, reaction=self.reaction, approvers=self.approvers(run.target_name)
        )
        if event == "requested":
            items = [
                Message(action="post", role="plan", channel=run.channel, text=text, blocks=blocks)
            ]
            if run.kind == "restore":
                return items + self._incident(run, event)
            attachments = (
                (f"The exact SQL of rollback run {run.id}", sql_snippet(run)),
                (f"The whole plan of rollback run {run.id}", details_snippet(run)),
            )
            for what, attached in attachments:
                if attached is not None:
                    file, content = attached
                    items.append(
                        Message(
                            action="upload", role="plan", text=what, filename=file, content=content
                        )
                    )
            return items + self._incident(run, event)
        items = [Message(action="update", role="plan", text=text, blocks=blocks)]
        if event == "backup_verified" and run.state is RunState.AWAITING_APPROVAL:
            # A new message, not the edit above: only a new message notifies who it mentions.
            call = approvers_call(run, self.approvers(run.target_name))
            items.append(Message(action="reply", role="plan", text=call))
        if event in _THREAD_EVENTS and not _approval_complete(run, event):
            reply_text, reply_blocks = self._thread_reply(run, event)
            items.append(Message(action="reply", role="plan", text=reply_text, blocks=reply_blocks))
        return items + self._incident(run, event)

    def notice(self, run: Run, user_id: str, reason: str) -> list[Message]:
        """A reply in the request thread (or nothing for runs not started from Slack).

        The person is mentioned by rollbot; the reason may quote data, so it is escaped, and
        a name that is not a Slack id (a CLI user) is shown as text, never as markup.
        """
        if run.channel is None:
            return []
        text = f"{user(escape(user_id))}: {escape(reason)}."
        return [Message(action="reply", role="plan", text=text)]

    def run_changed(self, run: Run, event: str) -> None:  # noqa: ARG002 - protocol
        """Deliver now rather than at the courier's next round."""
        self._wake()

    def progress_messages(self, run: Run, progress: Progress) -> list[Message]:
        """The plan message edited with the backup's bytes written so far."""
        if run.channel is None:
            return []
        text, blocks = plan_message(
            run,
            reaction=self.reaction,
            approvers=self.approvers(run.target_name),
            progress=progress.label(),
        )
        return [Message(action="update", role="plan", text=text, blocks=blocks)]

    def run_progress(self, run: Run, progress: Progress) -> None:
        """Slack is told through the outbox only."""

    def _thread_reply(self, run: Run, event: str) -> tuple[str, list[dict[str, object]] | None]:
        if event == "approval_added":
            needed = run.required_approvals - len(run.approvers)
            who = ", ".join(user(escape(a)) for a in run.approvers)
            return f"Approval recorded from {who}; {needed} more needed.", None
        if event in {"succeeded", "failed"}:
            text, blocks = outcome_message(run)
            return text, list(blocks)
        if event == FINAL_BACKUP_TAKEN:
            return escape(texts.final_backup_taken(run)), None
        reason = escape(run.reason) if run.reason else None
        return texts.is_state(run.id, run.state, reason), None

    def _incident(self, run: Run, event: str) -> list[Message]:
        if self.incident_channel is None:
            return []
        text = incident_text(run, event)
        if event == "requested":
            return [
                Message(
                    action="post",
                    role="incident",
                    channel=self.incident_channel,
                    text=text,
                    link_to="plan" if run.channel else None,
                )
            ]
        if event in _INCIDENT_EVENTS and not _approval_complete(run, event):
            return [Message(action="reply", role="incident", text=text)]
        return []


def _approval_complete(run: Run, event: str) -> bool:
    """The approval that completes the count is announced by `approved`, not twice."""
    return event == "approval_added" and len(run.approvers) >= run.required_approvals
