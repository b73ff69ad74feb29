"""The bounds an ALTER SEQUENCE leaves, worked out as PostgreSQL does, against the current value."""

from __future__ import annotations

import pytest

from bot.core.facts import SequenceState
from bot.core.sequences import bounds_after, sequence_problem
from bot.core.sql import SequenceChange, parse_statements


def change(sql: str) -> SequenceChange:
    (statement,) = parse_statements(sql, file="rb.md", first_line=1)
    assert statement.sequence is not None
    return statement.sequence


def state(last: int | None = 10, **options: int | str) -> SequenceState:
    values: dict[str, int | str] = {
        "type": "bigint",
        "increment": 1,
        "min": 1,
        "max": 9223372036854775807,
        "start": 1,
    }
    values |= options
    return SequenceState(statement=1, sequence="public.s", last_value=last, **values)


@pytest.mark.parametrize(
    ("sql", "now", "expected"),
    [
        ("ALTER SEQUENCE s MAXVALUE 100;", state(), (1, 100, 1)),
        # The old type's default bounds follow the new type; explicit ones stay.
        ("ALTER SEQUENCE s AS integer;", state(), (1, 2147483647, 1)),
        ("ALTER SEQUENCE s AS integer;", state(max=5000), (1, 5000, 1)),
        ("ALTER SEQUENCE s AS smallint INCREMENT BY -1;", state(), (1, 32767, 1)),
        ("ALTER SEQUENCE s AS smallint;", state(min=-9223372036854775808), (-32768, 32767, 1)),
        (
            "ALTER SEQUENCE s NO MINVALUE NO MAXVALUE INCREMENT BY -1 START -1;",
            state(),
            (-9223372036854775808, -1, -1),
        ),
        (
            (
                "ALTER SEQUENCE s AS integer INCREMENT BY 1 MINVALUE 1 MAXVALUE 1000 START WITH 1"
                " CACHE 1 NO CYCLE;"
            ),
            state(),
            (1, 1000, 1),
        ),
    ],
)
def test_bounds_after_follow_postgresqls_rules(
    sql: str, now: SequenceState, expected: tuple[int, int, int]
) -> None:
    """A bound left alone stays, unless it was the old type's default and the type changes."""
    assert bounds_after(change(sql), now) == expected


def test_a_current_value_outside_the_new_bounds_is_said_in_words() -> None:
    """The value handed out since, the bounds, and what to do; nothing when it fits."""
    lowered = change("ALTER SEQUENCE s AS integer MAXVALUE 1000;")
    assert sequence_problem(lowered, state(last=1000)) is None
    assert sequence_problem(lowered, state(last=1001)) == (
        "sequence public.s has reached 1,001, outside the bounds 1..1,000 this statement "
        "sets, so ALTER SEQUENCE would fail: the values it handed out since no longer fit "
        "them; leave the bounds out of the statement (write the runbook by hand) or keep the "
        "migration"
    )
    assert sequence_problem(lowered, state(last=None)) is None  # not read: a note says so
    start = sequence_problem(change("ALTER SEQUENCE s MINVALUE 5;"), state(last=7))
    assert start is not None
    assert start.startswith("sequence public.s would start at 1, outside the bounds 5..")
    typed = sequence_problem(change("ALTER SEQUENCE s AS smallint MAXVALUE 40000;"), state())
    assert typed is not None
    assert "do not fit smallint" in typed
