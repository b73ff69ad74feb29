"""The catalog of a database read into plain `SchemaObject`s, for the pure diff in the core.

Everything is rendered by PostgreSQL itself (`format_type`, `pg_get_expr`,
`pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`, …) under `search_path =
pg_catalog`, so every name comes back schema-qualified and two databases on one server render
the same object the same way, whatever search_path their sessions had. Objects that belong to
an extension are the extension's, not the application's, and are left out; so are the schemas
named in `exclude` (rollbot's own, Drizzle's journal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.schema import Schema, SchemaObject, attributes

if TYPE_CHECKING:
    from collections.abc import Iterable

    import psycopg

_OURS = """
n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
AND n.nspname <> ALL(%(exclude)s)
AND n.nspname NOT LIKE 'rollbot\\_quarantine\\_%%'
"""
_NOT_EXTENSION = """
NOT EXISTS (SELECT 1 FROM pg_depend e
            WHERE e.classid = '{catalog}'::regclass AND e.objid = {oid} AND e.deptype = 'e')
"""
_SCHEMAS = f"SELECT format('%%I', n.nspname) FROM pg_namespace n WHERE {_OURS}"
_EXTENSIONS = """
SELECT format('%I', x.extname), format('%I', n.nspname)
FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
"""
_TYPES = f"""
SELECT format('%%I.%%I', n.nspname, t.typname), t.typtype::text,
  (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
     FROM pg_enum e WHERE e.enumtypid = t.oid),
  CASE t.typtype WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
  CASE t.typtype WHEN 'd' THEN t.typnotnull::text END,
  CASE t.typtype WHEN 'd' THEN pg_get_expr(t.typdefaultbin, 0) END,
  (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
     FROM pg_constraint k WHERE k.contypid = t.oid),
  CASE t.typtype WHEN 'c' THEN
    (SELECT string_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)),
                       ', ' ORDER BY a.attnum)
       FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
        AND NOT a.attisdropped) END,
  (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid),
  obj_description(t.oid, 'pg_type')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {_OURS} AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
  AND {_NOT_EXTENSION.format(catalog="pg_type", oid="t.oid")}
"""
_SEQUENCES = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), format_type(s.seqtypid, NULL),
  s.seqstart::text, s.seqincrement::text, s.seqmin::text, s.seqmax::text, s.seqcache::text,
  s.seqcycle::text,
  (SELECT format('%%I.%%I', tn.nspname, tc.relname) || '.' || format('%%I', a.attname)
     FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
     JOIN pg_namespace tn ON tn.oid = tc.relnamespace
     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1),
  obj_description(c.oid, 'pg_class')
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_OURS} AND {_NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
"""
_RELATIONS = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text, c.relpersistence::text,
  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
  c.relrowsecurity::text, obj_description(c.oid, 'pg_class'),
  CASE WHEN c.relforcerowsecurity THEN 'true' END,
  CASE WHEN c.relkind IN ('v', 'm') THEN array_to_string(c.reloptions, ', ') END,
  CASE WHEN c.relkind = 'm' THEN c.relispopulated::text END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_OURS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND {_NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
"""
_COLUMNS = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I', a.attname),
  format_type(a.atttypid, a.atttypmod), a.attnotnull::text, pg_get_expr(d.adbin, d.adrelid),
  NULLIF(a.attidentity::text, ''), NULLIF(a.attgenerated::text, ''),
  (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
     JOIN pg_namespace cn ON cn.oid = co.collnamespace
    WHERE co.oid = a.attcollation
      AND a.attcollation <> (SELECT ty.typcollation FROM pg_type ty WHERE ty.oid = a.atttypid)),
  col_description(c.oid, a.attnum)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE {_OURS} AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND {_NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
"""
_CONSTRAINTS = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I', k.conname),
  pg_get_constraintdef(k.oid), obj_description(k.oid, 'pg_constraint')
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_OURS} AND k.contype IN ('c', 'f', 'p', 'u', 'x')
  AND {_NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
"""
_INDEXES = f"""
SELECT format('%%I.%%I', n.nspname, ic.relname), format('%%I.%%I', tn.nspname, tc.relname),
  tc.relkind::text, pg_get_indexdef(i.indexrelid), (NOT i.indisvalid)::text,
  obj_description(i.indexrelid, 'pg_class')
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE {_OURS}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
  AND {_NOT_EXTENSION.format(catalog="pg_class", oid="tc.oid")}
"""
_FUNCTIONS = f"""
SELECT format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
  CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END, p.prokind::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_OURS} AND {_NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
"""
_TRIGGERS = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text, format('%%I', t.tgname),
  pg_get_triggerdef(t.oid), t.tgenabled::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_OURS} AND NOT t.tgisinternal
"""
# Who may see and write which rows: a policy's command, whether it is permissive, its roles
# (cluster-wide, so the same on every database of the server) and its expressions.
_POLICIES = f"""
SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I', p.polname),
  p.polcmd::text, p.polpermissive::text,
  (SELECT string_agg(CASE WHEN r.oid = 0 THEN 'public' ELSE format('%%I', pg_get_userbyid(r.oid))
                     END, ', ' ORDER BY pg_get_userbyid(r.oid))
     FROM unnest(p.polroles) AS r (oid)),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_OURS}
"""
_RELKINDS = {
    "r": "table",
    "p": "table",
    "f": "table",
    "v": "view",
    "m": "materialized view",
}


def read_schema(conn: psycopg.Connection[Any], exclude: Iterable[str]) -> Schema:
    """Every application object of the database `conn` is connected to, in one transaction."""
    params = {"exclude": list(exclude)}
    skip = set(params["exclude"])
    objects: list[SchemaObject] = []
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query, params).fetchall()

        objects += [SchemaObject(kind="schema", name=name) for (name,) in rows(_SCHEMAS)]
        objects += [
            SchemaObject(kind="extension", name=name, attributes=attributes(("schema", schema)))
            for name, schema in conn.execute(_EXTENSIONS).fetchall()
            if schema not in skip
        ]
        objects += [_type(row) for row in rows(_TYPES)]
        objects += [_sequence(row) for row in rows(_SEQUENCES)]
        objects += [_relation(row) for row in rows(_RELATIONS)]
        objects += [_column(row) for row in rows(_COLUMNS)]
        objects += [
            SchemaObject(
                kind="constraint",
                name=f"{table}.{name}",
                parent=f"table {table}",
                attributes=attributes(
                    ("definition", definition, "constraint"), ("comment", comment)
                ),
            )
            for table, name, definition, comment in rows(_CONSTRAINTS)
        ]
        objects += [
            SchemaObject(
                kind="index",
                name=name,
                parent=f"{_RELKINDS.get(relkind, 'table')} {table}",
                attributes=attributes(
                    ("definition", definition, "statement"),
                    ("invalid", invalid if invalid == "true" else None),
                    ("comment", comment),
                ),
            )
            for name, table, relkind, definition, invalid, comment in rows(_INDEXES)
        ]
        objects += [
            SchemaObject(
                kind="function",
                name=name,
                attributes=attributes(("definition", definition), ("kind", kind)),
            )
            for name, definition, kind in rows(_FUNCTIONS)
        ]
        objects += [
            SchemaObject(
                kind="trigger",
                name=f"{table}.{name}",
                parent=f"{_RELKINDS.get(relkind, 'table')} {table}",
                attributes=attributes(
                    ("definition", definition, "statement"), ("enabled", enabled)
                ),
            )
            for table, relkind, name, definition, enabled in rows(_TRIGGERS)
        ]
        objects += [
            SchemaObject(
                kind="policy",
                name=f"{table}.{name}",
                parent=f"table {table}",
                attributes=attributes(
                    ("command", command),
                    ("permissive", permissive),
                    ("roles", roles),
                    ("using", qual, "expression"),
                    ("with check", check, "expression"),
                ),
            )
            for table, name, command, permissive, roles, qual, check in rows(_POLICIES)
        ]
        major = conn.info.server_version // 10000
    return Schema(objects=tuple(objects), server_major=major)


