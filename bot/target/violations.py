"""Counts the rows that violate a constraint a runbook adds and validates, before approval.

A CHECK, FOREIGN KEY, UNIQUE or PRIMARY KEY that a rollback adds (or validates after adding it
NOT VALID) fails the whole rollback on its first violating row, at the end of a transaction
that already holds its locks. Counting those rows first lets the plan say how many there are
and where, so that someone fixes them before approving, like the NULL rows SET NOT NULL counts.

Counting must never change anything or run code rollbot would not run itself:

- every count runs in a savepoint made READ ONLY, with the budget's statement_timeout, and
  that savepoint is rolled back, so neither setting outlives it;
- a CHECK's expression is evaluated only when the plan's own judgement of the statement's
  calls, operators and casts (`evaluation_problem`) lets it run; its text is pglast's deparse;
- key columns are compared only when their types are PostgreSQL's own (or enums), with
  `pg_catalog` operators, so no user-defined equality runs;
- no table is read whose row-level security applies or that has a foreign table below it.

Anything else is "not counted", with why, and the statement's own check still stops a
violation before COMMIT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from pglast import parse_sql
from psycopg import sql

from bot.core.facts import ViolationCount
from bot.core.functions import call_problem
from bot.core.sql import _validation
from bot.core.usercode import code_problem, evaluation_problem

if TYPE_CHECKING:
    from datetime import timedelta

    from bot.core.facts import Facts
    from bot.core.runbook import Runbook
    from bot.core.sql import Statement, Validation

_QUALIFY = """CASE WHEN %(ns)s::text IS NULL THEN quote_ident(%(name)s)
    ELSE quote_ident(%(ns)s) || '.' || quote_ident(%(name)s) END"""
# The table as the statement will find it, and whether reading it would run code.
_TABLE = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind, row_security_active(c.oid),
       format('%%I.%%I', n.nspname, c.relname),
       EXISTS (
           WITH RECURSIVE down (oid) AS (
               SELECT inhrelid FROM pg_inherits WHERE inhparent = c.oid
               UNION
               SELECT i.inhrelid FROM pg_inherits i JOIN down d ON i.inhparent = d.oid
           )
           SELECT FROM down JOIN pg_class f ON f.oid = down.oid WHERE f.relkind = 'f'
       )
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass({_QUALIFY})
"""
# Columns whose type (or a domain's base type) is not PostgreSQL's own nor an enum: comparing
# them could call a user's equality operator.
_FOREIGN_TYPED = """
SELECT a.attname FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type b ON b.oid = t.typbasetype
WHERE a.attrelid = %(oid)s AND a.attname = ANY (%(columns)s) AND a.attnum > 0
  AND NOT a.attisdropped
  AND NOT (coalesce(b.oid, t.oid) < 16384 OR coalesce(b.typtype, t.typtype) = 'e')
"""
_PRIMARY_KEY = """
SELECT array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %(oid)s AND i.indisprimary
"""
_EQ = sql.SQL(" OPERATOR(pg_catalog.=) ")
# What an earlier statement may do that a count made now would not see.
_CHANGES_FIRST = ("DELETE", "RENAME", "SET SCHEMA")
_CHANGED_FIRST = (
    "an earlier statement deletes rows or renames or moves objects first, so the rows it "
    "would check are not those there now"
)


class NotCounted(Exception):  # noqa: N818 - a reason, not an error
    """Why a constraint's violations are not counted."""


class _Relation:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self.oid: int = row[0]
        self.identifier = sql.Identifier(row[1], row[2])
        self.name: str = row[5]  # public.orders, quoted only where needed
        self.kind: str = row[3]
        self.runs_code = bool(row[4] or row[6])

    def scan(self, *, only: bool = False) -> sql.Composable:
        """The table to read: ONLY where PostgreSQL checks the table without its children."""
        if only or self.kind != "p":
            return sql.SQL("ONLY {}").format(self.identifier)
        return self.identifier


