"""Rollback SQL, understood rather than pasted.

PostgreSQL's own parser (pglast) splits the runbook's SQL block, so quoting, comments and
dollar-quoting cannot fool us. Each statement is classified by what it does and which object it
touches; anything that cannot run inside our single transaction, or that is not a kind of
statement a rollback needs, is refused before anything runs, naming its line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, cast

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor
from pydantic import BaseModel, ConfigDict

from bot.core.errors import RunbookError
from bot.core.functions import denied_reason
from bot.core.widening import node_type


class ObjectKind(StrEnum):
    """What a statement removes."""

    TABLE = "table"
    INDEX = "index"
    TYPE = "type"
    DOMAIN = "domain"
    SEQUENCE = "sequence"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized view"
    CONSTRAINT = "constraint"
    COLUMN = "column"
    SCHEMA = "schema"
    ROWS = "rows"


class DbObject(BaseModel):
    """An object named by a statement, as written (resolution happens against the database)."""

    model_config = ConfigDict(frozen=True)

    kind: ObjectKind
    name: str
    namespace: str | None = None
    table: str | None = None  # for constraints, columns and rows: the table they belong to
    table_namespace: str | None = None
    missing_ok: bool = False  # IF EXISTS on the object (or on the table for ALTER TABLE)

    def label(self) -> str:
        """How the object is named in messages: `constraint fk on api_errors`."""
        if self.kind is ObjectKind.ROWS:
            return f"rows of {_qualified(self.table_namespace, self.table)}"
        if self.table is not None:
            owner = _qualified(self.table_namespace, self.table)
            return f"{self.kind} {self.name} on {owner}"
        return f"{self.kind} {_qualified(self.namespace, self.name)}"


ConstraintKind = Literal["check", "foreign key", "unique", "primary key", "exclusion"]


class Validation(BaseModel):
    """A constraint a statement checks every row against, as the parser read it.

    Any one violating row makes the statement fail, so the plan counts them first. The CHECK
    expression is pglast's deparse of the parsed statement, never the runbook's raw text: what
    is counted is what PostgreSQL would evaluate, and nothing that a comment or quoting hid.
    """

    model_config = ConfigDict(frozen=True)

    kind: ConstraintKind
    name: str | None  # None: unnamed, PostgreSQL picks the name
    namespace: str | None
    table: str
    only: bool = False  # ALTER TABLE ONLY, or a CHECK … NO INHERIT: the table's children are not
    expression: str | None = None  # CHECK
    # A CHECK with a subquery, which PostgreSQL refuses when the statement runs: counting
    # would run it first, reading other tables.
    subquery: bool = False
    columns: tuple[str, ...] = ()  # the key: UNIQUE/PRIMARY KEY, or the referencing columns
    parent_namespace: str | None = None  # FOREIGN KEY: the referenced table and columns
    parent: str | None = None
    referenced: tuple[str, ...] = ()  # empty: the parent's primary key
    match_full: bool = False
    nulls_not_distinct: bool = False
    # The statement that wrote the constraint (its ADD, for a VALIDATE of one added NOT VALID):
    # its calls, operators and casts are the ones a count would evaluate.
    written_in: int | None = None
    # A VALIDATE of a constraint the runbook did not add (it was NOT VALID before): what it
    # checks is read from the catalog when its rows are counted; `kind` is a placeholder.
    existing: bool = False

    def label(self) -> str:
        """`orders_total_check`, or `the unnamed CHECK on public.orders`."""
        if self.name is not None:
            return self.name
        return f"the unnamed {self.kind.upper()} on {_qualified(self.namespace, self.table)}"


class CastBack(BaseModel):
    """A column a statement casts to another of PostgreSQL's own types, as written.

    Rows that do not fit the type make the statement fail, or would be cut or rounded on the
    way (a varchar's trailing spaces, a double precision's digits), so the plan counts them
    first and the transaction counts them again, under the lock, before the cast.
    """

    model_config = ConfigDict(frozen=True)

    namespace: str | None
    table: str
    column: str
    type: str  # as format_type prints it: `character varying(50)`, `integer`
    # To an enum an earlier statement of the runbook created, `USING column::text::enum`:
    # its labels. Only a value among them gets through the cast, the others make it fail.
    labels: tuple[str, ...] | None = None

    def label(self) -> str:
        """`public.tags.name`, or `tags.name` when the statement did not say the schema."""
        return f"{_qualified(self.namespace, self.table)}.{self.column}"


class SequenceChange(BaseModel):
    """The options an `ALTER SEQUENCE` sets, as written; None where it leaves one as it is.

    PostgreSQL refuses the statement when the sequence's current value, or its start, falls
    outside the bounds it ends up with, so the plan reads both first and says so.
    """

    model_config = ConfigDict(frozen=True)

    namespace: str | None
    name: str
    type: str | None = None  # AS smallint|integer|bigint
    increment: int | None = None
    minvalue: int | None = None
    maxvalue: int | None = None
    no_minvalue: bool = False  # NO MINVALUE: the type's default for the increment's sign
    no_maxvalue: bool = False
    start: int | None = None

    def label(self) -> str:
        """`public.orders_id_seq`, or `orders_id_seq` when the statement did not say the schema."""
        return _qualified(self.namespace, self.name)


class Statement(BaseModel):
    """One statement of the rollback, with where it came from."""

    model_config = ConfigDict(frozen=True)

    number: int  # 1-based position among the statements that will run
    line: int  # line in the runbook file
    sql: str  # the statement exactly as written, without the trailing semicolon
    kind: str  # "DROP INDEX", "ALTER TABLE … DROP CONSTRAINT", "DELETE"
    objects: tuple[DbObject, ...]
    cascade: bool = False
    functions: tuple[str, ...] = ()  # every function its expressions call, as written
    # What else its expressions make PostgreSQL run, as written: the relations they read
    # (FROM, USING, subqueries, joins), the operators they apply (explicit, and those IN,
    # BETWEEN, CASE, DISTINCT, ORDER BY… imply) and the types they cast to. `ctes` are the
    # names WITH queries define, which a relation name may mean instead of a table.
    relations: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    ctes: tuple[str, ...] = ()
    # A statement that puts a definition back (an index, a constraint, NOT NULL, a default, a
    # name, a comment) and removes nothing; derived rollbacks write them from N-1.
    restores: bool = False
    # Columns it makes NOT NULL, as (schema or None, table, column) written: the plan counts
    # their NULL rows, since any one of them makes the statement fail.
    set_not_null: tuple[tuple[str | None, str, str], ...] = ()
    # Constraints it checks every row against (ADD CONSTRAINT without NOT VALID, or VALIDATE
    # of one the runbook added NOT VALID before): the plan counts the rows that violate them.
    validates: tuple[Validation, ...] = ()
    # Columns it casts back to a narrower type: the plan counts the rows that would not fit.
    casts_back: tuple[CastBack, ...] = ()
    # The options an ALTER SEQUENCE sets: the plan checks the current value lies within them.
    sequence: SequenceChange | None = None
    # The named objects it creates (an index, a view, a type, a constraint). One that an
    # earlier statement drops is put back, not left behind: drizzle-kit changes a foreign key
    # by dropping it and adding it again under the same name, and so undoes a rollback.
    creates: tuple[DbObject, ...] = ()


def _qualified(namespace: str | None, name: str | None) -> str:
    return f"{namespace}.{name}" if namespace else str(name)


_DROPPABLE = {
    enums.ObjectType.OBJECT_TABLE: ObjectKind.TABLE,
    enums.ObjectType.OBJECT_INDEX: ObjectKind.INDEX,
    enums.ObjectType.OBJECT_TYPE: ObjectKind.TYPE,
    enums.ObjectType.OBJECT_DOMAIN: ObjectKind.DOMAIN,
    enums.ObjectType.OBJECT_SEQUENCE: ObjectKind.SEQUENCE,
    enums.ObjectType.OBJECT_VIEW: ObjectKind.VIEW,
    enums.ObjectType.OBJECT_MATVIEW: ObjectKind.MATERIALIZED_VIEW,
    enums.ObjectType.OBJECT_SCHEMA: ObjectKind.SCHEMA,
}
_ALTER_DROPS = {
    enums.AlterTableType.AT_DropConstraint: ObjectKind.CONSTRAINT,
    enums.AlterTableType.AT_DropColumn: ObjectKind.COLUMN,
}
# What puts a definition back without removing anything or changing a row.
_ALTER_RESTORES = {
    enums.AlterTableType.AT_AddConstraint: "ADD CONSTRAINT",
    enums.AlterTableType.AT_ValidateConstraint: "VALIDATE CONSTRAINT",
    enums.AlterTableType.AT_SetNotNull: "SET NOT NULL",
    enums.AlterTableType.AT_DropNotNull: "DROP NOT NULL",
    enums.AlterTableType.AT_ColumnDefault: "SET/DROP DEFAULT",
    # Only to one of PostgreSQL's own number or string types, without USING: the cast is
    # PostgreSQL's own, and the rows that would not fit are counted (`casts_back`).
    enums.AlterTableType.AT_AlterColumnType: "SET DATA TYPE",
    enums.AlterTableType.AT_EnableRowSecurity: "ENABLE/DISABLE ROW LEVEL SECURITY",
    enums.AlterTableType.AT_DisableRowSecurity: "ENABLE/DISABLE ROW LEVEL SECURITY",
    enums.AlterTableType.AT_ForceRowSecurity: "[NO] FORCE ROW LEVEL SECURITY",
    enums.AlterTableType.AT_NoForceRowSecurity: "[NO] FORCE ROW LEVEL SECURITY",
}
_RENAMES = {
    enums.ObjectType.OBJECT_TABLE: "ALTER TABLE … RENAME",
    enums.ObjectType.OBJECT_COLUMN: "ALTER TABLE … RENAME COLUMN",
    enums.ObjectType.OBJECT_TABCONSTRAINT: "ALTER TABLE … RENAME CONSTRAINT",
    enums.ObjectType.OBJECT_INDEX: "ALTER INDEX … RENAME",
    enums.ObjectType.OBJECT_VIEW: "ALTER VIEW … RENAME",
    enums.ObjectType.OBJECT_MATVIEW: "ALTER MATERIALIZED VIEW … RENAME",
    enums.ObjectType.OBJECT_SEQUENCE: "ALTER SEQUENCE … RENAME",
    enums.ObjectType.OBJECT_TYPE: "ALTER TYPE … RENAME",
    enums.ObjectType.OBJECT_DOMAIN: "ALTER DOMAIN … RENAME",
}
# Objects a rollback may move back to the schema they were in: the move keeps every row.
_MOVES = {
    enums.ObjectType.OBJECT_TABLE: "ALTER TABLE … SET SCHEMA",
    enums.ObjectType.OBJECT_VIEW: "ALTER VIEW … SET SCHEMA",
    enums.ObjectType.OBJECT_MATVIEW: "ALTER MATERIALIZED VIEW … SET SCHEMA",
    enums.ObjectType.OBJECT_SEQUENCE: "ALTER SEQUENCE … SET SCHEMA",
    enums.ObjectType.OBJECT_TYPE: "ALTER TYPE … SET SCHEMA",
}
# What ALTER SEQUENCE may change in a runbook: its definition, not its current value (RESTART)
# nor its owner (OWNED BY).
SEQUENCE_OPTIONS = frozenset({"as", "increment", "minvalue", "maxvalue", "start", "cache", "cycle"})
_TX = enums.TransactionStmtKind
_ALLOWED = (
    "DROP INDEX/TABLE/TYPE/DOMAIN/SEQUENCE/VIEW/MATERIALIZED VIEW/SCHEMA, "
    "ALTER TABLE … DROP CONSTRAINT/COLUMN, DELETE, and to put definitions back CREATE INDEX, "
    "ALTER TABLE … ADD/VALIDATE CONSTRAINT, ALTER COLUMN … SET/DROP NOT NULL/DEFAULT, "
    "ALTER COLUMN … SET DATA TYPE (to a built-in number or string type, without USING), "
    "renames of tables, columns, constraints, indexes, views, materialized views, sequences, "
    "types, domains and enum values, SET SCHEMA of tables, views, sequences and types, "
    "ALTER SEQUENCE options (not RESTART), CREATE/ALTER/DROP POLICY, "
    "ALTER TABLE … ENABLE/DISABLE/[NO] FORCE ROW LEVEL SECURITY, "
    "COMMENT ON, CREATE VIEW/MATERIALIZED VIEW/TYPE/DOMAIN"
)


class _Source:
    """Maps parser offsets in the SQL block back to runbook file lines."""

    def __init__(self, text: str, file: str, first_line: int) -> None:
        self.text = text
        self.file = file
        self.first_line = first_line

    def line_at(self, offset: int) -> int:
        return self.first_line + self.text.count("\n", 0, max(offset, 0))

    def refuse(self, offset: int, problem: str, todo: str) -> RunbookError:
        return RunbookError(self.file, self.line_at(offset), problem, todo=todo)

    def parse(self, *, todo: str) -> tuple[Any, ...]:
        """PostgreSQL's parse of the block; a syntax error names its runbook line."""
        try:
            return tuple(parse_sql(self.text))
        except ParseError as exc:
            offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
            raise self.refuse(offset, f"SQL syntax error: {exc.args[0]}", todo=todo) from exc