def _type(row: tuple[Any, ...]) -> SchemaObject:
    name, typtype, labels, base, not_null, default, checks, fields, subtype, comment = row
    kind = {"e": "enum", "d": "domain", "c": "composite", "r": "range"}[typtype]
    return SchemaObject(
        kind="type",
        name=name,
        attributes=attributes(
            ("kind", kind),
            ("labels", labels),
            ("base type", base),
            ("not null", not_null),
            ("default", default, "expression"),
            ("checks", checks),
            ("attributes", fields),
            ("subtype", subtype),
            ("comment", comment),
        ),
    )


def _sequence(row: tuple[Any, ...]) -> SchemaObject:
    name, data_type, start, increment, minimum, maximum, cache, cycle, owned_by, comment = row
    table = owned_by.rsplit(".", 1)[0] if owned_by else None
    return SchemaObject(
        kind="sequence",
        name=name,
        parent=f"table {table}" if table else None,
        attributes=attributes(
            ("type", data_type),
            ("start", start),
            ("increment", increment),
            ("min", minimum),
            ("max", maximum),
            ("cache", cache),
            ("cycle", cycle),
            ("owned by", owned_by),
            ("comment", comment),
        ),
    )


def _relation(row: tuple[Any, ...]) -> SchemaObject:
    name, relkind, persistence, definition, bound, key, rls, comment, forced, options, populated = (
        row
    )
    return SchemaObject(
        kind=_RELKINDS[relkind],
        name=name,
        attributes=attributes(
            ("persistence", persistence),
            ("definition", definition, "query"),
            ("partition of", bound, "text"),
            ("partition key", key),
            ("row security", rls),
            ("force row security", forced),
            ("foreign", "true" if relkind == "f" else None),
            ("comment", comment),
            ("options", options or None),
            ("populated", populated),
        ),
    )


def _column(row: tuple[Any, ...]) -> SchemaObject:
    table, name, data_type, not_null, default, identity, generated, collation, comment = row
    return SchemaObject(
        kind="column",
        name=f"{table}.{name}",
        parent=f"table {table}",
        attributes=attributes(
            ("type", data_type),
            ("not null", not_null),
            ("default", default, "expression"),
            ("identity", identity),
            ("generated", generated),
            ("collation", collation),
            ("comment", comment),
        ),
    )