def count_violations(
    conn: psycopg.Connection[Any], runbook: Runbook, facts: Facts, budget: timedelta
) -> tuple[ViolationCount, ...]:
    """For each constraint a statement adds and validates, the rows that violate it now."""
    numbered = {s.number: s for s in runbook.statements}
    return tuple(
        _not_counted(statement, validation, validation.table, _CHANGED_FIRST)
        if _changed_first(runbook, statement)
        else _violations(
            conn,
            statement,
            validation,
            # A VALIDATE evaluates what its ADD … NOT VALID wrote, calls and all.
            written=numbered.get(validation.written_in or statement.number, statement),
            facts=facts,
            budget=budget,
        )
        for statement in runbook.statements
        for validation in statement.validates
    )


def _changed_first(runbook: Runbook, statement: Statement) -> bool:
    earlier = [s for s in runbook.statements if s.number < statement.number]
    return any(word in s.kind for s in earlier for word in _CHANGES_FIRST)


def _not_counted(
    statement: Statement, validation: Validation, table: str, why: str
) -> ViolationCount:
    return ViolationCount(
        statement=statement.number,
        constraint=validation.label(),
        kind=validation.kind,
        table=table,
        rows=None,
        why=why,
    )


def _violations(
    conn: psycopg.Connection[Any],
    statement: Statement,
    validation: Validation,
    *,
    written: Statement,
    facts: Facts,
    budget: timedelta,
) -> ViolationCount:
    table = find_table(conn, validation.namespace, validation.table)
    if table is None:
        why = "the table does not exist before the rollback"
        return _not_counted(statement, validation, validation.table, why)
    try:
        rows = budgeted_count(conn, _query(conn, written, validation, table, facts), budget)
    except NotCounted as why:
        return _not_counted(statement, validation, table.name, str(why))
    return ViolationCount(
        statement=statement.number,
        constraint=validation.label(),
        kind=validation.kind,
        table=table.name,
        rows=rows,
    )


def find_table(conn: psycopg.Connection[Any], namespace: str | None, name: str) -> _Relation | None:
    """The table as a statement naming it would find it, None when there is none."""
    row = conn.execute(_TABLE, {"ns": namespace, "name": name}).fetchone()
    return _Relation(row) if row is not None else None


def check_readable(table: _Relation) -> None:
    """NotCounted unless the table is a table whose reading runs no one's code."""
    if table.kind not in {"r", "p"}:
        msg = f"{table.name} is not a table"
        raise NotCounted(msg)
    if table.runs_code:
        msg = (
            f"reading {table.name} would run code (a row-level security policy or a "
            "foreign table's wrapper)"
        )
        raise NotCounted(msg)


def _query(
    conn: psycopg.Connection[Any],
    written: Statement,
    validation: Validation,
    table: _Relation,
    facts: Facts,
) -> sql.Composed:
    check_readable(table)
    if validation.existing:
        return _existing_query(conn, validation, table, facts)
    if validation.kind == "check":
        if validation.subquery:
            msg = "its expression holds a subquery, which PostgreSQL refuses in a CHECK"
            raise NotCounted(msg)
        problem = evaluation_problem(written, facts)
        if problem is not None:
            msg = f"counting would evaluate its expression, and {problem}"
            raise NotCounted(msg)
        assert validation.expression is not None  # noqa: S101 - every CHECK has one
        # A CHECK fails only where its expression is false: NULL passes.
        return sql.SQL("SELECT count(*) FROM {} WHERE ({}) IS FALSE").format(
            _scan_all(table, validation),
            sql.SQL(validation.expression),  # pglast's deparse of the parsed statement
        )
    if validation.kind == "foreign key":
        return _foreign_key(conn, validation, table, facts)
    if validation.kind in {"unique", "primary key"}:
        _builtin_types(conn, table, validation.columns)
        return _duplicates(validation, table)
    msg = "rollbot does not count an exclusion constraint's conflicts"
    raise NotCounted(msg)


