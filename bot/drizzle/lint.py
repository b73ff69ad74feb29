"""Linting a runbook: does it drop what its migration created, and only that.

A rollback written by hand drifts from the migration it undoes: an index added to the
migration later and forgotten in the runbook, or a foreign key the runbook drops that the
migration never created (the seed's `error_aggregations_resolved_by_users_id_fk`). With the
forward `.sql` file at hand both can be found before anyone runs anything: the objects the
migration creates (`bot.drizzle.forward`) against the objects the runbook's statements drop
(`bot.core.sql`). Objects that go with a dropped table or column (its indexes, constraints,
columns, owned sequences) count as dropped. Names are compared without their schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.journal import LintReport
from bot.core.sql import ObjectKind
from bot.drizzle.forward import CreatedObject, creates, object_label, parse_forward

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.core.runbook import Runbook
    from bot.core.sql import DbObject
    from bot.drizzle.folder import Migration


def created_objects(migration: Migration) -> list[CreatedObject]:
    """Every object the migration creates, in the order it creates them."""
    return [obj for statement in parse_forward(migration) for obj in creates(statement)]


def lint_runbook(runbook: Runbook, migration: Migration) -> LintReport:
    """Compare the objects `runbook` drops with those `migration` creates."""
    created = created_objects(migration)
    drops = [
        obj
        for statement in runbook.statements
        for obj in statement.objects
        if obj.kind is not ObjectKind.ROWS
    ]
    # Dropped and made again further down (an enum recreated without a value, a view or a
    # key changed back, a table renamed back onto the name): put back, not taken from anyone.
    put_back = {
        _key(made)
        for number, statement in enumerate(runbook.statements)
        for later in runbook.statements[number + 1 :]
        for made in later.creates
        if any(_key(obj) == _key(made) for obj in statement.objects)
    }
    explicit = {_key(obj) for obj in drops}
    tables = {obj.name for obj in drops if obj.kind is ObjectKind.TABLE}
    columns = {(obj.table, obj.name) for obj in drops if obj.kind is ObjectKind.COLUMN}

    def dropped(obj: CreatedObject) -> bool:
        if obj.key() in explicit or obj.within_table in tables:
            return True
        return any((obj.within_table, column) in columns for column in obj.within_columns)

    made = {obj.key() for obj in created}
    return LintReport(
        created_not_dropped=_unique(obj.label() for obj in created if not dropped(obj)),
        dropped_not_created=_unique(
            object_label(obj.kind, obj.name, obj.table)
            for obj in drops
            if _key(obj) not in made and _key(obj) not in put_back
        ),
    )


def _key(obj: DbObject) -> tuple[ObjectKind, str, str | None]:
    return (obj.kind, obj.name, obj.table)


def _unique(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))
