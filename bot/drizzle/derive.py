"""Derived rollbacks: a runbook written from the forward migration, for migrations that only add.

Most drizzle-kit migrations only create things: types, tables, sequences, views, indexes,
columns and constraints. Undoing one is mechanical: drop what it created, newest first, so
that every foreign key goes before the table it points to and every table before the enum
its columns use. Anything that changes what already existed is different: a dropped column,
a changed type, an added enum value, rewritten rows, a DO block. The old state is not in the
migration, so no rollback can be derived and the first such statement is refused by name
and line (`IrreversibleError`).

Statements that only touch what the same migration created need no undo of their own: rows
inserted into a new table, a backfill of a new column, an `ALTER TABLE` on a new table, a
value added to a new enum. Dropping the new object undoes them. A create with `IF NOT EXISTS`
is refused, since the object may have been there before and dropping it would lose it.

The runbook is rendered in the seed's format and says prominently that it was derived.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pglast import ast, enums

from bot.core.errors import IrreversibleError, MigrationFileError
from bot.core.names import quote_ident
from bot.drizzle.forward import ForwardStatement, parse_forward
from bot.drizzle.journal import iso_date

if TYPE_CHECKING:
    from bot.drizzle.folder import Migration

_AT = enums.AlterTableType
_OBJ = enums.ObjectType
_DEFAULT_SCHEMA = "public"  # where an unqualified name lands under the default search_path
_COMMENT_WIDTH = 72

_ALTER_REASONS = {
    _AT.AT_DropColumn: "it drops a column, and the column's data goes with it",
    _AT.AT_AlterColumnType: "it changes a column's type; the old type is not in the migration "
    "and the values were converted",
    _AT.AT_SetNotNull: "it makes an existing column NOT NULL, which a rollback runbook "
    "cannot change back",
    _AT.AT_DropNotNull: "it lets an existing column hold NULL, which a rollback runbook "
    "cannot change back",
    _AT.AT_ColumnDefault: "it changes an existing column's default; the old default is not "
    "in the migration",
    _AT.AT_DropConstraint: "it drops a constraint, and its definition is not in the migration",
}
_STATEMENT_REASONS: dict[type, str] = {
    ast.RenameStmt: "it renames an object, and a rollback runbook cannot rename it back",
    ast.DoStmt: "a DO block runs code whose effects rollbot cannot see",
    ast.CreateFunctionStmt: "it creates or replaces a function, which a rollback runbook "
    "may not drop or restore",
    ast.CreateTrigStmt: "it creates a trigger, which a rollback runbook may not drop",
    ast.CreateSchemaStmt: "it creates a schema, which a rollback runbook may not drop",
    ast.CreateExtensionStmt: "it creates an extension, which a rollback runbook may not drop",
    ast.AlterEnumStmt: "it changes an existing enum; PostgreSQL cannot remove an enum value",
    ast.InsertStmt: "it changes rows of an existing table, and the old rows are not in the "
    "migration",
    ast.UpdateStmt: "it changes rows of an existing table, and the old rows are not in the "
    "migration",
    ast.DeleteStmt: "it deletes rows of an existing table, and they are not in the migration",
}
_UNKNOWN_REASON = (
    "a derived rollback only undoes CREATE TYPE/TABLE/INDEX/SEQUENCE/VIEW/MATERIALIZED VIEW "
    "and ALTER TABLE … ADD COLUMN/CONSTRAINT"
)
_IF_NOT_EXISTS_REASON = (
    "IF NOT EXISTS means the object may have existed before the migration, and dropping it "
    "would destroy something the migration did not create"
)


@dataclass(frozen=True)
class Undo:
    """The rollback statements for one forward statement."""

    line: int  # the forward statement's line in its file
    forward: str  # the forward statement as written
    statements: tuple[str, ...]  # rollback SQL, in the order it must run, without semicolons


@dataclass
class _Scope:
    """What the migration created so far; statements touching only these need no undo."""

    tables: set[tuple[str, str]]
    columns: set[tuple[str, str, str]]
    types: set[tuple[str, str]]
    indexes: set[tuple[str, str]]

    def has_table(self, relation: Any) -> bool:  # noqa: ANN401 - pglast RangeVar
        return _qualified_key(relation) in self.tables

    def has_column(self, relation: Any, column: str) -> bool:  # noqa: ANN401
        return (*_qualified_key(relation), column) in self.columns


class _Refusal(Exception):  # noqa: N818 - internal signal, never escapes this module
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def derive_rollback(migration: Migration) -> list[Undo]:
    """The rollback of `migration`, newest statement first; IrreversibleError if there is none."""
    file = f"{migration.tag}.sql"
    scope = _Scope(tables=set(), columns=set(), types=set(), indexes=set())
    undos: list[Undo] = []
    refused: list[tuple[ForwardStatement, str]] = []
    for statement in parse_forward(migration):
        try:
            drops = _undo(statement.node, scope)
        except _Refusal as refusal:
            refused.append((statement, refusal.reason))
            continue
        if drops:
            undos.append(Undo(statement.line, statement.sql, tuple(reversed(drops))))
    if refused:
        statement, reason = refused[0]
        raise IrreversibleError(file, statement.line, statement.sql, reason, more=len(refused) - 1)
    if not undos:
        raise MigrationFileError(
            file,
            None,
            "the migration creates nothing, so there is nothing to drop",
            todo="write the rollback runbook by hand if the migration did change something",
        )
    return list(reversed(undos))


def derive_runbook(migration: Migration, *, date: str | None = None) -> str:
    """A runbook in the seed's format, marked as derived; `date` defaults to the journal's."""
    undos = derive_rollback(migration)
    file = f"{migration.tag}.sql"
    body = [f"-- Derived from {file}: each statement undoes the line it names.", "BEGIN;", ""]
    for undo in undos:
        body.append(f"-- undoes line {undo.line}: {_one_line(undo.forward)}")
        body += [f"{sql};" for sql in undo.statements]
        body.append("")
    body.append("COMMIT;")
    code = "\n".join(body)
    fence = "`" * max(3, _longest_backtick_run(code) + 1)
    count = sum(len(undo.statements) for undo in undos)
    return "\n".join(
        [
            f"# Derived rollback of {migration.tag}",
            "",
            (
                f"> **Derived rollback.** rollbot derived this runbook from the forward "
                f"migration `{file}`; no person wrote it. It drops what the migration created, "
                f"newest first ({count} statement{'' if count == 1 else 's'}). Read it before "
                "approving."
            ),
            "",
            "## Current Migration",
            "",
            f"**Migration File**: `{file}`",
            f"**Date**: {date or iso_date(migration.when)}",
            "**Description**: derived from the forward migration",
            "",
            (
                f"The forward file's sha256 is `{migration.hash}`, the hash Drizzle records in "
                "its journal. If the file changes, derive the runbook again."
            ),
            "",
            "## Quick Rollback",
            "",
            f"{fence}sql",
            code,
            fence,
            "",
        ]
    )


def _undo(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    """Rollback statements for one forward statement, in forward order; _Refusal if none."""
    undo = _UNDOERS.get(type(node))
    if undo is not None:
        return undo(node, scope)
    if _touches_only_new_objects(node, scope):
        return []
    if isinstance(node, ast.DropStmt):
        kind = str(getattr(node.removeType, "name", "object"))
        kind = kind.removeprefix("OBJECT_").replace("_", " ").lower()
        article = "an" if kind.startswith(tuple("aeiou")) else "a"
        raise _Refusal(f"it drops {article} {kind}, and its definition and data are gone")
    raise _Refusal(_STATEMENT_REASONS.get(type(node), _UNKNOWN_REASON))


def _undo_composite(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    scope.types.add(_qualified_key(node.typevar))
    return [f"DROP TYPE IF EXISTS {_relation(node.typevar)}"]


def _undo_table(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    _refuse_if(node.if_not_exists, _IF_NOT_EXISTS_REASON)
    scope.tables.add(_qualified_key(node.relation))
    return [f"DROP TABLE IF EXISTS {_relation(node.relation)}"]


def _undo_table_as(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    _refuse_if(node.if_not_exists, _IF_NOT_EXISTS_REASON)
    relation = node.into.rel
    scope.tables.add(_qualified_key(relation))
    kind = "MATERIALIZED VIEW" if node.objtype == _OBJ.OBJECT_MATVIEW else "TABLE"
    return [f"DROP {kind} IF EXISTS {_relation(relation)}"]


def _undo_sequence(node: Any, _scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    _refuse_if(node.if_not_exists, _IF_NOT_EXISTS_REASON)
    return [f"DROP SEQUENCE IF EXISTS {_relation(node.sequence)}"]


def _undo_view(node: Any, _scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    _refuse_if(
        node.replace,
        "CREATE OR REPLACE VIEW may have replaced a view whose old definition is not in "
        "the migration",
    )
    return [f"DROP VIEW IF EXISTS {_relation(node.view)}"]


def _undo_index(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    _refuse_if(node.if_not_exists, _IF_NOT_EXISTS_REASON)
    relation = node.relation
    if not node.idxname:
        _refuse_unnamed("index", relation, scope)
        return []  # it goes with its table, which this migration created
    scope.indexes.add((_qualified_key(relation)[0], node.idxname))
    return [f"DROP INDEX IF EXISTS {_name(relation.schemaname, node.idxname)}"]


def _refuse_unnamed(kind: str, relation: Any, scope: _Scope) -> None:  # noqa: ANN401 - pglast node
    """An unnamed object is fine only on a table this migration created: it goes with it."""
    _refuse_if(
        not scope.has_table(relation),
        f"the {kind} has no name in the migration; PostgreSQL chose one (adding a digit "
        "if it was taken), so a derived rollback cannot name it for certain",
    )


def _undo_alter_table(node: Any, scope: _Scope) -> list[str]:  # noqa: ANN401 - pglast node
    if node.objtype != _OBJ.OBJECT_TABLE:
        raise _Refusal(_UNKNOWN_REASON)
    relation = node.relation
    table = _relation(relation)
    new_table = scope.has_table(relation)
    drops: list[str] = []
    for cmd in node.cmds or ():
        if cmd.subtype == _AT.AT_AddColumn:
            _refuse_if(cmd.missing_ok, _IF_NOT_EXISTS_REASON)
            column = cmd.def_.colname
            scope.columns.add((*_qualified_key(relation), column))
            drops.append(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {quote_ident(column)}")
        elif cmd.subtype == _AT.AT_AddConstraint:
            drops += _undo_add_constraint(cmd.def_, relation, scope)
        elif not (new_table or (cmd.name and scope.has_column(relation, cmd.name))):
            raise _Refusal(
                _ALTER_REASONS.get(
                    cmd.subtype,
                    "it changes an existing table in a way a rollback runbook cannot reverse",
                )
            )
    return drops


def _undo_add_constraint(constraint: Any, relation: Any, scope: _Scope) -> list[str]:  # noqa: ANN401
    if constraint.indexname:
        index = (_qualified_key(relation)[0], constraint.indexname)
        _refuse_if(
            index not in scope.indexes,
            "it turns an existing index into a constraint; dropping the constraint would drop "
            "that index too",
        )
    if not constraint.conname:
        _refuse_unnamed("constraint", relation, scope)
        return []  # it goes with its table, which this migration created
    name = quote_ident(constraint.conname)
    return [f"ALTER TABLE {_relation(relation)} DROP CONSTRAINT IF EXISTS {name}"]


def _touches_only_new_objects(node: Any, scope: _Scope) -> bool:  # noqa: ANN401 - pglast node
    """Data and enum changes confined to what this migration created go when it is dropped."""
    if isinstance(node, ast.AlterEnumStmt):
        return _key(*_schema_and_name(node.typeName)) in scope.types
    if not isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
        return False
    if node.withClause is not None:
        return False  # a data-modifying WITH may write anywhere
    if scope.has_table(node.relation):
        return True
    if isinstance(node, ast.UpdateStmt):
        targets = [target.name for target in node.targetList or ()]
        return all(scope.has_column(node.relation, name) for name in targets)
    return False


def _drop_type(keyword: str, names: Any, scope: _Scope) -> str:  # noqa: ANN401 - pglast names
    schema, name = _schema_and_name(names)
    scope.types.add(_key(schema, name))
    return f"DROP {keyword} IF EXISTS {_name(schema, name)}"


def _refuse_if(condition: object, reason: str) -> None:
    if condition:
        raise _Refusal(reason)


def _schema_and_name(names: Any) -> tuple[str | None, str]:  # noqa: ANN401 - pglast names
    parts = [str(part.sval) for part in names]
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def _key(schema: str | None, name: str) -> tuple[str, str]:
    return (schema or _DEFAULT_SCHEMA, name)


def _qualified_key(relation: Any) -> tuple[str, str]:  # noqa: ANN401 - pglast RangeVar
    return _key(relation.schemaname, relation.relname)


def _name(schema: str | None, name: str) -> str:
    """As the migration wrote it: schema-qualified only when it was."""
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)


def _relation(relation: Any) -> str:  # noqa: ANN401 - pglast RangeVar
    return _name(relation.schemaname, relation.relname)


def _one_line(sql: str) -> str:
    flat = " ".join(sql.split()).replace("`", "'")
    return flat if len(flat) <= _COMMENT_WIDTH else flat[: _COMMENT_WIDTH - 1] + "…"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


_Undoer = Callable[[Any, _Scope], list[str]]
_UNDOERS: dict[type, _Undoer] = {
    ast.CreateEnumStmt: lambda node, scope: [_drop_type("TYPE", node.typeName, scope)],
    ast.CreateRangeStmt: lambda node, scope: [_drop_type("TYPE", node.typeName, scope)],
    ast.CreateDomainStmt: lambda node, scope: [_drop_type("DOMAIN", node.domainname, scope)],
    ast.CompositeTypeStmt: _undo_composite,
    ast.CreateStmt: _undo_table,
    ast.CreateTableAsStmt: _undo_table_as,
    ast.CreateSeqStmt: _undo_sequence,
    ast.ViewStmt: _undo_view,
    ast.IndexStmt: _undo_index,
    ast.AlterTableStmt: _undo_alter_table,
}
