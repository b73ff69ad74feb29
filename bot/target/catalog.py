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
    Code,
    Descendant,
    EventTrigger,
    Facts,
    ForeignKey,
    Found,
    Hook,
    NullCount,
    Reference,
    Relation,
    RowCount,
    Rule,
    SequenceState,
    Table,
    Target,
    Trigger,
    Via,
)
from bot.core.names import quote_ident
from bot.core.quarantine import QUARANTINE_LIKE, KeptKey
from bot.core.sql import DbObject, ObjectKind, SequenceChange
from bot.target.unfit import count_unfit
from bot.target.violations import count_violations

if TYPE_CHECKING:
    from datetime import timedelta

    from bot.core.functions import Volatility
    from bot.core.runbook import Runbook
    from bot.core.sql import Statement

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
              (SELECT indrelid FROM pg_index WHERE indexrelid = d.objid),
              (SELECT o.refobjid FROM pg_depend o WHERE o.classid = 'pg_class'::regclass
                 AND o.objid = d.objid AND o.refclassid = 'pg_class'::regclass
                 AND o.deptype IN ('a', 'i') AND o.refobjsubid > 0 LIMIT 1)]
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


# Code PostgreSQL ships: pg_catalog's functions created with the server (FirstNormalObjectId).
_BUILTIN = "({p}.pronamespace = 'pg_catalog'::regnamespace AND {p}.oid < 16384)"
_CODE = (
    "format('%%I.%%I(%%s)', {n}.nspname, {p}.proname, pg_get_function_identity_arguments({p}.oid)),"
    f" {_BUILTIN}, {{p}}.provolatile"
)
_CODE_TEXT = (
    "format('%%I.%%I(%%s)', {n}.nspname, {p}.proname, pg_get_function_identity_arguments({p}.oid)),"
    f" {_BUILTIN}::text, {{p}}.provolatile::text"
)
_VISIBLE = (
    "({n}.nspname = %(schema)s OR (%(schema)s = '' AND {n}.nspname = ANY (current_schemas(true))))"
)
_USER_FUNCTIONS = f"""
SELECT {_CODE.format(p="p", n="n")}
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = %(name)s AND {_VISIBLE.format(n="n")} AND NOT {_BUILTIN.format(p="p")}
ORDER BY 1
"""
_OPERATORS = f"""
SELECT format('operator %%I.%%s(%%s, %%s)', n.nspname, o.oprname,
              CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END,
              format_type(o.oprright, NULL)),
       {_CODE.format(p="p", n="pn")}
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc p ON p.oid IN (o.oprcode, o.oprrest, o.oprjoin)
JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE o.oprname = %(name)s AND {_VISIBLE.format(n="n")} AND NOT {_BUILTIN.format(p="p")}
ORDER BY 1, 2
"""


def _calls_in(tree: str, depender: str, objid: str) -> str:
    """The functions a stored expression calls: its node tree's function and operator ids.

    pg_depend alone would miss PostgreSQL's own functions (dependencies on pinned objects are
    not recorded), and nextval() in a default matters as much as a user's function.
    """
    return f"""
    SELECT CASE WHEN m[1] = 'opno' THEN (SELECT oprcode::oid FROM pg_operator
                                         WHERE oid = m[2]::oid)
                ELSE m[2]::oid END
    FROM regexp_matches(coalesce({tree}, ''), ':(funcid|opfuncid|opno) ([0-9]+)', 'g') AS m
    UNION
    SELECT refobjid FROM pg_depend
    WHERE classid = '{depender}'::regclass AND objid = {objid} AND refclassid = 'pg_proc'::regclass
    """


