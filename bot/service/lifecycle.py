"""The one way a run comes to be and moves: computed, rendered, written once, then announced.

A move is computed first by the pure `transition`, its messages are rendered from the moved
run, and only then does the store write it: a compare-and-set with its audit event and those
messages in one transaction. Losing the race raises ConflictError and leaves nothing behind,
which is what keeps racing approvers, duplicate deliveries and a second replica from acting
twice. Only after the commit is anyone told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import structlog

from bot.core.errors import ConflictError
from bot.core.progress import due
from bot.core.run import Run, transition
from bot.core.states import RunState

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from bot.core.outbox import Message
    from bot.core.progress import Progress
    from bot.core.states import RunEvent
    from bot.state.store import RunStore

log = structlog.get_logger()
PROGRESS = "backup_progress"  # not a move: the plan message edited with the bytes written
_APPROVAL_ATTEMPTS = 20  # approvals racing on one run; each retry sees one more approver


class Notifier(Protocol):
    """How a run's changes reach people.

    `messages` renders what to send for a change; the store saves those messages in the same
    transaction as the change. `notice` renders a note that changes nothing (a refusal).
    `run_changed` is called after the commit (deliver now, print a line).
    """

    def messages(self, run: Run, event: str) -> list[Message]:
        """Messages announcing `event`, rendered from the run as it will be stored."""

    def notice(self, run: Run, user: str, reason: str) -> list[Message]:
        """Messages telling `user` why their action on the run did not count."""

    def run_changed(self, run: Run, event: str) -> None:
        """Called once the change (and its messages) are committed."""

    def progress_messages(self, run: Run, progress: Progress) -> list[Message]:
        """Messages showing a running backup's progress (stored at most every few seconds)."""

    def run_progress(self, run: Run, progress: Progress) -> None:
        """Called on every chunk the backup writes, for displays that redraw themselves."""


class SilentNotifier:
    """For callers that read the returned run instead."""

    def messages(self, run: Run, event: str) -> list[Message]:  # noqa: ARG002 - protocol
        """Nothing to send."""
        return []

    def notice(self, run: Run, user: str, reason: str) -> list[Message]:  # noqa: ARG002 - protocol
        """Nothing to send."""
        return []

    def run_changed(self, run: Run, event: str) -> None:
        """Nothing to tell."""

    def progress_messages(self, run: Run, progress: Progress) -> list[Message]:  # noqa: ARG002
        """Nothing to send."""
        return []

    def run_progress(self, run: Run, progress: Progress) -> None:
        """Nothing to draw."""


