"""Every table whose rows a rollback changes, why, and what runs code when it does.

A DELETE changes more than the table it names. PostgreSQL's foreign-key actions delete the
referencing rows (ON DELETE CASCADE) or rewrite their columns (SET NULL, SET DEFAULT), a
rewritten column can be referenced in turn (ON UPDATE CASCADE, SET NULL, SET DEFAULT), and a
DELETE reaches the table's partitions and inheritance children. A table reached that the plan
did not name would change without being locked, counted or kept in the final backup, so the
plan follows the whole walk. The walk is a pure function of the catalog's facts, tested
without a server; each (table, event, column) is visited once, so cycles and self-references
end.

Triggers, rules and event triggers run code rollbot cannot read: which rows they change is
unknowable from the catalog, so a plan that would fire one is blocked, naming it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from bot.core.facts import Table
from bot.core.names import quote_ident
from bot.core.sql import ObjectKind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.core.facts import Descendant, Facts, ForeignKey
    from bot.core.sql import Statement

Event = Literal["DELETE", "UPDATE"]
_ACTIONS = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


class Effect(BaseModel):
    """One way a table's rows change: by which event, from which statement, and why."""

    model_config = ConfigDict(frozen=True)

    table: Table
    event: Event
    statement: int  # the runbook statement it comes from (Statement.number)
    why: str  # "ON DELETE CASCADE from public.users (orders_user_id_fkey)"
    direct: bool = False  # the statement names the table, or a parent it inherits from


def effects(facts: Facts) -> tuple[Effect, ...]:
    """Every (table, event) the runbook's DELETEs cause, in the order the walk reaches them.

    The first reason found for a table is the shortest chain to it, so that is the one kept.
    """
    starts = [
        Effect(
            table=f.table,
            event="DELETE",
            statement=f.statement,
            why="the runbook deletes from it",
            direct=True,
        )
        for f in facts.objects
        if f.exists and f.kind is ObjectKind.ROWS and f.table is not None
    ]
    return walk(starts, facts.foreign_keys, facts.descendants)


def walk(
    starts: Iterable[Effect],
    foreign_keys: Iterable[ForeignKey],
    descendants: Iterable[Descendant] = (),
) -> tuple[Effect, ...]:
    """Follow foreign-key actions and descendants from `starts` until nothing new changes."""
    by_parent: dict[int, list[ForeignKey]] = defaultdict(list)
    for key in foreign_keys:
        by_parent[key.parent.oid].append(key)
    children: dict[int, list[Descendant]] = defaultdict(list)
    for item in descendants:
        children[item.parent.oid].append(item)
    seen: set[tuple[int, str, str]] = set()
    found: dict[tuple[int, str], Effect] = {}
    queue: deque[tuple[Effect, frozenset[str]]] = deque((s, frozenset()) for s in starts)
    while queue:
        effect, columns = queue.popleft()
        oid = effect.table.oid
        keys = [(oid, "DELETE", "")] if effect.event == "DELETE" else []
        keys += [(oid, "UPDATE", c) for c in sorted(columns)]
        new = [k for k in keys if k not in seen]
        if not new:
            continue
        seen.update(new)
        found.setdefault((oid, effect.event), effect)
        changed = frozenset(k[2] for k in new if k[1] == "UPDATE")
        queue.extend(_inherited(effect, changed, children[oid]))
        queue.extend(_actions(effect, changed, by_parent[oid]))
    return tuple(found.values())


def _inherited(
    effect: Effect, columns: frozenset[str], children: list[Descendant]
) -> list[tuple[Effect, frozenset[str]]]:
    """A statement reaches every descendant; a foreign-key action only partitions (ONLY)."""
    return [
        (
            Effect(
                table=d.child,
                event=effect.event,
                statement=effect.statement,
                why=f"{'partition' if d.partition else 'inheritance child'} of {d.parent.name}",
                direct=effect.direct,
            ),
            columns,
        )
        for d in children
        if d.partition or effect.direct
    ]


def _actions(
    effect: Effect, columns: frozenset[str], keys: list[ForeignKey]
) -> list[tuple[Effect, frozenset[str]]]:
    reached: list[tuple[Effect, frozenset[str]]] = []
    for key in keys:
        if effect.event == "DELETE" and key.on_delete in _ACTIONS:
            event: Event = "DELETE" if key.on_delete == "c" else "UPDATE"
            action, written = f"ON DELETE {_ACTIONS[key.on_delete]}", key.delete_sets
        elif (
            effect.event == "UPDATE" and key.on_update in _ACTIONS and columns & set(key.referenced)
        ):
            event, action, written = "UPDATE", f"ON UPDATE {_ACTIONS[key.on_update]}", ()
        else:
            continue
        why = f"{action} from {key.parent.name} ({key.name})"
        change = Effect(table=key.child, event=event, statement=effect.statement, why=why)
        reached.append((change, frozenset(() if event == "DELETE" else written or key.columns)))
    return reached


