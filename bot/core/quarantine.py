"""Moving dropped tables aside instead of dropping them: the SQL, decided from the facts.

A DROP TABLE costs nothing to undo if the table is not dropped: `ALTER TABLE … SET SCHEMA`
moves it, with its rows, indexes, constraints and owned sequences, into a schema of its own
that the application never reads, in the time a catalog update takes. What the rollback would
have destroyed stays in the database until someone approves its purge, and a restore is a move
back. Foreign keys between a moved table and a table that stays are the one thing that cannot
stay as they are (the staying table would still check the moved rows), so they are dropped and
their definitions kept, in the plan's SQL, for the restore to add again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from bot.core.names import quote_ident, quote_literal, split_qualified
from bot.core.sql import ObjectKind

if TYPE_CHECKING:
    from bot.core.facts import Facts, Found
    from bot.core.runbook import Runbook

DropMode = Literal["quarantine", "drop"]
QUARANTINE_PREFIX = "rollbot_quarantine_"
# LIKE pattern matching every quarantine schema (underscores escaped: they are wildcards).
QUARANTINE_LIKE = QUARANTINE_PREFIX.replace("_", "\\_") + "%"


class KeptKey(BaseModel):
    """A foreign key between a moved table and one that stays: dropped, restored from here."""

    model_config = ConfigDict(frozen=True)

    oid: int
    name: str
    table: str  # the referencing table, schema-qualified as before the move
    parent: str  # the referenced table, schema-qualified as before the move
    definition: str  # pg_get_constraintdef(), e.g. FOREIGN KEY (user_id) REFERENCES users(id)


class MovedObject(BaseModel):
    """A table, type or domain moved into the quarantine schema, and where it came from."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["table", "type", "domain", "view", "materialized view", "sequence"]
    name: str  # before: public.api_errors
    moved: str  # after: rollbot_quarantine_0023_16390.api_errors


class Quarantine(BaseModel):
    """Where a quarantined rollback puts what it would have dropped, and what that costs."""

    model_config = ConfigDict(frozen=True)

    schema_name: str
    objects: tuple[MovedObject, ...]
    keys: tuple[KeptKey, ...]  # dropped foreign keys, added again by a restore
    size_bytes: int | None  # pg_total_relation_size of the moved tables, at plan time

    def tables(self) -> tuple[MovedObject, ...]:
        """The moved tables (not their types)."""
        return tuple(o for o in self.objects if o.kind == "table")


def schema_name(migration_id: str, facts: Facts) -> str:
    """`rollbot_quarantine_0023_16390`: one schema per rollback, known before the run exists.

    The lowest oid among the dropped tables makes it unique: a moved table keeps its oid, so
    no two quarantines that exist at once can share it, and the plan stays a pure function of
    the facts (a preview and the approved plan name the same schema).
    """
    oids = [f.oid for f in facts.objects if _moves_table(f) and f.oid is not None]
    suffix = f"_{min(oids)}" if oids else ""
    digits = "".join(c for c in migration_id if c.isalnum()) or "run"
    return f"{QUARANTINE_PREFIX}{digits}{suffix}"


def _moves_table(found: Found) -> bool:
    return found.exists and found.actual_kind is None and found.kind is ObjectKind.TABLE


def _relname(name: str) -> str:
    return quote_ident(split_qualified(name)[1])


class QuarantineScript(BaseModel):
    """The runbook's statements as a quarantined rollback sends them, and what they move."""

    model_config = ConfigDict(frozen=True)

    quarantine: Quarantine | None  # None: nothing to move, the statements run as written
    create: str | None  # CREATE SCHEMA, sent before the first statement
    statements: tuple[str, ...]
    blockers: tuple[str, ...]


