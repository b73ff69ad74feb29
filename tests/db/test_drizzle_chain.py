"""The Drizzle chain fixture: it applies as Drizzle applies it, one journal row per file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from bot.drizzle.folder import BREAKPOINT
from tests.fix_drizzle import FROM_REFERENCE, IRREVERSIBLE, REVERSIBLE, TOP, migrate_to, read_chain

if TYPE_CHECKING:
    from collections.abc import Callable


def test_chain_is_a_drizzle_kit_folder() -> None:
    """Twenty-two migrations in journal order, each file cut by drizzle-kit's breakpoint marker."""
    chain = read_chain()
    assert [m.tag.split("_")[0] for m in chain] == sorted(
        (*REVERSIBLE, *FROM_REFERENCE, *IRREVERSIBLE)
    )
    assert [m.when for m in chain] == sorted(m.when for m in chain)
    assert all(BREAKPOINT in m.text for m in chain)


def test_whole_chain_applies_with_one_journal_row_each(
    drizzle_db: Callable[[str | None], str],
) -> None:
    """Every migration applies on an empty database and is recorded with its hash and `when`."""
    conninfo = drizzle_db(TOP)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id"
        ).fetchall()
    assert rows == [(m.hash, m.when) for m in read_chain()]


def test_migrating_further_applies_only_the_newer_migrations(
    drizzle_db: Callable[[str | None], str],
) -> None:
    """A database at 0003 gets exactly 0004 to 0007 from a second run, as with Drizzle."""
    conninfo = drizzle_db("0003")
    applied = migrate_to(conninfo, "0007")
    assert [tag.split("_")[0] for tag in applied] == ["0004", "0005", "0006", "0007"]
