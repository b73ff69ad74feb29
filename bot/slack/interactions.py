"""What rollbot does for each press of an approval button and each rejection form sent.

The buttons are a second way to say what the ✅ reaction says, so they go through exactly its
path: the same dedup of what Slack delivers twice, the same check that a person (not a bot, not
a deactivated account) pressed, the same policy, audit and compare-and-set moves. Only the
answer differs: a refusal is said to the presser alone, once, instead of in the thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict

from bot.core import texts
from bot.core.errors import ConflictError, NotFoundError
from bot.core.policy import reason_problem
from bot.service.rollback import RefusedError, StalePlanError
from bot.slack.buttons import form_target, reject_form
from bot.slack.chatops import TRIGGER_PREFIX, Reply, not_a_person
from bot.slack.mrkdwn import escape

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.core.run import Run
    from bot.service.rollback import Rollbot
    from bot.slack.chatops import Directory
    from bot.slack.workers import Workers
    from bot.state.deliveries import Deliveries

log = structlog.get_logger()


class Form(BaseModel):
    """A modal to open with the press's trigger id."""

    model_config = ConfigDict(frozen=True)

    view: dict[str, Any]


class Interactions:
    """Approve and Reject presses, and rejection forms, turned into calls on the service."""

    def __init__(
        self,
        service: Rollbot,
        deliveries: Deliveries,
        directory: Directory,
        workers: Workers | None = None,
    ) -> None:
        self.service = service
        self.deliveries = deliveries
        self.directory = directory
        self.workers = workers  # without: the approval runs on the caller's thread

    def approve(
        self,
        *,
        trigger_id: str,
        user_id: str,
        channel: str,
        ts: str,
        respond: Callable[[Reply], None],
    ) -> None:
        """An Approve press (after Slack's confirmation dialog); the ack has been sent.

        A press replayed by Slack carries a trigger id already seen and is ignored; a double
        click is two presses, and the second is refused like a second reaction (or loses the
        compare-and-set): either way the run executes once. The approval may execute the run,
        so it is a job for rollbot's workers, as a reaction's is; `respond` tells the presser.
        """
        run = self._run_pressed(trigger_id, channel, ts)
        if run is None:
            return

        def job() -> None:
            reply = self._approve(run, user_id)
            if reply is not None:
                respond(reply)

        if self.workers is None:
            job()
        elif self.workers.submit("approval", job) is None:
            why = texts.busy(self.workers.ahead(), "your approval was not counted")
            if self.service.refuse(run, user_id, f"{why}; press Approve again then", public=False):
                respond(Reply(text=f":warning: {escape(why)}; press Approve again then."))

    def _approve(self, run: Run, user_id: str) -> Reply | None:
        with structlog.contextvars.bound_contextvars(run_id=run.id):
            try:
                self._check_person(run, user_id)
                self.service.approve(run.id, user_id, privately=True)
            except RefusedError as exc:
                return _told(exc)
            except StalePlanError as exc:
                return Reply(text=escape(exc.render()))  # also said in the thread
            except ConflictError:
                log.info("slack.approval_lost_race", user=user_id)
                now = self.service.run(run.id)
                return Reply(text=escape(texts.lost_race(now.state)))
        return None

    def reject_pressed(
        self, *, trigger_id: str, user_id: str, channel: str, ts: str
    ) -> Reply | Form | None:
        """A Reject press: the form asking why, or the refusal, before anyone types a reason."""
        run = self._run_pressed(trigger_id, channel, ts)
        if run is None:
            return None
        with structlog.contextvars.bound_contextvars(run_id=run.id):
            try:
                self._check_person(run, user_id)
                self.service.may_reject(run, user_id)
            except RefusedError as exc:
                return _told(exc)
        return Form(view=reject_form(run, channel=channel, ts=ts))

    def reject(self, *, trigger_id: str, user_id: str, metadata: str, reason: str) -> Reply | None:
        """A rejection form sent with a reason (already checked by `form_errors`)."""
        if not self.deliveries.first_time(TRIGGER_PREFIX + trigger_id):
            log.warning("slack.interaction_replayed")
            return None
        target = form_target(metadata)
        if target is None:
            return Reply(text="rollbot could not tell which run this form was for; nothing changed")
        run_id = target[0]
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            try:
                self.service.reject(run_id, user_id, reason)
            except RefusedError as exc:
                return _told(exc)
            except ConflictError as exc:
                return Reply(text=escape(exc.render()))
            except NotFoundError as exc:
                return Reply(text=escape(exc.render()))
        return None

    def _run_pressed(self, trigger_id: str, channel: str, ts: str) -> Run | None:
        if not self.deliveries.first_time(TRIGGER_PREFIX + trigger_id):
            log.warning("slack.interaction_replayed")
            return None
        return self.deliveries.run_for_message(channel, ts)

    def _check_person(self, run: Run, user_id: str) -> None:
        """Bots and deactivated accounts are refused here, as their reactions are."""
        why = not_a_person(self.directory.person(user_id))
        if why is not None:
            raise RefusedError(why, first=self.service.refuse(run, user_id, why, public=False))


def form_errors(values: dict[str, Any], block: str, element: str) -> dict[str, str] | None:
    """The errors to show on the form (Slack's `response_action: errors`), or None if fine.

    Checked before the ack, because only the ack can keep the form open: pure and instant.
    """
    reason = reason_of(values, block, element)
    problem = reason_problem(reason)
    return {block: problem} if problem is not None else None


def reason_of(values: dict[str, Any], block: str, element: str) -> str:
    """The reason typed into the form; empty when Slack sent none."""
    field = (values.get(block) or {}).get(element) or {}
    return str(field.get("value") or "")


def _told(exc: RefusedError) -> Reply | None:
    """A refusal is said once per person and reason: nothing after the first time."""
    return Reply(text=f":warning: {escape(exc.reason)}.") if exc.first else None