def quarantine_script(runbook: Runbook, facts: Facts) -> QuarantineScript:
    """Each statement that drops a table, type or domain becomes a move into the quarantine.

    Indexes and constraints a runbook drops from a table that is moved stay on it (so a move
    back is exact); foreign keys between a moved table and one that stays are dropped, their
    definitions kept. Other statements run as written. A statement mixing both (an index of a
    moved table and one of a table that stays) cannot be split safely and blocks the plan.
    """
    sq = schema_name(runbook.migration_id, facts)
    walk = _Walk(
        schema=sq,
        moved_tables={f.oid for f in facts.objects if _moves_table(f) and f.oid is not None},
        keys={k.oid: k for k in facts.quarantine_keys},
    )
    statements: list[str] = []
    blockers: list[str] = []
    for statement in runbook.statements:
        found = [facts.found(statement.number, i) for i in range(len(statement.objects))]
        existing = [f for f in found if f.exists and f.actual_kind is None]
        parts: list[str] = []
        others: list[Found] = []
        for f in existing:
            sql = walk.aside(f)
            if sql is None:
                others.append(f)
            else:
                parts += sql
        if not existing or len(others) == len(existing):
            statements.append(statement.sql)
        elif others:
            statements.append(statement.sql)
            blockers.append(
                f"{runbook.file}:{statement.line}: this statement drops "
                f"{', '.join(o.name for o in others)} together with objects quarantine mode "
                "moves aside; split it into one statement each, or use ROLLBOT_DROP_MODE=drop"
            )
        else:
            statements.append(";\n".join(parts) if parts else _kept(statement.sql))
    blockers += [
        f"{name} is partitioned, a partition or part of an inheritance tree: moving it aside "
        "would move that one table, not its partitions or children (their rows would stay "
        "in the application's schema, or leave with the wrong table); roll it back with "
        "ROLLBOT_DROP_MODE=drop"
        for name in facts.quarantine_unmovable
    ]
    if walk.objects and sq in facts.quarantine_schemas:
        blockers.append(
            f"a schema named {sq} already exists, and quarantine mode would create it for "
            "this rollback's tables; no quarantine of rollbot's has that name while these "
            "tables are outside it, so something else made it: rename or drop that schema, "
            "then plan again"
        )
    if not walk.objects:
        return QuarantineScript(
            quarantine=None, create=None, statements=tuple(statements), blockers=tuple(blockers)
        )
    size = facts.quarantine_bytes
    quarantine = Quarantine(
        schema_name=sq,
        objects=tuple(walk.objects),
        keys=tuple(walk.keys[oid] for oid in sorted(walk.dropped_keys)),
        size_bytes=size,
    )
    return QuarantineScript(
        quarantine=quarantine,
        create=f"CREATE SCHEMA {sq}",
        statements=tuple(statements),
        blockers=tuple(blockers),
    )


def create_quarantine_sql(schema_name: str) -> str:
    """The quarantine schema, reachable by rollbot's role alone whatever default privileges say.

    `ALTER DEFAULT PRIVILEGES … ON SCHEMAS` would otherwise hand an application role USAGE on
    it, and the moved tables keep their grants: the application could go on writing rows the
    final backup and a purge know nothing of.
    """
    literal = quote_literal(schema_name)
    return (
        f"CREATE SCHEMA {schema_name};\n"
        "DO $private$ DECLARE r record; BEGIN\n"
        "  FOR r IN SELECT a.grantee FROM pg_catalog.pg_namespace n,"
        " pg_catalog.aclexplode(n.nspacl) a\n"
        f"    WHERE n.nspname = {literal} AND a.grantee <> n.nspowner LOOP\n"
        "    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM %s', "
        f"{literal}, CASE WHEN r.grantee = 0 THEN 'PUBLIC'"
        " ELSE r.grantee::regrole::text END);\n"
        "  END LOOP;\n"
        "END $private$"
    )


def _kept(sql: str) -> str:
    """A statement whose objects all stay on a moved table: it sends nothing that changes."""
    one_line = " ".join(sql.split())
    # Dollar-quoted under a tag the text does not hold: no setting can make it end early.
    tag = "$kept$"
    while tag in one_line:
        tag = f"${tag.strip('$')}_$"
    return f"SELECT {tag}kept in quarantine: {one_line}{tag}"


_ALONE: dict[ObjectKind, Literal["view", "materialized view", "sequence"]] = {
    ObjectKind.VIEW: "view",
    ObjectKind.MATERIALIZED_VIEW: "materialized view",
    ObjectKind.SEQUENCE: "sequence",
}


