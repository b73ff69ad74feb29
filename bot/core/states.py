"""The names of a run's states and events, and how a sentence says them.

Kept apart from the run model so that the command line can offer the states (`rollbot runs
--state`) without loading pydantic: `rollbot --help` must answer at once.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is; the last five are final."""

    REQUESTED = "requested"
    BACKING_UP = "backing_up"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_S = RunState
ACTIVE = frozenset({_S.REQUESTED, _S.BACKING_UP, _S.AWAITING_APPROVAL, _S.APPROVED, _S.EXECUTING})
FINAL = frozenset(set(RunState) - ACTIVE)


class RunEvent(StrEnum):
    """What can happen to a run."""

    BACKUP_STARTED = "backup_started"
    BACKUP_VERIFIED = "backup_verified"
    BLOCKED = "blocked"
    APPROVED = "approved"
    EXECUTION_STARTED = "execution_started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# "Run 1 is succeeded" is not English: the states that are things a run did take "has".
_HAS = frozenset({"succeeded", "failed", "expired"})


def state_label(state: str) -> str:
    """`awaiting approval`: a state as a person says it."""
    return state.replace("_", " ")


def state_predicate(state: str) -> str:
    """`is awaiting approval`, `has succeeded`: what follows "run 3" in a sentence."""
    return f"{'has' if state in _HAS else 'is'} {state_label(state)}"
