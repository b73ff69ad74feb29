"""A forward migration read with PostgreSQL's parser: its statements and what they create.

Linting a runbook and deriving one both start from the `.sql` file drizzle-kit wrote. The file
is parsed by pglast piece by piece, cut at Drizzle's breakpoint markers as its migrator cuts
it; every statement keeps its line in the file, and `creates` lists the objects a statement
brings into being, with the names PostgreSQL gives them when the migration does not: `users_pkey`,
`users_email_key`, `tasks_project_id_fkey`, `projects_id_seq`.

Default names follow PostgreSQL 15's rules (`makeObjectName` and the `Choose…Name` functions
in the server), truncation to 63 bytes included. The server also appends a digit when the
name is already taken in the schema; that needs the catalog, so it is not modelled here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pglast import ast, enums, parse_sql, visitors
from pglast.parser import ParseError
from pydantic import BaseModel, ConfigDict

from bot.core.errors import MigrationFileError
from bot.core.sql import ObjectKind
from bot.drizzle.folder import BREAKPOINT

if TYPE_CHECKING:
    from bot.drizzle.folder import Migration

NAMEDATALEN = 64  # PostgreSQL's identifier buffer: names keep at most 63 bytes
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)+", re.DOTALL)
_SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})
_CON = enums.ConstrType


@dataclass(frozen=True)
class ForwardStatement:
    """One statement of a forward migration and where it is in the file."""

    line: int  # 1-based line of its first keyword
    sql: str  # as written, without the trailing semicolon
    node: Any  # the pglast statement node


class CreatedObject(BaseModel):
    """An object a migration creates, named without its schema."""

    model_config = ConfigDict(frozen=True)

    kind: ObjectKind
    name: str
    table: str | None = None  # for constraints and columns: the table they are part of
    line: int
    # Dropping this table, or any of these columns of it, takes the object with it.
    within_table: str | None = None
    within_columns: tuple[str, ...] = ()

    def key(self) -> tuple[ObjectKind, str, str | None]:
        """What a DROP statement must name to drop this object."""
        return (self.kind, self.name, self.table)

    def label(self) -> str:
        """`table users`, `constraint users_pkey on users`."""
        return object_label(self.kind, self.name, self.table)


def object_label(kind: ObjectKind, name: str, table: str | None) -> str:
    """How an object is named in reports, without its schema."""
    return f"{kind} {name} on {table}" if table is not None else f"{kind} {name}"


def parse_forward(migration: Migration) -> list[ForwardStatement]:
    """The migration's statements with their lines; a syntax error names the file and line.

    Drizzle's migrator sends each piece between breakpoint markers as a query of its own, so
    a piece needs no semicolon at its end: each is parsed alone, as PostgreSQL receives it.
    """
    text = migration.text
    statements = []
    start = 0
    for piece in text.split(BREAKPOINT):
        statements += _parse_piece(text, start, piece, f"{migration.tag}.sql")
        start += len(piece) + len(BREAKPOINT)
    return statements


def _parse_piece(text: str, offset: int, piece: str, file: str) -> list[ForwardStatement]:
    """The statements of one piece, at `offset` in the file's `text`."""
    try:
        raw = parse_sql(piece)
    except ParseError as exc:
        at = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise MigrationFileError(
            file,
            text.count("\n", 0, offset + max(at, 0)) + 1,
            f"SQL syntax error: {exc.args[0]}",
            todo="fix the migration so that PostgreSQL accepts it",
        ) from exc
    statements = []
    for item in raw:
        start = item.stmt_location or 0
        end = start + item.stmt_len if item.stmt_len else len(piece)
        noise = _LEADING_NOISE.match(piece, start)
        if noise is not None:
            start = noise.end()
        statements.append(
            ForwardStatement(
                line=text.count("\n", 0, offset + start) + 1,
                sql=piece[start:end].strip().rstrip(";").strip(),
                node=item.stmt,
            )
        )
    return statements