@dataclass
class _Walk:
    """What the statements have moved and dropped so far, as the walk goes."""

    schema: str
    moved_tables: set[int]
    keys: dict[int, KeptKey]
    dropped_keys: set[int] = field(default_factory=set)
    objects: list[MovedObject] = field(default_factory=list)

    def aside(self, f: Found) -> list[str] | None:
        """The SQL setting `f` aside; [] when it moves with its table; None: not quarantined."""
        sq = self.schema
        if f.kind is ObjectKind.TABLE and f.oid in self.moved_tables:
            sql = [
                self._drop_key(key)
                for key in self.keys.values()
                if key.oid not in self.dropped_keys and f.name in {key.table, key.parent}
            ]
            sql.append(f"ALTER TABLE {f.name} SET SCHEMA {sq}")
            self.objects.append(
                MovedObject(kind="table", name=f.name, moved=f"{sq}.{_relname(f.name)}")
            )
            return sql
        if f.kind in {ObjectKind.TYPE, ObjectKind.DOMAIN}:
            kind: Literal["type", "domain"] = "type" if f.kind is ObjectKind.TYPE else "domain"
            self.objects.append(
                MovedObject(kind=kind, name=f.name, moved=f"{sq}.{_relname(f.name)}")
            )
            return [f"ALTER {kind.upper()} {f.name} SET SCHEMA {sq}"]
        if f.kind in _ALONE:
            # A view is moved, not dropped, so a move back gives it again (it holds no rows).
            # A sequence: a moved table's default may still use it; one its table owns has
            # moved with that table already (and cannot move alone): IF EXISTS, a no-op then.
            alone = _ALONE[f.kind]
            self.objects.append(
                MovedObject(kind=alone, name=f.name, moved=f"{sq}.{_relname(f.name)}")
            )
            exists = " IF EXISTS" if alone == "sequence" else ""
            return [f"ALTER {alone.upper()}{exists} {f.name} SET SCHEMA {sq}"]
        if f.kind is ObjectKind.CONSTRAINT and f.oid in self.keys:
            return [] if f.oid in self.dropped_keys else [self._drop_key(self.keys[f.oid])]
        on_moved = f.table is not None and f.table.oid in self.moved_tables
        if f.kind in {ObjectKind.INDEX, ObjectKind.CONSTRAINT} and on_moved:
            return []
        return None

    def _drop_key(self, key: KeptKey) -> str:
        self.dropped_keys.add(key.oid)
        return _drop_key(key)


def _drop_key(key: KeptKey) -> str:
    # The definition rides along as a comment: it is in the SQL, so the hash covers it.
    return (
        f"-- kept for restore: {' '.join(key.definition.split())}\n"
        f"ALTER TABLE {key.table} DROP CONSTRAINT {quote_ident(key.name)}"
    )


def move_back_sql(quarantine: Quarantine) -> list[str]:
    """The restore of a quarantine: tables and types back, foreign keys added again, validated.

    Types first (the tables' columns use them), then the tables, then the foreign keys with a
    plain ADD CONSTRAINT: it checks every row in the same transaction, so a parent row deleted
    since the rollback fails the restore (and rolls it back) instead of leaving a key that lies.
    """
    sql = [
        f"ALTER {o.kind.upper()} {o.moved} SET SCHEMA {quote_ident(split_qualified(o.name)[0])}"
        for o in quarantine.objects
        if o.kind not in {"table", "sequence"}
    ]
    sql += [
        f"ALTER TABLE {o.moved} SET SCHEMA {quote_ident(split_qualified(o.name)[0])}"
        for o in quarantine.tables()
    ]
    # After the tables: a sequence one of them owns has just moved back with it.
    sql += [
        f"ALTER SEQUENCE IF EXISTS {o.moved} SET SCHEMA {quote_ident(split_qualified(o.name)[0])}"
        for o in quarantine.objects
        if o.kind == "sequence"
    ]
    sql += [
        f"ALTER TABLE {k.table} ADD CONSTRAINT {quote_ident(k.name)} {k.definition}"
        for k in quarantine.keys
    ]
    sql.append(f"DROP SCHEMA {quarantine.schema_name}")
    return sql


def purge_sql(quarantine: Quarantine) -> list[str]:
    """Dropping a quarantine for good, without CASCADE: anything else depending on it fails it."""
    views = {"view", "materialized view"}
    tables = [o.moved for o in quarantine.tables()]
    # Views first (they read the tables), then the tables, then the types their columns use.
    sql = [f"DROP {o.kind.upper()} {o.moved}" for o in quarantine.objects if o.kind in views]
    sql += [f"DROP TABLE {', '.join(tables)}"] if tables else []
    sql += [
        f"DROP SEQUENCE IF EXISTS {o.moved}" for o in quarantine.objects if o.kind == "sequence"
    ]
    sql += [
        f"DROP {o.kind.upper()} {o.moved}"
        for o in quarantine.objects
        if o.kind not in views and o.kind not in {"table", "sequence"}
    ]
    sql.append(f"DROP SCHEMA {quarantine.schema_name}")
    return sql


def format_bytes(size: int | None) -> str:
    """`1.2 GB`, `340 kB`: what a quarantine holds on disk, as people read it."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":  # noqa: PLR2004 - one unit to the next
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop always returns
