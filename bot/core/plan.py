"""The plan: a pure function of a runbook and the live facts.

Like an offline migration, the plan renders exactly the SQL that will run, statement by
statement, with the locks and timeouts rollbot adds around the runbook. Its hash covers that
SQL, the target and the object inventory it was decided on, so an approval can be bound to it:
if any of those changes, the approval no longer applies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from bot.core.cascade import Effect, code_blockers, column_tables, effects
from bot.core.durations import format_duration
from bot.core.facts import Facts, Found, Reference, RowCount, Table, Target, UnfitCount
from bot.core.functions import call_problem
from bot.core.journal import JournalPlan, LintReport
from bot.core.names import quote_ident
from bot.core.quarantine import DropMode, Quarantine, create_quarantine_sql, quarantine_script
from bot.core.sequences import sequence_problem
from bot.core.sql import ObjectKind, Statement
from bot.core.usercode import expression_blockers, hook_blockers

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bot.core.library import RunbookLibrary
    from bot.core.runbook import Runbook

# pg_try_advisory_xact_lock(ADVISORY_CLASS, ADVISORY_KEY): one rollback per database at a time.
ADVISORY_CLASS = 0x526F6C6C  # "Roll"
ADVISORY_KEY = 1


class StepStatus(StrEnum):
    """What a statement will do against the database as it is now."""

    RUNS = "runs"
    NO_OP = "no-op"
    FAILS = "fails"


class Step(BaseModel):
    """A runbook statement with what the plan expects of it."""

    model_config = ConfigDict(frozen=True)

    statement: Statement
    status: StepStatus
    notes: tuple[str, ...] = ()


class Script(BaseModel):
    """The exact SQL the executor sends, in order; rendered for review by `render_sql`."""

    model_config = ConfigDict(frozen=True)

    settings: tuple[str, ...]
    advisory_lock: str
    write_lock: str | None
    export_snapshot: str = "SELECT pg_export_snapshot()"
    count_dropped: tuple[str, ...]
    exclusive_lock: str | None
    count_neighbours: tuple[str, ...]
    statements: tuple[str, ...]
    count_deleted: tuple[str, ...] = ()  # rows left after the statements, tables that stay
    journal_delete: str | None = None  # the migration's Drizzle journal row, same transaction
    # What each count above measures, for the reviewer (same order); empty in older plans.
    count_dropped_notes: tuple[str, ...] = ()
    count_deleted_notes: tuple[str, ...] = ()
    # A lock attempt that runs out of lock_timeout rolls back to this savepoint and tries
    # again in the same transaction; None in plans stored before it existed.
    savepoint: str | None = None
    # Whether the final backup is dumped inside the transaction from its exported snapshot
    # (drop mode, and tables that stay but lose rows or a column); False: nothing to dump.
    snapshot: bool = True
    quarantine: str | None = None  # CREATE SCHEMA of a quarantined rollback
    quarantine_backup: str | None = None  # the schema dumped after COMMIT


class Affected(BaseModel):
    """A table whose rows change although no statement names it for that, and why.

    Foreign-key actions, partitions and inheritance reach it from a DELETE, or a column of it
    is dropped. It is locked, counted and kept in the final backup like the tables named.
    """

    model_config = ConfigDict(frozen=True)

    table: str
    why: str  # "ON DELETE CASCADE from public.users (orders_user_id_fkey)"
    rows: RowCount
    deletes: bool  # rows can go; otherwise only values change and the count must hold


class Plan(BaseModel):
    """What will run, against what, what it removes, and whether anything blocks it."""

    model_config = ConfigDict(frozen=True)

    migration_id: str
    runbook_name: str
    runbook_file: str
    runbook_sha256: str
    description: str | None
    date: str | None
    target: Target
    steps: tuple[Step, ...]
    dropped: tuple[Found, ...]  # objects that exist now and must be gone afterwards
    # Objects a statement drops and a later one creates again under the same name: gone by
    # oid afterwards, but there by name (drizzle-kit changes a view or a key that way).
    recreated: tuple[str, ...] = ()
    drop_tables: tuple[RowCount, ...]  # tables to be dropped, with their rows now
    delete_tables: tuple[RowCount, ...]  # tables the runbook deletes rows from
    neighbours: tuple[str, ...]  # tables locked or named whose counts must not change
    write_locked: tuple[str, ...]
    locked: tuple[str, ...]
    blockers: tuple[str, ...]
    lock_timeout: timedelta
    statement_timeout: timedelta
    script: Script
    sql: str
    hash: str
    journal: JournalPlan | None = None
    lint: LintReport | None = None
    derived: bool = False  # the rollback was derived from the forward migration
    affected: tuple[Affected, ...] = ()  # tables changed through cascades and dropped columns
    # The write-locked tables whose rows a dump holds: a partitioned table holds none itself,
    # its partitions do (and are write-locked too). Empty in plans stored before it existed.
    backup_tables: tuple[str, ...] = ()
    # "quarantine": dropped tables are moved aside (`quarantine`); "drop": dropped for good.
    # Plans stored before the mode existed dropped.
    drop_mode: DropMode = "drop"
    quarantine: Quarantine | None = None
    # Constraints whose violating rows were not counted, with why: the statement's own check
    # still stops the rollback before COMMIT if a row violates one.
    uncounted: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        """A blocked plan is never backed up for approval, let alone run."""
        return bool(self.blockers)

    def kept_tables(self) -> tuple[str, ...]:
        """The tables both backups must hold the rows of."""
        return self.backup_tables or self.write_locked

    def final_tables(self) -> tuple[str, ...]:
        """The tables the final backup dumps inside the transaction.

        A table moved into the quarantine keeps its rows in the database, and is dumped from
        there after COMMIT; only the tables that stay but lose rows or a column are dumped
        inside the transaction.
        """
        if self.quarantine is None:
            return self.kept_tables()
        moved = {o.name for o in self.quarantine.tables()}
        return tuple(t for t in self.kept_tables() if t not in moved)

    def puts_back(self) -> list[Statement]:
        """The statements that put a definition back (a rename, NOT NULL, an index, an enum).

        A restore moves back only what was dropped, so after these it would leave the
        journal at N over a schema still at N-1 where they acted.
        """
        return [step.statement for step in self.steps if step.statement.restores]

    def moved_only(self) -> tuple[str, ...]:
        """The tables a quarantined rollback only moves aside: none of their rows change.

        Their rows never leave the database until a purge, and a purge needs the dump of the
        quarantine taken after COMMIT, so the pre-approval backup need not hold them.
        """
        if self.quarantine is None:
            return ()
        changed = {t.table for t in self.delete_tables} | {a.table for a in self.affected}
        return tuple(o.name for o in self.quarantine.tables() if o.name not in changed)

    def backed_up_tables(self) -> tuple[str, ...]:
        """The tables whose rows the pre-approval backup holds and counts."""
        aside = set(self.moved_only())
        return tuple(t for t in self.kept_tables() if t not in aside)

    def no_ops(self) -> tuple[Step, ...]:
        """Statements that will change nothing, as the plan says they will."""
        return tuple(s for s in self.steps if s.status is StepStatus.NO_OP)


def static_blockers(runbook: Runbook) -> list[str]:
    """What blocks a runbook's plan whatever the database holds.

    `rollbot runbooks` lists them, so a runbook that can never be approved is found when it
    is written, not during the incident it was written for.
    """
    return [
        f"line {s.line}: CASCADE would drop objects the runbook does not name; "
        "drop them explicitly instead"
        for s in runbook.statements
        if s.cascade
    ]


def blocked_runbooks(library: RunbookLibrary) -> dict[str, list[str]]:
    """Each runbook file that no plan could approve, with why (see `static_blockers`)."""
    return {r.file: why for r in library.runbooks if (why := static_blockers(r))}


def _dropped(existing: list[Found], facts: Facts) -> tuple[tuple[Found, ...], tuple[str, ...]]:
    """What must be gone after the statements, and what they drop and create again."""
    objects = [f for f in existing if f.kind is not ObjectKind.ROWS]
    again = [_put_back(f, facts) for f in objects]
    return (
        tuple(f for f, back in zip(objects, again, strict=True) if not back),
        tuple(f.name for f, back in zip(objects, again, strict=True) if back),
    )


def _put_back(found: Found, facts: Facts) -> bool:
    """Whether a later statement creates this very object again (same kind and oid now)."""
    return found.oid is not None and any(
        r.statement > found.statement and r.kind is found.kind and r.oid == found.oid
        for r in facts.recreated
    )


def build_plan(
    runbook: Runbook,
    facts: Facts,
    *,
    lock_timeout: timedelta,
    statement_timeout: timedelta,
    journal: JournalPlan | None = None,
    lint: LintReport | None = None,
    more_blockers: Sequence[str] = (),
    drop_mode: DropMode = "drop",
) -> Plan:
    """Decide, for every statement, what it will do and whether the rollback may run."""
    lock_timeout = runbook.settings.lock_timeout or lock_timeout
    statement_timeout = runbook.settings.statement_timeout or statement_timeout
    steps = tuple(_step(statement, facts) for statement in runbook.statements)
    blockers = [note for step in steps if step.status is StepStatus.FAILS for note in step.notes]
    blockers += static_blockers(runbook)
    blockers += _reference_blockers(runbook.statements, facts)
    blockers += _null_blockers(runbook, facts)
    blockers += _violation_blockers(runbook, facts)
    blockers += _unfit_blockers(runbook, facts)
    blockers += _sequence_blockers(runbook, facts)
    blockers += [
        f"{runbook.file}:{s.line}: {problem}"
        for s in runbook.statements
        for name in s.functions
        if not facts.user_functions.get(name)  # user-defined: expression_blockers says why
        and (problem := call_problem(name, facts.functions.get(name))) is not None
    ]
    blockers += expression_blockers(runbook.statements, facts, runbook.file)
    existing = [f for f in facts.objects if f.exists]
    dropped, recreated = _dropped(existing, facts)
    rows = {r.table: r for r in facts.rows}
    drop_tables = _tables(f.table for f in existing if f.kind is ObjectKind.TABLE)
    delete_tables = _tables(f.table for f in existing if f.kind is ObjectKind.ROWS)
    changes = effects(facts)
    blockers += code_blockers(changes, facts, runbook.statements, runbook.file)
    blockers += hook_blockers(changes, facts, runbook.statements, runbook.file)
    rewrites = tuple(
        Effect(table=table, event="UPDATE", statement=number, why="its cast back", direct=True)
        for number, table in facts.rewritten
    )
    blockers += hook_blockers(rewrites, facts, runbook.statements, runbook.file)
    named = {t.oid for t in [*drop_tables, *delete_tables]}
    affected = _affected(changes, column_tables(facts), named, runbook.statements)
    write_locked = _tables([*drop_tables, *delete_tables, *(t for t, _, _ in affected)])
    # ACCESS EXCLUSIVE only where the schema changes. A DELETE needs no more than the write
    # lock above, which already keeps the counts exact; readers of its tables go on meanwhile.
    locked = _tables(
        [
            *(f.table for f in existing if f.table is not None and f.kind is not ObjectKind.ROWS),
            *(p for f in existing for p in f.fk_parents),
        ]
    )
    # Neighbours must keep their row count; tables whose rows the statements change (named,
    # or reached through foreign-key actions) change by design and are counted before and
    # after instead.
    changing = {t.name for t in write_locked}
    neighbours = sorted(
        {t.name for t in locked if t.name not in changing}
        | {t.name for t in facts.counted if t.name not in changing}
    )
    blockers += [
        f"front matter `count`: table {name} does not exist" for name in facts.missing_counted
    ]
    blockers += [
        f"front matter `count`: {name} is not a table, and counting it would run its code; "
        "name only tables"
        for name in facts.counted_not_tables
    ]
    blockers += list(more_blockers)
    if journal is not None and journal.blocker:
        blockers.append(journal.blocker)
    partitioned = {d.parent.oid for d in facts.descendants if d.partition}
    counted_after = [*delete_tables, *(t for t, _, _ in affected)]
    notes = {t.name: "rows dropped" for t in drop_tables}
    notes |= {t.name: "rows before the DELETE" for t in delete_tables}
    notes |= {t.name: f"rows before: {why}" for t, why, _ in affected}
    statements = tuple(s.sql for s in runbook.statements)
    quarantine = None
    if drop_mode == "quarantine":
        aside = quarantine_script(runbook, facts)
        statements, quarantine = aside.statements, aside.quarantine
        blockers += aside.blockers
    moved = {o.name for o in quarantine.tables()} if quarantine else set()
    notes |= dict.fromkeys(moved, "rows moved into the quarantine")
    # The final backup inside the transaction is only for the rows that leave the database.
    snapshot = any(t.name not in moved for t in write_locked if t.oid not in partitioned)
    script = Script(
        settings=(
            f"SET LOCAL lock_timeout = '{format_duration(lock_timeout)}'",
            f"SET LOCAL statement_timeout = '{format_duration(statement_timeout)}'",
            # The runbook was parsed as PostgreSQL parses by default; a database or role set to
            # the old backslash escapes must not run other statements than the ones checked.
            "SET LOCAL standard_conforming_strings = on",
            *_search_path(facts.target),
        ),
        advisory_lock=f"SELECT pg_try_advisory_xact_lock({ADVISORY_CLASS}, {ADVISORY_KEY})",
        write_lock=_lock(write_locked, "SHARE ROW EXCLUSIVE"),
        count_dropped=tuple(f"SELECT count(*) FROM {t.name}" for t in write_locked),
        exclusive_lock=_lock(locked, "ACCESS EXCLUSIVE"),
        count_neighbours=tuple(f"SELECT count(*) FROM {name}" for name in neighbours),
        statements=statements,
        count_deleted=tuple(f"SELECT count(*) FROM {t.name}" for t in counted_after),
        journal_delete=journal.delete_sql() if journal is not None else None,
        count_dropped_notes=tuple(notes[t.name] for t in write_locked),
        count_deleted_notes=(
            *("rows left after the DELETEs" for _ in delete_tables),
            *(f"rows after: {why}" for _, why, _ in affected),
        ),
        savepoint="SAVEPOINT rollbot_locks",
        snapshot=quarantine is None or snapshot,
        quarantine=create_quarantine_sql(quarantine.schema_name) if quarantine else None,
        quarantine_backup=quarantine.schema_name if quarantine else None,
    )
    sql = render_sql(script)
    return Plan(
        migration_id=runbook.migration_id,
        runbook_name=runbook.name,
        runbook_file=runbook.file,
        runbook_sha256=runbook.sha256,
        description=runbook.description,
        date=runbook.date,
        target=facts.target,
        steps=steps,
        dropped=dropped,
        recreated=recreated,
        drop_tables=tuple(
            rows.get(t.name, RowCount(table=t.name, rows=None, exact=False)) for t in drop_tables
        ),
        delete_tables=tuple(
            rows.get(t.name, RowCount(table=t.name, rows=None, exact=False)) for t in delete_tables
        ),
        neighbours=tuple(neighbours),
        write_locked=tuple(t.name for t in write_locked),
        backup_tables=tuple(t.name for t in write_locked if t.oid not in partitioned),
        locked=tuple(t.name for t in locked),
        blockers=tuple(blockers),
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        script=script,
        sql=sql,
        hash=plan_hash(sql, facts, runbook.sha256),
        journal=journal,
        lint=lint,
        derived=runbook.derived,
        affected=tuple(
            Affected(
                table=t.name,
                why=why,
                rows=rows.get(t.name, RowCount(table=t.name, rows=None, exact=False)),
                deletes=deletes,
            )
            for t, why, deletes in affected
        ),
        drop_mode=drop_mode,
        quarantine=quarantine,
        uncounted=_uncounted(runbook, facts),
    )


def _affected(
    changes: tuple[Effect, ...],
    columns: list[tuple[Table, int, str]],
    named: set[int],
    statements: tuple[Statement, ...],
) -> list[tuple[Table, str, bool]]:
    """(table, why, rows can go) for tables changed but not named by a DROP TABLE or DELETE."""
    lines = {s.number: s.line for s in statements}
    found: dict[int, tuple[Table, list[str], bool]] = {}
    for change in changes:
        if change.table.oid in named:
            continue
        table, whys, deletes = found.get(change.table.oid, (change.table, [], False))
        whys.append(change.why)
        found[change.table.oid] = (table, whys, deletes or change.event == "DELETE")
    for changed, statement, why in columns:
        if changed.oid in named:
            continue
        table, whys, deletes = found.get(changed.oid, (changed, [], False))
        whys.append(f"{why} at line {lines.get(statement, 0)}")
        found[changed.oid] = (table, whys, deletes)
    return sorted(
        ((table, "; ".join(whys), deletes) for table, whys, deletes in found.values()),
        key=lambda item: item[0].name,
    )


def _null_blockers(runbook: Runbook, facts: Facts) -> list[str]:
    """SET NOT NULL fails on the first NULL row: say how many there are, before anything runs."""
    lines = {s.number: s.line for s in runbook.statements}
    return [
        f"{runbook.file}:{lines[n.statement]}: {n.column} has {n.rows} NULL "
        f"row{'' if n.rows == 1 else 's'}, so SET NOT NULL would fail; set a value in "
        f"{'it' if n.rows == 1 else 'them'} first (or keep the column nullable)"
        for n in facts.nulls
        if n.rows
    ]


def _unfit_blockers(runbook: Runbook, facts: Facts) -> list[str]:
    """A cast back fails on (or cuts) the first row the old type cannot hold: say how many."""
    lines = {s.number: s.line for s in runbook.statements}
    return [
        _unfit_blocker(f"{runbook.file}:{lines[u.statement]}", u)
        for u in facts.unfit
        if u.rows or u.refused
    ]


def _unfit_blocker(where: str, u: UnfitCount) -> str:
    one = u.rows == 1
    rows = f"{u.rows} row{'' if one else 's'} of {u.column}"
    them = "it" if one else "them"
    if u.refused:
        return f"{where}: {u.column} cannot be cast to {u.type} through text: {u.why}"
    if u.labels is not None:
        labels = ", ".join(f"'{label}'" for label in u.labels)
        return (
            f"{where}: {rows} {'holds' if one else 'hold'} a value the enum does not have "
            f"(it has {labels}), so the cast to it would fail; change or delete {them} first"
        )
    return (
        f"{where}: {rows} {'does' if one else 'do'} not fit {u.type} (out of range, too "
        f"long or not held exactly), so SET DATA TYPE would fail or change {them}; change "
        f"or delete {them} first"
    )


def _search_path(target: Target) -> tuple[str, ...]:
    """The schemas names resolved in at planning, set for the transaction that runs them.

    A scratch copy has neither the target's database settings nor rollbot's role (whose
    name "$user" may stand for), so without this an unqualified name could be one table in
    the rehearsal and another in production.
    """
    if target.search_path is None:
        return ()
    schemas = ", ".join(quote_ident(s) for s in target.search_path) or "''"
    return (f"SET LOCAL search_path TO {schemas}",)


def _sequence_blockers(runbook: Runbook, facts: Facts) -> list[str]:
    """An ALTER SEQUENCE whose bounds leave out the current value fails: say so, in words."""
    statements = {s.number: s for s in runbook.statements}
    blockers = []
    for now in facts.sequences:
        statement = statements[now.statement]
        change = statement.sequence
        problem = sequence_problem(change, now) if change is not None else None
        if problem is not None:
            blockers.append(f"{runbook.file}:{statement.line}: {problem}")
    return blockers


# What the rows a constraint rejects are, in words: the count means different rows per kind.
_VIOLATING = {
    "foreign key": " (their keys match no row of the referenced table)",
    "unique": " (they share a key with another row)",
    "primary key": " (they share a key with another row, or have a NULL in it)",
}


def _violation_blockers(runbook: Runbook, facts: Facts) -> list[str]:
    """A constraint added or validated fails on its first violating row: say how many, now."""
    statements = {s.number: s for s in runbook.statements}
    blockers = []
    for v in facts.violations:
        if not v.rows:
            continue
        statement = statements[v.statement]
        verb = (
            "VALIDATE"
            if "VALIDATE" in statement.kind
            else "CREATE UNIQUE INDEX"
            if statement.kind == "CREATE INDEX"
            else "ADD CONSTRAINT"
        )
        plural = v.rows != 1
        blockers.append(
            f"{runbook.file}:{statement.line}: {v.rows} row{'s' * plural} of {v.table} "
            f"violate{'' if plural else 's'} {v.constraint}{_VIOLATING.get(v.kind, '')}, so "
            f"{verb} would fail; fix or delete {'them' if plural else 'it'} first (or leave "
            "the constraint out)"
        )
    return blockers


def _uncounted(runbook: Runbook, facts: Facts) -> tuple[str, ...]:
    lines = {s.number: s.line for s in runbook.statements}
    return (
        tuple(
            f"{runbook.file}:{lines[v.statement]}: rows violating {v.constraint} on {v.table} "
            f"were not counted: {v.why}"
            for v in facts.violations
            if v.rows is None
        )
        + tuple(
            f"{runbook.file}:{lines[u.statement]}: rows of {u.column} that {u.type} would not "
            f"hold were not counted: {u.why}"
            for u in facts.unfit
            if u.rows is None
        )
        + tuple(
            f"{runbook.file}:{lines[q.statement]}: the current value of sequence {q.sequence} "
            f"was not read, so its new bounds were not checked against it: {q.why}"
            for q in facts.sequences
            if q.last_value is None
        )
    )


def _step(statement: Statement, facts: Facts) -> Step:
    if statement.restores:
        return Step(statement=statement, status=StepStatus.RUNS)
    found = [facts.found(statement.number, i) for i in range(len(statement.objects))]
    notes: list[str] = []
    fails = False
    for obj, fact in zip(statement.objects, found, strict=True):
        where = f"line {statement.line}"
        if fact.exists and fact.actual_kind is not None:
            fails = True
            notes.append(
                f"{where}: {fact.name} is {_a(fact.actual_kind)}, not {_a(obj.kind)}; "
                "fix the statement"
            )
        elif not fact.exists and obj.missing_ok:
            notes.append(f"{obj.label()} does not exist: IF EXISTS makes this a no-op")
        elif not fact.exists:
            fails = True
            notes.append(f"{where}: {obj.label()} does not exist and there is no IF EXISTS")
    if fails:
        return Step(statement=statement, status=StepStatus.FAILS, notes=tuple(notes))
    if not any(f.exists for f in found):
        return Step(statement=statement, status=StepStatus.NO_OP, notes=tuple(notes))
    return Step(statement=statement, status=StepStatus.RUNS, notes=tuple(notes))


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _reference_blockers(statements: tuple[Statement, ...], facts: Facts) -> list[str]:
    """Dependents must be gone before what they depend on: dropped earlier, or not at all."""
    removed_at: dict[int, int] = {}
    columns_at: dict[tuple[int, int], int] = {}
    for found in facts.objects:
        if not found.exists or found.kind is ObjectKind.ROWS:
            continue
        if found.kind is ObjectKind.COLUMN and found.table is not None and found.attnum:
            columns_at.setdefault((found.table.oid, found.attnum), found.statement)
        elif found.oid is not None:
            removed_at.setdefault(found.oid, found.statement)
    retyped_at = dict(columns_at)
    for number, table, attnum in facts.retyped:
        retyped_at[(table, attnum)] = min(number, retyped_at.get((table, attnum), number))
    lines = {s.number: s.line for s in statements}
    blockers: list[str] = []
    for ref in facts.references:
        target = facts.found(ref.statement, ref.position)
        # A column given another type no longer depends on its old type, nor does its default.
        by_type = target.kind in {ObjectKind.TYPE, ObjectKind.DOMAIN}
        when = _removed_when(ref, removed_at, retyped_at if by_type else columns_at)
        line = lines[ref.statement]
        if when is None:
            blockers.append(
                f"line {line}: {ref.dependent} depends on {target.kind} {target.name} "
                "and the runbook does not drop it"
            )
        elif when > ref.statement:
            blockers.append(
                f"line {line}: {ref.dependent} still depends on {target.kind} {target.name} "
                f"until line {lines[when]} removes it; reorder the runbook"
            )
    return blockers


def _removed_when(
    ref: Reference, removed_at: dict[int, int], columns_at: dict[tuple[int, int], int]
) -> int | None:
    candidates = [removed_at[oid] for oid in ref.owners if oid in removed_at]
    if ref.owner_column is not None and ref.owner_column in columns_at:
        candidates.append(columns_at[ref.owner_column])
    return min(candidates) if candidates else None


def _tables(tables: Iterable[Table | None]) -> list[Table]:
    unique = {t.oid: t for t in tables if t is not None}
    return sorted(unique.values(), key=lambda t: t.name)


def _lock(tables: list[Table], mode: str) -> str | None:
    if not tables:
        return None
    return f"LOCK TABLE {', '.join(t.name for t in tables)} IN {mode} MODE"


_RETRY = "  -- a lock attempt that times out rolls back to here and tries again"


def render_sql(script: Script) -> str:
    """The whole transaction as a reviewer reads it; the executor sends these same strings."""
    lines = []
    if script.quarantine_backup:
        lines.append(
            f"-- quarantine mode: dropped tables are moved into {script.quarantine_backup}, "
            "not dropped; they stay there until a purge is approved"
        )
    lines.append("BEGIN ISOLATION LEVEL READ COMMITTED;")
    lines += [f"{s};" for s in script.settings]
    lines.append(f"{script.advisory_lock};  -- one rollback per database at a time")
    if script.savepoint and (script.write_lock or script.exclusive_lock):
        lines.append(f"{script.savepoint};{_RETRY}")
    if script.write_lock:
        lines.append(f"{script.write_lock};  -- writes wait, reads go on")
        if script.snapshot:
            lines.append(
                f"{script.export_snapshot};  -- final backup: pg_dump --snapshot of these tables"
            )
        lines += [
            f"{c};  -- {note}"
            for c, note in _noted(script.count_dropped, script.count_dropped_notes, "rows dropped")
        ]
    if script.exclusive_lock:
        if script.savepoint and script.write_lock and script.snapshot:
            lines.append(f"{script.savepoint};{_RETRY}, the backup kept")
        lines.append(f"{script.exclusive_lock};")
    lines += [f"{c};  -- must not change" for c in script.count_neighbours]
    lines.append("")
    if script.quarantine:
        lines.append(f"{script.quarantine};  -- what the rollback drops is moved here")
    lines += [f"{s};" for s in script.statements]
    lines += [
        f"{c};  -- {note}"
        for c, note in _noted(
            script.count_deleted, script.count_deleted_notes, "rows left after the DELETEs"
        )
    ]
    if script.journal_delete:
        lines.append(f"{script.journal_delete};  -- Drizzle's journal forgets the migration")
    lines.append("")
    lines.append("-- verify: every dropped object is gone, every other table is still there,")
    lines.append("-- and the counts above are unchanged; otherwise ROLLBACK")
    lines.append("COMMIT;")
    if script.quarantine_backup:
        lines.append(
            f"-- then, after COMMIT: final backup: pg_dump --schema={script.quarantine_backup}"
        )
    return "\n".join(lines) + "\n"


def _noted(queries: tuple[str, ...], notes: tuple[str, ...], default: str) -> list[tuple[str, str]]:
    """Each count with what it measures; plans stored before the notes existed get `default`."""
    return [(q, notes[i] if i < len(notes) else default) for i, q in enumerate(queries)]


def plan_hash(sql: str, facts: Facts, runbook_sha256: str) -> str:
    """sha256 over the SQL, the target, the runbook file and the object inventory."""
    inventory = {
        "sql": sql,
        "target": facts.target.identity(),
        "runbook": runbook_sha256,
        "objects": [
            [f.statement, f.position, f.kind, f.name, f.exists, f.oid, f.attnum, f.actual_kind]
            for f in facts.objects
        ],
        "references": sorted(r.identity for r in facts.references),
    }
    # What can change rows besides the statements; absent when empty, so that plans without
    # any keep the hash they had before these facts were read.
    code: dict[str, list[str]] = {
        "foreign_keys": sorted(k.identity() for k in facts.foreign_keys),
        "descendants": sorted(f"{d.parent.oid}>{d.child.oid}" for d in facts.descendants),
        "triggers": sorted(
            f"{t.name}|{t.table.oid}|{','.join(t.events)}|{t.function}" for t in facts.triggers
        ),
        "rules": sorted(f"{r.name}|{r.table.oid}|{r.event}" for r in facts.rules),
        "event_triggers": sorted(
            f"{e.name}|{e.event}|{','.join(e.tags)}|{e.function}" for e in facts.event_triggers
        ),
    }
    # Code PostgreSQL would run for the statements' expressions and on the changed rows.
    code |= {
        "functions": sorted(f"{name}|{v}" for name, v in facts.functions.items()),
        "user_functions": sorted(
            f"{name}|{c.identity()}" for name, codes in facts.user_functions.items() for c in codes
        ),
        "relations": sorted(r.identity() for r in facts.relations),
        "operators": sorted(
            f"{name}|{v.identity()}" for name, vias in facts.operators.items() for v in vias
        ),
        "casts": sorted(
            f"{name}|{v.identity()}" for name, vias in facts.casts.items() for v in vias
        ),
        "implicit_casts": sorted(v.identity() for v in facts.implicit_casts),
        "hooks": sorted(h.identity() for h in facts.hooks),
        "counted_not_tables": sorted(facts.counted_not_tables),
        "quarantine_keys": sorted(
            f"{k.oid}|{k.name}|{k.table}|{k.parent}|{k.definition}" for k in facts.quarantine_keys
        ),
    }
    inventory |= {key: value for key, value in code.items() if value}
    return hashlib.sha256(json.dumps(inventory, sort_keys=True).encode()).hexdigest()
