"""Counts the rows a column type change back would not hold, before approval and before the cast.

A derived rollback casts a widened column back to its type at N-1 (`bot.core.widening`).
Every value that was there at N-1 fits, but rows written since may not: an integer out of
range or a string too long makes the cast fail at the end of a transaction that holds its
locks, and worse, a varchar's trailing spaces beyond the length or a double precision's extra
digits would be cut or rounded without a word. So the plan counts those rows and blocks with
their number, like the NULL rows SET NOT NULL counts; and the transaction counts them again
under the table's lock, just before the cast, and stops if any were written since the plan.

Counting reads only PostgreSQL's own types with `pg_catalog` functions and operators, in a
READ ONLY savepoint within the budget at planning (`violations.budgeted_count`), never a
table whose row-level security applies or that has a foreign table below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from bot.core.facts import UnfitCount
from bot.core.widening import Unfit, read_type, unfit_rule
from bot.target.violations import NotCounted, budgeted_count, check_readable, find_table

if TYPE_CHECKING:
    from datetime import timedelta

    from bot.core.runbook import Runbook
    from bot.core.sql import CastBack, Statement

_CURRENT_TYPE = """
SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = %(oid)s AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped
"""


class NotAnEnumError(NotCounted):
    """A cast through text from a column that is not an enum: not only PostgreSQL's code."""


_CURRENT_KIND = """
SELECT t.typtype::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %(oid)s AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped
"""
# The largest and the smallest non-zero magnitude a real holds.
_REAL_MAX = "3.4028234663852886e38"
_REAL_MIN = "1.401298464324817e-45"


def count_unfit(
    conn: psycopg.Connection[Any], runbook: Runbook, budget: timedelta
) -> tuple[UnfitCount, ...]:
    """For each column a statement casts back, the rows its old type would not hold now."""
    counts = []
    for statement in runbook.statements:
        for cast in statement.casts_back:
            try:
                table, query = unfit_query(conn, cast)
                rows = budgeted_count(conn, query, budget) if query is not None else 0
            except NotCounted as why:
                counted = _counted(statement, cast, None, str(why))
                refused = isinstance(why, NotAnEnumError)
                counts.append(counted.model_copy(update={"refused": refused}))
                continue
            counts.append(_counted(statement, cast, rows, "", table))
    return tuple(counts)


def unfit_now(conn: psycopg.Connection[Any], cast: CastBack) -> int | None:
    """Rows that would not fit, counted in the caller's transaction; None: not countable."""
    try:
        _, query = unfit_query(conn, cast)
    except NotCounted:
        return None
    if query is None:
        return 0
    row = conn.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def nulls_now(conn: psycopg.Connection[Any], column: tuple[str | None, str, str]) -> int | None:
    """NULL rows of a column about to be made NOT NULL, in the caller's transaction.

    None where counting would run someone's code (row-level security, a foreign table):
    SET NOT NULL then says itself, failing on the first NULL.
    """
    schema, name, attname = column
    table = find_table(conn, schema, name)
    if table is None:
        return None
    try:
        check_readable(table)
    except NotCounted:
        return None
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
        table.identifier, sql.Identifier(attname)
    )
    row = conn.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _counted(
    statement: Statement, cast: CastBack, rows: int | None, why: str, table: str | None = None
) -> UnfitCount:
    column = f"{table}.{cast.column}" if table else cast.label()
    return UnfitCount(
        statement=statement.number,
        column=column,
        type=cast.type,
        rows=rows,
        why=why,
        labels=cast.labels,
    )


