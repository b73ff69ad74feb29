"""Reads the facts a plan is built on from PostgreSQL's catalogs.

Objects are resolved the way PostgreSQL will resolve them when the statement runs (through
the search path, with the same quoting), so "exists" here means "the DROP will find it".
Dependents come from pg_depend: anything with a normal dependency on a dropped object would
make the DROP fail (RESTRICT) unless the runbook removes it first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, LiteralString, cast

import psycopg
from psycopg import sql

from bot.core.cascade import changed_tables
from bot.core.facts import (
    Descendant,
    EventTrigger,
    Facts,
    ForeignKey,
    Found,
    Reference,
    RowCount,
    Rule,
    Table,
    Target,
    Trigger,
)
from bot.core.sql import DbObject, ObjectKind

if TYPE_CHECKING:
    from datetime import timedelta

    from bot.core.functions import Volatility
    from bot.core.runbook import Runbook

_RELKINDS = {
    "r": ObjectKind.TABLE,
    "p": ObjectKind.TABLE,
    "i": ObjectKind.INDEX,
    "I": ObjectKind.INDEX,
    "S": ObjectKind.SEQUENCE,
    "v": ObjectKind.VIEW,
    "m": ObjectKind.MATERIALIZED_VIEW,
    "f": "foreign table",
    "c": "composite type",
}
_RELATION_KINDS = {
    ObjectKind.TABLE,
    ObjectKind.INDEX,
    ObjectKind.SEQUENCE,
    ObjectKind.VIEW,
    ObjectKind.MATERIALIZED_VIEW,
}
# Schemas whose tables are not the application's: never counted, compared or backed up.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

_QUALIFY = """CASE WHEN %(ns)s::text IS NULL THEN quote_ident(%(name)s)
    ELSE quote_ident(%(ns)s) || '.' || quote_ident(%(name)s) END"""

_RELATION = f"""
SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), c.relkind, c.reltype,
       t.oid, CASE WHEN t.oid IS NOT NULL THEN format('%%I.%%I', tn.nspname, t.relname) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = coalesce(i.indrelid, CASE WHEN c.relkind IN ('r', 'p')
    THEN c.oid END)
LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE c.oid = to_regclass({_QUALIFY})
"""
_TYPE = f"""
SELECT t.oid, format('%%I.%%I', n.nspname, t.typname), t.typtype,
       (SELECT relkind FROM pg_class WHERE oid = t.typrelid)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = to_regtype({_QUALIFY})
"""
_FK_PARENTS = """
SELECT DISTINCT p.oid, format('%%I.%%I', n.nspname, p.relname)
FROM pg_constraint k JOIN pg_class p ON p.oid = k.confrelid
JOIN pg_namespace n ON n.oid = p.relnamespace
WHERE k.contype = 'f' AND k.conrelid = %(table)s AND k.confrelid <> k.conrelid
  AND (%(constraint)s::oid IS NULL OR k.oid = %(constraint)s)
  AND (%(attnum)s::int IS NULL OR %(attnum)s = ANY (k.conkey))
ORDER BY 2
"""
_DEPENDENTS = """
SELECT d.classid::int, d.objid::int, d.objsubid,
       pg_describe_object(d.classid, d.objid, d.objsubid),
       CASE d.classid
         WHEN 'pg_class'::regclass THEN ARRAY[d.objid,
              (SELECT indrelid FROM pg_index WHERE indexrelid = d.objid)]
         WHEN 'pg_constraint'::regclass THEN ARRAY[d.objid,
              (SELECT conrelid FROM pg_constraint WHERE oid = d.objid),
              (SELECT contypid FROM pg_constraint WHERE oid = d.objid)]
         WHEN 'pg_rewrite'::regclass THEN ARRAY[
              (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)]
         WHEN 'pg_attrdef'::regclass THEN ARRAY[
              (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)]
         WHEN 'pg_trigger'::regclass THEN ARRAY[
              (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)]
         WHEN 'pg_type'::regclass THEN ARRAY[d.objid,
              (SELECT typrelid FROM pg_type WHERE oid = d.objid)]
         ELSE ARRAY[d.objid]
       END::int[],
       CASE WHEN d.classid = 'pg_class'::regclass AND d.objsubid > 0
              THEN ARRAY[d.objid::int, d.objsubid]
            WHEN d.classid = 'pg_attrdef'::regclass
              THEN (SELECT ARRAY[adrelid::int, adnum::int] FROM pg_attrdef WHERE oid = d.objid)
       END
