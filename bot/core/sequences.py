"""Whether an ALTER SEQUENCE can run: its current value and start must lie within its new bounds.

A derived rollback puts a sequence's options back to N-1's; if the sequence has since counted
past the N-1 bounds (a MAXVALUE raised by the migration, then used), PostgreSQL refuses the
ALTER at the end of a transaction that holds its locks, saying "RESTART value … cannot be
greater than MAXVALUE", which names an option nobody wrote. The bounds a statement leaves are
worked out here as PostgreSQL works them out, so the plan says it before approval, in words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.facts import SequenceState
    from bot.core.sql import SequenceChange

# The range of each type a sequence may have.
TYPE_RANGES = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}


def _default_bounds(type_name: str, increment: int) -> tuple[int, int]:
    """NO MINVALUE / NO MAXVALUE: 1 up to the type's largest ascending, the mirror descending."""
    low, high = TYPE_RANGES[type_name]
    return (1, high) if increment > 0 else (low, -1)


def bounds_after(change: SequenceChange, now: SequenceState) -> tuple[int, int, int] | None:
    """MINVALUE, MAXVALUE and START once the statement ran; None if its type is not known.

    A bound the statement leaves alone stays, unless it changes the type and the bound was
    the old type's own limit: PostgreSQL moves that one to the new type's limit.
    """
    type_name = change.type or now.type
    if type_name not in TYPE_RANGES or now.type not in TYPE_RANGES:
        return None
    increment = change.increment if change.increment is not None else now.increment
    retyped = change.type is not None and change.type != now.type
    old_low, old_high = TYPE_RANGES[now.type]
    type_low, type_high = TYPE_RANGES[type_name]
    default_low, default_high = _default_bounds(type_name, increment)
    low = change.minvalue
    if low is None:
        if retyped and now.min == old_low:
            low = type_low
        else:
            low = default_low if change.no_minvalue else now.min
    high = change.maxvalue
    if high is None:
        if retyped and now.max == old_high:
            high = type_high
        else:
            high = default_high if change.no_maxvalue else now.max
    start = change.start if change.start is not None else now.start
    return low, high, start


def sequence_problem(change: SequenceChange, now: SequenceState) -> str | None:
    """Why PostgreSQL would refuse the statement on this sequence as it is now, else None."""
    bounds = bounds_after(change, now)
    if bounds is None or now.last_value is None:
        return None
    low, high, start = bounds
    type_name = change.type or now.type
    type_low, type_high = TYPE_RANGES[type_name]
    if not type_low <= low <= high <= type_high:
        return (
            f"the bounds {low:,}..{high:,} this statement sets on sequence {now.sequence} do "
            f"not fit {type_name}, so ALTER SEQUENCE would fail; correct them"
        )
    if not low <= now.last_value <= high:
        return (
            f"sequence {now.sequence} has reached {now.last_value:,}, outside the bounds "
            f"{low:,}..{high:,} this statement sets, so ALTER SEQUENCE would fail: the values "
            "it handed out since no longer fit them; leave the bounds out of the statement "
            "(write the runbook by hand) or keep the migration"
        )
    if not low <= start <= high:
        return (
            f"sequence {now.sequence} would start at {start:,}, outside the bounds "
            f"{low:,}..{high:,} this statement sets, so ALTER SEQUENCE would fail; set a "
            "START within them"
        )
    return None