def code_blockers(
    found: tuple[Effect, ...], facts: Facts, statements: tuple[Statement, ...], file: str
) -> list[str]:
    """Triggers and rules the changes fire, and event triggers the DDL fires: each blocks."""
    lines = {s.number: s.line for s in statements}
    blockers: list[str] = []
    reported: set[tuple[str, int]] = set()
    for effect in found:
        where = f"{file}:{lines.get(effect.statement, 0)}"
        reach = "" if effect.direct else f" (reached by {effect.why})"
        for trigger in facts.triggers:
            key = (f"trigger {trigger.name}", trigger.table.oid)
            if trigger.table.oid != effect.table.oid or effect.event not in trigger.events:
                continue
            if key in reported:
                continue
            reported.add(key)
            blockers.append(
                f"{where}: trigger {trigger.name} on {trigger.table.name}{reach} runs arbitrary "
                f"code ({trigger.function}) on {effect.event}: rollbot cannot know which rows it "
                "changes, so it cannot lock, count or back them up. A runbook cannot disable "
                f"it; disable it first (ALTER TABLE {trigger.table.name} DISABLE TRIGGER "
                f"{quote_ident(trigger.name)}, and ENABLE it again after the rollback) or drop "
                "it, then ask for a new plan; or roll back by hand"
            )
        for rule in facts.rules:
            key = (f"rule {rule.name}", rule.table.oid)
            if rule.table.oid != effect.table.oid or rule.event != effect.event:
                continue
            if key in reported:
                continue
            reported.add(key)
            blockers.append(
                f"{where}: rule {rule.name} on {rule.table.name}{reach} rewrites every "
                f"{effect.event} into other statements: rollbot cannot know which rows they "
                f"change. Drop it first (DROP RULE {quote_ident(rule.name)} ON "
                f"{rule.table.name}, and create it again after the rollback), then ask for a "
                "new plan; or roll back by hand"
            )
    return blockers + _event_trigger_blockers(facts, statements, file)


def command_tag(statement: Statement) -> str | None:
    """The command tag an event trigger sees (`DROP TABLE`, `ALTER TABLE`); None for DML."""
    if statement.kind == "DELETE":
        return None
    return "ALTER TABLE" if statement.kind.startswith("ALTER TABLE") else statement.kind


def _event_trigger_blockers(
    facts: Facts, statements: tuple[Statement, ...], file: str
) -> list[str]:
    """One blocker per event trigger, at the first statement that fires it."""
    blockers: list[str] = []
    for trigger in facts.event_triggers:
        fired = [
            (s, tag)
            for s in statements
            if (tag := command_tag(s)) is not None and (not trigger.tags or tag in trigger.tags)
        ]
        if not fired:
            continue
        first, tag = fired[0]
        more = f" (and {len(fired) - 1} more statements)" if len(fired) > 1 else ""
        blockers.append(
            f"{file}:{first.line}: event trigger {trigger.name} runs arbitrary code "
            f"({trigger.function}) on {trigger.event} of {tag}{more}: rollbot cannot know what "
            "it changes, so it cannot lock, count or back it up. Disable it first (ALTER EVENT "
            f"TRIGGER {quote_ident(trigger.name)} DISABLE, and ENABLE it again after the "
            "rollback), then ask for a new plan; or roll back by hand"
        )
    return blockers


def column_tables(facts: Facts) -> list[tuple[Table, int, str]]:
    """(table, statement, why) for each table losing a column, its descendants included.

    ALTER TABLE … DROP COLUMN drops the column from partitions and inheritance children too.
    """
    children: dict[int, list[Descendant]] = defaultdict(list)
    for item in facts.descendants:
        children[item.parent.oid].append(item)
    found: list[tuple[Table, int, str]] = []
    for column in facts.objects:
        if not (column.exists and column.kind is ObjectKind.COLUMN and column.table):
            continue
        bare = column.name.removeprefix(f"{column.table.name}.")
        queue = deque([(column.table, "")])
        seen: set[int] = set()
        while queue:
            table, origin = queue.popleft()
            if table.oid in seen:
                continue
            seen.add(table.oid)
            found.append((table, column.statement, f"column {bare} dropped{origin}"))
            queue.extend((d.child, f" from {d.parent.name}") for d in children[table.oid])
    return found


def changed_tables(facts: Facts) -> list[Table]:
    """Tables whose rows change besides those dropped: to count while planning."""
    tables = {e.table.oid: e.table for e in effects(facts)}
    for table, _, _ in column_tables(facts):
        tables.setdefault(table.oid, table)
    return sorted(tables.values(), key=lambda t: t.name)