# What a cast to a type may run: a cast function into it (from whatever the value's type is:
# rollbot does not resolve expression types), its input and typmod functions, and the CHECK
# constraints of a domain, down its base types.
_CASTS = f"""
WITH RECURSIVE target (oid) AS (
    SELECT to_regtype(%(type)s)
), base (oid) AS (
    SELECT oid FROM target WHERE oid IS NOT NULL
    UNION
    SELECT t.typbasetype FROM pg_type t JOIN base b ON t.oid = b.oid WHERE t.typtype = 'd'
), via (what, fn) AS (
    SELECT format('the cast (%%s AS %%s)', format_type(c.castsource, NULL),
                  format_type(c.casttarget, NULL)), c.castfunc
    FROM pg_cast c WHERE c.casttarget = (SELECT oid FROM target) AND c.castfunc <> 0
    UNION ALL
    SELECT format('the input function of %%s', format_type(t.oid, NULL)), t.typinput::oid
    FROM pg_type t WHERE t.oid = (SELECT oid FROM target)
    UNION ALL
    SELECT format('the type modifier function of %%s', format_type(t.oid, NULL)), t.typmodin::oid
    FROM pg_type t WHERE t.oid = (SELECT oid FROM target) AND t.typmodin <> 0
    UNION ALL
    SELECT format('domain constraint %%I of %%s', k.conname, format_type(k.contypid, NULL)), f.fn
    FROM pg_constraint k JOIN base b ON k.contypid = b.oid
    CROSS JOIN LATERAL ({_calls_in("k.conbin::text", "pg_constraint", "k.oid")}) AS f (fn)
)
SELECT via.what, {_CODE.format(p="p", n="n")}
FROM via JOIN pg_proc p ON p.oid = via.fn JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE NOT {_BUILTIN.format(p="p")} OR p.provolatile = 'v'
ORDER BY 1, 2
"""
_IMPLICIT_CASTS = f"""
SELECT format('the implicit cast (%%s AS %%s)', format_type(c.castsource, NULL),
              format_type(c.casttarget, NULL)),
       {_CODE.format(p="p", n="n")}
FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE c.castcontext = 'i' AND NOT {_BUILTIN.format(p="p")}
ORDER BY 1
"""


_HOOKS = f"""
WITH RECURSIVE domain_of (relid, col, typ) AS (
    SELECT a.attrelid, a.attname::text, a.atttypid
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = ANY (%(tables)s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      AND t.typtype = 'd'
    UNION
    SELECT d.relid, d.col, t.typbasetype FROM domain_of d JOIN pg_type t ON t.oid = d.typ
    WHERE t.typtype = 'd'
), hook (relid, kind, name, col, applies, fn) AS (
    SELECT d.adrelid, CASE WHEN a.attgenerated = '' THEN 'column default'
                           ELSE 'generated column' END,
           a.attname::text, a.attname::text, true, f.fn
    FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    CROSS JOIN LATERAL ({_calls_in("d.adbin::text", "pg_attrdef", "d.oid")}) AS f (fn)
    WHERE d.adrelid = ANY (%(tables)s::oid[])
    UNION ALL
    SELECT k.conrelid, 'CHECK constraint', k.conname::text, NULL, true, f.fn
    FROM pg_constraint k
    CROSS JOIN LATERAL ({_calls_in("k.conbin::text", "pg_constraint", "k.oid")}) AS f (fn)
    WHERE k.contype = 'c' AND k.conrelid = ANY (%(tables)s::oid[])
    UNION ALL
    SELECT d.relid, 'domain constraint', format('%%I of %%s', k.conname,
           format_type(k.contypid, NULL)), d.col, true, f.fn
    FROM domain_of d JOIN pg_constraint k ON k.contypid = d.typ
    CROSS JOIN LATERAL ({_calls_in("k.conbin::text", "pg_constraint", "k.oid")}) AS f (fn)
    UNION ALL
    SELECT i.indrelid, 'index', format('%%I.%%I', n.nspname, c.relname), NULL, true, f.fn
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        {
    _calls_in(
        "coalesce(i.indexprs::text, '') || ' ' || coalesce(i.indpred::text, '')",
        "pg_class",
        "i.indexrelid",
    )
}
        UNION  -- the operator classes' support functions, and an exclusion constraint's operators
        SELECT ap.amproc::oid FROM unnest(i.indclass::oid[]) AS oc (oid)
        JOIN pg_opclass o ON o.oid = oc.oid JOIN pg_amproc ap ON ap.amprocfamily = o.opcfamily
        UNION
        SELECT op.oprcode::oid FROM pg_constraint k, unnest(k.conexclop) AS x (oid)
        JOIN pg_operator op ON op.oid = x.oid WHERE k.conindid = i.indexrelid
    ) AS f (fn)
    WHERE i.indrelid = ANY (%(tables)s::oid[])
    UNION ALL
    SELECT p.polrelid, 'policy', p.polname::text, NULL, row_security_active(p.polrelid), f.fn
    FROM pg_policy p
    CROSS JOIN LATERAL ({
    _calls_in(
        "coalesce(p.polqual::text, '') || ' ' || coalesce(p.polwithcheck::text, '')",
        "pg_policy",
        "p.oid",
    )
}) AS f (fn)
    WHERE p.polrelid = ANY (%(tables)s::oid[])
)
SELECT h.relid, {_NAME.format(ns="cn", rel="c")}, h.kind, h.name, h.col, h.applies,
       array_agg(ARRAY[{_CODE_TEXT.format(p="p", n="n")}] ORDER BY p.oid)
FROM hook h JOIN pg_proc p ON p.oid = h.fn JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_class c ON c.oid = h.relid JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE NOT {_BUILTIN.format(p="p")} OR p.provolatile = 'v'
GROUP BY 1, 2, 3, 4, 5, 6
UNION ALL
SELECT c.oid, {_NAME.format(ns="cn", rel="c")}, 'foreign table', {_NAME.format(ns="cn", rel="c")},
       NULL, true, NULL
FROM pg_class c JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE c.relkind = 'f' AND c.oid = ANY (%(tables)s::oid[])
ORDER BY 2, 3, 4, 5
"""
_VIEW_CODE = f"""
SELECT DISTINCT {_CODE.format(p="p", n="n")}
FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
JOIN pg_proc p ON (d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid)
    OR p.oid = o.oprcode
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE r.ev_class = %(oid)s AND NOT {_BUILTIN.format(p="p")}
ORDER BY 1
"""
_FOREIGN_DESCENDANTS = """
WITH RECURSIVE down (oid) AS (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = %(oid)s
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN down d ON i.inhparent = d.oid
)
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM down JOIN pg_class c ON c.oid = down.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'f' ORDER BY 1
"""


