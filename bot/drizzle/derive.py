"""Derived rollbacks: a runbook written from the forward migration and the schema before it.

A drizzle-kit migration mostly creates things: types, tables, sequences, views, indexes,
columns and constraints. Undoing those is mechanical: drop what it created, newest first, so
that every foreign key goes before the table it points to and every table before the enum its
columns use. Statements that only touch what the same migration created need no undo of their
own (rows inserted into a new table, a backfill of a new column, a value added to a new enum):
dropping the new object undoes them.

Changes to what already existed are undone from the schema at N-1 (`Before`): the reference
rollbot replays from the migrations folder (`bot.target.reference`), passed in as plain values
so that this stays a pure function of the files and the schema.

- `DROP INDEX` is undone by recreating the index from its N-1 definition: an index holds no
  data, its definition is all there is.
- `DROP CONSTRAINT` is undone by adding the N-1 definition back; a foreign key or CHECK is
  added `NOT VALID` and then validated, a UNIQUE, PRIMARY KEY or EXCLUDE directly. Before
  approval the plan counts the rows that would make the VALIDATE or ADD fail (a CHECK's rows
  where its expression is false, a foreign key's rows whose non-NULL key matches no parent
  row, a UNIQUE's rows sharing a key, a PRIMARY KEY's NULL keys too: `bot/target/
  violations.py`) and blocks with their count and line; a CHECK is evaluated only when the
  plan would let everything it calls run, else the plan says it was not counted. Rows
  written after the plan still fail the rollback before COMMIT, naming the constraint.
- `DROP NOT NULL` is undone by `SET NOT NULL` when the column was NOT NULL at N-1 (the plan
  counts the NULL rows that would make it fail); `SET NOT NULL` by `DROP NOT NULL`.
- `SET DEFAULT` and `DROP DEFAULT` go back to the N-1 default, or to none.
- `SET DATA TYPE` that widens the column (`bot.core.widening`: smallint to integer to
  bigint or to a numeric with room for its digits, a longer varchar or text, a longer
  character or a varchar or text, real to double precision, numeric to no fewer digits on
  either side of the point or to an unconstrained numeric) casts it back to the N-1 type
  and collation, and sets the N-1 default again
  (PostgreSQL casts the default with the column). Every value that existed casts back
  exactly; rows written since may not fit, so the plan counts them (`bot/target/unfit.py`)
  and blocks with their count, and the transaction counts them again just before the cast.
  PostgreSQL rebuilds the column's indexes and constraints (the proof checks them), and one
  that calls user-defined code blocks the plan, like any code a rewritten row would run.
- Renames of tables, columns, constraints, indexes, views, materialized views, sequences,
  types, domains and enum values are renamed back (a row holding the value reads the old
  label again).
- `SET SCHEMA` of a table, view, materialized view, sequence or type moves it back, when
  N-1 had it in the schema it left (the move keeps every row where it is) or when this
  migration created it (back where the undo of its creation drops it).
- `COMMENT ON` goes back to the N-1 comment, or to none.
- `CREATE POLICY` is undone by `DROP POLICY`; `ALTER POLICY` goes back to the N-1 roles and
  expressions (a clause N-1 lacked cannot be removed by ALTER POLICY: refused); a dropped
  policy is created again from N-1; `ENABLE`/`DISABLE`/`[NO] FORCE ROW LEVEL
  SECURITY` go back to the table's N-1 setting. The schema compared by the proof holds
  every policy and both settings, so a plan that left one behind is not proved.
- `ALTER SEQUENCE` of its type, increment, bounds, start, cache or cycling goes back to the
  N-1 options; its current value stays (RESTART, which loses it, is refused). A sequence that
  has counted past the N-1 bounds since cannot take them back: the plan reads its value and
  blocks, saying so (`bot/core/sequences.py`).
- `DROP VIEW`, `DROP MATERIALIZED VIEW` and `DROP TYPE`/`DROP DOMAIN` (enum, composite,
  domain) create the object again from its N-1 definition, options and comment; a
  materialized view is filled again (`WITH DATA`) only if it was populated at N-1, and its
  N-1 indexes come back with it. Statements
  are undone newest first, so a view dropped before what it depends on is recreated after it.
- `CREATE … IF NOT EXISTS` (table, index, sequence, column) drops the object only when N-1
  did not have it; when it did, the statement changed nothing and its undo is nothing.

Statements that put an object back from its N-1 definition (an index, a constraint, a view,
a type) run after every other undo, renames back included, since the definition names N-1's
tables and columns; among themselves they keep the newest-first order.

A change to a new table's rows is no longer confined to it once a table of N-1 references it
through a foreign key the migration added (a DELETE, TRUNCATE or UPDATE there reaches N-1's
rows through ON DELETE / ON UPDATE actions), and a backfill of a new column of an N-1 table
fires that table's triggers, which may rewrite its old columns: both are refused as data lost.
Renames are followed column by column, so an old column renamed onto a name a new column once
had is still old.

What loses data stays refused: `DROP TABLE`, `DROP COLUMN`, `DROP SEQUENCE` and
`ALTER SEQUENCE … RESTART` (its current value), a changed column type other than a widening
or with USING (values were converted), and rows written, changed or deleted in tables that
existed. `ALTER TYPE … ADD VALUE` on an existing enum is undone by making the enum again with
N-1's labels and casting its columns to it through text: a row holding the value makes the
cast fail, so the plan counts those rows and blocks on them. The refusal
(`IrreversibleError`) names the first statement that loses data, by line, and what goes with
it; only when no statement loses data does it name the first statement that cannot be undone
for another reason (a DO block, a drop with CASCADE, no reference to read the old definition
from).

The runbook is rendered in the seed's format and says prominently that it was derived.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pglast import ast, enums

from bot.core.errors import IrreversibleError, MigrationFileError
from bot.core.names import quote_ident, quote_literal
from bot.core.sql import SEQUENCE_OPTIONS
from bot.core.widening import node_type, read_type, widens
from bot.drizzle.forward import ForwardStatement, parse_forward
from bot.drizzle.journal import iso_date

if TYPE_CHECKING:
    from bot.core.schema import Schema, SchemaObject
    from bot.drizzle.folder import Migration

_AT = enums.AlterTableType
_OBJ = enums.ObjectType
_CON = enums.ConstrType
_DEFAULT_SCHEMA = "public"  # where an unqualified name lands under the default search_path
_COMMENT_WIDTH = 72
NO_REFERENCE = "no schema at N-1 was given (deriving from the files alone)"

_STATEMENT_REASONS: dict[type, str] = {
    ast.DoStmt: "a DO block runs code whose effects rollbot cannot see",
    ast.CreateFunctionStmt: "it creates or replaces a function, which a rollback runbook "
    "may not drop or restore",
    ast.CreateTrigStmt: "it creates a trigger, which a rollback runbook may not drop",
    ast.CreateExtensionStmt: "it creates an extension, which a rollback runbook may not drop",
    ast.InsertStmt: "it adds rows to an existing table, and a derived rollback cannot tell "
    "them from the rows that were there",
}
_UNKNOWN_REASON = (
    "a derived rollback undoes CREATE, DROP INDEX/CONSTRAINT/VIEW/TYPE, NOT NULL, DEFAULT, "
    "widened types, renames, moves and comments; not this statement"
)
# Dropped objects that hold no rows of their own: recreated from their N-1 definition.
_RECREATED = {
    _OBJ.OBJECT_VIEW: "view",
    _OBJ.OBJECT_MATVIEW: "materialized view",
    _OBJ.OBJECT_TYPE: "type",
    _OBJ.OBJECT_DOMAIN: "domain",
}
_RENAMES = {
    _OBJ.OBJECT_TABLE: "TABLE",
    _OBJ.OBJECT_COLUMN: "COLUMN",
    _OBJ.OBJECT_TABCONSTRAINT: "CONSTRAINT",
    _OBJ.OBJECT_INDEX: "INDEX",
    _OBJ.OBJECT_VIEW: "VIEW",
    _OBJ.OBJECT_MATVIEW: "MATERIALIZED VIEW",
    _OBJ.OBJECT_SEQUENCE: "SEQUENCE",
}
# Relations renamed back with ALTER <keyword> name RENAME TO old.
_RENAMED_RELATIONS = ("TABLE", "INDEX", "VIEW", "MATERIALIZED VIEW", "SEQUENCE")
# ALTER TABLE … ROW LEVEL SECURITY: the N-1 attribute it changes, what that means, and the
# keywords that set it on and off.
_ROW_SECURITY = {
    _AT.AT_EnableRowSecurity: ("row security", "applies row-level security", "ENABLE", "DISABLE"),
    _AT.AT_DisableRowSecurity: ("row security", "applies row-level security", "ENABLE", "DISABLE"),
    _AT.AT_ForceRowSecurity: (
        "force row security",
        "applies row-level security to its owner",
        "FORCE",
        "NO FORCE",
    ),
    _AT.AT_NoForceRowSecurity: (
        "force row security",
        "applies row-level security to its owner",
        "FORCE",
        "NO FORCE",
    ),
}
# What SET SCHEMA moves back: the keyword and how the schema at N-1 names its kind.
_MOVES = {
    _OBJ.OBJECT_TABLE: ("TABLE", "table"),
    _OBJ.OBJECT_VIEW: ("VIEW", "view"),
    _OBJ.OBJECT_MATVIEW: ("MATERIALIZED VIEW", "materialized view"),
    _OBJ.OBJECT_SEQUENCE: ("SEQUENCE", "sequence"),
    _OBJ.OBJECT_TYPE: ("TYPE", "type"),
}
_COMMENTS = {
    _OBJ.OBJECT_TABLE: "table",
    _OBJ.OBJECT_COLUMN: "column",
    _OBJ.OBJECT_INDEX: "index",
    _OBJ.OBJECT_VIEW: "view",
    _OBJ.OBJECT_MATVIEW: "materialized view",
    _OBJ.OBJECT_SEQUENCE: "sequence",
}
# A constraint re-added NOT VALID and then validated: the check of existing rows is its own
# step, and its failure names the constraint.
_VALIDATED = ("CHECK", "FOREIGN KEY")


@dataclass(frozen=True)
class Before:
    """The schema before the migration (N-1), or why there is none to read old state from."""

    schema: Schema | None = None
    unavailable: str = NO_REFERENCE  # why `schema` is None, said in refusals that need it

    def find(self, kind: str, *names: str) -> SchemaObject | None:
        """The N-1 object `kind schema.name[.part]`, named unquoted as the migration wrote it."""
        assert self.schema is not None  # noqa: S101 - callers ask `needs` first
        key = f"{kind} {'.'.join(quote_ident(n) for n in names)}"
        return self.schema.by_key().get(key)

    def attribute(self, found: SchemaObject | None, name: str) -> str | None:
        """An attribute's text of an N-1 object, None when the object or attribute is absent."""
        if found is None:
            return None
        return next((a.text for a in found.attributes if a.name == name), None)