def creates(statement: ForwardStatement) -> list[CreatedObject]:
    """The objects one statement creates (none for statements that create nothing)."""
    build = _CREATORS.get(type(statement.node))
    return build(statement.node, statement.line) if build is not None else []


def _single(kind: ObjectKind, name: str, line: int) -> list[CreatedObject]:
    return [CreatedObject(kind=kind, name=name, line=line)]


def _table_as(node: Any, line: int) -> list[CreatedObject]:  # noqa: ANN401 - pglast node
    matview = node.objtype == enums.ObjectType.OBJECT_MATVIEW
    kind = ObjectKind.MATERIALIZED_VIEW if matview else ObjectKind.TABLE
    return _single(kind, node.into.rel.relname, line)


def _alter_table(node: Any, line: int) -> list[CreatedObject]:  # noqa: ANN401 - pglast node
    if node.objtype != enums.ObjectType.OBJECT_TABLE:
        return []
    table = node.relation.relname
    found: list[CreatedObject] = []
    for cmd in node.cmds or ():
        if cmd.subtype == enums.AlterTableType.AT_AddColumn:
            found += _column(table, cmd.def_, line)
        elif cmd.subtype == enums.AlterTableType.AT_AddConstraint:
            found += _constraint(table, cmd.def_, line, column=None)
    return found


def make_object_name(name1: str, name2: str | None, label: str) -> str:
    """PostgreSQL's `makeObjectName`: `name1_name2_label`, the longer part cut to fit 63 bytes."""
    part1, part2 = name1.encode(), (name2 or "").encode()
    overhead = len(label) + 1 + (1 if name2 is not None else 0)
    available = NAMEDATALEN - 1 - overhead
    len1, len2 = len(part1), len(part2)
    while len1 + len2 > available:
        if len1 > len2:
            len1 -= 1
        else:
            len2 -= 1
    # A cut inside a multibyte character drops the character, as pg_mbcliplen does.
    name = part1[:len1].decode(errors="ignore")
    if name2 is not None:
        name += "_" + part2[:len2].decode(errors="ignore")
    return f"{name}_{label}"


def _last(names: Any) -> str:  # noqa: ANN401 - a pglast tuple of String nodes
    return str(names[-1].sval)


def _strings(names: tuple[Any, ...] | None) -> tuple[str, ...]:
    return tuple(str(n.sval) for n in names or ())


def _table(node: Any, line: int) -> list[CreatedObject]:  # noqa: ANN401 - pglast node
    table = node.relation.relname
    found = [CreatedObject(kind=ObjectKind.TABLE, name=table, line=line)]
    for element in node.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            found += _column(table, element, line)
        elif isinstance(element, ast.Constraint):
            found += _constraint(table, element, line, column=None)
    return found


def _column(table: str, column: Any, line: int) -> list[CreatedObject]:  # noqa: ANN401
    name = column.colname
    found = [
        CreatedObject(
            kind=ObjectKind.COLUMN,
            name=name,
            table=table,
            line=line,
            within_table=table,
            within_columns=(name,),
        )
    ]
    type_names = _strings(column.typeName.names) if column.typeName is not None else ()
    sequence = None
    if len(type_names) == 1 and type_names[0] in _SERIAL_TYPES:
        sequence = make_object_name(table, name, "seq")
    for constraint in column.constraints or ():
        if constraint.contype == _CON.CONSTR_IDENTITY:
            options = {o.defname: o.arg for o in constraint.options or ()}
            named = options.get("sequence_name")
            sequence = _last(named) if named else make_object_name(table, name, "seq")
        else:
            found += _constraint(table, constraint, line, column=name)
    if sequence is not None:
        found.append(
            CreatedObject(
                kind=ObjectKind.SEQUENCE,
                name=sequence,
                line=line,
                within_table=table,
                within_columns=(name,),
            )
        )
    return found