def describe_target(conn: psycopg.Connection[Any], name: str = "default") -> Target:
    """Host, database and server version of a connection, without its password."""
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int, current_schemas(false)"
    ).fetchone()
    number, path = (row[0], row[1]) if row else (0, [])
    info = conn.info
    return Target(
        name=name,
        host=info.host or "",
        port=info.port or None,
        dbname=info.dbname,
        user=info.user or None,
        server_version=f"{number // 10000}.{number % 100}",
        server_major=number // 10000,
        search_path=tuple(str(schema) for schema in path),
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
    recreated = tuple(
        _resolve(conn, obj, statement.number, position)
        for statement in runbook.statements
        for position, obj in enumerate(statement.creates)
    )
    counted, missing, not_tables = _counted(conn, runbook.settings.count)
    cascade, reach = _cascade_facts(conn, found)
    keys, size, unmovable = _quarantine_facts(conn, found)
    relations = _relations(conn, runbook.statements)
    names = [n for s in runbook.statements for n in s.functions]
    read = {r.oid for r in relations if r.oid is not None and r.kind in {"r", "p"}}
    rewritten = _rewritten(conn, runbook)
    facts = Facts(
        target=target,
        objects=tuple(found),
        recreated=tuple(r for r in recreated if r.exists),
        references=tuple(references),
        counted=counted,
        missing_counted=missing,
        counted_not_tables=not_tables,
        functions=_volatility(conn, names),
        user_functions=_named(conn, _USER_FUNCTIONS, names, _codes),
        relations=relations,
        operators=_named(conn, _OPERATORS, [o for s in runbook.statements for o in s.operators]),
        casts=_casts(conn, [t for s in runbook.statements for t in s.types]),
        implicit_casts=tuple(_via(row) for row in conn.execute(_IMPLICIT_CASTS)),
        hooks=_hooks(conn, sorted(set(reach) | read | {t.oid for _, t in rewritten})),
        rewritten=rewritten,
        retyped=_retyped(conn, runbook),
        quarantine_keys=keys,
        quarantine_bytes=size,
        quarantine_unmovable=unmovable,
        quarantine_schemas=_quarantine_schemas(conn) if any(map(_dropped_table, found)) else (),
        **cascade,
    )
    if count_budget is None:
        return facts
    nulls = tuple(
        _nulls(conn, statement.number, column, count_budget)
        for statement in runbook.statements
        for column in statement.set_not_null
    )
    violations = count_violations(conn, runbook, facts, count_budget)
    unfit = count_unfit(conn, runbook, count_budget)
    sequences = tuple(
        state
        for statement in runbook.statements
        if statement.sequence is not None
        and (state := _sequence_state(conn, statement.number, statement.sequence)) is not None
    )
    facts = facts.model_copy(
        update={"nulls": nulls, "violations": violations, "unfit": unfit, "sequences": sequences}
    )
    tables = {
        f.table.name: f.table
        for f in found
        if f.exists and f.table and f.kind in {ObjectKind.TABLE, ObjectKind.ROWS}
    }
    tables |= {t.name: t for t in changed_tables(facts)}
    rows = [_count(conn, table, count_budget) for table in tables.values()]
    return facts.model_copy(update={"rows": tuple(rows)})


_QUARANTINE_KEYS = f"""
SELECT k.oid, k.conname, {_NAME.format(ns="cn", rel="c")}, {_NAME.format(ns="pn", rel="p")},
       pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f'
  AND (k.conrelid = ANY (%(tables)s::oid[]) OR k.confrelid = ANY (%(tables)s::oid[]))
  AND NOT (k.conrelid = ANY (%(tables)s::oid[]) AND k.confrelid = ANY (%(tables)s::oid[]))
  AND k.conparentid = 0
ORDER BY k.oid
"""
_QUARANTINE_UNMOVABLE = f"""
SELECT {_NAME.format(ns="n", rel="c")}
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY (%(tables)s::oid[])
  AND (c.relkind = 'p' OR c.relispartition
       OR EXISTS (SELECT 1 FROM pg_inherits i WHERE c.oid IN (i.inhparent, i.inhrelid)))
ORDER BY 1
"""
_QUARANTINE_BYTES = (
    "SELECT coalesce(sum(pg_total_relation_size(t)), 0)::bigint FROM unnest(%(tables)s::oid[]) t"
)
# Without a lock: the pages as of the last VACUUM or ANALYZE, tables, indexes and TOAST.
_QUARANTINE_PAGES = """
SELECT coalesce(sum(c.relpages::bigint), 0) * current_setting('block_size')::bigint
FROM pg_class c
WHERE c.oid = ANY (%(tables)s::oid[])
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY (%(tables)s::oid[]))
   OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE oid = ANY (%(tables)s::oid[]))
"""


def _quarantine_facts(
    conn: psycopg.Connection[Any], found: list[Found]
) -> tuple[tuple[KeptKey, ...], int | None, tuple[str, ...]]:
    """Crossing foreign keys, the dropped tables' size, and those a move cannot take whole.

    A quarantined rollback drops the first (keeping their definitions), holds the second on
    disk until a purge, and is blocked by the third (partitions and inheritance). The key
    definitions are rendered under an empty search_path, so every name in them is
    schema-qualified: the restore that adds them again runs under one too.
    """
    tables = {"tables": sorted({f.oid for f in found if _dropped_table(f) and f.oid})}
    if not tables["tables"]:
        return (), None, ()
    unmovable = tuple(name for (name,) in conn.execute(_QUARANTINE_UNMOVABLE, tables))
    with conn.transaction():
        old_path = conn.execute("SELECT current_setting('search_path')").fetchone()
        conn.execute("SELECT set_config('search_path', '', true)")
        keys = tuple(
            KeptKey(oid=oid, name=name, table=table, parent=parent, definition=definition)
            for oid, name, table, parent, definition in conn.execute(_QUARANTINE_KEYS, tables)
        )
        # Released, the savepoint would keep the setting: put the caller's back.
        conn.execute(
            "SELECT set_config('search_path', %s, true)", (old_path[0] if old_path else "",)
        )
    # pg_total_relation_size takes a lock: a plan must never queue behind the application,
    # so a table held exclusively is measured from the catalog instead.
    try:
        with conn.transaction():
            old = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
            conn.execute("SET LOCAL lock_timeout = '50ms'")
            row = conn.execute(_QUARANTINE_BYTES, tables).fetchone()
            # Released, the savepoint would keep the SET LOCAL: put the caller's back.
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (old[0] if old else "0",))
    except psycopg.errors.LockNotAvailable:
        row = conn.execute(_QUARANTINE_PAGES, tables).fetchone()
    return keys, int(row[0]) if row else None, unmovable