@dataclass(frozen=True)
class Undo:
    """The rollback statements for one forward statement."""

    line: int  # the forward statement's line in its file
    forward: str  # the forward statement as written
    statements: tuple[str, ...]  # rollback SQL, in the order it must run, without semicolons


@dataclass
class _Scope:
    """What the migration created so far; statements touching only these need no undo."""

    before: Before
    tables: set[tuple[str, str]]
    columns: set[tuple[str, str, str]]
    types: set[tuple[str, str]]
    indexes: set[tuple[str, str]]
    constraints: set[tuple[str, str, str]]
    # Relations of N-1 renamed or moved by this migration: the new name to N-1's.
    renamed: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    # Columns of N-1 renamed by this migration: (schema, table, new name) to the N-1 name.
    renamed_columns: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Tables this migration created that a table of N-1 references through a foreign key it
    # added: deleting or changing their rows reaches rows of N-1 (ON DELETE/UPDATE actions).
    referenced: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def was_named(self, key: tuple[str, str]) -> tuple[str, str]:
        """The name N-1 has for what is now `key`."""
        return self.renamed.get(key, key)

    def has_table(self, relation: Any) -> bool:  # noqa: ANN401 - pglast RangeVar
        return _qualified_key(relation) in self.tables

    def has_column(self, relation: Any, column: str) -> bool:  # noqa: ANN401
        return (*_qualified_key(relation), column) in self.columns

    def column_was(self, relation: Any, column: str) -> str:  # noqa: ANN401 - pglast RangeVar
        """The N-1 name of what is now `column` of `relation`."""
        return self.renamed_columns.get((*_qualified_key(relation), column), column)

    def needs(self, what: str) -> Before:
        """The N-1 schema, or a refusal saying `what` needs it and why it is not there."""
        if self.before.schema is None:
            raise _Refusal(
                f"{what}, which needs the schema before this migration; rollbot rebuilds it "
                "by replaying ROLLBOT_MIGRATIONS_DIR on a scratch database, and "
                f"{self.before.unavailable}",
                needs_reference=True,
            )
        return self.before