_EXISTING = """
SELECT k.contype::text, pg_get_constraintdef(k.oid), pg_get_expr(k.conbin, k.conrelid),
       k.connoinherit, k.convalidated
FROM pg_constraint k WHERE k.conrelid = %(oid)s AND k.conname = %(name)s
"""
# What the stored expression of a CHECK calls, functions and operators alike, from the
# dependencies PostgreSQL recorded for it: whose code it is, and how volatile.
_CALLS = """
SELECT p.proname, p.oid >= 16384 OR p.pronamespace <> 'pg_catalog'::regnamespace,
       p.provolatile::text
FROM pg_depend d JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
WHERE d.classid = 'pg_constraint'::regclass AND d.objid = %(oid)s
UNION ALL
SELECT o.oprname, o.oid >= 16384, 'i'
FROM pg_depend d JOIN pg_operator o
  ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
WHERE d.classid = 'pg_constraint'::regclass AND d.objid = %(oid)s
"""
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


def _existing_query(
    conn: psycopg.Connection[Any], validation: Validation, table: _Relation, facts: Facts
) -> sql.Composed:
    """A constraint that was NOT VALID before the runbook: counted as the catalog defines it.

    A foreign key is read back through the parser like one the runbook adds. A CHECK is
    evaluated only when every function and operator its stored expression calls is
    PostgreSQL's own and one a runbook may call; its text is PostgreSQL's own deparse.
    """
    row = conn.execute(_EXISTING, {"oid": table.oid, "name": validation.name}).fetchone()
    if row is None:
        msg = f"{table.name} has no constraint {validation.name}, so VALIDATE would fail"
        raise NotCounted(msg)
    contype, definition, expression, no_inherit, validated = row
    if validated:
        msg = "it is valid already: VALIDATE checks nothing"
        raise NotCounted(msg)
    if contype == "f":
        (parsed,) = parse_sql(f"ALTER TABLE t ADD CONSTRAINT c {definition}")
        command: Any = parsed.stmt
        key = _validation(command.cmds[0].def_, validation.namespace, validation.table, only=True)
        if key is None:
            msg = "its definition could not be read back"
            raise NotCounted(msg)
        return _foreign_key(conn, key, table, facts)
    if contype != "c" or expression is None:
        msg = "only a CHECK or a FOREIGN KEY can be NOT VALID, and this is neither"
        raise NotCounted(msg)
    oid = conn.execute(
        "SELECT oid FROM pg_constraint WHERE conrelid = %s AND conname = %s",
        (table.oid, validation.name),
    ).fetchone()
    for name, user_defined, volatility in conn.execute(_CALLS, {"oid": oid[0] if oid else 0}):
        problem = (
            f"{name} is user-defined code"
            if user_defined
            else call_problem(str(name), _VOLATILITY.get(str(volatility)))  # type: ignore[arg-type]
        )
        if problem is not None:
            msg = f"counting would evaluate its expression, and {problem}"
            raise NotCounted(msg)
    scan = (
        table.identifier
        if not (validation.only or no_inherit)
        else sql.SQL("ONLY {}").format(table.identifier)
    )
    return sql.SQL("SELECT count(*) FROM {} WHERE ({}) IS FALSE").format(
        scan,
        sql.SQL(str(expression)),  # PostgreSQL's deparse of the stored expression
    )


def _scan_all(table: _Relation, validation: Validation) -> sql.Composable:
    """A CHECK is checked on inheritance children too, unless ONLY or NO INHERIT."""
    if validation.only:
        return sql.SQL("ONLY {}").format(table.identifier)
    return table.identifier


def _builtin_types(
    conn: psycopg.Connection[Any], table: _Relation, columns: tuple[str, ...]
) -> None:
    odd = conn.execute(_FOREIGN_TYPED, {"oid": table.oid, "columns": list(columns)}).fetchall()
    if odd:
        msg = (
            f"{table.name}.{odd[0][0]} has a type that is not PostgreSQL's own, whose "
            "comparison could run user-defined code"
        )
        raise NotCounted(msg)