_SEQUENCE = f"""
SELECT {_NAME.format(ns="n", rel="c")}, format_type(s.seqtypid, NULL), s.seqincrement,
       s.seqmin, s.seqmax, s.seqstart
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.seqrelid = to_regclass(%s)
"""


def _sequence_state(
    conn: psycopg.Connection[Any], statement: int, change: SequenceChange
) -> SequenceState | None:
    """The sequence as it is now; None when it is not there (the statement reports that)."""
    name = ".".join(quote_ident(part) for part in (change.namespace, change.name) if part)
    row = conn.execute(_SEQUENCE, (name,)).fetchone()
    if row is None:
        return None
    label, type_name, increment, low, high, start = row
    state = SequenceState(
        statement=statement,
        sequence=str(label),
        type=str(type_name),
        increment=int(increment),
        min=int(low),
        max=int(high),
        start=int(start),
        last_value=None,
    )
    try:
        with conn.transaction():
            value = conn.execute(sql.SQL("SELECT last_value FROM {}").format(sql.SQL(label)))
            (last,) = value.fetchone() or (None,)
    except psycopg.errors.InsufficientPrivilege:
        return state.model_copy(update={"why": f"rollbot's role may not read {label}"})
    return state.model_copy(update={"last_value": int(last) if last is not None else None})