class _Refusal(Exception):  # noqa: N818 - internal signal, never escapes this module
    def __init__(
        self, reason: str, *, loses_data: bool = False, needs_reference: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.loses_data = loses_data
        self.needs_reference = needs_reference


def _loses(reason: str) -> _Refusal:
    return _Refusal(reason, loses_data=True)


def needs_reference(migration: Migration) -> bool:
    """Whether undoing `migration` reads the schema at N-1: worth replaying the chain for."""
    refusals = _walk(migration, Before())[1]
    return any(refusal.needs_reference for _, refusal in refusals)


def derive_rollback(migration: Migration, before: Before | None = None) -> list[Undo]:
    """The rollback of `migration`, newest statement first; IrreversibleError if there is none.

    `before` is the schema at N-1; without it, what needs the old state is refused, saying so.
    """
    file = f"{migration.tag}.sql"
    undos, refused = _walk(migration, before or Before())
    if refused:
        losing = [(s, r) for s, r in refused if r.loses_data]
        statement, refusal = (losing or refused)[0]
        raise IrreversibleError(
            file, statement.line, statement.sql, refusal.reason, more=len(refused) - 1
        )
    if not undos:
        raise MigrationFileError(
            file,
            None,
            "the migration changes nothing a rollback would have to undo",
            todo="write the rollback runbook by hand if the migration did change something",
        )
    return list(reversed(undos))


def _walk(
    migration: Migration, before: Before
) -> tuple[list[Undo], list[tuple[ForwardStatement, _Refusal]]]:
    scope = _Scope(
        before=before, tables=set(), columns=set(), types=set(), indexes=set(), constraints=set()
    )
    undos: list[Undo] = []
    late: list[Undo] = []
    refused: list[tuple[ForwardStatement, _Refusal]] = []
    forward = parse_forward(migration)
    swaps = _enum_swaps(forward, scope)
    for index, statement in enumerate(forward):
        try:
            groups = swaps[index] if index in swaps else _undo(statement.node, scope)
        except _Refusal as refusal:
            refused.append((statement, refusal))
            continue
        for into, pick in ((undos, False), (late, True)):
            chosen = [g for g in reversed(groups) if isinstance(g, _Late) is pick]
            statements = tuple(sql for group in chosen for sql in group)
            if statements:
                into.append(Undo(statement.line, statement.sql, statements))
    # Both lists are reversed by the caller: the late ones, first here, run last.
    return late + undos, refused


def derive_runbook(
    migration: Migration, *, date: str | None = None, before: Before | None = None
) -> str:
    """A runbook in the seed's format, marked as derived; `date` defaults to the journal's."""
    undos = derive_rollback(migration, before)
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
    restores = any(not sql.startswith("DROP ") for undo in undos for sql in undo.statements)
    what = (
        "undoes each statement from the schema before it (migrations 0…N-1)"
        if restores
        else "drops what the migration created"
    )
    return "\n".join(
        [
            f"# Derived rollback of {migration.tag}",
            "",
            (
                f"> **Derived rollback.** rollbot derived this runbook from the forward "
                f"migration `{file}`; no person wrote it. It {what}, newest first "
                f"({count} statement{'' if count == 1 else 's'}). Read it before approving."
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


_Groups = list[tuple[str, ...]]  # each group in run order; the groups are undone newest first


class _Late(tuple[str, ...]):
    """A group that puts an object back from its N-1 definition, which names N-1's names.

    It runs after every other undo, renames back included, so that the tables, columns and
    types its definition names are there under those names (in newest-first order among
    themselves: a view reading another comes back after it).
    """

    __slots__ = ()


def _undo(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    """Rollback statements for one forward statement, in forward order; _Refusal if none."""
    undo = _UNDOERS.get(type(node))
    if undo is not None:
        return undo(node, scope)
    if _touches_only_new_objects(node, scope):
        return []
    if isinstance(node, ast.AlterEnumStmt):
        if node.oldVal:
            return _undo_enum_value_rename(node)
        return _undo_enum_value(node, scope)
    if isinstance(node, ast.UpdateStmt | ast.DeleteStmt | ast.TruncateStmt):
        raise _rows_refusal(node)
    if isinstance(node, ast.CreateSchemaStmt):
        return _undo_schema(node, scope)
    if isinstance(node, ast.CreateExtensionStmt):
        return _undo_if_not_exists_only(node, scope)
    raise _Refusal(_STATEMENT_REASONS.get(type(node), _UNKNOWN_REASON))


def _undo_enum_value(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - AlterEnumStmt
    """An added enum value is taken out by making the enum again with N-1's labels.

    PostgreSQL cannot drop an enum value. A row holding the added value makes the cast of
    `_enum_again` fail: the plan counts those rows first and blocks with their number, so
    what is refused is a row that holds it, not the value itself.
    """
    schema, name = _schema_and_name(node.typeName)
    what = f"it adds the value '{node.newVal}' to enum {_key(schema, name)[0]}.{name}"
    return [_enum_again(scope, _key(schema, name), what)]


def _enum_again(scope: _Scope, key: tuple[str, str], what: str) -> tuple[str, ...]:
    """The enum `key` made again with its N-1 labels, its N-1 columns cast to it.

    It is made under a passing name, each column of N-1 that uses it is cast to it through
    text (its default set aside meanwhile), the enum is dropped and the new one takes its
    name: every label a row holds must be one of N-1's, or the cast fails, and the plan
    counts such rows beforehand. An enum that an array, a domain or a composite type uses
    is refused: a person decides.
    """
    before = scope.needs(f"{what}; making it again needs the enum's labels at N-1")
    assert before.schema is not None  # noqa: S101 - needs() refused otherwise
    found = before.find("type", *key)
    labels = before.attribute(found, "labels")
    _refuse_if(labels is None, f"{what}, which is not an enum of the schema before it")
    assert found is not None  # noqa: S101 - refused just above
    users = [
        o
        for o in before.schema.objects
        if o is not found and any(found.name in a.text for a in o.attributes if a.name in _TYPED)
    ]
    columns = [o for o in users if o.kind == "column" and before.attribute(o, "type") == found.name]
    others = [o for o in users if o not in columns]
    _refuse_if(
        others,
        f"{what}, and {', '.join(o.key for o in others[:3])} uses the enum: making it again "
        "with N-1's labels would have to rewrite that too; rows written since may hold a "
        "value N-1 lacks",
    )
    passing = quote_ident(f"rollbot_n1_{key[1]}"[:63])
    enum, again = found.name, f"{quote_ident(key[0])}.{passing}"
    statements = [f"CREATE TYPE {again} AS ENUM ({labels})"]
    defaults = []
    for column in columns:
        table, field = column.name.rsplit(".", 1)
        alter = f"ALTER TABLE {table} ALTER COLUMN {field}"
        default = before.attribute(column, "default")
        if default is not None:
            statements.append(f"{alter} DROP DEFAULT")
            defaults.append(f"{alter} SET DEFAULT {default}")
        statements.append(f"{alter} SET DATA TYPE {again} USING {field}::text::{again}")
    statements += [f"DROP TYPE {enum}", f"ALTER TYPE {again} RENAME TO {quote_ident(key[1])}"]
    return (*statements, *defaults)


def _enum_swaps(statements: list[ForwardStatement], scope: _Scope) -> dict[int, _Groups]:
    """drizzle-kit's removal of an enum value, undone as one: the enum made again from N-1.

    drizzle-kit casts the enum's columns to text, drops the enum, creates it again without
    the value and casts the columns back (setting their defaults on the way). Statement by
    statement that is a type change, a drop and a create; together it is the enum's labels
    changing, and `_enum_again` undoes that: at the last of them, the others undone with it.
    Found only when N-1 is known and had the enum; otherwise each is judged on its own.
    """
    if scope.before.schema is None:
        return {}
    swaps: dict[int, _Groups] = {}
    for dropped, statement in enumerate(statements):
        node = statement.node
        if not (
            isinstance(node, ast.DropStmt)
            and node.removeType == _OBJ.OBJECT_TYPE
            and len(node.objects or ()) == 1
            and node.behavior != enums.DropBehavior.DROP_CASCADE
        ):
            continue
        key = _key(*_schema_and_name(cast("Any", node.objects)[0].names))
        found = scope.before.find("type", *key)
        created = next(
            (
                i
                for i, later in enumerate(statements[dropped + 1 :], dropped + 1)
                if isinstance(later.node, ast.CreateEnumStmt)
                and _key(*_schema_and_name(later.node.typeName)) == key
            ),
            None,
        )
        if created is None or scope.before.attribute(found, "labels") is None:
            continue
        assert found is not None  # noqa: S101 - it has labels
        columns = _enum_columns(scope.before, found.name)
        casts = [i for i, s in enumerate(statements) if _only_retypes(s.node, columns)]
        absorbed = sorted({dropped, created, *casts})
        what = f"it makes enum {_dotted(key)} again with other labels"
        for index in absorbed[:-1]:
            swaps[index] = []
        try:
            swaps[absorbed[-1]] = [_enum_again(scope, key, what)]
        except _Refusal:
            for index in absorbed:
                swaps.pop(index, None)
    return swaps


def _enum_columns(before: Before, enum: str) -> set[tuple[str, str, str]]:
    """(schema, table, column) of each N-1 column of the enum, unquoted as migrations name it."""
    assert before.schema is not None  # noqa: S101 - the caller checked
    found = set()
    for o in before.schema.objects:
        if o.kind == "column" and before.attribute(o, "type") == enum:
            table, column = o.name.rsplit(".", 1)
            schema, name = table.split(".", 1)
            found.add((_unquoted(schema), _unquoted(name), _unquoted(column)))
    return found


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _only_retypes(node: Any, columns: set[tuple[str, str, str]]) -> bool:  # noqa: ANN401
    """An ALTER TABLE that only changes the type or default of those columns."""
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None or not node.cmds:
        return False
    schema, table = _qualified_key(node.relation)
    return all(
        cmd.subtype in {_AT.AT_AlterColumnType, _AT.AT_ColumnDefault}
        and (schema, table, cmd.name) in columns
        for cmd in node.cmds
    )


# The attributes through which an object uses a type: a column's, a domain's base, a
# composite type's fields, a range's subtype.
_TYPED = frozenset({"type", "base type", "attributes", "subtype"})


def _rows_refusal(node: Any) -> _Refusal:  # noqa: ANN401 - pglast node
    if isinstance(node, ast.TruncateStmt):
        names = ", ".join(_shown(r) for r in node.relations or ())
        return _loses(f"it empties {names}, and every row is gone")
    table = _shown(node.relation)
    if isinstance(node, ast.DeleteStmt):
        return _loses(f"it deletes rows of {table}, and they are not in the migration")
    return _loses(f"it overwrites values in {table}, and the old values are not in the migration")


def _undo_schema(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    """A new schema is dropped last, without CASCADE: PostgreSQL refuses while it holds anything.

    drizzle-kit writes `CREATE SCHEMA` for every `pgSchema`; what the migration created in
    it is dropped before (newest first), and what was there before would stop the DROP.
    """
    if node.schemaElts:
        raise _Refusal(
            "it creates objects inside CREATE SCHEMA, which a derived rollback does not take apart"
        )
    name = str(node.schemaname)
    if _existed(scope, node.if_not_exists, "schema", name):
        return []
    return [(f"DROP SCHEMA IF EXISTS {quote_ident(name)}",)]


def _undo_if_not_exists_only(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    """An extension that N-1 already had: `IF NOT EXISTS` made the statement nothing."""
    if not node.if_not_exists:
        raise _Refusal(_STATEMENT_REASONS[type(node)])
    kind, key = "extension", quote_ident(node.extname)
    before = scope.needs(f"it creates {kind} {key} only if it is not there")
    assert before.schema is not None  # noqa: S101 - needs() refused otherwise
    if f"{kind} {key}" in before.schema.by_key():
        return []
    raise _Refusal(_STATEMENT_REASONS[type(node)])


def _undo_composite(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    scope.types.add(_qualified_key(node.typevar))
    return [(f"DROP TYPE IF EXISTS {_relation(node.typevar)}",)]


def _existed(scope: _Scope, if_not_exists: object, kind: str, *names: str) -> bool:
    """For `IF NOT EXISTS`: whether N-1 had the object, so the statement made nothing."""
    if not if_not_exists:
        return False
    shown = ".".join(names).removeprefix(f"{_DEFAULT_SCHEMA}.")
    before = scope.needs(f"it creates {kind} {shown} only if it is not there")
    return before.find(kind, *names) is not None


def _undo_table(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    if _existed(scope, node.if_not_exists, "table", *_qualified_key(node.relation)):
        return []
    scope.tables.add(_qualified_key(node.relation))
    return [(f"DROP TABLE IF EXISTS {_relation(node.relation)}",)]


def _undo_table_as(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    relation = node.into.rel
    matview = node.objtype == _OBJ.OBJECT_MATVIEW
    kind = "materialized view" if matview else "table"
    if _existed(scope, node.if_not_exists, kind, *_qualified_key(relation)):
        return []
    scope.tables.add(_qualified_key(relation))
    return [(f"DROP {kind.upper()} IF EXISTS {_relation(relation)}",)]


def _undo_sequence(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    if _existed(scope, node.if_not_exists, "sequence", *_qualified_key(node.sequence)):
        return []
    scope.tables.add(_qualified_key(node.sequence))  # a relation this migration made
    return [(f"DROP SEQUENCE IF EXISTS {_relation(node.sequence)}",)]


def _undo_view(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    if node.replace:
        raise _Refusal(
            "CREATE OR REPLACE VIEW may have replaced a view whose old definition is not in "
            "the migration"
        )
    scope.tables.add(_qualified_key(node.view))
    return [(f"DROP VIEW IF EXISTS {_relation(node.view)}",)]


def _undo_index(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    relation = node.relation
    if not node.idxname:
        _refuse_if(node.if_not_exists, "IF NOT EXISTS on an index without a name")
        _refuse_unnamed("index", relation, scope)
        return []  # it goes with its table, which this migration created
    schema = _qualified_key(relation)[0]
    if _existed(scope, node.if_not_exists, "index", schema, node.idxname):
        return []
    scope.indexes.add((schema, node.idxname))
    return [(f"DROP INDEX IF EXISTS {_name(relation.schemaname, node.idxname)}",)]


def _refuse_unnamed(kind: str, relation: Any, scope: _Scope) -> None:  # noqa: ANN401 - pglast node
    """An unnamed object is fine only on a table this migration created: it goes with it."""
    _refuse_if(
        not scope.has_table(relation),
        f"the {kind} has no name in the migration; PostgreSQL chose one (adding a digit "
        "if it was taken), so a derived rollback cannot name it for certain",
    )


def _undo_drop(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    kind = node.removeType
    if kind == _OBJ.OBJECT_POLICY:
        # drizzle-kit writes DROP POLICY … CASCADE; nothing can depend on a policy, so
        # PostgreSQL ignores the word and nothing else went with it.
        return _recreate_policy(node, scope)
    groups: _Groups = []
    for target in node.objects or ():
        names = target.names if isinstance(target, ast.TypeName) else target
        schema, name = _schema_and_name(names)
        key = _key(schema, name)
        if kind == _OBJ.OBJECT_INDEX:
            groups += _recreate_index(key, scope, missing_ok=bool(node.missing_ok))
        elif key in scope.tables or key in scope.types:
            continue  # made by this migration: nothing of before is lost
        elif kind == _OBJ.OBJECT_TABLE:
            raise _loses(f"it drops table {_dotted(key)}, and every row in it is gone")
        elif kind == _OBJ.OBJECT_SEQUENCE:
            raise _loses(f"it drops sequence {_dotted(key)}, and its current value is gone")
        elif kind in _RECREATED:
            _refuse_if(
                node.behavior == enums.DropBehavior.DROP_CASCADE,
                f"it drops {_RECREATED[kind]} {_dotted(key)} with CASCADE; what went with it "
                "is not in the migration",
            )
            groups += _recreate(kind, key, scope, missing_ok=bool(node.missing_ok))
        else:
            raise _Refusal(_UNKNOWN_REASON)
    return groups


def _recreate(kind: Any, key: tuple[str, str], scope: _Scope, *, missing_ok: bool) -> _Groups:  # noqa: ANN401 - pglast enum
    """A dropped view, materialized view or type, created again from its N-1 definition.

    A view and a type hold no rows: their definition is all there is. A materialized view
    holds rows, but they are its query's result; it is created `WITH DATA` only when it was
    populated at N-1, and that runs its query, which the plan checks like any other
    statement of the runbook (only PostgreSQL's own code may run).
    """
    what = _RECREATED[kind]
    before = scope.needs(f"it drops {what} {_dotted(key)}; recreating it needs its definition")
    lookup = "type" if kind in {_OBJ.OBJECT_TYPE, _OBJ.OBJECT_DOMAIN} else what
    found = before.find(lookup, *key)
    if found is None:
        _refuse_if(
            not missing_ok,
            f"it drops {what} {_dotted(key)}, which the schema before this migration does not have",
        )
        return []
    name = ".".join(quote_ident(part) for part in key)
    if lookup != "type":
        return [_Late(_view_statements(what, name, found, before) + _indexes_of(found, before))]
    return [_Late(_type_statements(name, found, before))]


def _indexes_of(found: SchemaObject, before: Before) -> tuple[str, ...]:
    """The N-1 indexes of a recreated materialized view: they went with it, they come back."""
    assert before.schema is not None  # noqa: S101 - the view was found in it
    parent = found.key
    return tuple(
        definition
        for index in before.schema.objects
        if index.kind == "index"
        and index.parent == parent
        and (definition := before.attribute(index, "definition"))
    )


def _view_statements(what: str, name: str, found: SchemaObject, before: Before) -> tuple[str, ...]:
    definition = (before.attribute(found, "definition") or "").strip().rstrip(";")
    options = before.attribute(found, "options")
    with_options = f" WITH ({options})" if options else ""
    create = f"CREATE {what.upper()} {name}{with_options} AS {definition}"
    if what == "materialized view":
        populated = before.attribute(found, "populated") == "true"
        create += " WITH DATA" if populated else " WITH NO DATA"
    comment = before.attribute(found, "comment")
    if comment:
        return (create, f"COMMENT ON {what.upper()} {name} IS {quote_literal(comment)}")
    return (create,)


def _type_statements(name: str, found: SchemaObject, before: Before) -> tuple[str, ...]:
    shape = before.attribute(found, "kind")
    if shape == "enum":
        create = f"CREATE TYPE {name} AS ENUM ({before.attribute(found, 'labels') or ''})"
    elif shape == "composite":
        create = f"CREATE TYPE {name} AS ({before.attribute(found, 'attributes') or ''})"
    elif shape == "domain":
        create = f"CREATE DOMAIN {name} AS {before.attribute(found, 'base type')}"
        default = before.attribute(found, "default")
        if default:
            create += f" DEFAULT {default}"
        if before.attribute(found, "not null") == "true":
            create += " NOT NULL"
        checks = before.attribute(found, "checks")
        if checks:
            create += f" {checks}"
    else:
        raise _Refusal(
            f"it drops type {name}, a {shape} type at N-1; a derived rollback recreates "
            "enums, composite types and domains"
        )
    comment = before.attribute(found, "comment")
    keyword = "DOMAIN" if shape == "domain" else "TYPE"
    if comment:
        return (create, f"COMMENT ON {keyword} {name} IS {quote_literal(comment)}")
    return (create,)


def _recreate_index(key: tuple[str, str], scope: _Scope, *, missing_ok: bool) -> _Groups:
    if key in scope.indexes:
        return []  # made by this migration, and dropped again
    before = scope.needs(f"it drops index {_dotted(key)}; recreating it needs its definition")
    found = before.find("index", *key)
    definition = before.attribute(found, "definition")
    if definition is None:
        _refuse_if(
            not missing_ok,
            f"it drops index {_dotted(key)}, which the schema before this migration does not "
            "have (an index of a constraint is dropped with the constraint)",
        )
        return []
    return [_Late((definition,))]


def _undo_alter_table(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    if node.objtype != _OBJ.OBJECT_TABLE:
        raise _Refusal(_UNKNOWN_REASON)
    relation = node.relation
    new_table = scope.has_table(relation)
    groups: _Groups = []
    for cmd in node.cmds or ():
        if cmd.subtype == _AT.AT_AddColumn:
            groups += _undo_add_column(cmd, relation, scope)
        elif cmd.subtype == _AT.AT_AddConstraint:
            groups += _undo_add_constraint(cmd.def_, relation, scope)
        elif new_table or (cmd.name and scope.has_column(relation, cmd.name)):
            continue  # goes with the table or column this migration created
        else:
            groups += _undo_alter_old(cmd, relation, scope)
    return groups


def _undo_add_column(cmd: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    for constraint in cmd.def_.constraints or ():
        _note_reference(constraint, relation, scope)
    column = cmd.def_.colname
    if _existed(scope, cmd.missing_ok, "column", *_qualified_key(relation), column):
        return []
    scope.columns.add((*_qualified_key(relation), column))
    return [(f"ALTER TABLE {_relation(relation)} DROP COLUMN IF EXISTS {quote_ident(column)}",)]


def _undo_alter_old(cmd: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401, PLR0911
    """An ALTER TABLE subcommand on a table (and column) that existed before the migration."""
    table = _relation(relation)
    shown = _shown(relation)
    subtype = cmd.subtype
    if subtype == _AT.AT_DropColumn:
        raise _loses(f"it drops column {shown}.{cmd.name}, and every value in it is gone")
    if subtype == _AT.AT_AlterColumnType:
        return _cast_back(cmd, relation, scope)
    if subtype == _AT.AT_DropConstraint:
        return _readd_constraint(cmd, relation, scope)
    if subtype in _ROW_SECURITY:
        return _row_security_back(subtype, relation, scope)
    if subtype not in {_AT.AT_SetNotNull, _AT.AT_DropNotNull, _AT.AT_ColumnDefault}:
        raise _Refusal(_UNKNOWN_REASON)
    column = f"ALTER TABLE {table} ALTER COLUMN {quote_ident(cmd.name)}"
    if subtype == _AT.AT_SetNotNull and scope.before.schema is None:
        return [(f"{column} DROP NOT NULL",)]  # the forward says it was nullable
    what = {
        _AT.AT_SetNotNull: "it makes {} NOT NULL",
        _AT.AT_DropNotNull: "it lets {} hold NULL; making it NOT NULL again needs to know it was",
        _AT.AT_ColumnDefault: "it changes the default of {}; putting the old one back needs it",
    }[subtype].format(f"{shown}.{cmd.name}")
    before = scope.needs(what)
    was = scope.column_was(relation, cmd.name)
    found = before.find("column", *scope.was_named(_qualified_key(relation)), was)
    if found is None:
        raise _Refusal(f"column {shown}.{was} is not in the schema before this migration")
    if subtype == _AT.AT_ColumnDefault:
        default = before.attribute(found, "default")
        return [(f"{column} SET DEFAULT {default}" if default else f"{column} DROP DEFAULT",)]
    was_not_null = before.attribute(found, "not null") == "true"
    if subtype == _AT.AT_SetNotNull:
        return [] if was_not_null else [(f"{column} DROP NOT NULL",)]
    return [(f"{column} SET NOT NULL",)] if was_not_null else []


def _cast_back(cmd: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    """A widened column cast back to its N-1 type, collation and default.

    Only a widening whose cast back gives every value that existed exactly
    (`bot.core.widening`): anything else converted the values, and the old ones are gone.
    The plan counts the rows written since that the old type would not hold. PostgreSQL
    casts the default along with the column, which can leave it spelled another way, so the
    N-1 default is set again after the cast.
    """
    shown = f"{_shown(relation)}.{cmd.name}"
    lost = (
        f"it changes the type of {shown}; its values were converted and the old ones are not kept"
    )
    if cmd.def_.raw_default is not None:
        raise _loses(f"{lost} (USING)")
    if scope.before.schema is None:
        raise _Refusal(
            f"{lost}, unless it widened the type, which needs the schema before this "
            f"migration; rollbot rebuilds it by replaying ROLLBOT_MIGRATIONS_DIR on a scratch "
            f"database, and {scope.before.unavailable}",
            loses_data=True,
            needs_reference=True,
        )
    was = scope.column_was(relation, cmd.name)
    found = scope.before.find("column", *scope.was_named(_qualified_key(relation)), was)
    if found is None:
        raise _Refusal(f"column {shown} is not in the schema before this migration")
    old = read_type(scope.before.attribute(found, "type"))
    new = node_type(cmd.def_.typeName)
    if old is None or new is None or not widens(old, new) or cmd.def_.collClause is not None:
        raise _loses(lost)
    if scope.before.attribute(found, "identity") or scope.before.attribute(found, "generated"):
        raise _Refusal(
            f"it changes the type of {shown}, an identity or generated column, whose "
            "sequence or expression changes with it; a derived rollback does not undo that"
        )
    column = f"ALTER TABLE {_relation(relation)} ALTER COLUMN {quote_ident(cmd.name)}"
    collation = scope.before.attribute(found, "collation")
    cast = f"{column} SET DATA TYPE {old}" + (f" COLLATE {collation}" if collation else "")
    default = scope.before.attribute(found, "default")
    return [(cast, f"{column} SET DEFAULT {default}") if default else (cast,)]


def _row_security_back(subtype: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    """Row-level security, and whether it binds the owner too, go back to N-1's setting."""
    attribute, shown, on, off = _ROW_SECURITY[subtype]
    table = _shown(relation)
    before = scope.needs(f"it changes whether {table} {shown}; putting it back needs it")
    found = before.find("table", *scope.was_named(_qualified_key(relation)))
    _refuse_if(found is None, f"table {table} is not in the schema before this migration")
    was_on = before.attribute(found, attribute) == "true"
    return [(f"ALTER TABLE {_relation(relation)} {on if was_on else off} ROW LEVEL SECURITY",)]


def _undo_policy(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast CreatePolicyStmt
    """A policy holds no rows: dropping it undoes it, unless it goes with its new table."""
    if scope.has_table(node.table):
        return []
    name = quote_ident(node.policy_name)
    return [(f"DROP POLICY IF EXISTS {name} ON {_relation(node.table)}",)]


_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def _policy_before(scope: _Scope, relation: Any, name: str, what: str) -> SchemaObject:  # noqa: ANN401
    """The N-1 definition of a policy the migration changed or dropped; refused if none."""
    label = f"policy {name} on {_shown(relation)}"
    before = scope.needs(f"it {what} {label}; putting it back needs its definition")
    found = before.find("policy", *scope.was_named(_qualified_key(relation)), name)
    _refuse_if(
        found is None, f"it {what} {label}, which the schema before this migration does not have"
    )
    assert found is not None  # noqa: S101 - refused just above
    return found


def _undo_alter_policy(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - AlterPolicyStmt
    """Roles and expressions back to N-1's; a USING or WITH CHECK that N-1 lacked cannot go.

    ALTER POLICY can set a clause but not remove one, so a policy that had none at N-1 is a
    person's decision (drop and create it), not a guess.
    """
    if scope.has_table(node.table):
        return []
    name = str(node.policy_name)
    found = _policy_before(scope, node.table, name, "changes")
    qual, check = (
        scope.before.attribute(found, "using"),
        scope.before.attribute(found, "with check"),
    )
    for clause, added, had in (("USING", node.qual, qual), ("WITH CHECK", node.with_check, check)):
        _refuse_if(
            added is not None and had is None,
            f"it gives policy {name} on {_shown(node.table)} a {clause} clause it did not have "
            "before, and ALTER POLICY cannot remove one",
        )
    sql = f"ALTER POLICY {quote_ident(name)} ON {_relation(node.table)}"
    sql += f" TO {scope.before.attribute(found, 'roles') or 'public'}"
    sql += f" USING ({qual})" if qual is not None else ""
    sql += f" WITH CHECK ({check})" if check is not None else ""
    return [(sql,)]


def _recreate_policy(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - DropStmt
    """A dropped policy is created again from N-1: its command, kind, roles and expressions."""
    groups: _Groups = []
    for target in node.objects or ():
        parts = [str(part.sval) for part in target]
        relation = ast.RangeVar(
            schemaname=parts[-3] if len(parts) > 2 else None,  # noqa: PLR2004 - schema.table.policy
            relname=parts[-2],
        )
        name = parts[-1]
        if scope.has_table(relation):
            continue
        if (
            node.missing_ok
            and scope.needs(f"it drops policy {name} if it is there").find(
                "policy", *scope.was_named(_qualified_key(relation)), name
            )
            is None
        ):
            continue
        found = _policy_before(scope, relation, name, "drops")
        attribute = scope.before.attribute
        kind = "PERMISSIVE" if attribute(found, "permissive") == "true" else "RESTRICTIVE"
        command = _POLICY_COMMANDS.get(attribute(found, "command") or "*", "ALL")
        sql = f"CREATE POLICY {quote_ident(name)} ON {_relation(relation)} AS {kind}"
        sql += f" FOR {command} TO {attribute(found, 'roles') or 'public'}"
        qual, check = attribute(found, "using"), attribute(found, "with check")
        sql += f" USING ({qual})" if qual is not None else ""
        sql += f" WITH CHECK ({check})" if check is not None else ""
        groups.append((sql,))
    return groups


def _readd_constraint(cmd: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    key = (*_qualified_key(relation), cmd.name)
    if key in scope.constraints:
        return []  # made by this migration, and dropped again
    shown = f"{cmd.name} on {_shown(relation)}"
    before = scope.needs(f"it drops constraint {shown}; adding it back needs its definition")
    was = (*scope.was_named(_qualified_key(relation)), cmd.name)
    definition = before.attribute(before.find("constraint", *was), "definition")
    if definition is None:
        _refuse_if(
            not cmd.missing_ok,
            f"it drops constraint {shown}, which the schema before this migration does not have",
        )
        return []
    # Run last, under the table's N-1 name: its definition names N-1's columns and tables.
    table = ".".join(quote_ident(part) for part in scope.was_named(_qualified_key(relation)))
    add = f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(cmd.name)} {definition}"
    if not definition.startswith(_VALIDATED) or definition.endswith(" NOT VALID"):
        return [_Late((add,))]
    validate = f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote_ident(cmd.name)}"
    return [_Late((f"{add} NOT VALID", validate))]


def _note_reference(constraint: Any, relation: Any, scope: _Scope) -> None:  # noqa: ANN401
    """A foreign key from a table of N-1 to one this migration made: its rows now reach N-1's."""
    if constraint.contype != _CON.CONSTR_FOREIGN or scope.has_table(relation):
        return
    parent = _qualified_key(constraint.pktable)
    if parent in scope.tables:
        scope.referenced[parent] = _qualified_key(relation)


def _undo_add_constraint(constraint: Any, relation: Any, scope: _Scope) -> _Groups:  # noqa: ANN401
    _note_reference(constraint, relation, scope)
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
    scope.constraints.add((*_qualified_key(relation), constraint.conname))
    name = quote_ident(constraint.conname)
    return [(f"ALTER TABLE {_relation(relation)} DROP CONSTRAINT IF EXISTS {name}",)]


def _undo_type_rename(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    """A type or domain renamed back: every column using it keeps it, under the old name."""
    keyword = "DOMAIN" if node.renameType == _OBJ.OBJECT_DOMAIN else "TYPE"
    schema, name = _schema_and_name(node.object)
    old = _key(schema, name)
    if old in scope.types:
        scope.types.discard(old)
        scope.types.add((old[0], node.newname))
    renamed = _name(schema, node.newname)
    return [(f"ALTER {keyword} {renamed} RENAME TO {quote_ident(name)}",)]


def _undo_rename(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    if node.renameType in {_OBJ.OBJECT_TYPE, _OBJ.OBJECT_DOMAIN} and not node.missing_ok:
        return _undo_type_rename(node, scope)
    keyword = _RENAMES.get(node.renameType)
    if keyword is None or node.missing_ok:
        raise _Refusal(
            "a derived rollback renames back only tables, columns, constraints, indexes, "
            "views, materialized views, sequences, types and domains (without IF EXISTS)"
        )
    relation = node.relation
    schema = relation.schemaname
    if keyword in _RENAMED_RELATIONS:
        old = _qualified_key(relation)
        moved = (old[0], node.newname)
        if old in scope.tables:
            scope.tables.discard(old)
            scope.tables.add(moved)
        else:
            scope.tables.discard(moved)
            scope.renamed[moved] = scope.was_named(old)
        renamed = _name(schema, node.newname)
        return [(f"ALTER {keyword} {renamed} RENAME TO {quote_ident(relation.relname)}",)]
    if keyword == "COLUMN":
        table = _qualified_key(relation)
        if scope.has_column(relation, node.subname):
            scope.columns.discard((*table, node.subname))
            scope.columns.add((*table, node.newname))
        else:  # a column of N-1: its new name is no new column's, whatever had it before
            scope.columns.discard((*table, node.newname))
            was_named = scope.column_was(relation, node.subname)
            scope.renamed_columns[(*table, node.newname)] = was_named
    new, was = quote_ident(node.newname), quote_ident(node.subname)
    return [(f"ALTER TABLE {_relation(relation)} RENAME {keyword} {new} TO {was}",)]


def _undo_alter_sequence(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - AlterSeqStmt
    """A sequence's options go back to N-1's; its current value is left where it is.

    Increment, bounds, start, cache, cycling and type are its definition; the current value
    is its data, which RESTART throws away (refused, like a dropped sequence). Every option
    is written from N-1, whichever the migration changed.
    """
    key = _qualified_key(node.sequence)
    if key in scope.tables:
        return []  # made by this migration: dropping it undoes this too
    shown = f"sequence {_dotted(key)}"
    options = {str(option.defname) for option in node.options or ()}
    if "restart" in options:
        raise _loses(f"it restarts {shown}, and its current value is gone")
    _refuse_if(
        node.missing_ok or node.for_identity or not options <= SEQUENCE_OPTIONS,
        "a derived rollback puts back a sequence's type, increment, bounds, start, cache and "
        "cycling (without IF EXISTS), not its owner",
    )
    before = scope.needs(f"it changes the options of {shown}; putting them back needs them")
    found = before.find("sequence", *scope.was_named(key))
    _refuse_if(found is None, f"{shown} is not in the schema before this migration")
    was = {a.name: a.text for a in found.attributes} if found is not None else {}
    cycle = "CYCLE" if was.get("cycle") == "true" else "NO CYCLE"
    options_back = (
        f"AS {was.get('type', 'bigint')} INCREMENT BY {was.get('increment')} "
        f"MINVALUE {was.get('min')} MAXVALUE {was.get('max')} START WITH {was.get('start')} "
        f"CACHE {was.get('cache')} {cycle}"
    )
    return [(f"ALTER SEQUENCE {_relation(node.sequence)} {options_back}",)]


def _undo_enum_value_rename(node: Any) -> _Groups:  # noqa: ANN401 - pglast AlterEnumStmt
    """A renamed enum value is renamed back: every row holding it reads the old label again."""
    schema, name = _schema_and_name(node.typeName)
    new, old = quote_literal(node.newVal), quote_literal(node.oldVal)
    return [(f"ALTER TYPE {_name(schema, name)} RENAME VALUE {new} TO {old}",)]


def _undo_set_schema(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    """An object moved to another schema goes back to the one it had at N-1.

    Only when N-1 had it there, or when this migration created it: moved back first, it is
    where the undo of its creation drops it. One N-1 had elsewhere has no old place.
    """
    move = _MOVES.get(node.objectType)
    if move is None or node.missing_ok:
        raise _Refusal(
            "a derived rollback moves back only tables, views, materialized views, sequences "
            "and types (without IF EXISTS)"
        )
    keyword, kind = move
    if node.objectType == _OBJ.OBJECT_TYPE:
        schema, name = _schema_and_name(node.object)
    else:
        schema, name = node.relation.schemaname, node.relation.relname
    key = _key(schema, name)
    shown = f"{kind} {_dotted(key)}"
    moved = f"{quote_ident(node.newschema)}.{quote_ident(name)}"
    back: _Groups = [(f"ALTER {keyword} {moved} SET SCHEMA {quote_ident(key[0])}",)]
    if key in scope.tables or key in scope.types:
        # Made by this migration: moved back first, it is where the undo of its CREATE
        # drops it; meanwhile statements on it at its new place touch a new object.
        (scope.types if key in scope.types else scope.tables).add((node.newschema, name))
        return back
    before = scope.needs(f"it moves {shown} to schema {node.newschema}")
    was = scope.was_named(key)
    _refuse_if(
        before.find(kind, *was) is None,
        f"it moves {shown}, which the schema before this migration does not have there",
    )
    if kind != "type":
        scope.renamed[(node.newschema, name)] = was
    return back


def _undo_comment(node: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast node
    kind = _COMMENTS.get(node.objtype)
    if kind is None:
        raise _Refusal(
            "a derived rollback puts back comments only on tables, columns, views, "
            "indexes and sequences"
        )
    parts = [str(part.sval) for part in node.object]
    names = parts if len(parts) == (3 if kind == "column" else 2) else [_DEFAULT_SCHEMA, *parts]
    owner = (names[0], names[1])
    if owner in scope.tables or (kind == "column" and tuple(names) in scope.columns):
        return []  # goes with what this migration created
    shown = ".".join(names).removeprefix(f"{_DEFAULT_SCHEMA}.")
    before = scope.needs(
        f"it sets the comment of {kind} {shown}; putting the old one back needs it"
    )
    found = before.find(kind, *names)
    if found is None:
        raise _Refusal(f"{kind} {shown} is not in the schema before this migration")
    old = before.attribute(found, "comment")
    target = ".".join(quote_ident(n) for n in names)
    return [(f"COMMENT ON {kind.upper()} {target} IS {quote_literal(old) if old else 'NULL'}",)]


def _touches_only_new_objects(node: Any, scope: _Scope) -> bool:  # noqa: ANN401, PLR0911
    """Data and enum changes confined to what this migration created go when it is dropped."""
    if isinstance(node, ast.AlterEnumStmt):
        return _key(*_schema_and_name(node.typeName)) in scope.types
    if isinstance(node, ast.TruncateStmt):
        relations = node.relations or ()
        _refuse_reaching_old(relations, scope, "empties")
        return all(scope.has_table(r) for r in relations)
    if not isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
        return False
    if node.withClause is not None:
        return False  # a data-modifying WITH may write anywhere
    if scope.has_table(node.relation):
        if not isinstance(node, ast.InsertStmt):
            verb = "deletes rows of" if isinstance(node, ast.DeleteStmt) else "changes rows of"
            _refuse_reaching_old((node.relation,), scope, verb)
        return True
    if isinstance(node, ast.UpdateStmt):
        targets = [target.name for target in node.targetList or ()]
        if not all(scope.has_column(node.relation, name) for name in targets):
            return False
        _refuse_if_triggered(node.relation, scope)
        return True
    return False


def _refuse_reaching_old(relations: Any, scope: _Scope, verb: str) -> None:  # noqa: ANN401
    """Rows of a new table that a table of N-1 references: N-1's rows go or change with them."""
    for relation in relations:
        old = scope.referenced.get(_qualified_key(relation))
        if old is not None:
            raise _loses(
                f"it {verb} {_shown(relation)}, which {_dotted(old)} references through a "
                f"foreign key this migration added: rows of {_dotted(old)} may have been "
                "deleted or changed with them (ON DELETE / ON UPDATE actions), and they are "
                "not in the migration"
            )


def _refuse_if_triggered(relation: Any, scope: _Scope) -> None:  # noqa: ANN401 - RangeVar
    """An UPDATE of new columns fires the table's own triggers, which may rewrite old ones."""
    table = _shown(relation)
    before = scope.needs(f"it updates rows of {table}; whether its triggers ran needs them")
    assert before.schema is not None  # noqa: S101 - needs() refused otherwise
    parent = f"table {'.'.join(quote_ident(p) for p in scope.was_named(_qualified_key(relation)))}"
    triggers = [o.name for o in before.schema.objects if o.kind == "trigger" and o.parent == parent]
    if triggers:
        raise _loses(
            f"it updates rows of {table}, and its trigger {triggers[0].rsplit('.', 1)[-1]} "
            "runs on each, which may have changed the values of existing columns; the old "
            "values are not in the migration"
        )


def _drop_type(keyword: str, names: Any, scope: _Scope) -> _Groups:  # noqa: ANN401 - pglast names
    schema, name = _schema_and_name(names)
    scope.types.add(_key(schema, name))
    return [(f"DROP {keyword} IF EXISTS {_name(schema, name)}",)]


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


def _dotted(key: tuple[str, str]) -> str:
    """`users` for public.users, `billing.invoices` otherwise: as a person reads it."""
    return key[1] if key[0] == _DEFAULT_SCHEMA else f"{key[0]}.{key[1]}"


def _shown(relation: Any) -> str:  # noqa: ANN401 - pglast RangeVar
    return _dotted(_qualified_key(relation))


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


_Undoer = Callable[[Any, _Scope], _Groups]
_UNDOERS: dict[type, _Undoer] = {
    ast.CreateEnumStmt: lambda node, scope: _drop_type("TYPE", node.typeName, scope),
    ast.CreateRangeStmt: lambda node, scope: _drop_type("TYPE", node.typeName, scope),
    ast.CreateDomainStmt: lambda node, scope: _drop_type("DOMAIN", node.domainname, scope),
    ast.CompositeTypeStmt: _undo_composite,
    ast.CreateStmt: _undo_table,
    ast.CreateTableAsStmt: _undo_table_as,
    ast.CreateSeqStmt: _undo_sequence,
    ast.ViewStmt: _undo_view,
    ast.IndexStmt: _undo_index,
    ast.AlterTableStmt: _undo_alter_table,
    ast.DropStmt: _undo_drop,
    ast.RenameStmt: _undo_rename,
    ast.CommentStmt: _undo_comment,
    ast.AlterObjectSchemaStmt: _undo_set_schema,
    ast.AlterSeqStmt: _undo_alter_sequence,
    ast.CreatePolicyStmt: _undo_policy,
    ast.AlterPolicyStmt: _undo_alter_policy,
}