def unfit_query(conn: psycopg.Connection[Any], cast: CastBack) -> tuple[str, sql.Composed | None]:
    """The table's name and the count of its unfit rows (None: none can be unfit)."""
    table = find_table(conn, cast.namespace, cast.table)
    if table is None:
        msg = "the table does not exist before the rollback"
        raise NotCounted(msg)
    check_readable(table)
    if cast.labels is not None:  # to an enum through text: a value that is not a label fails
        row = conn.execute(_CURRENT_KIND, {"oid": table.oid, "column": cast.column}).fetchone()
        if row is None or row[0] != "e":
            # Only enum to text to enum is PostgreSQL's own code whatever the type: another
            # type's output function, or a cast to text, could be anyone's.
            msg = "the column is not an enum now; only an enum is cast to another through text"
            raise NotAnEnumError(msg)
        query = sql.SQL(
            # The label read with the enum's own output function, not a cast to text: a
            # cast (enum AS text) of someone's own would run here, on every row.
            "SELECT count(*) FROM {} WHERE pg_catalog.textin(pg_catalog.enum_out({}))"
            " OPERATOR(pg_catalog.<>) ALL ({})"
        ).format(
            table.identifier,
            sql.Identifier(cast.column),
            sql.SQL("{}::pg_catalog.text[]").format(sql.Literal(list(cast.labels))),
        )
        return table.name, query
    row = conn.execute(_CURRENT_TYPE, {"oid": table.oid, "column": cast.column}).fetchone()
    current, old = read_type(row[0] if row else None), read_type(cast.type)
    rule = unfit_rule(current, old) if current is not None and old is not None else None
    if rule is None:
        shown = row[0] if row else "not there"
        msg = f"the column's type now ({shown}) is not a widening of {cast.type}"
        raise NotCounted(msg)
    if rule.test == "none":
        return table.name, None
    condition = _condition(rule, sql.Identifier(cast.column))
    # No ONLY: the cast changes the column of every child table too.
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table.identifier, condition)
    return table.name, query


def _condition(rule: Unfit, column: sql.Identifier) -> sql.Composable:
    """The rows the old type would refuse, cut or round; NULL fits every type."""
    if rule.test == "range":
        return sql.SQL(
            "{c} OPERATOR(pg_catalog.<) {low} OR {c} OPERATOR(pg_catalog.>) {high}"
        ).format(c=column, low=sql.SQL(str(rule.low)), high=sql.SQL(str(rule.high)))
    if rule.test == "length":
        return sql.SQL("pg_catalog.char_length({}) OPERATOR(pg_catalog.>) {}").format(
            column, sql.SQL(str(rule.limit))
        )
    if rule.test == "padded":
        return sql.SQL(
            "pg_catalog.char_length({c}) OPERATOR(pg_catalog.>) {limit}"
            " OR {c} OPERATOR(pg_catalog.<>) pg_catalog.rtrim({c})"
        ).format(c=column, limit=sql.SQL(str(rule.limit)))
    if rule.test == "numeric":
        # NaN fits any numeric; an infinity none with a precision. The cast rounds half away
        # from zero to the scale, as round() does, and may then overflow.
        return sql.SQL(
            "CASE WHEN {c} OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.numeric THEN false"
            " WHEN pg_catalog.abs({c}) OPERATOR(pg_catalog.=) 'Infinity'::pg_catalog.numeric"
            " THEN true"
            " ELSE {c} OPERATOR(pg_catalog.<>) pg_catalog.round({c}, {scale})"
            " OR pg_catalog.abs(pg_catalog.round({c}, {scale})) OPERATOR(pg_catalog.>=)"
            " 1e{digits} END"
        ).format(c=column, scale=sql.SQL(str(rule.scale)), digits=sql.SQL(str(rule.limit)))
    if rule.test == "integral":
        return sql.SQL(
            "CASE WHEN {c} OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.numeric"
            " OR pg_catalog.abs({c}) OPERATOR(pg_catalog.=) 'Infinity'::pg_catalog.numeric"
            " THEN true"
            " ELSE {c} OPERATOR(pg_catalog.<>) pg_catalog.round({c})"
            " OR {c} OPERATOR(pg_catalog.<) {low} OR {c} OPERATOR(pg_catalog.>) {high} END"
        ).format(c=column, low=sql.SQL(str(rule.low)), high=sql.SQL(str(rule.high)))
    # A real: NaN, the infinities and zero come back as they were; a magnitude out of its
    # range fails; anything else comes back only if it was a real already. CASE keeps the
    # cast from running on a value it would fail on.
    return sql.SQL(
        "CASE WHEN {c} OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.float8"
        " OR pg_catalog.abs({c}) OPERATOR(pg_catalog.=) 'Infinity'::pg_catalog.float8"
        " OR {c} OPERATOR(pg_catalog.=) 0 THEN false"
        " WHEN pg_catalog.abs({c}) OPERATOR(pg_catalog.>) {high}"
        " OR pg_catalog.abs({c}) OPERATOR(pg_catalog.<) {low} THEN true"
        " ELSE {c}::pg_catalog.float4::pg_catalog.float8 OPERATOR(pg_catalog.<>) {c} END"
    ).format(
        c=column,
        high=sql.SQL(f"{_REAL_MAX}::pg_catalog.float8"),
        low=sql.SQL(f"{_REAL_MIN}::pg_catalog.float8"),
    )
