"""Scratch databases: names, and the order rows are restored in."""

import re

import pytest

from bot.target.scratch import parents_first, scratch_name


def test_parents_first_adds_every_referenced_table_before_its_children() -> None:
    """FK parents are pulled in transitively and ordered before the tables that reference them."""
    foreign_keys = [
        ("public.sessions", "public.users"),
        ("public.projects", "public.users"),
        ("public.assets", "public.projects"),
        ("public.assets", "public.users"),
        ("public.assets", "public.assets"),  # self-reference: no ordering constraint
        ("public.unrelated", "public.users"),
    ]
    ordered = parents_first(["public.assets", "public.sessions"], foreign_keys)
    assert set(ordered) == {"public.assets", "public.projects", "public.sessions", "public.users"}
    for child, parent in foreign_keys:
        if child in ordered and child != parent:
            assert ordered.index(parent) < ordered.index(child)


def test_parents_first_puts_a_cycle_last_rather_than_looping() -> None:
    """Tables referencing each other cannot be ordered; they come last, by name."""
    foreign_keys = [("public.a", "public.b"), ("public.b", "public.a"), ("public.a", "public.c")]
    assert parents_first(["public.a"], foreign_keys) == ["public.c", "public.a", "public.b"]


def test_scratch_name_is_the_prefix_a_time_and_a_random_part() -> None:
    """Names are plain identifiers, unique per call, within PostgreSQL's 63 bytes."""
    first, second = scratch_name("rollbot_rehearsal"), scratch_name("rollbot_rehearsal")
    assert re.fullmatch(r"rollbot_rehearsal_\d{8}_\d{6}_[0-9a-f]{6}", first)
    assert first != second
    assert len("rollbot keeps " + scratch_name("p" * 26)) <= 63  # a lease session's name


@pytest.mark.parametrize("prefix", ["", "Rollbot", "roll-bot", "x; DROP", "p" * 27])
def test_scratch_name_refuses_prefixes_that_would_need_quoting(prefix: str) -> None:
    """A prefix that is not a short plain identifier is a caller's mistake, refused early."""
    with pytest.raises(ValueError, match="prefix"):
        scratch_name(prefix)