FROM pg_depend d
WHERE d.refclassid = %(class)s::regclass AND d.refobjid = %(oid)s
  AND (%(sub)s = 0 OR d.refobjsubid = %(sub)s)
  AND d.deptype = 'n'
UNION ALL
SELECT 'pg_constraint'::regclass::int, k.oid::int, 0, pg_describe_object(
         'pg_constraint'::regclass, k.oid, 0) || ' (the index belongs to it)',
       ARRAY[k.oid, k.conrelid]::int[], NULL
FROM pg_constraint k
WHERE %(class)s::text = 'pg_class' AND k.conindid = %(oid)s AND k.contype IN ('p', 'u', 'x')
"""


# Tables a DELETE on `start` can reach: through foreign keys whose actions change rows, and to
# partitions and inheritance children. UNION (not ALL) ends the recursion on cycles.
_REACHABLE = """
WITH RECURSIVE edge (parent, child) AS (
    SELECT confrelid, conrelid FROM pg_constraint
    WHERE contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))
    UNION ALL
    SELECT inhparent, inhrelid FROM pg_inherits
), reach (oid) AS (
    SELECT unnest(%(start)s::oid[])
    UNION
    SELECT e.child FROM edge e JOIN reach r ON e.parent = r.oid
)
SELECT array_agg(oid) FROM reach
"""
_NAME = "format('%%I.%%I', {ns}.nspname, {rel}.relname)"
_COLUMNS = """ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY AS u (n, i)
    JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = u.n ORDER BY u.i)"""
_FOREIGN_KEYS = f"""
SELECT k.conname, k.conrelid, {_NAME.format(ns="cn", rel="c")},
       k.confrelid, {_NAME.format(ns="pn", rel="p")},
       {_COLUMNS.format(keys="k.conkey", rel="k.conrelid")},
       {_COLUMNS.format(keys="k.confkey", rel="k.confrelid")},
       k.confdeltype, k.confupdtype, {{delete_sets}}
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND k.confrelid = ANY (%(tables)s::oid[])
  AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
ORDER BY 3, 1
"""
_DELETE_SETS = _COLUMNS.format(keys="k.confdelsetcols", rel="k.conrelid")  # PostgreSQL 15+
_DESCENDANTS = f"""
SELECT i.inhparent, {_NAME.format(ns="pn", rel="p")}, i.inhrelid,
       {_NAME.format(ns="cn", rel="c")}, p.relkind = 'p'
FROM pg_inherits i
JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE i.inhparent = ANY (%(tables)s::oid[])
ORDER BY 4
"""
# User-defined triggers that fire (tgenabled 'D' is disabled); foreign keys' own are internal.
_TRIGGERS = f"""
SELECT t.tgname, t.tgrelid, {_NAME.format(ns="n", rel="c")}, t.tgtype::int,
       t.tgfoid::regprocedure::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgrelid = ANY (%(tables)s::oid[])