class Lifecycle:
    """Store, notifier and clock: what every use case moves runs with."""

    def __init__(self, store: RunStore, notifier: Notifier, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.notifier = notifier
        self._clock = clock
        self._progress_told: dict[int, datetime] = {}

    def now(self) -> datetime:
        """The service's clock (tests and expiry read the same one)."""
        return self._clock()

    def reserve_id(self) -> int:
        """A run id for a run about to be created; its liveness lock can be taken first."""
        return self.store.reserve_id()

    def get(self, run_id: int) -> Run:
        """One run by id, as stored."""
        return self.store.get(run_id)

    def create(self, run_id: int, **fields: Any) -> Run:  # noqa: ANN401
        """A new run under an id from `reserve_id`, stored with its announcement.

        The id comes from the database before the insert, so the messages can name the run
        without the store rendering anything inside its transaction, and so the caller can
        hold the run's liveness lock before the run exists. The caller announces it.
        """
        now = self.now()
        run = Run(
            id=run_id,
            state=RunState.REQUESTED,
            created_at=now,
            updated_at=now,
            **fields,
        )
        return self.store.create(run, messages=self.notifier.messages(run, "requested"))

    def move(
        self,
        run: Run,
        event: RunEvent,
        *,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        exact: bool = False,
        **changes: Any,  # noqa: ANN401
    ) -> Run:
        """Move a run by one event; ConflictError if it is not legal or someone moved first.

        `data` goes into the audit event only (a rejection's reason in the person's words).
        `exact` refuses the move if anything about the run was stored since it was read, not
        only its state: recovery decides from the transaction id, which is stored mid-state.
        """
        moved = transition(run, event, self.now(), **changes)
        stored = self.store.move(
            run,
            moved,
            event,
            actor=actor or "rollbot",
            data=data,
            messages=self.notifier.messages(moved, event.value),
            exact=exact,
        )
        log.info("run.moved", to=stored.state.value, on=event.value)
        self.announce(stored, event.value)
        return stored

    def add_approval(self, run: Run, user: str) -> Run:
        """Count one approver; not announced yet, as the approval may complete the run.

        Another approval landing first changes what the messages say, so the write is
        refused and retried on the run as it now is; anything else that moved is a conflict.
        """
        for _ in range(_APPROVAL_ATTEMPTS):
            counted = run.model_copy(update={"approvers": (*run.approvers, user)})
            messages = self.notifier.messages(counted, "approval_added")
            try:
                return self.store.add_approval(run, user, messages=messages)
            except ConflictError:
                fresh = self.store.get(run.id)
                if not _another_approval_only(run, fresh, user):
                    raise
                run = fresh
        raise ConflictError(
            f"The approval by {user} of {run.label()} was not recorded",
            why=f"{_APPROVAL_ATTEMPTS} other approvals landed first",
            todo="check its status",
        )

    def record(self, run: Run, **changes: Any) -> Run:  # noqa: ANN401
        """Store facts about a run without moving it (its transaction id before COMMIT)."""
        return self.store.update(run, **changes)

    def record_and_announce(self, run: Run, event: str, **changes: Any) -> Run:  # noqa: ANN401
        """Store facts about a run that does not move, with the messages that tell of them."""
        updated = run.model_copy(update=changes)
        stored = self.store.update(run, messages=self.notifier.messages(updated, event), **changes)
        log.info("run.recorded", on=event)
        self.announce(stored, event)
        return stored

    def refuse(self, run: Run, user: str, reason: str, *, public: bool = True) -> bool:
        """Record why `user`'s action did not count; True the first time they are told so.

        A reaction is answered in the thread (`public`); a button press is answered to the
        presser alone by the caller, so nothing is stored to post. Either way the refusal is
        recorded, and given once per person and reason, whichever way they asked.
        """
        notice = self.notifier.notice(run, user, reason) if public else []
        if not self.store.record_refusal(run.id, user, reason, notice):
            return False
        log.info("run.approval_refused", user=user, why=reason)
        self.announce(run, "approval_refused")
        return True

    def note_once(self, run: Run, kind: str) -> bool:
        """Store a one-off note about a run with its messages; False if it already was."""
        if not self.store.record_once(
            run, kind, actor="rollbot", messages=self.notifier.messages(run, kind)
        ):
            return False
        log.info("run.noted", kind=kind)
        self.announce(run, kind)
        return True

    def progress(self, run: Run, progress: Progress) -> None:
        """A running backup's bytes: drawn at once, stored for Slack at most every 5 s.

        The messages are stored (only while the run is still backing up) before the courier
        is woken, like every other message; a failure here never fails the backup.
        """
        try:
            self.notifier.run_progress(run, progress)
            now = self.now()
            if not due(self._progress_told.get(run.id), now):
                return
            self._progress_told[run.id] = now
            messages = self.notifier.progress_messages(run, progress)
            if messages and self.store.add_messages_while(run, messages):
                self.announce(run, PROGRESS)
        except Exception:
            log.exception("progress.failed")

    def announce(self, run: Run, event: str) -> None:
        """Tell the notifier a committed change happened; its failure changes nothing."""
        try:
            self.notifier.run_changed(run, event)
        except Exception:
            log.exception("notify.failed", on=event)


def _another_approval_only(before: Run, now: Run, user: str) -> bool:
    """Only other approvers were added since `before`: this approval still counts."""
    return (
        now.state is RunState.AWAITING_APPROVAL
        and now.plan_hash == before.plan_hash
        and user not in now.approvers
        and now.approvers != before.approvers
    )