def _constraint(
    table: str,
    constraint: Any,  # noqa: ANN401 - pglast node
    line: int,
    *,
    column: str | None,
) -> list[CreatedObject]:
    """A table or column constraint; NOT NULL, DEFAULT and the like are not named objects."""
    contype = constraint.contype
    own = (column,) if column is not None else ()
    if contype == _CON.CONSTR_PRIMARY:
        columns = _strings(constraint.keys) or own
        default = make_object_name(table, None, "pkey")
    elif contype == _CON.CONSTR_UNIQUE:
        columns = _strings(constraint.keys) or own
        default = make_object_name(table, "_".join(columns), "key")
    elif contype == _CON.CONSTR_FOREIGN:
        columns = _strings(constraint.fk_attrs) or own
        default = make_object_name(table, "_".join(columns), "fkey")
    elif contype == _CON.CONSTR_CHECK:
        columns = _referenced_columns(constraint.raw_expr)
        only = columns[0] if len(columns) == 1 else None
        default = make_object_name(table, only, "check")
    elif contype == _CON.CONSTR_EXCLUSION:
        columns = tuple(pair[0].name or "expr" for pair in constraint.exclusions or ())
        default = make_object_name(table, "_".join(columns), "excl")
    else:
        return []
    return [
        CreatedObject(
            kind=ObjectKind.CONSTRAINT,
            name=constraint.conname or default,
            table=table,
            line=line,
            within_table=table,
            within_columns=columns,
        )
    ]


def _index(node: Any, line: int) -> CreatedObject:  # noqa: ANN401 - pglast node
    table = node.relation.relname
    elements = (*(node.indexParams or ()), *(node.indexIncludingParams or ()))
    columns = tuple(e.name for e in elements if e.name is not None)
    if node.idxname:
        name = node.idxname
    else:
        keys = [_index_column_name(e) for e in node.indexParams or ()]
        name = make_object_name(table, "_".join(keys), "idx")
    return CreatedObject(
        kind=ObjectKind.INDEX, name=name, line=line, within_table=table, within_columns=columns
    )


def _index_column_name(element: Any) -> str:  # noqa: ANN401 - pglast node
    """What PostgreSQL calls an index column when naming the index (`FigureIndexColname`)."""
    if element.name is not None:
        return str(element.name)
    if isinstance(element.expr, ast.FuncCall):
        return _last(element.expr.funcname)
    return "expr"


class _ColumnRefs(visitors.Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_ColumnRef(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        last = node.fields[-1]
        if isinstance(last, ast.String) and last.sval not in self.names:
            self.names.append(str(last.sval))


def _referenced_columns(expression: Any) -> tuple[str, ...]:  # noqa: ANN401 - pglast node
    if expression is None:
        return ()
    refs = _ColumnRefs()
    refs(expression)
    return tuple(refs.names)


_Creator = Callable[[Any, int], list[CreatedObject]]
_CREATORS: dict[type, _Creator] = {
    ast.CreateEnumStmt: lambda n, line: _single(ObjectKind.TYPE, _last(n.typeName), line),
    ast.CreateRangeStmt: lambda n, line: _single(ObjectKind.TYPE, _last(n.typeName), line),
    ast.CompositeTypeStmt: lambda n, line: _single(ObjectKind.TYPE, n.typevar.relname, line),
    ast.CreateDomainStmt: lambda n, line: _single(ObjectKind.DOMAIN, _last(n.domainname), line),
    ast.CreateSeqStmt: lambda n, line: _single(ObjectKind.SEQUENCE, n.sequence.relname, line),
    ast.CreateSchemaStmt: lambda n, line: _single(ObjectKind.SCHEMA, str(n.schemaname), line),
    ast.ViewStmt: lambda n, line: _single(ObjectKind.VIEW, n.view.relname, line),
    ast.CreateTableAsStmt: _table_as,
    ast.CreateStmt: _table,
    ast.IndexStmt: lambda n, line: [_index(n, line)],
    ast.AlterTableStmt: _alter_table,
}