def parse_statements(text: str, *, file: str, first_line: int) -> tuple[Statement, ...]:
    """Split and classify a rollback SQL block; refuse anything we must not run.

    `first_line` is the file line of the block's first line, so errors point into the runbook.
    A leading BEGIN and a trailing COMMIT are dropped: rollbot owns the transaction.
    """
    source = _Source(text, file, first_line)
    raw = source.parse(todo="fix the statement so that psql would accept it")
    statements: list[Statement] = []
    added_not_valid: dict[tuple[str | None, str, str], Validation] = {}
    enums_made: _Enums = {}
    for item in _strip_transaction(raw, source):
        start = item.stmt_location or 0
        length = item.stmt_len or len(text) - start
        sql = text[start : start + length].strip().rstrip(";").strip()
        kind, objects, cascade = _classify(item.stmt, sql, start, source, enums_made)
        if isinstance(item.stmt, ast.CreateEnumStmt):
            enums_made[_type_key(item.stmt.typeName)] = tuple(
                str(label.sval) for label in item.stmt.vals or ()
            )
        reads = _reads(item.stmt, sql, start, source)
        statements.append(
            Statement(
                number=len(statements) + 1,
                line=source.line_at(start),
                sql=sql,
                kind=kind,
                objects=objects,
                cascade=cascade,
                functions=reads.functions(),
                relations=reads.relations(),
                operators=tuple(dict.fromkeys(reads.operators)),
                types=tuple(dict.fromkeys(reads.types)),
                ctes=tuple(dict.fromkeys(reads.ctes)),
                restores=not objects,
                set_not_null=_set_not_null(item.stmt),
                validates=_validates(item.stmt, added_not_valid, len(statements) + 1),
                casts_back=_casts_back(item.stmt, enums_made),
                sequence=_sequence_change(item.stmt),
                creates=_creates(item.stmt),
            )
        )
    if not statements:
        raise RunbookError(
            file,
            first_line,
            "the rollback SQL block holds no statement",
            todo="put the DROP/ALTER statements that undo the migration in the block",
        )
    return tuple(statements)


