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


def existing_relations(target: TargetDatabase, names: Sequence[str]) -> list[str]:
    """Those of `names` (qualified relations) that exist now."""
    with target.connect("quarantines", read_only=True) as conn:
        return [
            name
            for name in names
            if (row := conn.execute("SELECT to_regclass(%s)", (name,)).fetchone())
            and row[0] is not None
        ]
