"""What rollbot does for each `/rollback` command and each reaction, without knowing Slack.

The handlers pass plain values in and send the returned reply back; this module decides. Every
refusal says why; nothing is planned from a request that did not pass every check.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog
from pydantic import BaseModel, ConfigDict

from bot.core import texts
from bot.core.commands import USAGE, Command, CommandError, parse_command
from bot.core.errors import ConflictError, NotAllowedError, RollbotError
from bot.core.states import ACTIVE, RunState
from bot.core.text import runbooks_text
from bot.service.rollback import StalePlanError
from bot.slack.blocks import (
    doctor_message,
    help_message,
    history_message,
    log_message,
    preview_message,
    refusal,
)
from bot.slack.mrkdwn import escape, inert, user

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.config import Settings
    from bot.core.doctor import Report
    from bot.core.redact import Redactor
    from bot.core.run import Run
    from bot.service.rollback import Rollbot
    from bot.slack.undelivered import Responders
    from bot.slack.workers import Workers
    from bot.state.deliveries import Deliveries

log = structlog.get_logger()
TRIGGER_PREFIX = "trigger:"  # slash commands' trigger ids, kept with the events' ids


class Reply(BaseModel):
    """An ephemeral answer to the person who typed the command."""

    model_config = ConfigDict(frozen=True)

    text: str
    blocks: list[dict[str, Any]] | None = None


class Person(BaseModel):
    """What Slack says about whoever reacted."""

    model_config = ConfigDict(frozen=True)

    id: str
    is_bot: bool = False
    deleted: bool = False
    known: bool = True


class Directory(Protocol):
    """Who is who in the workspace (Slack's users and user groups)."""

    def approvers(self, configured: tuple[str, ...]) -> frozenset[str]:
        """User ids allowed to approve, user groups expanded."""

    def person(self, user_id: str) -> Person:
        """A user's bot and deactivation flags."""

    def reacted(self, channel: str, ts: str, name: str) -> tuple[str, ...]:
        """Who has reacted to a message with the emoji `name`."""


class ChatOps:
    """Commands and reactions, turned into calls on the rollback service."""

    def __init__(
        self,
        service: Rollbot,
        deliveries: Deliveries,
        directory: Directory,
        settings: Settings,
        *,
        workers: Workers | None = None,
        approvals: Workers | None = None,
        responders: Responders | None = None,
        redactor: Redactor | None = None,
        doctor: Callable[[], Report] | None = None,
    ) -> None:
        self.service = service
        self.deliveries = deliveries
        self.directory = directory
        self.settings = settings
        self.redactor = redactor or settings.redactor()
        self.workers = workers  # without: slow work runs on the caller's thread
        # Approvals have a pool of their own: a flood of plans must never turn one away.
        self.approvals = approvals or workers
        self.responders = responders
        self.doctor = doctor  # without: `/rollback doctor` says it is not available here

    def enqueue(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        trigger_id: str | None,
        respond: Callable[[Reply], None],
        response_url: str | None = None,
    ) -> Reply | None:
        """Queue a slow command (plan, restore); the immediate answer, or None if not slow.

        Costs one indexed insert (the replay check) besides parsing, so the ack it goes into
        is not delayed. The queued job answers through `respond` when it is done; a full
        queue is said at once; a replayed request is acked with nothing (an empty text).
        """
        if self.workers is None:
            return None
        try:
            command = parse_command(text)
        except CommandError:
            return None  # `command` renders the refusal, after the ack
        if command.action not in _SLOW:
            return None
        if not self._first_time(trigger_id):
            return Reply(text="")

        def job() -> None:
            try:
                reply = self.command(
                    text, user_id=user_id, channel_id=channel_id, response_url=response_url
                )
            except Exception as exc:  # noqa: BLE001 - the person is told; the traceback is logged
                reply = _unexpected(exc)
            if reply is not None:
                respond(reply)

        ahead = self.workers.submit(f"/rollback {command.action}", job)
        if ahead is None:
            return Reply(text=texts.busy(self.workers.ahead(), "nothing was planned"))
        return Reply(text=_queued(command, ahead))

    def command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> Reply | None:
        """Answer one `/rollback …`; the ack has already been sent.

        Slack gives every invocation its own trigger id, so a request replayed inside the
        signature window carries one already seen: it is answered with nothing (None). The
        response URL is kept (in memory) so that the requester can still be told if Slack
        later refuses to let rollbot post in the channel.
        """
        if not self._first_time(trigger_id):
            return None
        if response_url and self.responders is not None:
            self.responders.remember(channel_id, user_id, response_url)
        reply = self._answer(text, user_id, channel_id)
        # The reply goes to a response URL, not through the Web API client: cleaned here.
        return Reply(
            text=self.redactor.text(reply.text),
            blocks=cast("list[dict[str, Any]] | None", self.redactor.value(reply.blocks)),
        )

    def _answer(self, text: str, user_id: str, channel_id: str) -> Reply:
        try:
            command = parse_command(text)
            self._check_channel(channel_id)
            return self._dispatch(command, user_id, channel_id)
        except CommandError as exc:
            return Reply(text=escape(exc.render()), blocks=refusal(exc.render(), exc.usage))
        except RollbotError as exc:
            return Reply(text=escape(exc.render()), blocks=refusal(exc.render()))

    def _first_time(self, trigger_id: str | None) -> bool:
        """False for a trigger id already seen: the same signed request, replayed."""
        if trigger_id is not None and not self.deliveries.first_time(TRIGGER_PREFIX + trigger_id):
            log.warning("slack.command_replayed")
            return False
        return True

    def reaction(
        self, *, event_id: str, user_id: str, reaction: str, channel: str, ts: str
    ) -> None:
        """An emoji on a message: approve the run it shows, if it is the approval emoji."""
        if reaction != self.settings.approval_reaction:
            return
        if not self.deliveries.first_time(event_id):
            log.info("slack.duplicate_event", event_id=event_id)
            return
        run = self.deliveries.run_for_message(channel, ts)
        if run is None:
            return
        if self.approvals is None:
            self._approve(run, user_id)
            return
        if self.approvals.submit("approval", lambda: self._approve(run, user_id)) is None:
            why = texts.busy(self.approvals.ahead(), "your approval was not counted")
            self.service.refuse(run, user_id, f"{why}; add the reaction again then")

    def _approve(self, run: Run, user_id: str) -> None:
        """Who reacted, checked with Slack, then the same approval path as everywhere."""
        with structlog.contextvars.bound_contextvars(run_id=run.id):
            person = self.directory.person(user_id)
            why = not_a_person(person)
            if why is not None:
                self.service.refuse(run, user_id, why)
                return
            try:
                self.service.approve(run.id, user_id)
            except (NotAllowedError, StalePlanError):
                return  # recorded and answered in the thread by the service
            except ConflictError:
                log.info("slack.approval_lost_race", user=user_id)
                now = self.service.run(run.id)
                self.service.refuse(run, user_id, texts.lost_race(now.state))

    def reread_approvals(self) -> int:
        """Act on approval reactions Slack holds but rollbot never handled; how many it saw.

        A reaction acknowledged just before a crash (or made while rollbot was down, when Slack
        gives up retrying) is still on the plan message. At start-up every run awaiting
        approval has its message's reactions read again, and each approver not yet counted goes
        through the same path as a live reaction: same policy, same audit, exactly once.
        """
        seen = 0
        for run in self.service.store.recent(limit=100, states=[RunState.AWAITING_APPROVAL]):
            where = self.deliveries.slack_message(run.id, "plan")
            if where is None:
                continue
            channel, ts = where
            reaction = self.settings.approval_reaction
            for user_id in self.directory.reacted(channel, ts, reaction):
                if user_id in run.approvers:
                    continue
                seen += 1
                self.reaction(
                    event_id=f"reread:{run.id}:{user_id}",
                    user_id=user_id,
                    reaction=reaction,
                    channel=channel,
                    ts=ts,
                )
        return seen

    def _dispatch(self, command: Command, user_id: str, channel_id: str) -> Reply:
        handlers = {
            "help": self._help,
            "list": self._list,
            "status": self._status_command,
            "history": self._history,
            "cancel": self._cancel,
            "plan": self._plan,
            "restore": self._restore,
            "log": self._log,
            "doctor": self._doctor,
        }
        return handlers[command.action](command, user_id, channel_id)

    def _help(self, _command: Command, _user_id: str, _channel_id: str) -> Reply:
        return Reply(text=f"{USAGE}\n{texts.HOW_TO_APPROVE}", blocks=help_message())

    def _list(self, _command: Command, _user_id: str, _channel_id: str) -> Reply:
        return Reply(text=escape(runbooks_text(self.service.library())))

    def _history(self, command: Command, _user_id: str, _channel_id: str) -> Reply:
        entries = self.service.history(command.target, person=lambda who: user(escape(who)))
        text, blocks = history_message(entries)
        return Reply(text=text, blocks=blocks)

    def _log(self, command: Command, _user_id: str, _channel_id: str) -> Reply:
        run_id = _run_id(command)
        text, blocks = log_message(self.service.run(run_id), self.service.store.audit(run_id))
        return Reply(text=text, blocks=blocks)

    def _doctor(self, _command: Command, user_id: str, _channel_id: str) -> Reply:
        """Approvers only: the report names roles, tables and channels, and how to fix them."""
        approvers = frozenset().union(
            *(self.service.approvers(name) for name in self.settings.targets())
        )
        if user_id not in approvers:
            raise NotAllowedError(
                f"{user(user_id)} may not run `/rollback doctor`",
                why="it is for approvers (ROLLBOT_APPROVERS, or a target's own approvers)",
                todo="ask one of them, or run `rollbot doctor` where rollbot is deployed",
            )
        if self.doctor is None:
            raise NotAllowedError(
                "`/rollback doctor` is not available in this rollbot",
                todo="run `rollbot doctor` where rollbot is deployed",
            )
        text, blocks = doctor_message(self.doctor())
        return Reply(text=text, blocks=blocks)

    def _status_command(self, command: Command, _user_id: str, _channel_id: str) -> Reply:
        return self._status(command.run_id)

    def _cancel(self, command: Command, user_id: str, _channel_id: str) -> Reply:
        run = self.service.cancel(_run_id(command), user_id)
        return Reply(text=f"Run {run.id} is cancelled; nothing was run.")

    def _restore(self, command: Command, user_id: str, channel_id: str) -> Reply:
        self._may_request(user_id)
        run = self.service.request_restore(
            _run_id(command), requested_by=user_id, channel=channel_id
        )
        return _requested(run)

    def _may_request(self, user_id: str) -> None:
        if self.settings.requesters and user_id not in self.settings.requesters:
            raise NotAllowedError(
                f"{user(user_id)} may not request rollbacks",
                why="ROLLBOT_REQUESTERS lists who may",
                todo="ask one of them",
            )

    def _plan(self, command: Command, user_id: str, channel_id: str) -> Reply:
        self._may_request(user_id)
        assert command.migration is not None  # noqa: S101 - the parser guarantees it
        if command.dry_run:
            text, blocks = preview_message(
                self.service.preview(command.migration, target=command.target)
            )
            return Reply(text=text, blocks=blocks)
        try:
            run = self.service.request(
                command.migration,
                requested_by=user_id,
                channel=channel_id,
                target=command.target,
                after=command.after,
            )
        except ConflictError as exc:
            return Reply(text=escape(exc.render()), blocks=refusal(exc.render()))
        return _requested(run)

    def _status(self, run_id: int | None) -> Reply:
        if run_id is not None:
            return Reply(text=_status_line(self.service.run(run_id)))
        runs = [r for r in self.service.store.recent(limit=50) if r.state in ACTIVE]
        if not runs:
            return Reply(text="No active runs.")
        return Reply(text="\n".join(_status_line(r) for r in runs))

    def _check_channel(self, channel_id: str) -> None:
        allowed = self.settings.allowed_channels
        if allowed and channel_id not in allowed:
            channels = ", ".join(f"<#{c}>" for c in allowed)
            raise NotAllowedError(
                "rollbot does not take requests in this channel",
                why=f"ROLLBOT_ALLOWED_CHANNELS allows {channels}",
                todo="ask there",
            )


# A backup (and a rehearsal) each: minutes on a big database; doctor asks every database.
_SLOW = {"plan", "restore", "doctor"}
_WHAT = {
    "plan": "Planning the rollback",
    "restore": "Planning the restore",
    "doctor": "Checking rollbot's setup",
}


def _queued(command: Command, ahead: int) -> str:
    """What the ack of a queued command says will happen."""
    if command.dry_run:
        return texts.queued("Previewing the rollback", ahead, first="no backup, nothing posted")
    if command.action == "doctor":
        return texts.queued(_WHAT["doctor"], ahead, first="nothing is changed")
    return texts.queued(_WHAT[command.action], ahead)


def _unexpected(error: Exception) -> Reply:
    """What the person sees of an error nobody expected: a reference into the logs."""
    reference = uuid.uuid4().hex[:8]
    log.error("slack.unhandled_error", reference=reference, exc_info=error)
    text = texts.unexpected(reference)
    return Reply(text=text, blocks=refusal(text))


def _requested(run: Run) -> Reply:
    """The answer to a request: where it stands; a run cancelled meanwhile says why."""
    if run.state is RunState.CANCELLED:
        return Reply(text=escape(f"Run {run.id}: cancelled — {run.reason or 'no reason given'}"))
    return Reply(text=f"Run {run.id}: {run.state.replace('_', ' ')}. Details in its message.")


def _run_id(command: Command) -> int:
    assert command.run_id is not None  # noqa: S101 - the parser requires one for these actions
    return command.run_id


def not_a_person(person: Person) -> str | None:
    """Why this account cannot approve (a bot, deactivated, unknown to Slack), or None."""
    if not person.known:
        return "rollbot could not check who you are with Slack; add the reaction again shortly"
    if person.is_bot:
        return "bots cannot approve rollbacks"
    if person.deleted:
        return "deactivated accounts cannot approve rollbacks"
    return None


def _status_line(run: Run) -> str:
    """One run in a status reply; its reason and labels may quote the database: escaped."""
    reason = f" — {escape(run.reason)}" if run.reason else ""
    approvals = f", approvals {len(run.approvers)}/{run.required_approvals}" if run.active else ""
    return (
        f"Run {run.id}: `{inert(escape(run.runbook_name), 200)}` on {escape(run.target_label)}, "
        f"{run.state.replace('_', ' ')}{approvals}, requested by "
        f"{user(escape(run.requested_by))}{reason}"
    )