def _dotted(names: tuple[Any, ...] | None) -> str:
    return ".".join(part.sval for part in names or ())


# What an A_Expr keyword stands for: the operators PostgreSQL applies for it.
_KEYWORD_OPERATORS = {
    "BETWEEN": (">=", "<="),
    "BETWEEN SYMMETRIC": (">=", "<="),
    "NOT BETWEEN": ("<", ">"),
    "NOT BETWEEN SYMMETRIC": ("<", ">"),
}
# Sorting, grouping, DISTINCT, set operations and USING joins compare with the type's default
# operators; which ones depends on types rollbot does not resolve, so their names stand in.
_ORDERING = ("=", "<", ">")


class _Reads(Visitor):
    """What a statement's expressions make PostgreSQL run: calls, reads, operators and casts.

    The target of a DELETE or DROP is not a read: its rows and its code are the plan's own
    business (cascade.py); everything else a statement names in an expression is.
    """

    def __init__(self, target: Any) -> None:  # noqa: ANN401 - pglast node
        super().__init__()
        self.target = target
        self.names: list[str] = []
        self.ranges: list[str] = []
        self.operators: list[str] = []
        self.types: list[str] = []
        self.ctes: list[str] = []
        self.sampled = False

    def functions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.names))

    def relations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.ranges))

    def visit_FuncCall(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        self.names.append(_dotted(node.funcname))
        if node.agg_order:
            self.operators.extend(_ORDERING)
        if node.agg_distinct:
            self.operators.extend(_ORDERING)

    def visit_RangeVar(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if node is self.target:
            return
        parts = [node.catalogname, node.schemaname, node.relname]
        self.ranges.append(".".join(p for p in parts if p))

    def visit_A_Expr(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        name = _dotted(node.name)
        self.operators.extend(_KEYWORD_OPERATORS.get(name, (name,)))

    def visit_SubLink(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if node.subLinkType in {enums.SubLinkType.ANY_SUBLINK, enums.SubLinkType.ALL_SUBLINK}:
            self.operators.append(_dotted(node.operName) or "=")
        elif node.subLinkType is enums.SubLinkType.ROWCOMPARE_SUBLINK:
            self.operators.append(_dotted(node.operName))

    def visit_CaseExpr(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if node.arg is not None:
            self.operators.append("=")  # CASE x WHEN v compares x = v

    def visit_SelectStmt(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if (
            node.sortClause
            or node.distinctClause
            or node.groupClause
            or node.op is not enums.SetOperation.SETOP_NONE
        ):
            self.operators.extend(_ORDERING)

    def visit_JoinExpr(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if node.usingClause or node.isNatural:
            self.operators.append("=")

    def visit_WindowDef(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        if node.orderClause or node.partitionClause:
            self.operators.extend(_ORDERING)

    def visit_TypeCast(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        self.types.append(_dotted(node.typeName.names))

    def visit_CommonTableExpr(self, _ancestors: Any, node: Any) -> None:  # noqa: ANN401, N802
        self.ctes.append(node.ctename)

    def visit_RangeTableSample(self, _ancestors: Any, _node: Any) -> None:  # noqa: ANN401, N802
        self.sampled = True


# Statements whose expressions are stored, not run: a view's query runs when it is read, a
# domain's CHECK when a value is written to it, as they did at N-1. A materialized view
# created WITH NO DATA runs nothing either; WITH DATA runs its query, which is read.
_RUNS_NOTHING = (
    ast.CommentStmt,
    ast.ViewStmt,
    ast.CreateDomainStmt,
    ast.CreateEnumStmt,
    ast.CompositeTypeStmt,
)


def _reads(node: Any, sql: str, offset: int, source: _Source) -> _Reads:  # noqa: ANN401
    """What a statement's expressions run.

    A call that reaches outside the transaction, or a sample whose rows no one can review, is
    refused.
    """
    owned = (
        ast.DeleteStmt | ast.AlterTableStmt | ast.IndexStmt | ast.RenameStmt
    ) | ast.AlterObjectSchemaStmt
    target = node.relation if isinstance(node, owned) else None
    if isinstance(node, ast.AlterSeqStmt):
        target = node.sequence  # the sequence altered is not read
    into: Any = node.into if isinstance(node, ast.CreateTableAsStmt) else None
    if into is not None:
        target = into.rel  # the materialized view it creates is not read
    visitor = _Reads(target)
    if isinstance(node, ast.AlterTableStmt):
        # A default is stored, not run: SET DEFAULT nextval(…) calls nothing now.
        for cmd in node.cmds or ():
            if cmd.subtype != enums.AlterTableType.AT_ColumnDefault:
                visitor(cmd)
    elif not isinstance(node, _RUNS_NOTHING) and not (into is not None and into.skipData):
        visitor(node)
    for name in visitor.names:
        reason = denied_reason(name)
        if reason is not None:
            raise source.refuse(
                offset,
                f"`{_short(sql)}` calls {name}(): {reason}",
                todo="remove the call: rollbot runs only what stays inside its transaction; "
                "do anything else by hand, outside rollbot",
            )
    if visitor.sampled:
        raise source.refuse(
            offset,
            f"`{_short(sql)}` uses TABLESAMPLE: the rows it picks differ from run to run, "
            "and its sampling method is code of its own",
            todo="name the rows to remove with a WHERE condition",
        )
    return visitor


def _strip_transaction(raw: tuple[Any, ...], source: _Source) -> list[Any]:
    """Drop BEGIN … COMMIT around the block; refuse transaction control anywhere else."""
    items = list(raw)
    if items and _is_tx(items[0], _TX.TRANS_STMT_BEGIN, _TX.TRANS_STMT_START):
        items = items[1:]
    if items and _is_tx(items[-1], _TX.TRANS_STMT_COMMIT):
        items = items[:-1]
    for item in items:
        if isinstance(item.stmt, ast.TransactionStmt):
            raise source.refuse(
                item.stmt_location or 0,
                "transaction control inside the rollback "
                f"({_first_words(source.text, item.stmt_location or 0)})",
                todo="keep only one BEGIN at the start and one COMMIT at the end: "
                "rollbot runs the whole block in a single transaction",
            )
    return items


def _is_tx(item: Any, *kinds: enums.TransactionStmtKind) -> bool:  # noqa: ANN401 - pglast node
    return isinstance(item.stmt, ast.TransactionStmt) and item.stmt.kind in kinds


def _first_words(text: str, offset: int) -> str:
    return " ".join(text[offset:].split()[:3]).rstrip(";")


def _recreated_definition(node: Any) -> str | None:  # noqa: ANN401 - pglast node
    """The label of a CREATE that puts back an object holding no rows of its own, else None.

    An index, a view, an enum, a composite type and a domain are their definition; a
    materialized view is its query's result, and filling it runs that query, whose calls and
    reads the plan checks like any other expression (`usercode.py`). `OR REPLACE` and
    `IF NOT EXISTS` are not allowed: each could keep or replace an object other than N-1's.
    """
    if isinstance(node, ast.IndexStmt) and node.idxname and not node.if_not_exists:
        return "CREATE INDEX"
    if isinstance(node, ast.ViewStmt) and not node.replace:
        return "CREATE VIEW"
    if (
        isinstance(node, ast.CreateTableAsStmt)
        and node.objtype == enums.ObjectType.OBJECT_MATVIEW
        and not node.if_not_exists
    ):
        return "CREATE MATERIALIZED VIEW"
    if isinstance(node, ast.CreateEnumStmt | ast.CompositeTypeStmt):
        return "CREATE TYPE"
    if isinstance(node, ast.CreateDomainStmt):
        return "CREATE DOMAIN"
    return None


def _changed_name_or_place(node: Any) -> str | None:  # noqa: ANN401, PLR0911 - pglast node
    """The label of a statement that changes no row, else None.

    A rename, a move to another schema, a comment, a sequence's options, a policy created,
    altered or dropped (without CASCADE): each changes a definition, never a row, and leaves
    no row behind.
    """
    if isinstance(node, ast.RenameStmt) and node.renameType in _RENAMES and not node.missing_ok:
        return _RENAMES[node.renameType]
    if isinstance(node, ast.AlterEnumStmt) and node.oldVal:
        return "ALTER TYPE … RENAME VALUE"
    if (
        isinstance(node, ast.AlterObjectSchemaStmt)
        and node.objectType in _MOVES
        and not node.missing_ok
    ):
        return _MOVES[node.objectType]
    if isinstance(node, ast.CommentStmt):
        return "COMMENT ON"
    if isinstance(node, ast.CreatePolicyStmt | ast.AlterPolicyStmt):
        # Its expressions run when rows are read later, not now.
        return "CREATE POLICY" if isinstance(node, ast.CreatePolicyStmt) else "ALTER POLICY"
    if (
        isinstance(node, ast.AlterSeqStmt)
        and not node.missing_ok
        and not node.for_identity
        and {str(option.defname) for option in node.options or ()} <= SEQUENCE_OPTIONS
    ):
        return "ALTER SEQUENCE … options"
    if (
        isinstance(node, ast.DropStmt)
        and node.removeType == enums.ObjectType.OBJECT_POLICY
        and node.behavior != enums.DropBehavior.DROP_CASCADE
    ):
        return "DROP POLICY"
    return None


def _classify(
    node: Any,  # noqa: ANN401 - pglast node
    sql: str,
    offset: int,
    source: _Source,
    enums_made: _Enums,
) -> tuple[str, tuple[DbObject, ...], bool]:
    reason = _non_transactional(node)
    if reason is not None:
        raise source.refuse(
            offset,
            f"`{_short(sql)}` cannot run inside a transaction block ({reason})",
            todo="run it by hand outside rollbot, or drop the CONCURRENTLY/VACUUM part: "
            "rollbot runs the rollback as one transaction",
        )
    if isinstance(node, ast.DropStmt) and node.removeType in _DROPPABLE:
        kind = _DROPPABLE[node.removeType]
        targets: tuple[Any, ...] = node.objects or ()
        missing_ok = bool(node.missing_ok)
        objects = tuple(_drop_target(obj, kind, missing_ok=missing_ok) for obj in targets)
        cascade = node.behavior == enums.DropBehavior.DROP_CASCADE
        if cascade and kind is ObjectKind.SCHEMA:
            raise source.refuse(
                offset,
                f"`{_short(sql)}` drops whatever the schema holds, named or not",
                todo="drop each object of the schema by name first, then the schema "
                "without CASCADE: PostgreSQL then refuses it while anything is left in it",
            )
        return f"DROP {kind.upper()}", objects, cascade
    if isinstance(node, ast.AlterTableStmt) and node.objtype == enums.ObjectType.OBJECT_TABLE:
        cmds: tuple[Any, ...] = node.cmds or ()
        kinds = {cmd.subtype for cmd in cmds}
        if kinds <= set(_ALTER_DROPS):
            relation: Any = node.relation
            objects = tuple(
                DbObject(
                    kind=_ALTER_DROPS[cmd.subtype],
                    name=cmd.name,
                    table=relation.relname,
                    table_namespace=relation.schemaname,
                    missing_ok=bool(cmd.missing_ok or node.missing_ok),
                )
                for cmd in cmds
            )
            cascade = any(cmd.behavior == enums.DropBehavior.DROP_CASCADE for cmd in cmds)
            label = " / ".join(sorted(f"DROP {_ALTER_DROPS[k].upper()}" for k in kinds))
            return f"ALTER TABLE … {label}", objects, cascade
        _refuse_type_changes(cmds, sql, offset, source, enums_made)
        if kinds <= set(_ALTER_RESTORES) and not node.missing_ok:
            label = " / ".join(sorted({_ALTER_RESTORES[k] for k in kinds}))
            return f"ALTER TABLE … {label}", (), False
    created = _recreated_definition(node)
    if created is not None:
        return created, (), False
    changed = _changed_name_or_place(node)
    if changed is not None:
        return changed, (), False
    if isinstance(node, ast.DeleteStmt) and node.withClause is None:
        relation = node.relation
        assert relation is not None  # noqa: S101 - the grammar requires a target table
        target = DbObject(
            kind=ObjectKind.ROWS,
            name=relation.relname,
            table=relation.relname,
            table_namespace=relation.schemaname,
        )
        return "DELETE", (target,), False
    raise source.refuse(
        offset,
        f"`{_short(sql)}` is not a statement a rollback runbook may run",
        todo=f"use only {_ALLOWED}; do anything else by hand, outside rollbot",
    )


def _creates(node: Any) -> tuple[DbObject, ...]:  # noqa: ANN401 - pglast node
    """The named objects a CREATE or an ADD CONSTRAINT makes, as written."""
    made = _created(node)
    if made is not None:
        return (made,)
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return ()
    relation = node.relation
    return tuple(
        DbObject(
            kind=ObjectKind.CONSTRAINT,
            name=cmd.def_.conname,
            table=relation.relname,
            table_namespace=relation.schemaname,
        )
        for cmd in node.cmds or ()
        if cmd.subtype == enums.AlterTableType.AT_AddConstraint
        and isinstance(cmd.def_, ast.Constraint)
        and cmd.def_.conname
    )


def _renamed_to(node: Any) -> DbObject | None:  # noqa: ANN401 - pglast RenameStmt
    """A relation, type or domain under its new name: what the rename makes of that name."""
    kind = _DROPPABLE.get(node.renameType)
    if kind is None or kind is ObjectKind.SCHEMA:
        return None
    if node.relation is not None:  # a table, index, view, materialized view, sequence
        namespace = node.relation.schemaname
    elif isinstance(node.object, tuple):  # a type or a domain
        namespace = _type_key(node.object)[0]
    else:
        return None
    return DbObject(kind=kind, name=str(node.newname), namespace=namespace)


def _created(node: Any) -> DbObject | None:  # noqa: ANN401 - pglast node
    """The index, view, materialized view, type or domain a CREATE (or a rename) makes."""
    if isinstance(node, ast.RenameStmt):
        return _renamed_to(node)
    if isinstance(node, ast.CreateEnumStmt):
        return _drop_target(node.typeName, ObjectKind.TYPE, missing_ok=False)
    if isinstance(node, ast.CreateDomainStmt):
        return _drop_target(node.domainname, ObjectKind.DOMAIN, missing_ok=False)
    if isinstance(node, ast.IndexStmt) and node.idxname and node.relation is not None:
        namespace = node.relation.schemaname  # an index lives in its table's schema
        return DbObject(kind=ObjectKind.INDEX, name=node.idxname, namespace=namespace)
    relation: Any = None
    if isinstance(node, ast.ViewStmt):
        kind, relation = ObjectKind.VIEW, node.view
    elif (
        isinstance(node, ast.CreateTableAsStmt)
        and node.objtype == enums.ObjectType.OBJECT_MATVIEW
        and node.into is not None
    ):
        kind, relation = ObjectKind.MATERIALIZED_VIEW, node.into.rel
    elif isinstance(node, ast.CompositeTypeStmt):
        kind, relation = ObjectKind.TYPE, node.typevar
    if relation is None:
        return None
    return DbObject(kind=kind, name=relation.relname, namespace=relation.schemaname)


def _set_not_null(node: Any) -> tuple[tuple[str | None, str, str], ...]:  # noqa: ANN401
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return ()
    relation = node.relation
    return tuple(
        (relation.schemaname, str(relation.relname), str(cmd.name))
        for cmd in node.cmds or ()
        if cmd.subtype == enums.AlterTableType.AT_SetNotNull
    )


def _refuse_type_changes(
    cmds: tuple[Any, ...], sql: str, offset: int, source: _Source, enums_made: _Enums
) -> None:
    for cmd in cmds:
        if _enum_cast(cmd, enums_made) is not None:
            continue
        problem = _type_change_problem(cmd)
        if problem is not None:
            raise source.refuse(
                offset,
                f"`{_short(sql)}` {problem}",
                todo="cast only to smallint, integer, bigint, real, double precision, "
                "numeric, char, varchar or text, without USING, or to an enum the runbook "
                "creates above with exactly `USING column::text::enum`; convert values by "
                "hand, outside rollbot",
            )


def _type_change_problem(cmd: Any) -> str | None:  # noqa: ANN401 - pglast AlterTableCmd
    """Why a rollback may not run this column type change: one that could run anyone's code."""
    if cmd.subtype != enums.AlterTableType.AT_AlterColumnType:
        return None
    if cmd.def_.raw_default is not None:
        return "converts values with USING, an expression of its own"
    if node_type(cmd.def_.typeName) is None:
        return "casts to a type other than PostgreSQL's own numbers and strings"
    return None


_Enums = dict[tuple[str | None, str], tuple[str, ...]]


def _type_key(type_name: Any) -> tuple[str | None, str]:  # noqa: ANN401 - pglast TypeName/names
    names = type_name.names if isinstance(type_name, ast.TypeName) else type_name
    parts = [str(part.sval) for part in names or ()]
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def _enum_cast(cmd: Any, enums_made: _Enums) -> tuple[str, ...] | None:  # noqa: ANN401
    """The labels, when `cmd` casts its column to an enum the runbook made, through text.

    `SET DATA TYPE e USING column::text::e`, exactly: the cast is PostgreSQL's own (enum to
    text, text to enum), a value that is not a label of `e` makes it fail, and no other
    expression runs. This is how an enum goes back to N-1's labels.
    """
    if cmd.subtype != enums.AlterTableType.AT_AlterColumnType or cmd.def_ is None:
        return None
    target, using = cmd.def_.typeName, cast("Any", cmd.def_.raw_default)
    if target is None or target.arrayBounds or _type_key(target) not in enums_made:
        return None
    inner: Any = using.arg if isinstance(using, ast.TypeCast) else None
    column = inner.arg if isinstance(inner, ast.TypeCast) else None
    if (
        not isinstance(column, ast.ColumnRef)
        or [getattr(f, "sval", None) for f in column.fields or ()] != [cmd.name]
        or _type_key(inner.typeName) not in {(None, "text"), ("pg_catalog", "text")}
        or inner.typeName.arrayBounds
        or _type_key(using.typeName) != _type_key(target)
        or using.typeName.arrayBounds
    ):
        return None
    return enums_made[_type_key(target)]


def _casts_back(node: Any, enums_made: _Enums) -> tuple[CastBack, ...]:  # noqa: ANN401
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return ()
    relation = node.relation
    casts = []
    for cmd in node.cmds or ():
        if cmd.subtype != enums.AlterTableType.AT_AlterColumnType:
            continue
        labels = _enum_cast(cmd, enums_made)
        shown = _qualified(*_type_key(cmd.def_.typeName)) if labels is not None else None
        casts.append(
            CastBack(
                namespace=relation.schemaname,
                table=str(relation.relname),
                column=str(cmd.name),
                type=shown or str(node_type(cmd.def_.typeName)),
                labels=labels,
            )
        )
    return tuple(casts)


def _sequence_change(node: Any) -> SequenceChange | None:  # noqa: ANN401 - pglast node
    if not isinstance(node, ast.AlterSeqStmt) or node.sequence is None:
        return None
    values: dict[str, Any] = {}
    for option in node.options or ():
        name, arg = str(option.defname), option.arg
        if name == "as":
            found = node_type(arg)
            values["type"] = str(found) if found is not None else None
        elif name in {"increment", "minvalue", "maxvalue", "start"}:
            number = _integer(arg)
            if number is None and name in {"minvalue", "maxvalue"}:
                values[f"no_{name}"] = True
            else:
                values[name] = number
    return SequenceChange(
        namespace=node.sequence.schemaname, name=str(node.sequence.relname), **values
    )


def _integer(arg: Any) -> int | None:  # noqa: ANN401 - a pglast Integer, Float or None
    """A sequence option's number: pglast gives one past 32 bits as a Float of its digits."""
    if isinstance(arg, ast.Integer):
        return int(arg.ival or 0)  # pglast leaves a zero unset
    if isinstance(arg, ast.Float):
        return int(str(arg.fval))
    return None


_CONSTRAINT_KINDS: dict[Any, ConstraintKind] = {
    enums.ConstrType.CONSTR_CHECK: "check",
    enums.ConstrType.CONSTR_FOREIGN: "foreign key",
    enums.ConstrType.CONSTR_UNIQUE: "unique",
    enums.ConstrType.CONSTR_PRIMARY: "primary key",
    enums.ConstrType.CONSTR_EXCLUSION: "exclusion",
}


def _validates(
    node: Any,  # noqa: ANN401 - pglast node
    added_not_valid: dict[tuple[str | None, str, str], Validation],
    number: int,
) -> tuple[Validation, ...]:
    """The constraints this statement checks rows against; remembers those added NOT VALID.

    ADD CONSTRAINT checks every row unless NOT VALID; VALIDATE CONSTRAINT checks the rows of
    one added NOT VALID, which is only known here if this runbook added it. A constraint added
    USING INDEX checks nothing the unique index has not already.
    """
    if isinstance(node, ast.IndexStmt):
        unique = _unique_index(node)
        return (unique.model_copy(update={"written_in": number}),) if unique else ()
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
        return ()
    relation = node.relation
    schema, table = relation.schemaname, str(relation.relname)
    found: list[Validation] = []
    for cmd in node.cmds or ():
        if cmd.subtype == enums.AlterTableType.AT_ValidateConstraint:
            added = added_not_valid.pop((schema, table, str(cmd.name)), None)
            if added is not None:
                found.append(added.model_copy(update={"only": added.only or not relation.inh}))
            else:
                found.append(
                    Validation(
                        kind="check",
                        name=str(cmd.name),
                        namespace=schema,
                        table=table,
                        only=not relation.inh,
                        existing=True,
                    )
                )
        elif cmd.subtype == enums.AlterTableType.AT_AddConstraint:
            validation = _validation(cmd.def_, schema, table, only=not relation.inh)
            if validation is None:
                continue
            validation = validation.model_copy(update={"written_in": number})
            if cmd.def_.skip_validation:
                if validation.name is not None:
                    added_not_valid[(schema, table, validation.name)] = validation
            else:
                found.append(validation)
    return tuple(found)


def _unique_index(node: Any) -> Validation | None:  # noqa: ANN401 - pglast IndexStmt
    """A CREATE UNIQUE INDEX over plain columns checks every row like a UNIQUE constraint.

    One on expressions or with a WHERE is left uncounted: its statement still fails on the
    first duplicate, before COMMIT, with nothing changed.
    """
    if not node.unique or node.relation is None or node.whereClause is not None:
        return None
    columns = [param.name for param in node.indexParams or ()]
    if not columns or any(name is None for name in columns):
        return None
    return Validation(
        kind="unique",
        name=node.idxname or None,
        namespace=node.relation.schemaname,
        table=str(node.relation.relname),
        only=not node.relation.inh,
        columns=tuple(str(name) for name in columns),
        nulls_not_distinct=bool(node.nulls_not_distinct),
    )


def _validation(
    constraint: Any,  # noqa: ANN401 - pglast node
    schema: str | None,
    table: str,
    *,
    only: bool,
) -> Validation | None:
    kind = _CONSTRAINT_KINDS.get(constraint.contype)
    if kind is None or constraint.indexname:
        return None
    names = [str(n.sval) for n in constraint.keys or ()]
    fields: dict[str, Any] = {
        "kind": kind,
        "name": constraint.conname or None,
        "namespace": schema,
        "table": table,
        "only": only,
        "columns": tuple(names),
    }
    if kind == "check":
        fields["expression"] = RawStream()(constraint.raw_expr)
        fields["subquery"] = _has_subquery(constraint.raw_expr)
        fields["only"] = only or bool(constraint.is_no_inherit)
    elif kind == "foreign key":
        parent = constraint.pktable
        fields["columns"] = tuple(str(n.sval) for n in constraint.fk_attrs or ())
        fields["parent_namespace"] = parent.schemaname
        fields["parent"] = str(parent.relname)
        fields["referenced"] = tuple(str(n.sval) for n in constraint.pk_attrs or ())
        fields["match_full"] = constraint.fk_matchtype == "f"
    elif kind == "unique":
        fields["nulls_not_distinct"] = bool(constraint.nulls_not_distinct)
    return Validation(**fields)


class _Subqueries(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def visit_SubLink(self, _ancestors: Any, _node: Any) -> None:  # noqa: ANN401, N802
        self.found = True


def _has_subquery(node: Any) -> bool:  # noqa: ANN401 - pglast node
    visitor = _Subqueries()
    visitor(node)
    return visitor.found


def _non_transactional(node: Any) -> str | None:  # noqa: ANN401 - pglast node
    """Why PostgreSQL would refuse this statement inside BEGIN … COMMIT, if it would."""
    if isinstance(node, ast.DropStmt | ast.IndexStmt) and node.concurrent:
        return "CONCURRENTLY"
    params: tuple[Any, ...] = getattr(node, "params", None) or ()
    if isinstance(node, ast.ReindexStmt) and any(p.defname == "concurrently" for p in params):
        return "REINDEX CONCURRENTLY"
    refused = {
        ast.VacuumStmt: "VACUUM/ANALYZE",
        ast.CreatedbStmt: "CREATE DATABASE",
        ast.DropdbStmt: "DROP DATABASE",
        ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
        ast.DropTableSpaceStmt: "DROP TABLESPACE",
        ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
        ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",
    }
    for refused_type, reason in refused.items():
        if isinstance(node, refused_type):
            return reason
    return None


def _drop_target(obj: Any, kind: ObjectKind, *, missing_ok: bool) -> DbObject:  # noqa: ANN401
    if isinstance(obj, ast.String):  # a schema: one name
        return DbObject(kind=kind, name=str(obj.sval), missing_ok=missing_ok)
    names: tuple[Any, ...] = (obj.names or ()) if isinstance(obj, ast.TypeName) else obj
    parts = [part.sval for part in names]
    name = parts[-1]
    namespace = parts[-2] if len(parts) > 1 else None
    return DbObject(kind=kind, name=name, namespace=namespace, missing_ok=missing_ok)


def _short(sql: str, limit: int = 80) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_queries(text: str, *, file: str, first_line: int) -> tuple[tuple[int, str], ...]:
    """Read-only verification queries as (line, sql); anything but SELECT is refused."""
    source = _Source(text, file, first_line)
    raw = source.parse(todo="fix the verification query")
    queries: list[tuple[int, str]] = []
    for item in raw:
        start = item.stmt_location or 0
        length = item.stmt_len or len(text) - start
        sql = text[start : start + length].strip().rstrip(";").strip()
        node = item.stmt
        if (
            not isinstance(node, ast.SelectStmt)
            or node.withClause is not None
            or node.intoClause is not None  # SELECT … INTO creates a table
            or node.lockingClause  # FOR UPDATE/SHARE takes row locks
        ):
            raise source.refuse(
                start,
                f"`{_short(sql)}` in the verification block is not a plain SELECT",
                todo="verification queries only read: use SELECT, without INTO or FOR UPDATE",
            )
        _reads(node, sql, start, source)
        queries.append((source.line_at(start), sql))
    return tuple(queries)
