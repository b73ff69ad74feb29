"""A rollback run and the only moves it can make.

The state machine is a table, not a web of if-statements: every legal move is one entry, and
anything else raises. The store applies the same moves as compare-and-set updates, so a move
that lost a race (a retry, a second approver, a second replica) fails instead of repeating.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from bot.core.errors import ConflictError
from bot.core.plan import Plan
from bot.core.restore import RestorePlan
from bot.core.results import Backup, BackupInfo, Outcome, Rehearsal
from bot.core.states import ACTIVE, RunEvent, RunState, state_predicate

# Runs whose plan is a RestorePlan: a restore, and the purge of a quarantine.
RESTORE_KINDS = frozenset({"restore", "purge"})

S, E = RunState, RunEvent
TRANSITIONS: dict[tuple[RunState, RunEvent], RunState] = {
    (S.REQUESTED, E.BACKUP_STARTED): S.BACKING_UP,
    (S.REQUESTED, E.BLOCKED): S.BLOCKED,
    (S.REQUESTED, E.CANCELLED): S.CANCELLED,
    (S.REQUESTED, E.EXPIRED): S.EXPIRED,
    (S.BACKING_UP, E.BACKUP_VERIFIED): S.AWAITING_APPROVAL,
    (S.BACKING_UP, E.BLOCKED): S.BLOCKED,
    (S.BACKING_UP, E.CANCELLED): S.CANCELLED,
    (S.BACKING_UP, E.EXPIRED): S.EXPIRED,
    (S.AWAITING_APPROVAL, E.APPROVED): S.APPROVED,
    (S.AWAITING_APPROVAL, E.CANCELLED): S.CANCELLED,
    (S.AWAITING_APPROVAL, E.EXPIRED): S.EXPIRED,
    (S.APPROVED, E.EXECUTION_STARTED): S.EXECUTING,
    (S.APPROVED, E.CANCELLED): S.CANCELLED,
    (S.APPROVED, E.FAILED): S.FAILED,
    (S.EXECUTING, E.SUCCEEDED): S.SUCCEEDED,
    (S.EXECUTING, E.FAILED): S.FAILED,
}


class Promotion(BaseModel):
    """The run a request builds on: a rollback proven elsewhere, or the rollback a restore undoes.

    Kept on the run so the approver sees what was already shown to work, and where.
    """

    model_config = ConfigDict(frozen=True)

    run: int
    target: str | None = None  # the label of the target the earlier run was on
    summary: str = ""

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A restore names no target: stored (and printed) without one, as it always was."""
        data: dict[str, Any] = handler(self)
        if data.get("target") is None:
            data.pop("target", None)
        return data


class Run(BaseModel):
    """A request to roll back one migration on one target, from plan to outcome."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str = "rollback"
    migration_id: str
    runbook_name: str
    target_name: str
    target_label: str
    target_identity: str
    state: RunState
    requested_by: str
    channel: str | None = None
    approvers: tuple[str, ...] = ()
    required_approvals: int = 1
    plan: Plan | RestorePlan  # a restore plan exactly when kind is in RESTORE_KINDS
    plan_hash: str
    backup: Backup | None = None
    rehearsal: Rehearsal | None = None
    promoted_from: Promotion | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    xid: int | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Still able to move on (not succeeded, failed, blocked, cancelled or expired)."""
        return self.state in ACTIVE

    def label(self) -> str:
        """`run 12 (0023_loud_shen on asset_forge on db:5432)`."""
        return f"run {self.id} ({self.runbook_name} on {self.target_label})"

    def rollback_plan(self) -> Plan:
        """The plan of a rollback; asking a restore for one is a bug, not a user error."""
        if not isinstance(self.plan, Plan):
            msg = f"{self.label()} is a {self.kind}: it has no rollback plan"
            raise TypeError(msg)
        return self.plan

    def restore_plan(self) -> RestorePlan:
        """The plan of a restore; asking a rollback for one is a bug, not a user error."""
        if not isinstance(self.plan, RestorePlan):
            msg = f"{self.label()} is a {self.kind}: it has no restore plan"
            raise TypeError(msg)
        return self.plan


def next_state(state: RunState, event: RunEvent) -> RunState:
    """The state an event leads to, or ConflictError if the move is not legal from here."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ConflictError(
            f"A run that {state_predicate(state)} cannot be {event.replace('_', ' ')}",
            todo="check its status; nothing was changed",
        ) from None


def transition(run: Run, event: RunEvent, now: datetime, **changes: Any) -> Run:  # noqa: ANN401
    """The run after `event` at `now`; illegal moves raise and change nothing."""
    state = next_state(run.state, event)
    return run.model_copy(update={"state": state, "updated_at": now, **changes})


_STAMPS = frozenset({"id", "created_at", "updated_at"})  # the store's to set, never a move's


def changed_fields(before: Run, after: Run) -> dict[str, Any]:
    """What a move changed, as the run's own values: the store writes these and nothing else.

    Writing only the changes keeps a move from overwriting facts recorded since the caller
    read the run (its transaction id, say) with the caller's older copy.
    """
    return {
        name: getattr(after, name)
        for name in Run.model_fields
        if name not in _STAMPS and getattr(after, name) != getattr(before, name)
    }


def outcome_of(run: Run) -> Outcome | None:
    """The outcome of a finished run, or None while it has none."""
    return run.outcome


def backup_of(run: Run) -> tuple[BackupInfo | None, dict[str, int]]:
    """The verified pre-approval backup of a run and the rows it holds per table."""
    if run.backup is None:
        return None, {}
    return run.backup.full, dict(run.backup.rows)


class AuditEvent(BaseModel):
    """One line of a run's audit trail, as stored (append-only)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: str
    from_state: str | None = None
    to_state: str | None = None
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