def _foreign_key(
    conn: psycopg.Connection[Any], validation: Validation, child: _Relation, facts: Facts
) -> sql.Composed:
    assert validation.parent is not None  # noqa: S101 - every FOREIGN KEY names its parent
    parent = find_table(conn, validation.parent_namespace, validation.parent)
    if parent is None:
        msg = "the referenced table does not exist before the rollback"
        raise NotCounted(msg)
    check_readable(parent)
    referenced = validation.referenced
    if not referenced:
        row = conn.execute(_PRIMARY_KEY, {"oid": parent.oid}).fetchone()
        referenced = tuple(row[0]) if row and row[0] else ()
    if not referenced or len(referenced) != len(validation.columns):
        msg = f"the columns it references in {parent.name} are not known"
        raise NotCounted(msg)
    _builtin_types(conn, child, validation.columns)
    _builtin_types(conn, parent, referenced)
    if any(code_problem(via.code) is not None for via in facts.implicit_casts):
        msg = "the database has implicit casts that run user-defined code"
        raise NotCounted(msg)
    c, p = sql.Identifier("c"), sql.Identifier("p")
    own = [sql.SQL("{}.{}").format(c, sql.Identifier(name)) for name in validation.columns]
    theirs = [sql.SQL("{}.{}").format(p, sql.Identifier(name)) for name in referenced]
    match = sql.SQL(" AND ").join(
        sql.SQL("{}{}{}").format(mine, _EQ, other) for mine, other in zip(own, theirs, strict=True)
    )
    missing = sql.SQL("NOT EXISTS (SELECT FROM {} AS {} WHERE {})").format(parent.scan(), p, match)
    all_set = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(x) for x in own)
    if validation.match_full:
        # MATCH FULL: all NULL passes; some NULL fails; none NULL must match a parent row.
        any_set = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(x) for x in own)
        condition = sql.SQL("({}) AND (NOT ({}) OR {})").format(any_set, all_set, missing)
    else:
        # MATCH SIMPLE: a row with any NULL in its key passes.
        condition = sql.SQL("{} AND {}").format(all_set, missing)
    return sql.SQL("SELECT count(*) FROM {} AS {} WHERE {}").format(child.scan(), c, condition)


def _duplicates(validation: Validation, table: _Relation) -> sql.Composed:
    """Rows in key groups of more than one row; for a PRIMARY KEY, also rows with a NULL key."""
    keys = [sql.Identifier(name) for name in validation.columns]
    key_list = sql.SQL(", ").join(keys)
    all_set = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(k) for k in keys)
    # NULLs are distinct unless NULLS NOT DISTINCT, so a key with a NULL duplicates nothing.
    where = sql.SQL("") if validation.nulls_not_distinct else sql.SQL(" WHERE {}").format(all_set)
    duplicated = sql.SQL(
        "SELECT coalesce(sum(n), 0)::bigint FROM (SELECT count(*) AS n FROM {}{}"
        " GROUP BY {} HAVING count(*) > 1) AS d"
    ).format(table.scan(), where, key_list)
    if validation.kind != "primary key":
        return duplicated
    nulls = sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(table.scan(), all_set)
    return sql.SQL("SELECT ({}) + ({})").format(duplicated, nulls)


def budgeted_count(conn: psycopg.Connection[Any], query: sql.Composed, budget: timedelta) -> int:
    """The count, read in a READ ONLY savepoint within the budget, then rolled back."""
    milliseconds = max(int(budget.total_seconds() * 1000), 1)
    counted: list[int] = []
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(milliseconds),))
            row = conn.execute(query).fetchone()
            counted.append(int(row[0]) if row and row[0] is not None else 0)
            raise psycopg.Rollback  # neither setting outlives the count
    except psycopg.errors.QueryCanceled:
        msg = "counting took longer than the count budget"
        raise NotCounted(msg) from None
    except psycopg.errors.InsufficientPrivilege:
        raise
    except (psycopg.ProgrammingError, psycopg.DataError, psycopg.NotSupportedError) as exc:
        # What the statement itself would fail with (a missing column, a division by zero,
        # a set-returning function): the rehearsal shows it; the count has nothing to say.
        msg = f"PostgreSQL could not count them: {exc.diag.message_primary or type(exc).__name__}"
        raise NotCounted(msg) from None
    return counted[0]