ORDER BY 3, 1
"""
_RULES = f"""
SELECT r.rulename, r.ev_class, {_NAME.format(ns="n", rel="c")}, r.ev_type
FROM pg_rewrite r
JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN' AND r.ev_enabled <> 'D' AND r.ev_class = ANY (%(tables)s::oid[])
ORDER BY 3, 1
"""
_EVENT_TRIGGERS = """
SELECT evtname, evtevent, coalesce(evttags, '{}')::text[], evtfoid::regprocedure::text
FROM pg_event_trigger WHERE evtenabled <> 'D' ORDER BY 1
"""
# pg_trigger.tgtype bits, from PostgreSQL's trigger.h.
_TRIGGER_EVENTS: tuple[tuple[int, Literal["INSERT", "DELETE", "UPDATE", "TRUNCATE"]], ...] = (
    (1 << 2, "INSERT"),
    (1 << 3, "DELETE"),
    (1 << 4, "UPDATE"),
    (1 << 5, "TRUNCATE"),
)
_RULE_EVENTS: dict[str, Literal["INSERT", "DELETE", "UPDATE"]] = {
    "2": "UPDATE",
    "3": "INSERT",
    "4": "DELETE",
}


def describe_target(conn: psycopg.Connection[Any], name: str = "default") -> Target:
    """Host, database and server version of a connection, without its password."""
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    number = row[0] if row else 0
    info = conn.info
    return Target(
        name=name,
        host=info.host or "",
        port=info.port or None,
        dbname=info.dbname,
        user=info.user or None,
        server_version=f"{number // 10000}.{number % 100}",
        server_major=number // 10000,
    )


def read_facts(
    conn: psycopg.Connection[Any],
    runbook: Runbook,
    target: Target,
    *,
    count_budget: timedelta | None = None,
) -> Facts:
    """Resolve every object the runbook names; count rows only when a budget is given.

    Runs in the connection's current transaction; counting sets a statement_timeout that
    lasts until the transaction ends, so the caller's transaction should end right after.
    """
    found: list[Found] = []
    references: list[Reference] = []
    for statement in runbook.statements:
        for position, obj in enumerate(statement.objects):
            item = _resolve(conn, obj, statement.number, position)
            found.append(item)
            if item.exists and item.actual_kind is None:
                references += _references(conn, item)
    counted, missing = _counted(conn, runbook.settings.count)
    facts = Facts(
        target=target,
        objects=tuple(found),
        references=tuple(references),
        counted=counted,
        missing_counted=missing,
        functions=_volatility(conn, [n for s in runbook.statements for n in s.functions]),
        **_cascade_facts(conn, found),
    )
    if count_budget is None:
        return facts
    tables = {
        f.table.name: f.table
        for f in found
        if f.exists and f.table and f.kind in {ObjectKind.TABLE, ObjectKind.ROWS}
    }
    tables |= {t.name: t for t in changed_tables(facts)}
    rows = [_count(conn, table, count_budget) for table in tables.values()]
    return facts.model_copy(update={"rows": tuple(rows)})


def _cascade_facts(conn: psycopg.Connection[Any], found: list[Found]) -> dict[str, Any]:
    """Foreign-key actions, descendants, triggers and rules around the tables the rows change of.

    Only what a DELETE of theirs can reach is read (the walk itself is the core's), so a
    foreign key elsewhere in the database neither costs a query nor voids an approval.
    """
    changes = {ObjectKind.ROWS, ObjectKind.COLUMN}  # a dropped column leaves descendants too
    start = sorted({f.table.oid for f in found if f.exists and f.kind in changes and f.table})
    row = conn.execute(_REACHABLE, {"start": start}).fetchone() if start else None
    tables = {"tables": [int(oid) for oid in (row[0] if row and row[0] else [])]}
    fks: list[ForeignKey] = []
    descendants: list[Descendant] = []
    triggers: list[Trigger] = []
    rules: list[Rule] = []
    if tables["tables"]:
        newer = conn.info.server_version >= 150000  # noqa: PLR2004 - ON DELETE SET NULL (cols)
        query = _FOREIGN_KEYS.format(delete_sets=_DELETE_SETS if newer else "'{}'::text[]")
        for name, coid, cname, poid, pname, cols, refs, on_delete, on_update, sets in conn.execute(
            query, tables
        ).fetchall():
            fks.append(
                ForeignKey(
                    name=name,
                    child=Table(oid=coid, name=cname),
                    parent=Table(oid=poid, name=pname),
                    columns=tuple(cols),
                    referenced=tuple(refs),
                    on_delete=on_delete,
                    on_update=on_update,
                    delete_sets=tuple(sets),
                )
            )
        descendants = [
            Descendant(
                parent=Table(oid=poid, name=pname),
                child=Table(oid=coid, name=cname),
                partition=partition,
            )
            for poid, pname, coid, cname, partition in conn.execute(_DESCENDANTS, tables)
        ]
        triggers = [
            Trigger(
                name=name,
                table=Table(oid=oid, name=table),
                events=tuple(event for bit, event in _TRIGGER_EVENTS if tgtype & bit),
                function=function,
            )
            for name, oid, table, tgtype, function in conn.execute(_TRIGGERS, tables)
        ]
        rules = [
            Rule(name=name, table=Table(oid=oid, name=table), event=_RULE_EVENTS[ev_type])
            for name, oid, table, ev_type in conn.execute(_RULES, tables)
            if ev_type in _RULE_EVENTS
        ]
    event_triggers = [
        EventTrigger(name=name, event=event, tags=tuple(tags), function=function)
        for name, event, tags, function in conn.execute(_EVENT_TRIGGERS)
    ]
    return {
        "foreign_keys": tuple(fks),
        "descendants": tuple(descendants),
        "triggers": tuple(triggers),
        "rules": tuple(rules),
        "event_triggers": tuple(event_triggers),
    }


_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


def _volatility(conn: psycopg.Connection[Any], names: list[str]) -> dict[str, Volatility | None]:
    """What the catalog says of each called function; the most volatile overload counts.

    An unqualified name is looked up where the server would look: the schemas of the search
    path, pg_catalog included.
    """
    found: dict[str, Volatility | None] = {}
    for name in dict.fromkeys(names):
        schema, _, bare = name.rpartition(".")
        row = conn.execute(
            "SELECT max(p.provolatile) FROM pg_catalog.pg_proc AS p"
            " JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace"
            " WHERE p.proname = %s"
            " AND (n.nspname = %s OR (%s = '' AND n.nspname = ANY (current_schemas(true))))",
            (bare, schema, schema),  # the parser has already folded unquoted names
        ).fetchone()
        code = row[0] if row else None
        found[name] = cast("Volatility", _VOLATILITY[code]) if code else None
    return found


def _resolve(conn: psycopg.Connection[Any], obj: DbObject, number: int, position: int) -> Found:
    absent = Found(
        statement=number,
        position=position,
        kind=obj.kind,
        name=f"{obj.namespace}.{obj.name}" if obj.namespace else obj.name,
        exists=False,
    )
    if obj.kind in _RELATION_KINDS:
        return _resolve_relation(conn, obj, absent)
    if obj.kind in {ObjectKind.TYPE, ObjectKind.DOMAIN}:
        return _resolve_type(conn, obj, absent)
    table = _relation(conn, obj.table_namespace, obj.table or "")
    if table is None or table[2] not in {"r", "p"}:
        return absent
    owner = Table(oid=table[0], name=table[1])
    if obj.kind is ObjectKind.ROWS:
        return absent.model_copy(
            update={"exists": True, "oid": owner.oid, "name": owner.name, "table": owner}
        )
    return _resolve_part(conn, obj, owner, absent)


_PART_QUERIES: dict[ObjectKind, LiteralString] = {
    ObjectKind.CONSTRAINT: "SELECT oid FROM pg_constraint WHERE conrelid = %s AND conname = %s",
    ObjectKind.COLUMN: "SELECT attnum FROM pg_attribute WHERE attrelid = %s AND attname = %s"
    " AND attnum > 0 AND NOT attisdropped",
}


def _resolve_part(
    conn: psycopg.Connection[Any], obj: DbObject, owner: Table, absent: Found
) -> Found:
    """A constraint or column of `owner`, with the tables whose foreign keys go with it."""
    constraint = obj.kind is ObjectKind.CONSTRAINT
    label = f"{obj.name} on {owner.name}" if constraint else f"{owner.name}.{obj.name}"
    named = absent.model_copy(update={"name": label})
    row = conn.execute(_PART_QUERIES[obj.kind], (owner.oid, obj.name)).fetchone()
    if row is None:
        return named
    which = {"constraint": row[0]} if constraint else {"attnum": row[0]}
    update: dict[str, Any] = {"exists": True, "table": owner, "oid": owner.oid}
    update |= {"oid": row[0]} if constraint else {"attnum": row[0]}
    return named.model_copy(update={**update, "fk_parents": _fk_parents(conn, owner.oid, **which)})


def _relation(
    conn: psycopg.Connection[Any], namespace: str | None, name: str
) -> tuple[int, str, str, int, int | None, str | None] | None:
    return conn.execute(_RELATION, {"ns": namespace, "name": name}).fetchone()


def _resolve_relation(conn: psycopg.Connection[Any], obj: DbObject, absent: Found) -> Found:
    row = _relation(conn, obj.namespace, obj.name)
    if row is None:
        return absent
    oid, name, relkind, _, table_oid, table_name = row
    actual = _RELKINDS.get(relkind, relkind)
    table = Table(oid=table_oid, name=table_name) if table_oid and table_name else None
    parents = _fk_parents(conn, oid) if obj.kind is ObjectKind.TABLE else ()
    return _found(absent, obj, oid, name, actual, table=table, fk_parents=parents)


def _resolve_type(conn: psycopg.Connection[Any], obj: DbObject, absent: Found) -> Found:
    row = conn.execute(_TYPE, {"ns": obj.namespace, "name": obj.name}).fetchone()
    if row is None:
        return absent
    oid, name, typtype, relkind = row
    actual: str = ObjectKind.TYPE
    if typtype == "d":
        actual = ObjectKind.DOMAIN
    elif typtype == "c" and relkind != "c":
        actual = "table row type"
    return _found(absent, obj, oid, name, actual)


def _found(
    absent: Found,
    obj: DbObject,
    oid: int,
    name: str,
    actual: str,
    **more: object,
) -> Found:
    """The object as the catalog has it; `actual_kind` only when it is not what was named."""
    kind = None if actual == obj.kind else str(actual)
    return absent.model_copy(
        update={"exists": True, "oid": oid, "name": name, "actual_kind": kind, **more}
    )


def _fk_parents(
    conn: psycopg.Connection[Any],
    table: int,
    *,
    constraint: int | None = None,
    attnum: int | None = None,
) -> tuple[Table, ...]:
    rows = conn.execute(
        _FK_PARENTS, {"table": table, "constraint": constraint, "attnum": attnum}
    ).fetchall()
    return tuple(Table(oid=oid, name=name) for oid, name in rows)


def _references(conn: psycopg.Connection[Any], found: Found) -> list[Reference]:
    if found.kind in _RELATION_KINDS or found.kind is ObjectKind.COLUMN:
        klass, sub = "pg_class", found.attnum or 0
    elif found.kind in {ObjectKind.TYPE, ObjectKind.DOMAIN}:
        klass, sub = "pg_type", 0
    elif found.kind is ObjectKind.CONSTRAINT:
        klass, sub = "pg_constraint", 0
    else:
        return []
    rows = conn.execute(_DEPENDENTS, {"class": klass, "oid": found.oid, "sub": sub}).fetchall()
    return [
        Reference(
            statement=found.statement,
            position=found.position,
            dependent=description,
            identity=f"{classid}:{objid}:{objsubid}",
            owners=tuple(o for o in owners if o),
            owner_column=(column[0], column[1]) if column else None,
        )
        for classid, objid, objsubid, description, owners, column in rows
    ]


def _counted(
    conn: psycopg.Connection[Any], names: tuple[str, ...]
) -> tuple[tuple[Table, ...], tuple[str, ...]]:
    tables: list[Table] = []
    missing: list[str] = []
    for name in names:
        row = conn.execute(
            "SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (name,),
        ).fetchone()
        if row is None:
            missing.append(name)
        else:
            tables.append(Table(oid=row[0], name=row[1]))
    return tuple(tables), tuple(missing)


def _count(conn: psycopg.Connection[Any], table: Table, budget: timedelta) -> RowCount:
    """Exact count if it finishes within the budget, else the planner's estimate."""
    milliseconds = max(int(budget.total_seconds() * 1000), 1)
    try:
        with conn.transaction():
            previous = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(milliseconds),))
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table.name))
            ).fetchone()
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (previous[0] if previous else "0",),
            )
        return RowCount(table=table.name, rows=row[0] if row else 0, exact=True)
    except psycopg.errors.QueryCanceled:
        row = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (table.oid,))
        estimate = row.fetchone()
        rows = estimate[0] if estimate and estimate[0] >= 0 else None
        return RowCount(table=table.name, rows=rows, exact=False)


def relations(
    conn: psycopg.Connection[Any], exclude_schemas: tuple[str, ...] = ()
) -> dict[int, str]:
    """Every table, view and materialized view of the application, by oid."""
    rows = conn.execute(
        "SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND NOT n.nspname = ANY (%s)"
        " AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'",
        ([*SYSTEM_SCHEMAS, *exclude_schemas],),
    ).fetchall()
    return dict(rows)