def _quarantine_schemas(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY 1", (QUARANTINE_LIKE,)
    )
    return tuple(str(name) for (name,) in rows)


def _dropped_table(found: Found) -> bool:
    return found.exists and found.actual_kind is None and found.kind is ObjectKind.TABLE


def _cascade_facts(
    conn: psycopg.Connection[Any], found: list[Found]
) -> tuple[dict[str, Any], list[int]]:
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
    }, tables["tables"]


_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


def _code(function: str, builtin: bool | str, volatility: str) -> Code:
    return Code(
        function=function,
        builtin=builtin in {True, "true"},
        volatility=cast("Volatility", _VOLATILITY[volatility]),
    )


def _codes(row: tuple[Any, ...]) -> Code:
    return _code(*row)


def _via(row: tuple[Any, ...]) -> Via:
    what, *code = row
    return Via(what=what, code=_code(*code))


def _named(
    conn: psycopg.Connection[Any],
    query: LiteralString,
    names: list[str],
    make: Any = _via,  # noqa: ANN401 - a row factory: _via or _codes
) -> dict[str, Any]:
    """For each name as written, what it may resolve to that PostgreSQL does not ship.

    An unqualified name is looked up along the search path. Names that resolve to nothing of the
    kind are left out, so the facts and the hash only grow where user code is.
    """
    found: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        schema, _, bare = name.rpartition(".")
        rows = conn.execute(query, {"schema": schema, "name": bare}).fetchall()
        if rows:
            found[name] = tuple(make(row) for row in rows)
    return found


def _casts(conn: psycopg.Connection[Any], types: list[str]) -> dict[str, tuple[Via, ...]]:
    """For each type a statement casts to, the code the cast may run that is not built-in."""
    found: dict[str, tuple[Via, ...]] = {}
    for name in dict.fromkeys(types):
        schema, _, bare = name.rpartition(".")
        qualified = conn.execute(
            "SELECT " + _QUALIFY, {"ns": schema or None, "name": bare}
        ).fetchone()
        rows = conn.execute(_CASTS, {"type": qualified[0] if qualified else name}).fetchall()
        if rows:
            found[name] = tuple(_via(row) for row in rows)
    return found


def _relations(
    conn: psycopg.Connection[Any], statements: tuple[Statement, ...]
) -> tuple[Relation, ...]:
    """Each relation a statement's expressions read, with what reading it would run."""
    relations: list[Relation] = []
    for statement in statements:
        for written in statement.relations:
            schema, _, bare = written.rpartition(".")
            row = _relation(conn, schema or None, bare)
            if row is None:
                relations.append(Relation(statement=statement.number, written=written))
                continue
            oid, name, relkind = row[0], row[1], row[2]
            code = conn.execute(_VIEW_CODE, {"oid": oid}).fetchall() if relkind == "v" else []
            foreign = conn.execute(_FOREIGN_DESCENDANTS, {"oid": oid}).fetchall()
            relations.append(
                Relation(
                    statement=statement.number,
                    written=written,
                    oid=oid,
                    name=name,
                    kind=relkind,
                    code=tuple(_codes(r) for r in code),
                    foreign=tuple(r[0] for r in foreign),
                )
            )
    return tuple(relations)


def _hooks(conn: psycopg.Connection[Any], tables: list[int]) -> tuple[Hook, ...]:
    """What runs on these tables' rows besides triggers and rules, and is not harmless.

    Defaults, constraints, indexes and policies calling anything but PostgreSQL's own IMMUTABLE
    or STABLE functions, and which of the tables are foreign.
    """
    if not tables:
        return ()
    return tuple(
        Hook(
            table=Table(oid=oid, name=name),
            kind=kind,
            name=label,
            column=column,
            applies=applies,
            code=tuple(_code(*code) for code in codes or ()),
        )
        for oid, name, kind, label, column, applies, codes in conn.execute(
            _HOOKS, {"tables": tables}
        )
    )


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
    if obj.kind is ObjectKind.SCHEMA:
        row = conn.execute(
            "SELECT oid, quote_ident(nspname) FROM pg_catalog.pg_namespace WHERE nspname = %s",
            (obj.name,),
        ).fetchone()
        return absent if row is None else _found(absent, obj, row[0], row[1], ObjectKind.SCHEMA)
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


