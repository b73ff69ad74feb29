"""The quarantines on a target: which exist, and how much disk each holds.

A quarantined rollback leaves its dropped tables in a schema of their own
(`rollbot_quarantine_…`). They hold disk until a purge is approved, so every command that
reports on a target (`rollbot runs`, `show`, `backups`, `doctor`) lists them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bot.core.quarantine import QUARANTINE_LIKE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.target.database import TargetDatabase


class QuarantineInfo(BaseModel):
    """One quarantine schema as the target has it now."""

    model_config = ConfigDict(frozen=True)

    schema_name: str
    tables: tuple[str, ...]  # qualified names inside the quarantine
    size_bytes: int  # pg_total_relation_size of its tables, indexes and TOAST included


_LIST = """
SELECT n.nspname,
       coalesce(array_agg(format('%%I.%%I', n.nspname, c.relname) ORDER BY c.relname)
                FILTER (WHERE c.relkind IN ('r', 'p')), '{}'),
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relkind IN ('r', 'p')), 0)
FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
WHERE n.nspname LIKE %s
GROUP BY n.nspname ORDER BY n.nspname
"""


def list_quarantines(target: TargetDatabase) -> list[QuarantineInfo]:
    """Every quarantine on the target, with its tables and size on disk (for reports)."""
    with target.connect("quarantines", read_only=True) as conn:
        rows = conn.execute(_LIST, (QUARANTINE_LIKE,)).fetchall()
    return [
        QuarantineInfo(schema_name=name, tables=tuple(tables), size_bytes=int(size))
        for name, tables, size in rows
    ]


def quarantine_exists(target: TargetDatabase, schema_name: str) -> bool:
    """Whether the quarantine schema is still there (not restored, not purged)."""
    with target.connect("quarantines", read_only=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema_name,)
        ).fetchone()
    return bool(row and row[0])


class Occupied(BaseModel):
    """What a move back looks at before it is planned, read in one connection."""

    model_config = ConfigDict(frozen=True)

    quarantine: bool  # the quarantine schema is still there
    relations: tuple[str, ...]  # those of the names asked about that exist now
    types: tuple[str, ...]  # likewise for types and domains


def occupied(
    target: TargetDatabase, schema_name: str, relations: Sequence[str], types: Sequence[str]
) -> Occupied:
    """Whether the quarantine is there, and which old names are taken again, in one session.

    A move back is planned twice (at the request and again just before it runs), and a
    connection to a remote target costs a round trip or a TLS handshake: one per plan, not
    one per name.
    """
    with target.connect("quarantines", read_only=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
            " ARRAY(SELECT r FROM unnest(%s::text[]) r WHERE to_regclass(r) IS NOT NULL),"
            " ARRAY(SELECT t FROM unnest(%s::text[]) t WHERE to_regtype(t) IS NOT NULL)",
            (schema_name, list(relations), list(types)),
        ).fetchone()
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    return Occupied(quarantine=bool(row[0]), relations=tuple(row[1]), types=tuple(row[2]))