def _retyped(conn: psycopg.Connection[Any], runbook: Runbook) -> tuple[tuple[int, int, int], ...]:
    """(statement, table oid, attnum) of each column a statement gives another type."""
    found = []
    for statement in runbook.statements:
        for column_cast in statement.casts_back:
            row = _relation(conn, column_cast.namespace, column_cast.table)
            if row is None:
                continue
            attnum = conn.execute(
                _PART_QUERIES[ObjectKind.COLUMN], (row[0], column_cast.column)
            ).fetchone()
            if attnum is not None:
                found.append((statement.number, int(row[0]), int(attnum[0])))
    return tuple(found)


def _rewritten(conn: psycopg.Connection[Any], runbook: Runbook) -> tuple[tuple[int, Table], ...]:
    """The tables the runbook's casts back rewrite, as they exist now."""
    found = []
    for statement in runbook.statements:
        for column_cast in statement.casts_back:
            row = _relation(conn, column_cast.namespace, column_cast.table)
            if row is not None and row[2] in {"r", "p"}:
                found.append((statement.number, Table(oid=row[0], name=row[1])))
    return tuple(found)


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
    elif found.kind is ObjectKind.SCHEMA:  # everything in it; DROP SCHEMA refuses while any is
        klass, sub = "pg_namespace", 0
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
) -> tuple[tuple[Table, ...], tuple[str, ...], tuple[str, ...]]:
    """The front matter's `count` tables; a view or foreign table there would run its code."""
    tables: list[Table] = []
    missing: list[str] = []
    not_tables: list[str] = []
    for name in names:
        row = conn.execute(
            "SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), c.relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (name,),
        ).fetchone()
        if row is None:
            missing.append(name)
        elif row[2] not in {"r", "p"}:
            not_tables.append(f"{row[1]} ({_RELKINDS.get(row[2], row[2])})")
        else:
            tables.append(Table(oid=row[0], name=row[1]))
    return tuple(tables), tuple(missing), tuple(not_tables)


def _count(conn: psycopg.Connection[Any], table: Table, budget: timedelta) -> RowCount:
    """Exact count if it finishes within the budget, else the planner's estimate."""
    milliseconds = max(int(budget.total_seconds() * 1000), 1)
    runs_code = conn.execute(
        "SELECT relkind = 'f' OR row_security_active(oid) FROM pg_class WHERE oid = %s",
        (table.oid,),
    ).fetchone()
    if runs_code is None or runs_code[0]:
        return _estimate(conn, table)  # a policy's or a wrapper's code would run to count it
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
        return _estimate(conn, table)


def _nulls(
    conn: psycopg.Connection[Any],
    statement: int,
    column: tuple[str | None, str, str],
    budget: timedelta,
) -> NullCount:
    """NULL rows of a column SET NOT NULL is applied to, if counting fits in the budget.

    Like the row counts, never on a table whose policies or foreign wrapper would run code.
    """
    schema, name, attname = column
    found = _relation(conn, schema, name)
    label = f"{found[1] if found else name}.{attname}"
    if found is None or found[2] not in {"r", "p"}:
        return NullCount(statement=statement, column=label, rows=None)
    runs_code = conn.execute("SELECT row_security_active(%s)", (found[0],)).fetchone()
    if runs_code is None or runs_code[0]:
        return NullCount(statement=statement, column=label, rows=None)
    milliseconds = max(int(budget.total_seconds() * 1000), 1)
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
        sql.SQL(found[1]), sql.Identifier(attname)
    )
    try:
        with conn.transaction():
            previous = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(milliseconds),))
            row = conn.execute(query).fetchone()
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (previous[0] if previous else "0",),
            )
    except (psycopg.errors.QueryCanceled, psycopg.errors.UndefinedColumn):
        return NullCount(statement=statement, column=label, rows=None)
    return NullCount(statement=statement, column=label, rows=row[0] if row else 0)


def _estimate(conn: psycopg.Connection[Any], table: Table) -> RowCount:
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
        " AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'"
        " AND n.nspname NOT LIKE %s",
        ([*SYSTEM_SCHEMAS, *exclude_schemas], QUARANTINE_LIKE),
    ).fetchall()
    return dict(rows)
